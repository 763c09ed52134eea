"""When each of the client's polls and posts is next due.

Jobs are named (``"dcap"``, ``"tm"``, ``"derp <href>"``, ``"mmr"``...) and timed in steady
seconds, so a jump of the wall clock moves none of them. A job never planned is due now.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .sep2.discovery import retry_delay


class Timetable:
    """Due times of named jobs, in steady seconds."""

    def __init__(self) -> None:
        """Start with nothing planned: every job is due."""
        self._due: dict[str, float] = {}

    def is_due(self, job: str, now: float) -> bool:
        """Whether ``job`` should run at ``now``."""
        return self._due.get(job, 0.0) <= now

    def due_at(self, job: str) -> float:
        """When ``job`` is due (0 when never planned)."""
        return self._due.get(job, 0.0)

    def plan(self, job: str, now: float, rate: float) -> None:
        """Done at ``now``: next due after its rate."""
        self._due[job] = now + rate

    def retry(self, job: str, now: float, rate: float, *, after: float | None = None) -> None:
        """Failed at ``now``: due again after the retry delay for its rate.

        ``after``: the server's Retry-After. The job waits it out and comes back on its own
        retry cadence, at the first multiple of the retry delay past it: not at the very
        moment the server's refusal ends (a request then may still be refused), and with
        polling resumed as usual from there (CSIP-AUS P-06 counts exactly one request
        between the refusal and the next scheduled poll).
        """
        step = retry_delay(rate)
        if after is None or after < step:
            self._due[job] = now + step
        else:
            self._due[job] = now + step * (math.floor(after / step) + 1)

    def due_now(self, job: str) -> None:
        """Run ``job`` at the next pass, whatever was planned."""
        self._due[job] = 0.0

    def drop(self, job: str) -> None:
        """Forget ``job`` (a resource that is gone)."""
        self._due.pop(job, None)

    def drop_all(self, prefix: str) -> None:
        """Forget every job whose name starts with ``prefix``."""
        for job in [j for j in self._due if j.startswith(prefix)]:
            del self._due[job]

    def times(self, jobs: Callable[[str], bool]) -> list[float]:
        """Due times of the planned jobs ``jobs`` accepts."""
        return [t for job, t in self._due.items() if jobs(job)]
