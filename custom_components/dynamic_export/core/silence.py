"""When to ask a silent inverter again.

Every inverter is read each cycle, together, and the cycle waits for the slowest. One that
does not answer at all holds each cycle for its whole timeout (3–5 s), so while it is away
the rest of the site is controlled every few seconds instead of every second, and behind a
shared Modbus gateway it also holds up the healthy units queued after it. An inverter whose
read failed *slowly* is therefore asked again after 1 s, then 2, 4, 8 and at most every 10 s
until it answers; the cycles between are not held up. It stays unavailable meanwhile, which
counts it at its rating (the side that holds). A read that fails fast (a refused connection,
an error answer) costs nothing and is retried every cycle.

The meter is not backed off: without it the site is in fail-safe anyway, and it should be
noticed the moment it answers.
"""

from __future__ import annotations

from dataclasses import dataclass

SLOW_FAILURE_S = 1.0
"""A failed read that took at least this long (wall time) makes the device silent."""

MAX_RETRY_DELAY_S = 10.0
"""A silent device is asked again at least this often: it is back within this much."""


@dataclass(slots=True)
class _Silence:
    failures: int
    next_try: float
    error: str


class SilenceBackoff:
    """Which inverters to read this cycle, and what the others last said."""

    def __init__(
        self, slow_failure_s: float = SLOW_FAILURE_S, max_delay_s: float = MAX_RETRY_DELAY_S
    ) -> None:
        """``slow_failure_s``, ``max_delay_s``: see the module constants."""
        self.slow_failure_s = slow_failure_s
        self.max_delay_s = max_delay_s
        self._silent: dict[str, _Silence] = {}

    def due(self, key: str, now: float) -> bool:
        """Whether to read ``key`` this cycle (``now`` on the loop's clock)."""
        silence = self._silent.get(key)
        return silence is None or now >= silence.next_try

    def waiting_error(self, key: str) -> str:
        """The error of a device not asked this cycle: its last failure."""
        return self._silent[key].error

    def record(self, key: str, now: float, *, error: str | None, took_s: float) -> None:
        """The outcome of reading ``key``: an answer, or ``error`` after ``took_s`` seconds."""
        if error is None or took_s < self.slow_failure_s:
            self._silent.pop(key, None)
            return
        silence = self._silent.get(key)
        failures = 1 if silence is None else silence.failures + 1
        delay = min(self.max_delay_s, 2.0 ** (failures - 1))
        self._silent[key] = _Silence(failures, now + delay, error)
