"""Limit arithmetic and the one-command-in-flight rule, with no I/O.

**Types.** Only non-persistent limits are sent: persistent ones are written to the inverter's
EEPROM, which a control loop would wear out. Types 0 (absolute W) and 1 (relative %) mean the
same in every OpenDTU release; 2/3 (persistent since v25.9.11) and 256/257 (persistent before
it) never appear here. Absolute is preferred because HMS inverters truncate relative limits to
whole percent; relative is the fallback for firmware that answers 5003 to absolute.

**Range.** OpenDTU rejects values above 2250 (its MAX_INVERTER_LIMIT), so more watts than
that go out as a relative limit. Below a few percent of their rating Hoymiles inverters
oscillate or shut down and then take minutes to restart, so limits never go under
``min_limit_pct`` (default 5 %, the value HoymilesZeroExport uses for the same reason). A
controller asking for less gets the minimum; stopping output completely is a separate
power-off command (InverterCommand.connect False).

**Acknowledgement.** After a command the DTU reports "Pending" until the inverter
acknowledges over radio (typically 1-3 s), then "Ok" or "Failure" (and the DTU itself keeps
retrying a failed one). :class:`PendingLimit` keeps one command in flight: a new limit asked
for meanwhile is remembered (only the latest) and sent once the pending one resolves or
``timeout_s`` passes, so the radio queue never fills with stale limits and each acknowledgement
can be timed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

OPENDTU_MAX_LIMIT = 2250.0  # the largest limit_value OpenDTU accepts
DEFAULT_MIN_LIMIT_PCT = 5.0
MAX_MIN_LIMIT_PCT = 20.0
DEFAULT_PENDING_TIMEOUT_S = 10.0
RESOLUTION = 0.1  # OpenDTU sends limit * 10 as an integer
RESPONSE_SMOOTHING = 0.3


class LimitType(IntEnum):
    """The only limit types this package sends (identical in old and new firmware)."""

    ABSOLUTE = 0  # AbsolutNonPersistent, W
    RELATIVE = 1  # RelativNonPersistent, % of the inverter's max power


@dataclass(frozen=True, slots=True)
class LimitRequest:
    """One limit command."""

    type: LimitType
    value: float

    def same_as(self, other: LimitRequest | None) -> bool:
        """Equal at the resolution the DTU sends."""
        return (
            other is not None
            and other.type == self.type
            and abs(other.value - self.value) < RESOLUTION / 2
        )


def limit_request(
    limit_pct: float,
    *,
    max_power_w: float,
    share_pct: float = 100.0,
    min_limit_pct: float = DEFAULT_MIN_LIMIT_PCT,
    absolute: bool = True,
) -> LimitRequest:
    """The command for ``limit_pct`` of the (derated) rating ``max_power_w × share_pct``.

    Rounded down so the inverter never gets more than asked; never under the minimum. Watts
    above OpenDTU's 2250 cap (a larger inverter) go out as a relative limit instead.
    """
    if not math.isfinite(limit_pct):
        raise ValueError(f"limit {limit_pct!r} % is not a finite number")
    rating = max_power_w * share_pct / 100.0
    floor = max_power_w * min_limit_pct / 100.0
    watts = max(floor, min(rating, rating * max(0.0, limit_pct) / 100.0))
    if absolute and watts <= OPENDTU_MAX_LIMIT:
        return LimitRequest(LimitType.ABSOLUTE, _round_down(watts))
    return LimitRequest(LimitType.RELATIVE, _round_down(min(100.0, 100.0 * watts / max_power_w)))


def _round_down(value: float) -> float:
    return math.floor(round(value / RESOLUTION, 6)) * RESOLUTION


@dataclass(frozen=True, slots=True)
class TemperatureDerating:
    """Reduce an inverter's allowed share of its rating when it runs hot.

    Full share up to ``start_c``, falling linearly to ``min_share_pct`` at ``end_c`` and above.
    The inverter adapter applies the share to the rating it reports, so the controller moves
    output to cooler inverters, and to the ceiling of every limit it writes. Linear, so a
    noisy temperature never makes the limit jump. Unknown temperature: full share.
    """

    start_c: float
    end_c: float
    min_share_pct: float = 50.0

    def __post_init__(self) -> None:
        """Reject settings that do not describe a falling line."""
        if not self.end_c > self.start_c:
            raise ValueError("end_c must be above start_c")
        if not 0.0 < self.min_share_pct <= 100.0:
            raise ValueError("min_share_pct must be above 0 and at most 100")

    def share_pct(self, temperature_c: float | None) -> float:
        """Allowed share of the rating at this temperature, in %."""
        if temperature_c is None or temperature_c <= self.start_c:
            return 100.0
        fraction = min(1.0, (temperature_c - self.start_c) / (self.end_c - self.start_c))
        return 100.0 - fraction * (100.0 - self.min_share_pct)


@dataclass(frozen=True, slots=True)
class _Flight:
    request: LimitRequest
    sent_at: float


class PendingLimit:
    """At most one limit in flight; the newest request waits for it. Times are monotonic s."""

    def __init__(self, timeout_s: float = DEFAULT_PENDING_TIMEOUT_S) -> None:
        """``timeout_s``: stop waiting for an acknowledgement after this long."""
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._timeout_s = timeout_s
        self._flight: _Flight | None = None
        self._queued: LimitRequest | None = None
        self.last_sent: LimitRequest | None = None
        self.outcome: str | None = None  # Ok, Failure, Unknown or timeout, of the last one
        self.response_time_s: float | None = None  # smoothed time to acknowledgement

    @property
    def in_flight(self) -> LimitRequest | None:
        """The request waiting for its acknowledgement."""
        return self._flight.request if self._flight else None

    @property
    def queued(self) -> LimitRequest | None:
        """The request that will be sent when the one in flight resolves."""
        return self._queued

    def submit(self, request: LimitRequest, now: float) -> LimitRequest | None:
        """Return the request if it may be sent now; otherwise remember it."""
        self._expire(now)
        if self._flight is None:
            self._queued = None
            return request
        self._queued = None if request.same_as(self._flight.request) else request
        return None

    def sent(self, request: LimitRequest, now: float) -> None:
        """The DTU accepted ``request``; wait for its acknowledgement."""
        self._flight = _Flight(request, now)
        self._queued = None
        self.last_sent = request

    def observe(self, status: str, fetched_at: float, now: float) -> LimitRequest | None:
        """Feed a limit_set_status read at ``fetched_at``; return a queued request now due."""
        flight = self._flight
        if flight is None or fetched_at < flight.sent_at:
            return None  # nothing of ours, or an answer from before our command
        if status == "Pending":
            self._expire(now)
        else:
            self.outcome = status
            if status == "Ok":
                self._note_response(fetched_at - flight.sent_at)
            self._flight = None
        if self._flight is not None:
            return None
        queued, self._queued = self._queued, None
        return queued

    def _expire(self, now: float) -> None:
        if self._flight is not None and now - self._flight.sent_at >= self._timeout_s:
            self._flight = None
            self.outcome = "timeout"

    def _note_response(self, seconds: float) -> None:
        previous = self.response_time_s
        self.response_time_s = (
            seconds if previous is None else previous + RESPONSE_SMOOTHING * (seconds - previous)
        )
