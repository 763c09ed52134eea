"""Amber Electric public API client: sites and current prices, within the account's rate limit.

It runs over a session it is given (Home Assistant's shared one), so it never opens or
closes sessions itself. Every failure becomes one of the :class:`AmberError` classes, whose
message can be shown to the user; the API token never appears in them.

Sign convention (Amber's, kept here): ``per_kwh`` is what the customer *pays* per kWh. On
the ``feedIn`` channel a negative value means exporting earns money and a positive value
means exporting costs money.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import aiohttp

DEFAULT_BASE_URL = "https://api.amber.com.au/v1"
FEED_IN = "feedIn"
RESOLUTIONS = (5, 30)

# The account-wide limit Amber publishes (RateLimit-Policy "50;w=300").
RATE_LIMIT_CALLS = 50
RATE_LIMIT_WINDOW = timedelta(minutes=5)
# Back-off after a 429 that does not say when the limit resets.
DEFAULT_RATE_LIMIT_BACKOFF = timedelta(seconds=60)
# A RateLimit-Reset larger than this is an epoch time, not a number of seconds.
_EPOCH_THRESHOLD = 1_000_000_000
_MAX_BODY = 2 * 1024 * 1024


class AmberError(Exception):
    """The Amber API could not be used. The message is shown to the user."""


class AmberAuthError(AmberError):
    """The token was refused (HTTP 401/403): the user must enter a new one."""


class AmberRateLimitError(AmberError):
    """The account's rate limit is reached; nothing is sent before ``retry_at``."""

    def __init__(self, message: str, retry_at: datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class AmberUnavailableError(AmberError):
    """Amber did not answer: timeout, connection failure or a server error (5xx)."""


class AmberResponseError(AmberError):
    """Amber answered with something this client cannot use (bad JSON, odd shape, 4xx)."""


class AmberSiteError(AmberError):
    """No site, several active sites, or the configured site is not in the account."""


@dataclass(frozen=True, slots=True)
class AmberSite:
    """One site (NMI) of the account, as ``GET /sites`` lists it."""

    id: str
    nmi: str
    network: str
    status: str
    interval_length: int
    channels: tuple[str, ...]

    @property
    def active(self) -> bool:
        """True for a site that is supplied now."""
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class PriceInterval:
    """One priced interval of one channel; times are UTC, prices c/kWh incl. GST.

    ``start`` is normalised to ``end - duration``: Amber's ``startTime`` is one second
    after the boundary (``…:30:01Z``), which would leave a one-second hole between
    intervals.
    """

    start: datetime
    end: datetime
    per_kwh: float
    channel: str
    kind: str
    spot_per_kwh: float | None = None
    descriptor: str | None = None
    estimate: bool | None = None

    def contains(self, now: datetime) -> bool:
        """True when ``now`` lies in [start, end)."""
        return self.start <= now < self.end

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form, for storage."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "per_kwh": self.per_kwh,
            "channel": self.channel,
            "kind": self.kind,
            "spot_per_kwh": self.spot_per_kwh,
            "descriptor": self.descriptor,
            "estimate": self.estimate,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceInterval:
        """Inverse of :meth:`to_dict`; raises ValueError on anything malformed."""
        try:
            start = _utc(datetime.fromisoformat(data["start"]))
            end = _utc(datetime.fromisoformat(data["end"]))
            per_kwh = _finite(data["per_kwh"], "per_kwh")
            spot = data.get("spot_per_kwh")
            estimate = data.get("estimate")
            interval = cls(
                start=start,
                end=end,
                per_kwh=per_kwh,
                channel=str(data["channel"]),
                kind=str(data["kind"]),
                spot_per_kwh=None if spot is None else _finite(spot, "spot_per_kwh"),
                descriptor=None if data.get("descriptor") is None else str(data["descriptor"]),
                estimate=None if estimate is None else bool(estimate),
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"stored price interval is malformed: {err!r}") from err
        if not interval.end > interval.start:
            raise ValueError("stored price interval ends before it starts")
        return interval


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"time {value.isoformat()} has no UTC offset")
    return value.astimezone(UTC)


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} is not a number: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} is not finite: {value!r}")
    return number


_KINDS = {"ActualInterval": "actual", "CurrentInterval": "current", "ForecastInterval": "forecast"}


def _parse_interval(item: Mapping[str, Any], channel: str) -> PriceInterval:
    """One price item; raises ValueError naming the bad field."""
    kind = _KINDS.get(str(item.get("type")))
    if kind is None:
        raise ValueError(f"unknown type {item.get('type')!r}")
    for key in ("startTime", "endTime"):
        if not isinstance(item.get(key), str):
            raise ValueError(f"{key} is missing or not a string")
    end = _utc(datetime.fromisoformat(item["endTime"]))
    start = _utc(datetime.fromisoformat(item["startTime"]))
    duration = item.get("duration")
    if isinstance(duration, int) and not isinstance(duration, bool) and duration > 0:
        start = end - timedelta(minutes=duration)
    else:
        start = start.replace(second=0, microsecond=0)
    if not end > start:
        raise ValueError("endTime is not after startTime")
    spot = item.get("spotPerKwh")
    descriptor = item.get("descriptor")
    estimate = item.get("estimate")
    return PriceInterval(
        start=start,
        end=end,
        per_kwh=_finite(item.get("perKwh"), "perKwh"),
        channel=channel,
        kind=kind,
        spot_per_kwh=None if spot is None else _finite(spot, "spotPerKwh"),
        descriptor=descriptor if isinstance(descriptor, str) else None,
        estimate=estimate if isinstance(estimate, bool) else None,
    )


def parse_prices(data: object, channel: str = FEED_IN) -> list[PriceInterval]:
    """The intervals of ``channel`` in a ``/prices/current`` answer, sorted by start.

    Items of other channels are skipped; a malformed item of ``channel`` rejects the whole
    answer, because a silently missing interval would look like "no price".
    """
    if not isinstance(data, list):
        raise AmberResponseError("Amber prices answer is not a list")
    intervals: list[PriceInterval] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("channelType"), str):
            raise AmberResponseError(f"Amber price item {index} has no channelType")
        if item["channelType"] != channel:
            continue
        try:
            intervals.append(_parse_interval(item, channel))
        except (ValueError, OverflowError) as err:  # OverflowError: a time out of range
            raise AmberResponseError(f"Amber price item {index} ({channel}): {err}") from err
    intervals.sort(key=lambda interval: interval.start)
    return intervals


def parse_sites(data: object) -> list[AmberSite]:
    """The sites in a ``/sites`` answer."""
    if not isinstance(data, list):
        raise AmberResponseError("Amber sites answer is not a list")
    sites: list[AmberSite] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise AmberResponseError(f"Amber site {index} has no id")
        length = item.get("intervalLength", 30)
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
            raise AmberResponseError(f"Amber site {index} has a bad intervalLength: {length!r}")
        channels = item.get("channels")
        sites.append(
            AmberSite(
                id=item["id"],
                nmi=str(item.get("nmi", "")),
                network=str(item.get("network", "")),
                status=str(item.get("status", "")),
                interval_length=length,
                channels=tuple(
                    str(channel.get("type"))
                    for channel in (channels if isinstance(channels, list) else [])
                    if isinstance(channel, dict)
                ),
            )
        )
    return sites


def select_site(sites: list[AmberSite], site_id: str | None = None) -> AmberSite:
    """The configured site, or the single active one when none is configured."""
    if site_id is not None:
        for site in sites:
            if site.id == site_id:
                return site
        raise AmberSiteError(f"Amber site {site_id} is not in this account")
    active = [site for site in sites if site.active]
    if len(active) == 1:
        return active[0]
    if not active:
        raise AmberSiteError("this Amber account has no active site")
    ids = ", ".join(site.id for site in active)
    raise AmberSiteError(f"this Amber account has several active sites; choose one of {ids}")


def _parse_reset(value: str | None, now: datetime) -> datetime | None:
    """A RateLimit-Reset/Retry-After value: seconds from now, an epoch, or an HTTP date."""
    if value is None:
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        try:
            return _utc(parsedate_to_datetime(text))
        except (TypeError, ValueError, IndexError):
            return None
    if not math.isfinite(number) or number < 0:
        return None
    if number >= _EPOCH_THRESHOLD:
        return datetime.fromtimestamp(number, UTC)
    return now + timedelta(seconds=number)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AmberClient:
    """Talks to the Amber API for one account (token), counting its own calls.

    Two guards keep it under the account limit (50 calls per 5 minutes): its own count of
    calls in the last 5 minutes, and the server's ``RateLimit-*`` headers (which also count
    calls other programs make with the same account). While either says stop, calls raise
    :class:`AmberRateLimitError` without touching the network.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        clock: Callable[[], datetime] = _utcnow,
        max_calls: int = RATE_LIMIT_CALLS,
        window: timedelta = RATE_LIMIT_WINDOW,
    ) -> None:
        self._session = session
        self._token = token
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._max_calls = max_calls
        self._window = window
        self._calls: deque[datetime] = deque()
        self._blocked_until: datetime | None = None
        self.rate_limit_remaining: int | None = None

    @property
    def blocked_until(self) -> datetime | None:
        """When the server said the rate limit resets, while that is in the future."""
        if self._blocked_until is not None and self._clock() >= self._blocked_until:
            self._blocked_until = None
        return self._blocked_until

    async def async_get_sites(self) -> list[AmberSite]:
        """All sites of the account."""
        return parse_sites(await self._get("/sites", {}))

    async def async_get_current_prices(
        self, site_id: str, *, next_intervals: int = 0, resolution: int | None = None
    ) -> list[PriceInterval]:
        """The current and ``next_intervals`` forecast feed-in intervals of ``site_id``."""
        params = {"next": str(max(0, next_intervals))}
        if resolution is not None:
            if resolution not in RESOLUTIONS:
                raise ValueError(f"resolution must be one of {RESOLUTIONS}, not {resolution}")
            params["resolution"] = str(resolution)
        path = f"/sites/{quote(site_id, safe='')}/prices/current"
        return parse_prices(await self._get(path, params))

    def _check_budget(self, now: datetime) -> None:
        blocked = self.blocked_until
        if blocked is not None:
            raise AmberRateLimitError(
                f"Amber rate limit reached; next call after {blocked.isoformat()}", blocked
            )
        while self._calls and now - self._calls[0] >= self._window:
            self._calls.popleft()
        if len(self._calls) >= self._max_calls:
            retry_at = self._calls[0] + self._window
            raise AmberRateLimitError(
                f"{self._max_calls} Amber calls in {self._window}; next after "
                f"{retry_at.isoformat()}",
                retry_at,
            )

    def _note_limits(self, headers: Mapping[str, str], now: datetime, status: int) -> None:
        remaining = headers.get("RateLimit-Remaining")
        try:
            self.rate_limit_remaining = None if remaining is None else int(remaining)
        except ValueError:
            self.rate_limit_remaining = None
        if status != 429 and self.rate_limit_remaining != 0:
            return
        reset = _parse_reset(headers.get("RateLimit-Reset"), now) or _parse_reset(
            headers.get("Retry-After"), now
        )
        if reset is None or reset <= now:
            reset = now + DEFAULT_RATE_LIMIT_BACKOFF
        self._blocked_until = reset

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        now = self._clock()
        self._check_budget(now)
        self._calls.append(now)
        url = f"{self._base_url}{path}"
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            async with self._session.get(
                url, params=params, headers=headers, timeout=self._timeout
            ) as response:
                self._note_limits(response.headers, self._clock(), response.status)
                status = response.status
                body = await response.content.read(_MAX_BODY + 1)
        except TimeoutError as err:
            raise AmberUnavailableError("Amber did not answer in time") from err
        except aiohttp.ClientError as err:
            raise AmberUnavailableError(f"cannot reach Amber: {type(err).__name__}") from err
        if status in (401, 403):
            raise AmberAuthError(f"Amber refused the API token (HTTP {status})")
        if status == 429:
            retry_at = self._blocked_until or self._clock() + DEFAULT_RATE_LIMIT_BACKOFF
            raise AmberRateLimitError(
                f"Amber rate limit reached; next call after {retry_at.isoformat()}", retry_at
            )
        if status >= 500:
            raise AmberUnavailableError(f"Amber server error (HTTP {status})")
        if status >= 400:
            raise AmberResponseError(f"Amber answered HTTP {status} for {path}")
        if len(body) > _MAX_BODY:
            raise AmberResponseError("Amber answer is too large")
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise AmberResponseError(f"Amber answer is not valid JSON: {err}") from err
