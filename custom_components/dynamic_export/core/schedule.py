"""The control loop's own clock: one cycle per tick, on a steady phase.

Ticks fall at ``start + k * interval`` on a monotonic clock, so the control rate does
not drift with how long cycles take. A cycle that overruns its interval skips the ticks
it missed rather than running the next cycles back to back (they would act on the same
stale picture of the site). Only one cycle runs at a time, a cycle that raises is
logged and the schedule goes on, and :meth:`ControlSchedule.async_stop` lets a running
cycle end before the schedule stops, so nothing is cut off halfway through a write.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

_LOGGER = logging.getLogger(__name__)

type Clock = Callable[[], float]
type Sleep = Callable[[float], Awaitable[None]]


class ControlSchedule:
    """Run ``cycle`` at every tick until stopped.

    ``clock`` and ``sleep`` must tell the same time: by default the running event loop's
    clock and :func:`asyncio.sleep`; tests pass a fake pair.
    """

    def __init__(
        self,
        cycle: Callable[[], Awaitable[object]],
        interval_s: float,
        *,
        name: str = "control",
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """Run ``cycle`` every ``interval_s`` seconds once :meth:`async_run` is awaited."""
        if not interval_s > 0 or not math.isfinite(interval_s):
            raise ValueError(f"interval must be a positive number of seconds, not {interval_s}")
        self.interval_s = interval_s
        self.name = name
        self._cycle = cycle
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._sleeping = False
        self._done = asyncio.Event()
        self._waiting: list[asyncio.Future[None]] = []
        self.cycles = 0
        """Cycles run so far (also those that raised)."""
        self.skipped = 0
        """Ticks skipped because a cycle overran them."""

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    async def async_run(self, *, first_now: bool = True) -> None:
        """Run cycles until :meth:`async_stop`; the first one at once, or one interval on.

        ``first_now=False`` counts the start itself as a tick already run, for a caller
        that has just run a cycle of its own (a site's first cycle at set-up).
        """
        self._task = asyncio.current_task()
        start = self._now()
        next_tick = start if first_now else start + self.interval_s
        try:
            while not self._stopping:
                delay = next_tick - self._now()
                if delay > 0 and not await self._async_sleep(delay):
                    return
                started = self._now()
                await self._run_one()
                next_tick = self._next_tick(start, started, self._now())
        finally:
            self._done.set()
            self._release_waiting()

    async def _async_sleep(self, delay: float) -> bool:
        """Sleep until the next tick; False when stopped meanwhile (nothing was running)."""
        self._sleeping = True
        try:
            await self._sleep(delay)
        except asyncio.CancelledError:
            if self._stopping:
                return False
            raise
        finally:
            self._sleeping = False
        return not self._stopping

    def _next_tick(self, start: float, started: float, now: float) -> float:
        """The first tick after the one this cycle ran for that the clock has not passed.

        The cycle ran for the tick nearest its start (a sleep may end a little early or
        late). Ticks the clock has already passed are skipped, and counted.
        """
        ran_for = round((started - start) / self.interval_s)
        following = max(ran_for + 1, math.floor((now - start) / self.interval_s) + 1)
        self.skipped += following - (ran_for + 1)
        return start + following * self.interval_s

    async def _run_one(self) -> None:
        waiting, self._waiting = self._waiting, []
        try:
            await self._cycle()
        except Exception:
            _LOGGER.exception("%s: the control cycle failed; the next one runs on time", self.name)
        finally:
            self.cycles += 1
            for future in waiting:
                if not future.done():
                    future.set_result(None)

    async def async_wait_cycle(self) -> None:
        """Wait for the end of the next scheduled cycle that starts after this call.

        For tools and tests that step a fake clock and need to know the cycle it let
        through has finished. Returns at once if the schedule is not running.
        """
        if self._done.is_set() or self._task is None:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        await future

    def _release_waiting(self) -> None:
        for future in self._waiting:
            if not future.done():
                future.set_result(None)
        self._waiting.clear()

    async def async_stop(self) -> None:
        """Stop the schedule: at once when idle, after the running cycle otherwise.

        Returns once the schedule's task has ended and its done callbacks have run, so
        whoever tracks the task (a config entry's background tasks) no longer holds it.
        """
        self._stopping = True
        task = self._task
        if task is None or task.done():
            return
        if self._sleeping:
            task.cancel()
        await asyncio.wait([task])
