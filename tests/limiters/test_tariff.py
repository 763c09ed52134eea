"""Tariff windows: validation, midnight, days, months, DST in Sydney and Adelaide, presets."""

from __future__ import annotations

import json
import math
import time as timer
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.limiters.tariff import (
    PRESETS,
    TariffLimiter,
    TariffSchedule,
    TariffWindow,
    TariffWindowError,
    windows_from_list,
    windows_to_list,
)

SYDNEY = ZoneInfo("Australia/Sydney")
ADELAIDE = ZoneInfo("Australia/Adelaide")


def z(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A UTC instant, written out so DST cases do not depend on the code under test."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local(tz: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """An unambiguous local time, in UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=tz).astimezone(UTC)


def _minutes(count: int) -> timedelta:
    return timedelta(minutes=count)


def schedule(tz: str, *windows: dict[str, Any]) -> TariffSchedule:
    return TariffSchedule(windows_from_list(windows), tz)


def w(start: object, end: object, limit: object = 0.0, **extra: Any) -> dict[str, Any]:
    return {"start": start, "end": end, "export_limit": limit, **extra}


# -- the data the UI edits ------------------------------------------------------------


def test_window_round_trip() -> None:
    data = {
        "name": "Export charge",
        "start": "10:00",
        "end": "15:00",
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "months": [11, 12, 1, 2, 3],
        "export_limit": 0.0,
    }
    window = TariffWindow.from_dict(data)
    assert window.start == time(10)
    assert window.end == time(15)
    assert window.days == frozenset(range(5))
    assert window.months == {1, 2, 3, 11, 12}
    out = window.to_dict()
    assert out == {**data, "months": [1, 2, 3, 11, 12]}
    assert TariffWindow.from_dict(json.loads(json.dumps(out))) == window
    assert windows_from_list(windows_to_list([window, window])) == [window, window]


def test_defaults_and_24_00() -> None:
    window = TariffWindow.from_dict(w("22:00", "24:00", 250))
    assert window.end == time(0)
    assert window.crosses_midnight
    assert window.days == frozenset(range(7))
    assert window.months == frozenset(range(1, 13))
    assert window.to_dict()["end"] == "00:00"
    assert TariffWindow.from_dict(w("06:30:15", "07:00")).to_dict()["start"] == "06:30:15"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (w("25:00", "15:00"), "start", "not a time of day"),
        (w("10:5", "15:00"), "start", "not a time"),
        (w("24:00", "15:00"), "start", "not a time of day"),
        (w("10:00", 1500), "end", "not a time"),
        ({"start": "10:00", "end": "15:00"}, "export_limit", "required"),
        (w("10:00", "15:00", -1), "export_limit", "non-negative"),
        (w("10:00", "15:00", math.nan), "export_limit", "non-negative"),
        (w("10:00", "15:00", True), "export_limit", "number of watts"),
        (w("10:00", "15:00", "0"), "export_limit", "number of watts"),
        (w("10:00", "15:00", days=["funday"]), "days", "not a day"),
        (w("10:00", "15:00", days=[]), "days", "non-empty"),
        (w("10:00", "15:00", days="mon"), "days", "non-empty list"),
        (w("10:00", "15:00", months=[13]), "months", "not a month"),
        (w("10:00", "15:00", months=[]), "months", "non-empty"),
        (w("10:00", "15:00", name=5), "name", "text"),
        (w("10:00", "15:00", colour="red"), None, "unknown keys"),
    ],
)
def test_invalid_windows_say_where(data: dict[str, Any], field: str | None, message: str) -> None:
    with pytest.raises(TariffWindowError, match=message) as err:
        windows_from_list([w("00:00", "01:00"), data])
    assert err.value.index == 1
    assert err.value.field == field
    assert str(err.value).startswith("window 2: ")


def test_windows_built_in_code_are_checked_too() -> None:
    with pytest.raises(TariffWindowError, match="export_limit"):
        TariffWindow(time(10), time(15), -5.0)
    with pytest.raises(TariffWindowError, match="days"):
        TariffWindow(time(10), time(15), days=frozenset({7}))
    with pytest.raises(TariffWindowError, match="start"):
        TariffWindow("10:00", time(15))  # type: ignore[arg-type]


# -- evaluation -----------------------------------------------------------------------


def test_window_across_midnight_belongs_to_its_start_day() -> None:
    sched = schedule("Australia/Sydney", w("22:00", "02:00", days=["sun"]))
    # Sunday 15 June 2025 (AEST, +10).
    assert sched.export_limit(local(SYDNEY, 2025, 6, 15, 23)) == 0.0
    assert sched.export_limit(local(SYDNEY, 2025, 6, 16, 1, 59)) == 0.0  # Monday morning
    assert sched.export_limit(local(SYDNEY, 2025, 6, 16, 2)) is None
    assert sched.export_limit(local(SYDNEY, 2025, 6, 16, 23)) is None  # Monday night
    assert sched.export_limit(local(SYDNEY, 2025, 6, 15, 1)) is None  # Saturday's night
    assert sched.export_limit(local(SYDNEY, 2025, 6, 15, 21, 59)) is None
    assert sched.next_change(local(SYDNEY, 2025, 6, 15, 21)) == z(2025, 6, 15, 12)
    assert sched.next_change(local(SYDNEY, 2025, 6, 16, 1)) == z(2025, 6, 15, 16)
    assert sched.next_change(local(SYDNEY, 2025, 6, 16, 3)) == z(2025, 6, 22, 12)


def test_weekdays() -> None:
    sched = schedule(
        "Australia/Sydney", w("10:00", "15:00", days=["mon", "tue", "wed", "thu", "fri"])
    )
    assert sched.export_limit(local(SYDNEY, 2025, 6, 13, 12)) == 0.0  # Friday
    assert sched.export_limit(local(SYDNEY, 2025, 6, 14, 12)) is None  # Saturday
    assert sched.export_limit(local(SYDNEY, 2025, 6, 15, 12)) is None  # Sunday
    assert sched.next_change(local(SYDNEY, 2025, 6, 13, 16)) == local(SYDNEY, 2025, 6, 16, 10)


def test_months() -> None:
    sched = schedule("Australia/Adelaide", w("17:00", "21:00", 0, months=[11, 12, 1, 2, 3]))
    assert sched.export_limit(local(ADELAIDE, 2025, 12, 10, 18)) == 0.0
    assert sched.export_limit(local(ADELAIDE, 2025, 6, 10, 18)) is None
    # From winter the next change is 1 November, 17:00 ACDT (+10:30).
    assert sched.next_change(local(ADELAIDE, 2025, 6, 10, 18)) == z(2025, 11, 1, 6, 30)
    march = schedule("Australia/Sydney", w("22:00", "02:00", months=[3]))
    assert march.export_limit(z(2025, 3, 31, 14)) == 0.0  # 1 April 01:00 AEDT, from 31 March
    assert march.export_limit(z(2025, 2, 28, 14)) is None  # 1 March 01:00, from February


def test_overlapping_windows_lowest_limit_wins() -> None:
    sched = schedule(
        "Australia/Sydney",
        w("09:00", "17:00", 2000, name="Cap"),
        w("10:00", "15:00", 0, name="Export charge"),
    )
    limiter = TariffLimiter("tariff", sched)
    noon = local(SYDNEY, 2025, 6, 16, 12)
    assert limiter.controls(noon) == Controls(export_limit=0.0)
    active = limiter.active_window(noon)
    assert active is not None
    assert active.window.name == "Export charge"
    assert active.index == 1
    assert (active.start, active.end) == (
        local(SYDNEY, 2025, 6, 16, 10),
        local(SYDNEY, 2025, 6, 16, 15),
    )
    assert limiter.controls(local(SYDNEY, 2025, 6, 16, 16)) == Controls(export_limit=2000.0)
    assert limiter.controls(local(SYDNEY, 2025, 6, 16, 8)) == Controls()
    assert limiter.next_change(local(SYDNEY, 2025, 6, 16, 9, 30)) == local(SYDNEY, 2025, 6, 16, 10)
    assert limiter.next_change(noon) == local(SYDNEY, 2025, 6, 16, 15)
    assert limiter.next_change(local(SYDNEY, 2025, 6, 16, 16)) == local(SYDNEY, 2025, 6, 16, 17)
    status = limiter.status(noon)
    assert status.active_window == "Export charge"
    assert status.export_limit == 0.0
    assert status.window_end == local(SYDNEY, 2025, 6, 16, 15)
    assert status.next_change == local(SYDNEY, 2025, 6, 16, 15)
    assert status.needs_attention is False


def test_adjacent_windows_change_at_the_seam() -> None:
    sched = schedule("Australia/Sydney", w("10:00", "12:00", 0), w("12:00", "15:00", 500))
    assert sched.next_change(local(SYDNEY, 2025, 6, 16, 11)) == local(SYDNEY, 2025, 6, 16, 12)
    assert sched.export_limit(local(SYDNEY, 2025, 6, 16, 12)) == 500.0
    assert sched.next_change(local(SYDNEY, 2025, 6, 16, 12, 30)) == local(SYDNEY, 2025, 6, 16, 15)


def test_no_windows_and_always_on() -> None:
    assert schedule("Australia/Sydney").next_change(z(2025, 6, 16, 0)) is None
    always = schedule("Australia/Sydney", w("06:00", "06:00", 100))
    started = timer.perf_counter()
    assert always.next_change(z(2025, 6, 16, 0)) is None
    assert timer.perf_counter() - started < 1.0
    for hour in (0, 6, 12, 20):
        assert always.export_limit(z(2025, 6, 16, hour)) == 100.0


# -- daylight saving ------------------------------------------------------------------
# Sydney: clocks go forward 5 Oct 2025 02:00 AEST (16:00Z on the 4th), back 6 Apr 2025
# 03:00 AEDT (16:00Z on the 5th). Adelaide: the same local times, half an hour later in UTC.


@pytest.mark.parametrize(
    ("tz", "changeover"),
    [("Australia/Sydney", z(2025, 10, 4, 16)), ("Australia/Adelaide", z(2025, 10, 4, 16, 30))],
)
def test_dst_forward_skipped_hour(tz: str, changeover: datetime) -> None:
    skipped = schedule(tz, w("02:00", "03:00"))
    assert skipped.occurrences_on(date(2025, 10, 5)) == []  # does not happen that day
    for offset in (-61, -1, 0, 30):
        assert skipped.export_limit(changeover + _minutes(offset)) is None
    assert len(skipped.occurrences_on(date(2025, 10, 4))) == 1  # an ordinary day

    into = schedule(tz, w("01:30", "02:30"))
    (occurrence,) = into.occurrences_on(date(2025, 10, 5))
    assert occurrence.end == changeover  # ends when 02:00 becomes 03:00
    assert occurrence.end - occurrence.start == _minutes(30)
    assert into.export_limit(changeover - _minutes(1)) == 0.0
    assert into.export_limit(changeover) is None
    assert into.next_change(changeover - _minutes(20)) == changeover

    out_of = schedule(tz, w("02:30", "04:00"))
    (occurrence,) = out_of.occurrences_on(date(2025, 10, 5))
    assert occurrence.start == changeover  # starts at the first real instant after the gap
    assert occurrence.end == changeover + _minutes(60)  # 04:00 daylight time


@pytest.mark.parametrize(
    ("tz", "changeover"),
    [("Australia/Sydney", z(2025, 4, 5, 16)), ("Australia/Adelaide", z(2025, 4, 5, 16, 30))],
)
def test_dst_back_repeated_hour(tz: str, changeover: datetime) -> None:
    repeated = schedule(tz, w("02:00", "03:00"))
    (occurrence,) = repeated.occurrences_on(date(2025, 4, 6))
    # From the first 02:00 (daylight time) to 03:00 standard time: both passes, two hours.
    assert occurrence.start == changeover - _minutes(60)
    assert occurrence.end == changeover + _minutes(60)
    assert repeated.export_limit(changeover - _minutes(61)) is None
    assert repeated.export_limit(changeover - _minutes(30)) == 0.0  # first pass
    assert repeated.export_limit(changeover + _minutes(30)) == 0.0  # second pass
    assert repeated.export_limit(changeover + _minutes(60)) is None
    assert repeated.next_change(changeover - _minutes(30)) == changeover + _minutes(60)

    ends_inside = schedule(tz, w("01:00", "02:30"))
    (occurrence,) = ends_inside.occurrences_on(date(2025, 4, 6))
    assert occurrence.end == changeover + _minutes(30)  # the second 02:30


def test_daily_window_follows_local_time_across_dst() -> None:
    sched = schedule("Australia/Sydney", w("10:00", "15:00"))
    (before,) = sched.occurrences_on(date(2025, 10, 4))
    (after,) = sched.occurrences_on(date(2025, 10, 5))
    assert before.start == z(2025, 10, 4, 0)  # 10:00 AEST
    assert after.start == z(2025, 10, 4, 23)  # 10:00 AEDT


# -- timezones ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "", "../../etc/passwd", "Australia/Sydney "])
def test_unknown_timezone_falls_back_to_utc(name: str) -> None:
    limiter = TariffLimiter("tariff", schedule(name, w("10:00", "15:00")))
    assert limiter.schedule.timezone_fallback is True
    assert limiter.controls(z(2025, 6, 16, 12)) == Controls(export_limit=0.0)  # 12:00 UTC
    assert limiter.controls(z(2025, 6, 16, 16)) == Controls()
    status = limiter.status(z(2025, 6, 16, 12))
    assert status.needs_attention is True
    assert status.timezone == name


def test_known_timezone_does_not_need_attention() -> None:
    sched = schedule("Australia/Adelaide", w("10:00", "15:00"))
    assert sched.timezone_fallback is False
    assert TariffLimiter("t", sched).status(z(2025, 6, 16, 12)).needs_attention is False


# -- presets --------------------------------------------------------------------------


def test_presets() -> None:
    assert set(PRESETS) == {"ausgrid_ea029", "sapn_rele2w"}
    ea029 = TariffLimiter("ea029", PRESETS["ausgrid_ea029"].schedule())
    assert ea029.schedule.timezone_fallback is False
    assert ea029.controls(local(SYDNEY, 2025, 12, 1, 10)) == Controls(export_limit=0.0)
    assert ea029.controls(local(SYDNEY, 2025, 12, 1, 14, 59)) == Controls(export_limit=0.0)
    assert ea029.controls(local(SYDNEY, 2025, 12, 1, 15)) == Controls()
    assert ea029.controls(local(SYDNEY, 2025, 12, 1, 9, 59)) == Controls()

    rele2w = TariffLimiter("rele2w", PRESETS["sapn_rele2w"].schedule(export_limit=500.0))
    assert rele2w.controls(local(ADELAIDE, 2025, 7, 5, 15, 30)) == Controls(export_limit=500.0)
    assert rele2w.controls(local(ADELAIDE, 2025, 7, 5, 16)) == Controls()
    for preset in PRESETS.values():
        assert "retailer" in preset.notes
        assert preset.sources
