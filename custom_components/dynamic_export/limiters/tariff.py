"""Two-way tariff windows: export limits at set local times, days and months.

Windows are plain data the UI edits as a list (:meth:`TariffWindow.from_dict` validates
with messages naming the field). They are read in one IANA timezone; an unknown timezone
never crashes the limiter: it falls back to UTC and says so (``timezone_fallback``).

How local times map to real time:

- A window whose end is not after its start runs past midnight and belongs to the day
  (and month) it **starts** on: 22:00–02:00 on Sunday ends at 02:00 on Monday. Start equal
  to end is a 24-hour window; an end of "24:00" means midnight.
- The rule is wall-clock time: an instant is in a window when the local clock reads a time
  inside it. So on the day clocks go **forward**, the skipped hour does not exist: a window
  lying wholly in it (02:00–03:00) does not happen that day, and one reaching into it starts
  or ends at the changeover. On the day clocks go **back**, a start in the repeated hour
  takes its first pass and an end its second: 02:00–03:00 then lasts two real hours.
- Overlapping windows: the lowest export limit wins.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..core.controls import Controls

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = frozenset(range(7))
ALL_MONTHS = frozenset(range(1, 13))
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_KEYS = {"name", "start", "end", "days", "months", "export_limit"}
# next_change looks this far ahead (a months filter can leave most of a year empty).
_HORIZON_DAYS = 400


class TariffWindowError(ValueError):
    """A window is invalid; ``field`` (and ``index`` in a list) say where."""

    def __init__(self, message: str, field: str | None = None, index: int | None = None):
        where = "" if index is None else f"window {index + 1}: "
        where += "" if field is None else f"{field}: "
        super().__init__(f"{where}{message}")
        self.message = message
        self.field = field
        self.index = index


def _parse_time(value: object, field: str, *, allow_24: bool) -> time:
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise TariffWindowError(f"{value!r} is not a time (HH:MM)", field)
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if allow_24 and (hour, minute, second) == (24, 0, 0):
        return time(0, 0)
    if hour > 23 or minute > 59 or second > 59:
        raise TariffWindowError(f"{value!r} is not a time of day", field)
    return time(hour, minute, second)


def _format_time(value: time) -> str:
    return value.isoformat(timespec="seconds" if value.second else "minutes")


def _parse_days(value: object) -> frozenset[int]:
    if not isinstance(value, list | tuple | set | frozenset) or not value:
        raise TariffWindowError(f"must be a non-empty list of {', '.join(DAY_NAMES)}", "days")
    days: set[int] = set()
    for item in value:
        if isinstance(item, str) and item.strip().lower()[:3] in DAY_NAMES:
            days.add(DAY_NAMES.index(item.strip().lower()[:3]))
        elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6:
            days.add(item)
        else:
            raise TariffWindowError(f"{item!r} is not a day (mon … sun)", "days")
    return frozenset(days)


def _parse_months(value: object) -> frozenset[int]:
    if not isinstance(value, list | tuple | set | frozenset) or not value:
        raise TariffWindowError("must be a non-empty list of months 1–12", "months")
    months: set[int] = set()
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 12:
            raise TariffWindowError(f"{item!r} is not a month (1–12)", "months")
        months.add(item)
    return frozenset(months)


@dataclass(frozen=True, slots=True)
class TariffWindow:
    """Export at most ``export_limit`` W from ``start`` to ``end`` local time.

    ``days`` are weekdays (0 = Monday) and ``months`` 1–12, both of the day the window
    starts on.
    """

    start: time
    end: time
    export_limit: float = 0.0
    days: frozenset[int] = ALL_DAYS
    months: frozenset[int] = ALL_MONTHS
    name: str = ""

    def __post_init__(self) -> None:
        """Check values built in code the same way as values from the UI."""
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, time) or value.tzinfo is not None:
                raise TariffWindowError("must be a local time of day", name)
        limit = self.export_limit
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            raise TariffWindowError("must be a number of watts", "export_limit")
        if not (math.isfinite(limit) and limit >= 0):
            raise TariffWindowError("must be a non-negative number of watts", "export_limit")
        if not self.days or not self.days <= ALL_DAYS:
            raise TariffWindowError("must be a non-empty set of weekdays 0–6", "days")
        if not self.months or not self.months <= ALL_MONTHS:
            raise TariffWindowError("must be a non-empty set of months 1–12", "months")

    @property
    def crosses_midnight(self) -> bool:
        """True when the window ends on the next day (start equal to end: 24 hours)."""
        return self.end <= self.start

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TariffWindow:
        """Build from the UI's form: times "HH:MM", days "mon"…"sun", months 1–12."""
        if not isinstance(data, Mapping):
            raise TariffWindowError("must be an object")
        unknown = set(data) - _KEYS
        if unknown:
            raise TariffWindowError(f"unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
        for key in ("start", "end", "export_limit"):
            if key not in data:
                raise TariffWindowError("is required", key)
        name = data.get("name", "")
        if not isinstance(name, str):
            raise TariffWindowError("must be text", "name")
        limit = data["export_limit"]
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            raise TariffWindowError(f"{limit!r} is not a number of watts", "export_limit")
        return cls(
            start=_parse_time(data["start"], "start", allow_24=False),
            end=_parse_time(data["end"], "end", allow_24=True),
            export_limit=float(limit),
            days=_parse_days(data["days"]) if "days" in data else ALL_DAYS,
            months=_parse_months(data["months"]) if "months" in data else ALL_MONTHS,
            name=name,
        )

    def to_dict(self) -> dict[str, Any]:
        """The form :meth:`from_dict` reads."""
        return {
            "name": self.name,
            "start": _format_time(self.start),
            "end": _format_time(self.end),
            "days": [DAY_NAMES[day] for day in sorted(self.days)],
            "months": sorted(self.months),
            "export_limit": self.export_limit,
        }


def windows_from_list(data: Iterable[Mapping[str, Any]]) -> list[TariffWindow]:
    """Windows from the UI's list; an error names the window (1-based) and field."""
    windows: list[TariffWindow] = []
    for index, item in enumerate(data):
        try:
            windows.append(TariffWindow.from_dict(item))
        except TariffWindowError as err:
            raise TariffWindowError(err.message, err.field, index) from err
    return windows


def windows_to_list(windows: Iterable[TariffWindow]) -> list[dict[str, Any]]:
    """Inverse of :func:`windows_from_list`."""
    return [window.to_dict() for window in windows]


@dataclass(frozen=True, slots=True)
class WindowOccurrence:
    """One window on one day, in real (UTC) time; ``index`` is its place in the list."""

    window: TariffWindow
    index: int
    start: datetime
    end: datetime

    def contains(self, now: datetime) -> bool:
        """True when ``now`` lies in [start, end)."""
        return self.start <= now < self.end


def load_timezone(name: str) -> tuple[tzinfo, bool]:
    """The zone called ``name``, or (UTC, True) when it cannot be loaded."""
    try:
        return ZoneInfo(name), False
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        return UTC, True


class TariffSchedule:
    """A list of windows read in one timezone."""

    def __init__(self, windows: Sequence[TariffWindow], timezone: str) -> None:
        self.windows = tuple(windows)
        self.timezone_name = timezone
        self.tz, self.timezone_fallback = load_timezone(timezone)

    def _offset(self, seconds: int) -> timedelta | None:
        return datetime.fromtimestamp(seconds, UTC).astimezone(self.tz).utcoffset()

    def resolve(self, local: datetime, *, last: bool = False) -> datetime:
        """The UTC instant of naive local ``local``; see the module notes for DST."""
        instants: list[datetime] = []
        for fold in (0, 1):
            instant = local.replace(tzinfo=self.tz, fold=fold).astimezone(UTC)
            if instant.astimezone(self.tz).replace(tzinfo=None) == local:
                instants.append(instant)
        if instants:
            return max(instants) if last else min(instants)
        # Skipped by a forward change: the first real instant after the gap.
        bounds = sorted(
            int(local.replace(tzinfo=self.tz, fold=fold).timestamp()) for fold in (0, 1)
        )
        low, high = bounds
        after = self._offset(high)
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset(middle) == after:
                high = middle
            else:
                low = middle
        return datetime.fromtimestamp(high, UTC)

    def occurrences_on(self, day: date) -> list[WindowOccurrence]:
        """The windows that start on local date ``day``."""
        found: list[WindowOccurrence] = []
        for index, window in enumerate(self.windows):
            if day.weekday() not in window.days or day.month not in window.months:
                continue
            end_day = day + timedelta(days=1) if window.crosses_midnight else day
            start = self.resolve(datetime.combine(day, window.start))
            end = self.resolve(datetime.combine(end_day, window.end), last=True)
            if end > start:
                found.append(WindowOccurrence(window, index, start, end))
        return found

    def active(self, now: datetime) -> list[WindowOccurrence]:
        """Occurrences containing ``now`` (windows last at most a day, plus DST)."""
        today = now.astimezone(self.tz).date()
        return [
            occurrence
            for day in (today - timedelta(days=1), today)
            for occurrence in self.occurrences_on(day)
            if occurrence.contains(now)
        ]

    def export_limit(self, now: datetime) -> float | None:
        """The lowest limit of the windows active at ``now``; None outside all windows."""
        active = self.active(now)
        return min(o.window.export_limit for o in active) if active else None

    def active_window(self, now: datetime) -> WindowOccurrence | None:
        """The window that sets the limit (lowest limit, then first in the list)."""
        active = self.active(now)
        return min(active, key=lambda o: (o.window.export_limit, o.index)) if active else None

    @staticmethod
    def _state(occurrences: Iterable[WindowOccurrence], at: datetime) -> frozenset[int]:
        return frozenset(o.index for o in occurrences if o.contains(at))

    def next_change(self, now: datetime) -> datetime | None:
        """The next instant after ``now`` where the set of active windows changes.

        None when nothing changes within about a year (no windows, or always active).
        """
        if not self.windows:
            return None
        today = now.astimezone(self.tz).date()
        pool: list[WindowOccurrence] = []
        current = self._state(self.active(now), now)
        checked = now
        for offset in range(-1, _HORIZON_DAYS):
            day = today + timedelta(days=offset)
            pool = [o for o in pool if o.end > now] + self.occurrences_on(day)
            # Later days' windows start at or after this bound: edges before it are settled.
            settled = self.resolve(datetime.combine(day + timedelta(days=1), time(0)))
            edges = sorted({t for o in pool for t in (o.start, o.end) if checked < t < settled})
            for edge in edges:
                if self._state(pool, edge) != current:
                    return edge
            checked = max(checked, settled - timedelta(microseconds=1))
        return None


@dataclass(frozen=True, slots=True)
class TariffStatus:
    """What the HA layer shows for a tariff limiter at one moment."""

    export_limit: float | None
    active_window: str | None
    active_index: int | None
    window_start: datetime | None
    window_end: datetime | None
    next_change: datetime | None
    timezone: str
    timezone_fallback: bool

    @property
    def needs_attention(self) -> bool:
        """True when the timezone could not be loaded (the windows run in UTC)."""
        return self.timezone_fallback


class TariffLimiter:
    """Asks for the export limit of the tariff window in force."""

    def __init__(self, source: str, schedule: TariffSchedule, *, enabled: bool = True) -> None:
        self.source = source
        self.schedule = schedule
        self.enabled = enabled

    def controls(self, now: datetime) -> Controls:
        """The lowest export limit of the windows active at ``now``."""
        limit = self.schedule.export_limit(now)
        return Controls() if limit is None else Controls(export_limit=limit)

    def active_window(self, now: datetime) -> WindowOccurrence | None:
        """The window setting the limit at ``now``."""
        return self.schedule.active_window(now)

    def next_change(self, now: datetime) -> datetime | None:
        """When the active windows change next (for the HA layer to show or schedule)."""
        return self.schedule.next_change(now)

    def status(self, now: datetime) -> TariffStatus:
        """Everything the HA layer shows, at ``now``."""
        active = self.schedule.active_window(now)
        return TariffStatus(
            export_limit=None if active is None else self.schedule.export_limit(now),
            active_window=None if active is None else active.window.name or None,
            active_index=None if active is None else active.index,
            window_start=None if active is None else active.start,
            window_end=None if active is None else active.end,
            next_change=self.schedule.next_change(now),
            timezone=self.schedule.timezone_name,
            timezone_fallback=self.schedule.timezone_fallback,
        )


@dataclass(frozen=True, slots=True)
class TariffPreset:
    """Published export-charge windows of one network tariff (times only, no rates).

    The windows curtail export for the whole charge window, including energy that the
    tariff's free allowance would cover: the limiter cannot see that allowance.
    """

    key: str
    name: str
    timezone: str
    windows: tuple[TariffWindow, ...]
    sources: tuple[str, ...]
    notes: str

    def schedule(self, export_limit: float = 0.0) -> TariffSchedule:
        """A schedule of the preset's windows with ``export_limit`` watts."""
        windows = [
            TariffWindow(w.start, w.end, export_limit, w.days, w.months, w.name)
            for w in self.windows
        ]
        return TariffSchedule(windows, self.timezone)


AUSGRID_EA029 = TariffPreset(
    key="ausgrid_ea029",
    name="Ausgrid EA029 (two-way export tariff)",
    timezone="Australia/Sydney",
    windows=(TariffWindow(time(10), time(15), 0.0, name="Export charge"),),
    sources=(
        "https://www.ausgrid.com.au/Your-Energy-Use/Understanding-tariffs/Two-way-solar-pricing",
        "https://help.amber.com.au/hc/en-us/articles/26966265766669",
    ),
    notes=(
        "Ausgrid: export charge 10:00–15:00 every day above a monthly free threshold "
        "(about 200 kWh), export reward 16:00–21:00; no seasons or weekday rules are "
        "published. Read in local time (AEST/AEDT), which Ausgrid's page does not state. "
        "Retailers may restructure or not pass it through: check with your retailer."
    ),
)

SAPN_RELE2W = TariffPreset(
    key="sapn_rele2w",
    name="SA Power Networks RELE2W (residential two-way)",
    timezone="Australia/Adelaide",
    windows=(TariffWindow(time(10), time(16), 0.0, name="Export charge"),),
    sources=(
        "https://help.amber.com.au/hc/en-us/articles/21725379941389-SAPN-Two-Way-Tariff-RELE2W",
        "https://www.sapowernetworks.com.au/your-power/billing/pricing-tariffs/export-tariff",
    ),
    notes=(
        "Export charge in the 10:00–16:00 solar sponge window every day, above a 9 kWh "
        "daily allowance that carries over; export reward 17:00–21:00 November to March "
        "(Amber's page; open-dynamic-export's unused constant says 16:00–22:00). Not "
        "confirmed on an SAPN price list; local time (ACST/ACDT) assumed. Check with your "
        "retailer."
    ),
)

PRESETS: dict[str, TariffPreset] = {p.key: p for p in (AUSGRID_EA029, SAPN_RELE2W)}
