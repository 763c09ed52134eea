"""Battery SOC rule: threshold, hysteresis band, and the safe limit for doubtful readings."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.limiters.soc import SocLimiter, SocReason, SocSettings

T0 = datetime(2025, 1, 15, 2, 0, tzinfo=UTC)
LOW = Controls(export_limit=0.0)
HIGH = Controls(export_limit=5000.0)
SETTINGS = SocSettings(threshold=80.0, hysteresis=5.0, high_export_limit=5000.0)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_hysteresis_band() -> None:
    limiter = SocLimiter("soc", SETTINGS)
    assert limiter.controls(T0) == LOW  # no reading yet
    assert limiter.status(T0).reason is SocReason.NO_READING
    steps = [
        (50.0, LOW),
        (80.0, LOW),  # at the threshold, not past the band
        (84.9, LOW),
        (85.0, HIGH),  # threshold + hysteresis
        (82.0, HIGH),  # inside the band: stays up
        (80.0, HIGH),
        (79.9, LOW),  # below the threshold: down
        (84.0, LOW),  # inside the band: stays down
        (90.0, HIGH),
    ]
    for minute, (soc, expected) in enumerate(steps):
        limiter.update(soc, at(minute))
        assert limiter.controls(at(minute)) == expected, soc
    status = limiter.status(at(8))
    assert status.soc == 90.0
    assert status.high is True
    assert status.reason is SocReason.HIGH
    assert status.export_limit == 5000.0
    assert status.reading_time == at(8)


def test_no_high_limit_means_no_limit_and_a_low_limit_can_be_set() -> None:
    limiter = SocLimiter(
        "soc", SocSettings(threshold=50.0, hysteresis=0.0, low_export_limit=1500.0)
    )
    limiter.update(49.0, T0)
    assert limiter.controls(T0) == Controls(export_limit=1500.0)
    limiter.update(50.0, T0)
    assert limiter.controls(T0) == Controls()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, SocReason.UNAVAILABLE),
        (math.nan, SocReason.INVALID),
        (math.inf, SocReason.INVALID),
        (101.0, SocReason.INVALID),
        (-1.0, SocReason.INVALID),
        ("95", SocReason.INVALID),
        (True, SocReason.INVALID),
    ],
)
def test_doubtful_readings_give_the_low_limit(value: object, reason: SocReason) -> None:
    limiter = SocLimiter("soc", SETTINGS)
    limiter.update(95.0, at(0))
    assert limiter.controls(at(0)) == HIGH
    limiter.update(value, at(1))  # type: ignore[arg-type]
    assert limiter.controls(at(1)) == LOW
    status = limiter.status(at(1))
    assert status.reason is reason
    assert status.soc is None
    # Back inside the band after a doubtful reading: export must wait for the upper edge.
    limiter.update(82.0, at(2))
    assert limiter.controls(at(2)) == LOW


def test_stale_reading_gives_the_low_limit() -> None:
    limiter = SocLimiter("soc", SocSettings(threshold=80.0, high_export_limit=None))
    limiter.update(99.0, at(0))
    assert limiter.controls(at(15)) == Controls()  # exactly max_age old: still fresh
    assert limiter.controls(at(15.01)) == LOW
    assert limiter.status(at(16)).reason is SocReason.STALE
    limiter.update(99.0, at(16))
    assert limiter.controls(at(16)) == Controls()


def test_never_stale_when_max_age_is_none() -> None:
    limiter = SocLimiter("soc", SocSettings(threshold=80.0, hysteresis=0.0, max_age=None))
    limiter.update(90.0, at(0))
    assert limiter.controls(at(60 * 24)) == Controls()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 120.0}, "threshold"),
        ({"threshold": math.nan}, "threshold"),
        ({"hysteresis": -1.0}, "hysteresis"),
        ({"threshold": 98.0, "hysteresis": 5.0}, "exceed 100"),
        ({"low_export_limit": -1.0}, "low_export_limit"),
        ({"high_export_limit": math.inf}, "high_export_limit"),
        ({"low_export_limit": 2000.0, "high_export_limit": 1000.0}, "below low"),
        ({"max_age": timedelta(0)}, "max_age"),
    ],
)
def test_settings_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SocSettings(**kwargs)  # type: ignore[arg-type]
