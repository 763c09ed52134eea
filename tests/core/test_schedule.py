"""The control schedule on a fake clock: steady phase, skipped ticks, errors, stopping."""

from __future__ import annotations

import asyncio
import logging

import pytest

from custom_components.dynamic_export.core.schedule import ControlSchedule


class FakeTime:
    """A clock and a sleep that agree: sleeping moves the clock, nothing really waits.

    ``wake_early`` ends every sleep that much before its time, as a real event loop may.
    """

    def __init__(self, start: float = 1000.0, wake_early: float = 0.0) -> None:
        self.now = start
        self.wake_early = wake_early
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += max(0.0, delay - self.wake_early)
        await asyncio.sleep(0)


class Cycles:
    """A cycle that records when it started, takes ``durations`` and may raise."""

    def __init__(self, time: FakeTime, durations: list[float] | None = None) -> None:
        self.time = time
        self.durations = durations or []
        self.starts: list[float] = []
        self.running = 0
        self.most_running = 0
        self.raise_at: set[int] = set()
        self.stop_after: int | None = None
        self.schedule: ControlSchedule | None = None
        self.stopper: asyncio.Task[None] | None = None

    async def __call__(self) -> None:
        index = len(self.starts)
        self.starts.append(self.time.now)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0)
            self.time.now += self.durations[index] if index < len(self.durations) else 0.1
            if index in self.raise_at:
                raise RuntimeError(f"cycle {index} broke")
        finally:
            self.running -= 1
            if self.stop_after is not None and len(self.starts) >= self.stop_after:
                assert self.schedule is not None
                if self.stopper is None:
                    self.stopper = asyncio.create_task(self.schedule.async_stop())


async def run_cycles(
    cycles: Cycles, time: FakeTime, count: int, interval_s: float = 1.0
) -> ControlSchedule:
    schedule = ControlSchedule(cycles, interval_s, clock=time.clock, sleep=time.sleep)
    cycles.schedule = schedule
    cycles.stop_after = count
    await asyncio.wait_for(asyncio.create_task(schedule.async_run()), 5)
    assert cycles.stopper is not None
    await cycles.stopper
    return schedule


async def test_ticks_keep_their_phase_whatever_cycles_take() -> None:
    """Tick k starts at start + k * interval, however long each cycle took."""
    time = FakeTime(start=1000.0)
    cycles = Cycles(time, durations=[0.1, 0.7, 0.05, 0.95, 0.3, 0.0])
    schedule = await run_cycles(cycles, time, 6)
    assert cycles.starts == pytest.approx([1000.0, 1001.0, 1002.0, 1003.0, 1004.0, 1005.0])
    assert schedule.cycles == 6
    assert schedule.skipped == 0


async def test_the_phase_survives_sleeps_that_end_early_or_late() -> None:
    """A sleep that ends a millisecond early counts for its tick: no cycle back to back."""
    time = FakeTime(start=0.0, wake_early=0.001)
    cycles = Cycles(time, durations=[0.2] * 5)
    await run_cycles(cycles, time, 5)
    assert cycles.starts == pytest.approx([0.0, 0.999, 1.999, 2.999, 3.999], abs=1e-9)
    gaps = [b - a for a, b in zip(cycles.starts, cycles.starts[1:], strict=False)]
    assert min(gaps) > 0.99


async def test_an_overrun_skips_the_missed_ticks() -> None:
    """A cycle of 2.5 s at a 1 s interval: the next runs at the next tick, not at once."""
    time = FakeTime(start=0.0)
    cycles = Cycles(time, durations=[0.1, 2.5, 0.1, 0.1])
    schedule = await run_cycles(cycles, time, 4)
    assert cycles.starts == pytest.approx([0.0, 1.0, 4.0, 5.0])
    assert schedule.skipped == 2  # the ticks at 2 s and 3 s
    # It slept until the tick, never ran a cycle right after the long one.
    assert all(delay > 0 for delay in time.sleeps)


async def test_longer_intervals_keep_their_phase() -> None:
    time = FakeTime(start=10.0)
    cycles = Cycles(time, durations=[1.0, 4.9, 5.2, 0.0])
    schedule = await run_cycles(cycles, time, 4, interval_s=5.0)
    assert cycles.starts == pytest.approx([10.0, 15.0, 20.0, 30.0])
    assert schedule.skipped == 1


async def test_a_failing_cycle_is_logged_and_the_schedule_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime(start=0.0)
    cycles = Cycles(time)
    cycles.raise_at = {1, 2}
    with caplog.at_level(logging.ERROR):
        schedule = await run_cycles(cycles, time, 5)
    assert cycles.starts == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    assert schedule.cycles == 5
    failures = [r for r in caplog.records if "control cycle failed" in r.getMessage()]
    assert len(failures) == 2
    assert failures[0].exc_info is not None


async def test_one_cycle_at_a_time() -> None:
    time = FakeTime(start=0.0)
    cycles = Cycles(time, durations=[3.0, 0.5, 1.5, 0.1])
    await run_cycles(cycles, time, 4)
    assert cycles.most_running == 1


async def test_stop_while_idle_ends_at_once() -> None:
    """Stopped during its sleep, the schedule ends without running another cycle."""
    started = asyncio.Event()
    count = 0

    async def cycle() -> None:
        nonlocal count
        count += 1
        started.set()

    # A real sleep on the event loop's clock: the schedule waits a whole hour.
    schedule = ControlSchedule(cycle, 3600.0)
    task = asyncio.create_task(schedule.async_run())
    await asyncio.wait_for(started.wait(), 1)
    await asyncio.sleep(0)
    await asyncio.wait_for(schedule.async_stop(), 1)
    assert task.done()
    assert not task.cancelled()
    assert count == 1


async def test_stop_lets_the_running_cycle_finish() -> None:
    """Stopped mid-cycle (a write under way), the cycle completes, then the schedule ends."""
    inside = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    async def cycle() -> None:
        inside.set()
        await release.wait()
        finished.append("cycle")

    schedule = ControlSchedule(cycle, 1.0)
    task = asyncio.create_task(schedule.async_run())
    await asyncio.wait_for(inside.wait(), 1)
    stopper = asyncio.create_task(schedule.async_stop())
    await asyncio.sleep(0.01)
    assert not stopper.done()  # waits for the cycle
    release.set()
    await asyncio.wait_for(stopper, 1)
    assert finished == ["cycle"]
    assert task.done()
    assert not task.cancelled()
    assert schedule.cycles == 1


async def test_waiting_for_a_cycle_returns_after_the_next_one() -> None:
    """``async_wait_cycle`` returns once a cycle that started after the call has ended."""
    time = FakeTime(start=0.0)
    gate = asyncio.Event()
    starts: list[float] = []

    async def sleep(delay: float) -> None:
        await gate.wait()
        gate.clear()
        time.now += delay

    async def cycle() -> None:
        starts.append(time.now)

    schedule = ControlSchedule(cycle, 1.0, clock=time.clock, sleep=sleep)
    task = asyncio.create_task(schedule.async_run())
    await asyncio.sleep(0)
    assert starts == [0.0]  # the first cycle runs at once
    waiter = asyncio.create_task(schedule.async_wait_cycle())
    await asyncio.sleep(0.01)
    assert not waiter.done()  # the schedule sleeps: no cycle yet
    gate.set()
    await asyncio.wait_for(waiter, 1)
    assert starts == [0.0, 1.0]
    await schedule.async_stop()
    await task
    # Not running any more: waiting returns at once.
    await asyncio.wait_for(schedule.async_wait_cycle(), 1)


async def test_a_frozen_clock_still_gets_a_cycle_per_tick_it_is_woken_for() -> None:
    """A sleep woken before the clock moved (a test firing timers) keeps its tick.

    The schedule then sleeps at most one interval, never longer and longer, so a frozen
    clock can step it one tick at a time.
    """
    time = FakeTime(start=50.0)
    sleeps: list[float] = []
    gate = asyncio.Event()
    count = 0

    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        await gate.wait()
        gate.clear()  # woken without the clock moving

    async def cycle() -> None:
        nonlocal count
        count += 1

    schedule = ControlSchedule(cycle, 1.0, clock=time.clock, sleep=sleep)
    task = asyncio.create_task(schedule.async_run())
    for _ in range(3):
        await asyncio.sleep(0)
        gate.set()
        await asyncio.wait_for(schedule.async_wait_cycle(), 1)
    assert count == 4
    assert sleeps == pytest.approx([1.0, 1.0, 1.0, 1.0])
    await schedule.async_stop()
    await task


def test_the_interval_must_be_positive() -> None:
    async def cycle() -> None:
        return None

    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="interval"):
            ControlSchedule(cycle, bad)


async def test_the_first_tick_can_wait_one_interval() -> None:
    """A caller that has just run a cycle itself starts the schedule one interval on."""
    time = FakeTime(start=7.0)
    cycles = Cycles(time)
    schedule = ControlSchedule(cycles, 2.0, clock=time.clock, sleep=time.sleep)
    cycles.schedule = schedule
    cycles.stop_after = 3
    await asyncio.wait_for(asyncio.create_task(schedule.async_run(first_now=False)), 5)
    assert cycles.stopper is not None
    await cycles.stopper
    assert cycles.starts == pytest.approx([9.0, 11.0, 13.0])
