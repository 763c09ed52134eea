"""Battery state-of-charge rule: keep export low until the battery is charged enough.

Below ``threshold`` % the limiter asks for ``low_export_limit`` (0 W by default) so the
solar goes into the battery; once the SOC reaches ``threshold + hysteresis`` it asks for
``high_export_limit`` (``None``: no limit) until the SOC falls below ``threshold`` again.
The band stops the limit flapping around one value.

Anything doubtful is treated as low: no reading yet, ``None`` (unavailable), a value
outside 0–100 % or not a number, or a reading older than ``max_age``. After a doubtful
spell the SOC must climb past the upper edge again before export is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from ..core.controls import Controls


class SocReason(StrEnum):
    """Why the limiter asks for what it asks."""

    HIGH = "high"
    LOW = "low"
    NO_READING = "no_reading"
    UNAVAILABLE = "unavailable"
    INVALID = "invalid"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class SocSettings:
    """Thresholds in %, limits in W, ``max_age`` None to never call a reading stale."""

    threshold: float = 90.0
    hysteresis: float = 5.0
    low_export_limit: float = 0.0
    high_export_limit: float | None = None
    max_age: timedelta | None = timedelta(minutes=15)

    def __post_init__(self) -> None:
        """Reject settings that make no sense."""
        if not (math.isfinite(self.threshold) and 0 <= self.threshold <= 100):
            raise ValueError("threshold must be between 0 and 100 %")
        if not (math.isfinite(self.hysteresis) and self.hysteresis >= 0):
            raise ValueError("hysteresis must be a non-negative number of %")
        if self.threshold + self.hysteresis > 100:
            raise ValueError("threshold + hysteresis must not exceed 100 %")
        for name in ("low_export_limit", "high_export_limit"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a non-negative number of watts")
        high = self.high_export_limit
        if high is not None and high < self.low_export_limit:
            raise ValueError("high_export_limit must not be below low_export_limit")
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise ValueError("max_age must be positive")


@dataclass(frozen=True, slots=True)
class SocStatus:
    """What the HA layer shows: the last reading, its time, and the state it led to."""

    soc: float | None
    reading_time: datetime | None
    high: bool
    reason: SocReason
    export_limit: float | None


class SocLimiter:
    """Export limit from a battery SOC the HA layer feeds in with :meth:`update`."""

    def __init__(
        self, source: str, settings: SocSettings | None = None, *, enabled: bool = True
    ) -> None:
        self.source = source
        self.settings = settings or SocSettings()
        self.enabled = enabled
        self._soc: float | None = None
        self._reading_time: datetime | None = None
        self._reason = SocReason.NO_READING
        self._high = False

    def update(self, soc: float | None, now: datetime) -> None:
        """Take a reading made at ``now`` (pass the state's ``last_reported`` time).

        Call it on every state report of the SOC entity, or every cycle with the entity's
        current value and report time; ``None`` means unavailable or unknown.
        """
        self._reading_time = now
        if soc is None:
            self._soc, self._reason, self._high = None, SocReason.UNAVAILABLE, False
            return
        if (
            isinstance(soc, bool)
            or not isinstance(soc, int | float)
            or not math.isfinite(soc)
            or not 0 <= soc <= 100
        ):
            self._soc, self._reason, self._high = None, SocReason.INVALID, False
            return
        self._soc = float(soc)
        upper = self.settings.threshold + self.settings.hysteresis
        if self._soc >= upper or (self._high and self._soc >= self.settings.threshold):
            self._high, self._reason = True, SocReason.HIGH
        else:
            self._high, self._reason = False, SocReason.LOW

    def _state(self, now: datetime) -> tuple[bool, SocReason]:
        max_age = self.settings.max_age
        if (
            self._reading_time is not None
            and max_age is not None
            and now - self._reading_time > max_age
        ):
            self._high = False
            return False, SocReason.STALE
        return self._high, self._reason

    def controls(self, now: datetime) -> Controls:
        """The high limit while the battery is charged enough, else the low one."""
        high, _ = self._state(now)
        limit = self.settings.high_export_limit if high else self.settings.low_export_limit
        return Controls(export_limit=limit)

    def status(self, now: datetime) -> SocStatus:
        """Everything the HA layer shows, at ``now``."""
        high, reason = self._state(now)
        return SocStatus(
            soc=self._soc,
            reading_time=self._reading_time,
            high=high,
            reason=reason,
            export_limit=(
                self.settings.high_export_limit if high else self.settings.low_export_limit
            ),
        )
