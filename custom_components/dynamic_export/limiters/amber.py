"""Amber limiter: stop exporting while Amber's feed-in price says exporting costs money.

``controls`` never does I/O: it answers from the feed-in intervals the last successful
:meth:`AmberLimiter.async_refresh` fetched (current interval plus forecasts), so when
Amber cannot be reached the forecasts keep the limit going. Only when no known interval
covers the present does the configured fallback apply, and the status asks for attention.

The threshold is **inclusive** and in Amber's sign (``perKwh`` is what you pay): with the
default 0 c/kWh, a feed-in price of exactly 0 is limited, unlike open-dynamic-export.
"""

from __future__ import annotations

import asyncio
import logging
import math
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from ..core.controls import Controls
from .amber_api import (
    RESOLUTIONS,
    AmberAuthError,
    AmberClient,
    AmberError,
    AmberRateLimitError,
    AmberSiteError,
    PriceInterval,
    select_site,
)

_LOGGER = logging.getLogger(__name__)

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_RETRY_FIRST = timedelta(seconds=30)
_RETRY_MAX = timedelta(minutes=5)
# Auth and site problems do not fix themselves; retry rarely until the user acts.
_RETRY_NEEDS_USER = timedelta(minutes=30)
_RATE_LIMIT_MARGIN = timedelta(seconds=1)
# Amber revises an estimated current price every 5 minutes, whatever the site's interval.
_ESTIMATE_STEP = 5


class AmberFallback(StrEnum):
    """What to ask for when no known price covers the present."""

    LIMIT = "limit"
    NONE = "none"


class AmberReason(StrEnum):
    """Why the limiter asks for what it asks."""

    PRICE_AT_OR_ABOVE_THRESHOLD = "price_at_or_above_threshold"
    PRICE_BELOW_THRESHOLD = "price_below_threshold"
    NO_PRICE = "no_price"


class AmberAttention(StrEnum):
    """A problem the user must look at (the HA layer raises a repair issue for it)."""

    AUTH_FAILED = "auth_failed"
    SITE = "site"
    NO_PRICE = "no_price"


@dataclass(frozen=True, slots=True)
class AmberSettings:
    """User settings of one Amber limiter.

    ``threshold`` is Amber's feed-in ``perKwh`` (c/kWh you *pay* to export) at or above
    which export is limited to ``export_limit`` watts. ``resolution`` is 5 or 30 minutes,
    ``None`` for the site's own interval length.
    """

    threshold: float = 0.0
    export_limit: float = 0.0
    fallback: AmberFallback = AmberFallback.LIMIT
    resolution: int | None = None
    forecast_hours: float = 4.0
    refresh_offset: timedelta = timedelta(seconds=5)

    def __post_init__(self) -> None:
        """Reject settings that would make the limiter misbehave."""
        if not math.isfinite(self.threshold):
            raise ValueError("threshold must be a finite price in c/kWh")
        if not (math.isfinite(self.export_limit) and self.export_limit >= 0):
            raise ValueError("export_limit must be a non-negative number of watts")
        if self.resolution is not None and self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS} minutes or None")
        if not (math.isfinite(self.forecast_hours) and 0 <= self.forecast_hours <= 48):
            raise ValueError("forecast_hours must be between 0 and 48")
        if not timedelta(0) <= self.refresh_offset < timedelta(minutes=5):
            raise ValueError("refresh_offset must be between 0 s and 5 min")


@dataclass(frozen=True, slots=True)
class AmberStatus:
    """What the HA layer shows for an Amber limiter at one moment.

    ``feed_in_per_kwh`` is Amber's sign (positive: exporting costs you); ``feed_in_price``
    is Home Assistant's Amber sign (negated: positive when you earn).
    """

    limiting: bool
    reason: AmberReason
    feed_in_per_kwh: float | None
    feed_in_price: float | None
    descriptor: str | None
    spot_per_kwh: float | None
    estimate: bool | None
    interval_kind: str | None
    interval_start: datetime | None
    interval_end: datetime | None
    known_until: datetime | None
    site_id: str | None
    resolution: int | None
    last_success: datetime | None
    last_error: str | None
    rate_limited_until: datetime | None
    next_refresh: datetime | None
    attention: AmberAttention | None

    @property
    def needs_attention(self) -> bool:
        """True when the HA layer should raise a repair issue."""
        return self.attention is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (times as ISO strings) for attributes and diagnostics."""
        out: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            out[item.name] = value.isoformat() if isinstance(value, datetime) else value
        out["needs_attention"] = self.needs_attention
        return out


def next_boundary(now: datetime, minutes: int, offset: timedelta) -> datetime:
    """The first ``k·minutes + offset`` (UTC grid) strictly after ``now``."""
    step = timedelta(minutes=minutes)
    periods = (now - offset - _EPOCH) // step
    return _EPOCH + (periods + 1) * step + offset


@dataclass(slots=True)
class _Known:
    """Known feed-in intervals, sorted, with their starts for bisecting."""

    intervals: list[PriceInterval] = field(default_factory=list)
    starts: list[datetime] = field(default_factory=list)

    def replace(self, intervals: list[PriceInterval]) -> None:
        self.intervals = sorted(intervals, key=lambda interval: interval.start)
        self.starts = [interval.start for interval in self.intervals]

    def at(self, now: datetime) -> PriceInterval | None:
        index = bisect_right(self.starts, now) - 1
        if index >= 0 and self.intervals[index].contains(now):
            return self.intervals[index]
        return None

    def merge(self, fetched: list[PriceInterval], now: datetime) -> None:
        """Fetched intervals win over known ones that overlap their span; ended ones go."""
        if fetched:
            first, last = fetched[0].start, fetched[-1].end
            kept = [i for i in self.intervals if i.end <= first or i.start >= last]
        else:
            kept = list(self.intervals)
        self.replace([i for i in kept + fetched if i.end > now])


class AmberLimiter:
    """Limits export while the feed-in price is at or above the threshold.

    The HA layer calls :meth:`async_refresh` at set-up and then at the time it returns
    (the next interval boundary plus a few seconds, sooner after an error, after the
    rate-limit reset when limited). It never raises: any failure, an unforeseen one (a bug,
    an answer the client did not expect) included, is retried with the outage back-off, so
    polling never ends. A failure streak is logged once (unforeseen errors with their
    traceback) and its end once; read :meth:`status` for what went wrong.
    """

    def __init__(
        self,
        source: str,
        client: AmberClient,
        settings: AmberSettings | None = None,
        *,
        site_id: str | None = None,
        enabled: bool = True,
    ) -> None:
        self.source = source
        self.enabled = enabled
        self.settings = settings or AmberSettings()
        self._client = client
        self._site_id = site_id
        self._site_resolution: int | None = None
        self._known = _Known()
        self._attempted = False
        self._last_success: datetime | None = None
        self._last_error: str | None = None
        self._error_attention: AmberAttention | None = None
        self._retry_delay = _RETRY_FIRST
        self._next_refresh: datetime | None = None
        self._failing = False  # a failure streak has been logged
        self._traced = False  # an unforeseen error of this streak has been logged
        # A manual refresh must not overlap the scheduled one (two calls, one budget).
        self._lock = asyncio.Lock()

    @property
    def resolution(self) -> int:
        """Interval length fetched, in minutes."""
        if self.settings.resolution is not None:
            return self.settings.resolution
        site = self._site_resolution
        return site if site is not None and site in RESOLUTIONS else 30

    @property
    def site_id(self) -> str | None:
        """The site in use, once known."""
        return self._site_id

    async def async_refresh(self, now: datetime) -> datetime:
        """Fetch prices once; return when to call again (UTC)."""
        async with self._lock:
            return await self._refresh(now)

    async def _refresh(self, now: datetime) -> datetime:
        self._attempted = True
        try:
            if self._site_id is None or self._site_resolution is None:
                site = select_site(await self._client.async_get_sites(), self._site_id)
                self._site_id = site.id
                self._site_resolution = site.interval_length
            resolution = self.resolution
            fetched = await self._client.async_get_current_prices(
                self._site_id,
                next_intervals=math.ceil(self.settings.forecast_hours * 60 / resolution),
                resolution=resolution,
            )
        except AmberError as err:
            self._next_refresh = self._after_error(err, now)
            return self._next_refresh
        except Exception as err:  # whatever it is, polling must go on
            self._next_refresh = self._after_unforeseen(err, now)
            return self._next_refresh
        self._known.merge(fetched, now)
        if self._failing:
            _LOGGER.info("%s: Amber prices are fetched again", self.source)
        self._failing = self._traced = False
        self._last_success = now
        self._last_error = None
        self._error_attention = None
        self._retry_delay = _RETRY_FIRST
        self._next_refresh = self._after_success(now)
        return self._next_refresh

    def _after_success(self, now: datetime) -> datetime:
        offset = self.settings.refresh_offset
        step = self.resolution
        current = self._known.at(now)
        if current is not None and current.estimate:
            step = min(step, _ESTIMATE_STEP)
        return next_boundary(now, step, offset)

    def _after_unforeseen(self, err: Exception, now: datetime) -> datetime:
        self._last_error = f"unexpected error: {err!r}"
        if not self._traced:
            _LOGGER.exception("%s: unexpected error fetching Amber prices", self.source)
        self._failing = self._traced = True
        return self._backoff(now)

    def _backoff(self, now: datetime) -> datetime:
        retry = min(now + self._retry_delay, self._after_success(now))
        self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX)
        return retry

    def _after_error(self, err: AmberError, now: datetime) -> datetime:
        self._last_error = str(err)
        if not self._failing:
            _LOGGER.warning("%s: %s (retrying; logged once until it works)", self.source, err)
        self._failing = True
        if isinstance(err, AmberRateLimitError):
            return max(err.retry_at, now) + _RATE_LIMIT_MARGIN
        if isinstance(err, AmberAuthError | AmberSiteError):
            self._error_attention = (
                AmberAttention.AUTH_FAILED
                if isinstance(err, AmberAuthError)
                else AmberAttention.SITE
            )
            return now + _RETRY_NEEDS_USER
        return self._backoff(now)

    def controls(self, now: datetime) -> Controls:
        """Export limit while the known feed-in price is at or above the threshold."""
        current = self._known.at(now)
        if current is None:
            if self.settings.fallback is AmberFallback.LIMIT:
                return Controls(export_limit=self.settings.export_limit)
            return Controls()
        if current.per_kwh >= self.settings.threshold:
            return Controls(export_limit=self.settings.export_limit)
        return Controls()

    def status(self, now: datetime) -> AmberStatus:
        """Everything the HA layer shows, at ``now``."""
        current = self._known.at(now)
        if current is None:
            reason = AmberReason.NO_PRICE
            limiting = self.settings.fallback is AmberFallback.LIMIT
        elif current.per_kwh >= self.settings.threshold:
            reason, limiting = AmberReason.PRICE_AT_OR_ABOVE_THRESHOLD, True
        else:
            reason, limiting = AmberReason.PRICE_BELOW_THRESHOLD, False
        attention = self._error_attention
        if attention is None and current is None and self._attempted:
            attention = AmberAttention.NO_PRICE
        known = self._known.intervals
        return AmberStatus(
            limiting=limiting,
            reason=reason,
            feed_in_per_kwh=None if current is None else current.per_kwh,
            # + 0.0 turns -0.0 into 0.0, so a zero price never shows as "-0".
            feed_in_price=None if current is None else -current.per_kwh + 0.0,
            descriptor=None if current is None else current.descriptor,
            spot_per_kwh=None if current is None else current.spot_per_kwh,
            estimate=None if current is None else current.estimate,
            interval_kind=None if current is None else current.kind,
            interval_start=None if current is None else current.start,
            interval_end=None if current is None else current.end,
            known_until=known[-1].end if known and known[-1].end > now else None,
            site_id=self._site_id,
            resolution=self.resolution,
            last_success=self._last_success,
            last_error=self._last_error,
            rate_limited_until=self._client.blocked_until,
            next_refresh=self._next_refresh,
            attention=attention,
        )

    def to_dict(self) -> dict[str, Any]:
        """Known intervals and site, for storage across restarts."""
        return {
            "site_id": self._site_id,
            "site_resolution": self._site_resolution,
            "intervals": [interval.to_dict() for interval in self._known.intervals],
        }

    def restore(self, data: Mapping[str, Any], now: datetime) -> int:
        """Load what :meth:`to_dict` stored; return how many intervals are still useful.

        Malformed data is dropped (logged), never raised: stale prices are a convenience.
        A stored site is used only if it is the configured one (or none is configured), and
        nothing is loaded once a refresh has fetched fresher prices.
        """
        if self._known.intervals:
            return 0
        try:
            intervals = [PriceInterval.from_dict(item) for item in data.get("intervals", [])]
            site_id = data.get("site_id")
            resolution = data.get("site_resolution")
        except (ValueError, TypeError, AttributeError) as err:
            _LOGGER.warning("%s: ignoring stored Amber prices: %s", self.source, err)
            return 0
        if isinstance(site_id, str) and self._site_id in (None, site_id):
            self._site_id = site_id
            if isinstance(resolution, int) and not isinstance(resolution, bool):
                self._site_resolution = resolution
        elif site_id is not None:
            return 0
        self._known.replace([interval for interval in intervals if interval.end > now])
        return len(self._known.intervals)
