"""A GoodWe ET-family inverter driven through its own export limit.

**What the inverter can do.** An ET/EH/BT/BH inverter limits **export at its own meter**, not
its output: with *export limit* on (setting 47509 = 1) it curtails itself so that the power
its GoodWe meter sees leaving the site stays at or below the limit in W (47510). Like a
Victron GX's maximum feed-in, it cannot hold generation below the household's own use, so
``limits_generation`` is False and the site does not claim a generation limit.

**How the controller's target is translated.** The controller asks for a generation share
``G`` (``limit_pct`` of the rating). With ``P`` the inverter's output and ``X`` the export at
its meter, the load behind the meter is ``P - X``, so generating ``G`` means exporting

    export limit = G - P + X

Under a site export limit ``E`` the controller's ``G`` is ``P + E - export`` (less its
margin), so the limit written is ``E`` less the margin: steady while the load moves, so it is
rarely rewritten. It is clamped to 0 W (zero export; also what ``connect=False`` becomes),
rounded down to ``step_w``, and never set above the installer's own limit when one was on
(the *baseline*), nor above the rating. With no limit asked (100 %) the installer's settings
are what the inverter gets.

**Writes.** GoodWe keeps the export limit in non-volatile memory (it survives a restart), so
a register is written only when the value the inverter holds would change: the limit held is
kept while the exact value is less than a step above it or at most half a step below it (the
controller's own margin covers the half step), the switch only when it is off, and the same
value never twice within a minute. There is no revert timer (``revert_timeout_s`` = 0): if
Home Assistant stops, the last export limit stays in force, which keeps export within it.

**Handing back.** Before the first write the installer's switch and limit are kept as the
baseline and reported through ``on_baseline`` so the site can store them: after a crash the
inverter still holds our limit and only the store knows what to restore. Release writes the
baseline back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import InvalidDeviceDataError
from ..core.measurements import InverterCommand, InverterReading
from .client import EXPORT_ENABLED, EXPORT_LIMIT, EtIdentity, EtRuntime, GoodWeEtClient
from .errors import NoGoodWeMeterError

DEFAULT_STEP_W = 50
"""Export limits are written in steps of this many watts."""
MAX_SNAPSHOT_AGE_S = 5.0
"""A translation uses the last runtime read when it is at most this old, else reads again."""
SETTINGS_MAX_AGE_S = 30.0
"""The switch and limit are read again after this long (someone may change them in the app)."""
REWRITE_AFTER_S = 60.0
"""The same value is written to a setting at most once in this time."""
MAX_LIMIT_W = 0xFFFF
ON, OFF = 1, 0


@dataclass(frozen=True, slots=True)
class Baseline:
    """The export limit settings the inverter had before Dynamic Export first limited it."""

    enabled: int
    limit_w: int

    def __post_init__(self) -> None:
        """Refuse what the inverter could not have held (a corrupt store)."""
        if self.enabled not in (ON, OFF):
            raise ValueError(f"export switch {self.enabled!r} is neither 0 nor 1")
        if not 0 <= self.limit_w <= MAX_LIMIT_W:
            raise ValueError(f"export limit {self.limit_w!r} W is outside 0..{MAX_LIMIT_W}")


@dataclass(frozen=True, slots=True)
class _Snapshot:
    time: float
    runtime: EtRuntime


def limit_fraction(limit_pct: float) -> float:
    """A command's limit as a fraction 0-1; refuses what is not a finite number."""
    if isinstance(limit_pct, bool) or not isinstance(limit_pct, int | float):
        raise TypeError(f"limit must be a number, got {limit_pct!r}")
    if not math.isfinite(limit_pct):
        raise ValueError(f"limit {limit_pct!r} % is not a finite number")
    return min(100.0, max(0.0, float(limit_pct))) / 100.0


class GoodWeInverter:
    """Implements core.devices.Inverter for one ET-family inverter, through its export limit."""

    def __init__(
        self,
        client: GoodWeEtClient,
        *,
        step_w: int = DEFAULT_STEP_W,
        baseline: Baseline | None = None,
        on_baseline: Callable[[Baseline | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``baseline``: what release restores, kept from an earlier run (None: read it)."""
        if not 1 <= step_w <= 1000:
            raise ValueError("step_w must be 1-1000 W")
        self._client = client
        self._step_w = step_w
        self._baseline = baseline
        self._on_baseline = on_baseline
        self._clock = clock
        self._info: EtIdentity | None = None
        self._snapshot: _Snapshot | None = None
        self._held: tuple[int, int] | None = None  # (switch, limit W) as last read or written
        self._held_at = -math.inf
        self._written_w: int | None = None  # the limit we wrote last
        self._commanded_pct: float | None = None  # the command it stood for
        self._last_write: dict[str, tuple[int, float]] = {}  # setting -> (value, time)
        self.writes = 0  # settings written (diagnostics, tests)

    @property
    def info(self) -> EtIdentity | None:
        """Set by :meth:`async_setup`."""
        return self._info

    @property
    def baseline(self) -> Baseline | None:
        """What release restores (None until the first limit, and after a release)."""
        return self._baseline

    @property
    def revert_timeout_s(self) -> float:
        """0: the export limit is persistent and has no timeout."""
        return 0.0

    @property
    def supports_connect(self) -> bool:
        """False: the export limit cannot open a relay; connect=False is zero export."""
        return False

    @property
    def limits_generation(self) -> bool:
        """False: the inverter caps export at its meter; generation never goes below the load.

        The site then does not advertise a generation limit to a utility (``core.capability``).
        """
        return False

    @property
    def limit_step_pct(self) -> float:
        """0: the limit read back is the command itself while the inverter holds our limit."""
        return 0.0

    async def async_setup(self) -> EtIdentity:
        """Identify the inverter and read its export limit settings (nothing is written)."""
        info = await self._client.async_identify()
        self._info = info
        await self._async_read_held()
        return info

    async def _identity(self) -> EtIdentity:
        if self._info is None:
            return await self.async_setup()
        return self._info

    async def _async_read_held(self) -> tuple[int, int]:
        switch = await self._client.async_read_setting(EXPORT_ENABLED)
        limit = await self._client.async_read_setting(EXPORT_LIMIT)
        if switch not in (ON, OFF) or not 0 <= limit <= MAX_LIMIT_W:
            raise InvalidDeviceDataError(
                f"GoodWe at {self._client.host}: export switch {switch}, limit {limit} W"
            )
        self._held = (switch, limit)
        self._held_at = self._clock()
        return self._held

    async def _async_held(self) -> tuple[int, int]:
        if self._held is None or self._clock() - self._held_at > SETTINGS_MAX_AGE_S:
            return await self._async_read_held()
        return self._held

    async def _async_snapshot(self, info: EtIdentity) -> _Snapshot:
        timestamp = self._clock()
        runtime = await self._client.async_runtime()
        if abs(runtime.ac_power_w) > 2 * info.rated_power_w:
            raise InvalidDeviceDataError(
                f"GoodWe at {self._client.host}: output {runtime.ac_power_w:g} W is implausible "
                f"for a {info.rated_power_w:g} W inverter"
            )
        if not runtime.meter_ok:
            # Its export limit follows the meter: without it, neither our translation nor
            # the limit itself holds anything. Unavailable, the site counts it at its rating.
            self._snapshot = None
            raise NoGoodWeMeterError(
                f"GoodWe at {self._client.host}: the inverter does not hear its meter, so its "
                "export limit holds nothing"
            )
        snapshot = _Snapshot(timestamp, runtime)
        self._snapshot = snapshot
        return snapshot

    async def async_read(self) -> InverterReading:
        """Output, the rating, and the limit in force as a share of the rating.

        While the inverter holds the limit we wrote, the limit is the command it stood for;
        another value (set in the app, or left from an earlier run) is translated back with
        this reading's output and export, so the write policy sees it as drift.
        """
        info = await self._identity()
        snapshot = await self._async_snapshot(info)
        switch, held_w = await self._async_held()
        runtime = snapshot.runtime
        limit_pct: float | None
        if switch == ON and held_w == self._written_w and self._commanded_pct is not None:
            limit_pct, enabled = self._commanded_pct, True
        elif switch == OFF:
            limit_pct, enabled = None, False
        else:
            generation = held_w + runtime.ac_power_w - runtime.export_w
            limit_pct = min(100.0, max(0.0, generation / info.rated_power_w * 100.0))
            enabled = True
        return InverterReading(
            timestamp=snapshot.time,
            ac_power_w=runtime.ac_power_w,
            rated_power_w=info.rated_power_w,
            limit_pct=limit_pct,
            limit_enabled=enabled,
            connected=None,
            status=None,
            lifetime_energy_wh=runtime.lifetime_energy_wh,
        )

    def _own(self, held: tuple[int, int]) -> Baseline:
        """The installer's settings: the stored baseline, else what the inverter holds."""
        return self._baseline if self._baseline is not None else Baseline(*held)

    def limit_for(
        self, command: InverterCommand, runtime: EtRuntime, held: tuple[int, int]
    ) -> tuple[int, int]:
        """The (switch, limit W) that hold ``command``; see the module docstring."""
        if not isinstance(command.connect, bool):
            raise TypeError(f"connect must be a bool, got {command.connect!r}")
        fraction = limit_fraction(command.limit_pct) if command.connect else 0.0
        own = self._own(held)
        if fraction >= 1.0:
            return own.enabled, own.limit_w if own.enabled == ON else held[1]
        rating = self._info.rated_power_w if self._info is not None else 0.0
        ceiling = min(own.limit_w, MAX_LIMIT_W) if own.enabled == ON else MAX_LIMIT_W
        ceiling = min(ceiling, int(rating))
        exact = rating * fraction - runtime.ac_power_w + runtime.export_w
        switch, held_w = held
        step = self._step_w
        if switch == ON and 0 <= held_w <= exact + step / 2 and held_w > exact - step:
            # Within a step of the limit held: readings taken a moment apart move the exact
            # value by a few watts every cycle, and each write is a flash write.
            limit = held_w
        else:
            limit = max(0, math.floor(exact / step) * step)
        return ON, max(0, min(limit, ceiling))

    async def async_apply(self, command: InverterCommand) -> None:
        """Write the export limit for ``command``, only the settings that would change."""
        limit_fraction(command.limit_pct)  # refuse a bad value before anything is read
        info = await self._identity()
        snapshot = self._snapshot
        if snapshot is None or self._clock() - snapshot.time > MAX_SNAPSHOT_AGE_S:
            snapshot = await self._async_snapshot(info)
        held = await self._async_held()
        switch, limit = self.limit_for(command, snapshot.runtime, held)
        if self._baseline is None and (switch, limit) != held:
            self._baseline = Baseline(*held)
            if self._on_baseline is not None:
                self._on_baseline(self._baseline)
        await self._async_write_held(held, switch, limit)
        self._written_w = limit if switch == ON else None
        self._commanded_pct = (
            100.0 * (limit_fraction(command.limit_pct) if command.connect else 0.0)
            if switch == ON
            else None
        )

    async def _async_write_held(self, held: tuple[int, int], switch: int, limit: int) -> None:
        """Write what differs: the limit first, so the switch never turns on a stale one."""
        self._held = None  # a write that fails leaves the held values unknown
        if limit != held[1]:
            await self._write_once(EXPORT_LIMIT, limit)
        if switch != held[0]:
            await self._write_once(EXPORT_ENABLED, switch)
        self._held = (switch, limit)
        self._held_at = self._clock()

    async def _write_once(self, setting: str, value: int) -> None:
        """Write ``value`` unless it was written within REWRITE_AFTER_S.

        An inverter that reads back something else right after a write (it ignores the
        value) is not written again every cycle: each write may wear its flash.
        """
        last = self._last_write.get(setting)
        if last is not None and last[0] == value and self._clock() - last[1] < REWRITE_AFTER_S:
            return
        await self._write(setting, value)

    async def _write(self, setting: str, value: int) -> None:
        self.writes += 1
        await self._client.async_write_setting(setting, value)
        self._last_write[setting] = (value, self._clock())

    async def async_release(self) -> None:
        """Write the installer's settings back (the baseline); without one, nothing."""
        await self._identity()
        baseline = self._baseline
        if baseline is None:
            return  # never limited by us: the inverter holds its own settings
        switch, limit = await self._async_read_held()
        self._held = None
        if limit != baseline.limit_w:
            await self._write(EXPORT_LIMIT, baseline.limit_w)
        if switch != baseline.enabled:
            await self._write(EXPORT_ENABLED, baseline.enabled)
        self._held = (baseline.enabled, baseline.limit_w)
        self._held_at = self._clock()
        self._last_write.clear()
        self._written_w = None
        self._commanded_pct = None
        self._snapshot = None
        self._baseline = None
        if self._on_baseline is not None:
            self._on_baseline(None)
