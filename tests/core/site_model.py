"""Instruments for the property tests of the control core.

:class:`VirtualTimeLoop` runs asyncio on a :class:`~.fakes.FakeClock` that jumps ahead
whenever nothing is ready, so device timeouts and slow answers cost no real time and every
run is reproducible. :class:`Probe` sees every device call (start, answer, cancellation)
and the one ``wall_clock`` call each cycle makes between measuring and writing, and
records each breach of "one cycle at a time" as it happens; a probe never raises inside a
device call, because the loop would take that for a device fault.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from custom_components.dynamic_export.core.measurements import (
    InverterCommand,
    InverterReading,
    MeterReading,
)

from .fakes import FakeClock, FakeInverter, FakeMeter, FakeSite, Fault

READ = "read"
APPLY = "apply"
RELEASE = "release"
WRITES = (APPLY, RELEASE)


class _JumpingSelector(selectors.DefaultSelector):
    """Polls real I/O without waiting, then moves the fake clock to the next timer."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise RuntimeError("deadlock: every task waits and no timer is set")
        self._clock.advance(timeout)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is ``clock`` and that never really sleeps."""

    def __init__(self, clock: FakeClock) -> None:
        self._fake_clock = clock
        super().__init__(selector=_JumpingSelector(clock))

    def time(self) -> float:
        return self._fake_clock.now


@dataclass
class Call:
    """One device call as the device saw it."""

    seq: int
    op: str
    device: str
    cycle: int
    """Index of the last cycle marker before the call started (-1: none yet)."""
    command: InverterCommand | None = None
    answered: bool = False
    result: Any = None
    finished: bool = False


@dataclass
class Marker:
    """The moment a cycle decides: after its reads, before its writes."""

    index: int
    seq: int
    time: float
    info: dict[str, Any] = field(default_factory=dict)
    ok_reads: dict[str, Any] = field(default_factory=dict)
    """What each device answered to this cycle's reads."""


class Probe:
    """Sees every device call and every cycle marker; notes breaches of serial cycles."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.markers: list[Marker] = []
        self.violations: list[str] = []
        self.writes_forbidden: str | None = None
        """Why no apply or release may start now (set after a close), or None."""
        self.on_finish: Callable[[Call], None] | None = None
        """Told of every call as it ends (answered, failed or cancelled)."""
        self._in_flight: dict[int, Call] = {}
        self._reads_since_marker: dict[str, Call] = {}
        self._seq = 0

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def cycle(self) -> int:
        return len(self.markers) - 1

    @contextmanager
    def call(self, op: str, device: str, command: InverterCommand | None = None) -> Iterator[Call]:
        """Bracket one device call; the body sets ``answered`` when the device answers."""
        call = Call(self._next_seq(), op, device, self.cycle, command)
        busy = {c.op for c in self._in_flight.values()}
        if op == READ:
            if busy & set(WRITES):
                self.violations.append(f"#{call.seq} read {device} while a write is in flight")
            if device in self._reads_since_marker:
                self.violations.append(
                    f"#{call.seq} {device} read twice before one cycle decided"
                    " (two cycles measuring at once)"
                )
            self._reads_since_marker[device] = call
        else:
            if READ in busy:
                self.violations.append(f"#{call.seq} {op} {device} while a read is in flight")
            if self._reads_since_marker:
                self.violations.append(
                    f"#{call.seq} {op} {device} after the next cycle's reads began"
                )
            if self.writes_forbidden is not None:
                self.violations.append(f"#{call.seq} {op} {device}: {self.writes_forbidden}")
        self.calls.append(call)
        self._in_flight[call.seq] = call
        try:
            yield call
        finally:
            call.finished = True
            del self._in_flight[call.seq]
            if self.on_finish is not None:
                self.on_finish(call)

    def mark(self, time: float, info: dict[str, Any]) -> Marker:
        """A cycle decides now: close its measuring phase."""
        if any(c.op == READ for c in self._in_flight.values()):
            self.violations.append("a cycle decided while one of its reads was in flight")
        marker = Marker(len(self.markers), self._next_seq(), time, info)
        marker.ok_reads = {
            device: call.result
            for device, call in self._reads_since_marker.items()
            if call.answered
        }
        self._reads_since_marker = {}
        self.markers.append(marker)
        return marker

    def calls_of(self, cycle: int, *ops: str) -> list[Call]:
        """The calls of ``ops`` that started after marker ``cycle`` and before the next."""
        return [c for c in self.calls if c.cycle == cycle and c.op in ops]

    def calls_after(self, seq: int, *ops: str) -> list[Call]:
        return [c for c in self.calls if c.seq > seq and c.op in ops]

    @property
    def seq(self) -> int:
        return self._seq


class ProbedInverter(FakeInverter):
    """A fake inverter that reports its calls to a probe and can lose a write's reply."""

    def __init__(self, key: str, site: FakeSite, rated_power_w: float, probe: Probe) -> None:
        super().__init__(key, site, rated_power_w)
        self.probe = probe
        self.last_applied_at: float | None = None
        self.reply_lost = False
        """The write takes effect but its answer never comes (a disconnect mid-write)."""

    def set_revert_timeout(self, seconds: float) -> None:
        self._revert_timeout_s = seconds

    async def async_read(self) -> InverterReading:
        with self.probe.call(READ, self.key) as call:
            reading = await super().async_read()
            call.answered, call.result = True, reading
            return reading

    async def async_apply(self, command: InverterCommand) -> None:
        with self.probe.call(APPLY, self.key, command) as call:
            await super().async_apply(command)
            self.last_applied_at = self.site.clock()
            if self.reply_lost:
                await asyncio.Event().wait()
            call.answered = True

    async def async_release(self) -> None:
        with self.probe.call(RELEASE, self.key) as call:
            await super().async_release()
            call.answered = True

    @property
    def ceiling_w(self) -> float:
        """The most this inverter may produce under the limit it holds now."""
        if not self.connected:
            return 0.0
        if self.limit_enabled and self.limit_pct is not None:
            return self.rated_power_w * self.limit_pct / 100.0
        return self.rated_power_w

    @property
    def free(self) -> bool:
        """Handed back: no limit of ours in force and connected."""
        return not self.limit_enabled and self.connected

    def revert_if_due(self, now: float) -> None:
        """Drop our limit when the revert timer has run out since the last write."""
        if (
            self.revert_timeout_s > 0
            and self.limit_enabled
            and self.last_applied_at is not None
            and now - self.last_applied_at >= self.revert_timeout_s
        ):
            self.revert()

    def clear_faults(self) -> None:
        self.read_fault, self.apply_fault, self.release_fault = Fault(), Fault(), Fault()
        self.reply_lost = False


class ProbedMeter(FakeMeter):
    """The site meter, reporting its reads to a probe."""

    def __init__(self, site: FakeSite, probe: Probe) -> None:
        super().__init__(site)
        self.probe = probe

    async def async_read(self) -> MeterReading:
        with self.probe.call(READ, "meter") as call:
            reading = await super().async_read()
            call.answered, call.result = True, reading
            return reading


def probed_site(
    probe: Probe, clock: FakeClock, ratings: list[float], load_w: float = 0.0
) -> tuple[FakeSite, dict[str, ProbedInverter], ProbedMeter]:
    """A fake site whose meter and inverters (``inv0``, ``inv1``, ...) report to ``probe``."""
    site = FakeSite(load_w=load_w, clock=clock)
    meter = ProbedMeter(site, probe)
    site.meter = meter
    inverters: dict[str, ProbedInverter] = {}
    for index, rating in enumerate(ratings):
        key = f"inv{index}"
        inverters[key] = site.inverters[key] = ProbedInverter(key, site, rating, probe)
    return site, inverters, meter


def run(loop: VirtualTimeLoop, *coroutines: Callable[[], Any]) -> list[Any]:
    """Run coroutine factories as concurrent tasks on ``loop``; return their results."""

    async def together() -> list[Any]:
        return list(await asyncio.gather(*(factory() for factory in coroutines)))

    return loop.run_until_complete(together())
