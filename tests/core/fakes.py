"""In-memory site for unit tests of the control cycle.

A :class:`FakeSite` holds a load and the inverters; the meter reads the grid
power that follows from them (import positive), so the loop sees the effect of
its own writes on the next cycle. Every device can be told to fail or to hang.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from datetime import datetime

from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.core.measurements import (
    InverterCommand,
    InverterReading,
    MeterReading,
)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Fault:
    """How a fake device call misbehaves: raise ``error``, or never answer."""

    error: BaseException | None = None
    hang: bool = False
    delay_s: float = 0.0
    """A slow answer: this long before the call completes."""

    async def apply(self) -> None:
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        if self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error


class FakeInverter:
    """An inverter whose output is the lesser of its sunlight and its limit."""

    def __init__(
        self,
        key: str,
        site: FakeSite,
        rated_power_w: float,
        available_w: float | None = None,
        *,
        revert_timeout_s: float = 60.0,
    ) -> None:
        self.key = key
        self.site = site
        self.rated_power_w = rated_power_w
        self.available_w = rated_power_w if available_w is None else available_w
        self._revert_timeout_s = revert_timeout_s
        self.limit_pct: float | None = None
        self.limit_enabled = False
        self.connected = True
        self.applied: list[InverterCommand] = []
        self.releases = 0
        self.reads = 0
        self.read_fault = Fault()
        self.apply_fault = Fault()
        self.release_fault = Fault()
        self.reports_limit = True
        """False: the inverter does not report its limit or relay state."""
        self.supports_connect = True
        self.limit_step_pct = 0.0
        """The step a read-back limit is rounded down to (0: exact)."""

    @property
    def revert_timeout_s(self) -> float:
        return self._revert_timeout_s

    @property
    def output_w(self) -> float:
        if not self.connected:
            return 0.0
        ceiling = self.rated_power_w
        if self.limit_enabled and self.limit_pct is not None:
            ceiling = self.rated_power_w * self.limit_pct / 100.0
        return max(0.0, min(self.available_w, ceiling))

    async def async_read(self) -> InverterReading:
        self.site.log.append(f"read {self.key}")
        self.reads += 1
        await self.read_fault.apply()
        return InverterReading(
            timestamp=self.site.clock(),
            ac_power_w=self.output_w,
            rated_power_w=self.rated_power_w,
            limit_pct=self.limit_pct if self.reports_limit else None,
            limit_enabled=self.limit_enabled if self.reports_limit else None,
            connected=self.connected if self.reports_limit else None,
        )

    async def async_apply(self, command: InverterCommand) -> None:
        self.site.log.append(f"write {self.key}")
        await self.apply_fault.apply()
        self.applied.append(command)
        self.connected = command.connect
        step = self.limit_step_pct
        self.limit_pct = (
            math.floor(command.limit_pct / step + 1e-9) * step if step > 0 else command.limit_pct
        )
        self.limit_enabled = True

    async def async_release(self) -> None:
        self.site.log.append(f"release {self.key}")
        await self.release_fault.apply()
        self.releases += 1
        self.limit_enabled = False
        self.connected = True

    def revert(self) -> None:
        """What the inverter does when its revert timer runs out."""
        self.limit_enabled = False


class FakeMeter:
    """The grid meter: import positive, stamped with the site clock."""

    def __init__(self, site: FakeSite) -> None:
        self.site = site
        self.fault = Fault()
        self.reads = 0

    async def async_read(self) -> MeterReading:
        self.site.log.append("read meter")
        self.reads += 1
        await self.fault.apply()
        return MeterReading(timestamp=self.site.clock(), grid_power_w=self.site.grid_power_w)


@dataclass
class FakeSite:
    """A load, some inverters and a meter that sees both."""

    load_w: float = 0.0
    clock: FakeClock = field(default_factory=FakeClock)
    inverters: dict[str, FakeInverter] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.meter = FakeMeter(self)

    def add_inverter(
        self,
        key: str,
        rated_power_w: float,
        available_w: float | None = None,
        *,
        revert_timeout_s: float = 60.0,
    ) -> FakeInverter:
        inverter = FakeInverter(
            key, self, rated_power_w, available_w, revert_timeout_s=revert_timeout_s
        )
        self.inverters[key] = inverter
        return inverter

    @property
    def generation_w(self) -> float:
        return sum(inv.output_w for inv in self.inverters.values())

    @property
    def grid_power_w(self) -> float:
        return self.load_w - self.generation_w

    @property
    def export_w(self) -> float:
        return -self.grid_power_w

    @property
    def ratings(self) -> dict[str, float]:
        return {key: inv.rated_power_w for key, inv in self.inverters.items()}


class RecordingLimiter:
    """A limiter that logs each question and can be told to fail."""

    def __init__(
        self,
        source: str,
        controls: Controls | None = None,
        *,
        log: list[str] | None = None,
        error: Exception | None = None,
        enabled: bool = True,
    ) -> None:
        self.source = source
        self.enabled = enabled
        self.answer = controls or Controls()
        self.error = error
        self.log = log if log is not None else []
        self.asked: list[datetime] = []

    def controls(self, now: datetime) -> Controls:
        self.log.append(f"limiter {self.source}")
        self.asked.append(now)
        if self.error is not None:
            raise self.error
        return self.answer
