"""Automation overrides: set, replace, expire, clear, survive restarts, reject bad input."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.limiters.override import (
    OverrideLimiter,
    controls_from_dict,
)

NOW = datetime(2025, 1, 15, 2, 0, tzinfo=UTC)
IN_AN_HOUR = NOW + timedelta(hours=1)


def test_set_then_expire() -> None:
    limiter = OverrideLimiter("override")
    assert limiter.controls(NOW) == Controls()
    override = limiter.set(Controls(export_limit=0.0), IN_AN_HOUR, "automation.negative", NOW)
    assert override.set_at == NOW
    assert limiter.controls(NOW) == Controls(export_limit=0.0)
    assert limiter.controls(IN_AN_HOUR - timedelta(microseconds=1)) == Controls(export_limit=0.0)
    active = limiter.active(NOW + timedelta(minutes=30))
    assert active is not None
    assert active.source == "automation.negative"
    assert active.until == IN_AN_HOUR
    assert limiter.controls(IN_AN_HOUR) == Controls()  # the expiry instant is already free
    assert limiter.active(IN_AN_HOUR) is None


def test_a_new_set_replaces_the_old_and_clear_removes_it() -> None:
    limiter = OverrideLimiter("override")
    limiter.set(Controls(export_limit=0.0), IN_AN_HOUR, "first", NOW)
    limiter.set(
        Controls(generation_limit=3000.0, connect=True), NOW + timedelta(minutes=5), "second", NOW
    )
    assert limiter.controls(NOW) == Controls(generation_limit=3000.0, connect=True)
    # The first override does not come back when the second expires.
    assert limiter.controls(NOW + timedelta(minutes=10)) == Controls()
    limiter.set(Controls(energize=False), IN_AN_HOUR, "third", NOW)
    limiter.clear()
    assert limiter.controls(NOW) == Controls()


def test_until_is_normalised_to_utc() -> None:
    sydney = datetime(2025, 1, 15, 14, 0, tzinfo=timezone(timedelta(hours=11)))
    limiter = OverrideLimiter("override")
    override = limiter.set(Controls(export_limit=100.0), sydney, "ui", NOW)
    assert override.until.tzinfo is UTC
    assert override.until == sydney
    assert override.until.hour == 3


@pytest.mark.parametrize(
    ("controls", "message"),
    [
        (Controls(export_limit=-1.0), "export_limit must be a finite, non-negative"),
        (Controls(generation_limit=math.nan), "generation_limit must be a finite"),
        (Controls(import_limit=math.inf), "import_limit must be a finite"),
        (Controls(load_limit=True), "load_limit must be a number of watts"),
        (Controls(export_limit="0"), "export_limit must be a number of watts"),  # type: ignore[arg-type]
        (Controls(connect=1), "connect must be true or false"),  # type: ignore[arg-type]
        (Controls(), "at least one control"),
    ],
)
def test_bad_controls_are_rejected(controls: Controls, message: str) -> None:
    limiter = OverrideLimiter("override")
    with pytest.raises(ValueError, match=message):
        limiter.set(controls, IN_AN_HOUR, "ui", NOW)
    assert limiter.controls(NOW) == Controls()


@pytest.mark.parametrize(
    ("until", "message"),
    [
        (NOW - timedelta(seconds=1), "not in the future"),
        (NOW, "not in the future"),
        (datetime(2025, 1, 15, 3, 0), "timezone"),
    ],
)
def test_bad_until_is_rejected(until: datetime, message: str) -> None:
    limiter = OverrideLimiter("override")
    limiter.set(Controls(export_limit=500.0), IN_AN_HOUR, "earlier", NOW)
    with pytest.raises(ValueError, match=message):
        limiter.set(Controls(export_limit=0.0), until, "ui", NOW)
    # A rejected set leaves the previous override alone.
    assert limiter.controls(NOW) == Controls(export_limit=500.0)


def test_persistence_round_trip() -> None:
    limiter = OverrideLimiter("override")
    limiter.set(Controls(export_limit=0.0, energize=True), IN_AN_HOUR, "automation.x", NOW)
    stored = json.loads(json.dumps(limiter.to_dict()))
    restored = OverrideLimiter.from_dict("override", stored, NOW + timedelta(minutes=30))
    assert restored.controls(NOW + timedelta(minutes=30)) == Controls(
        export_limit=0.0, energize=True
    )
    active = restored.active(NOW)
    assert active is not None
    assert active.source == "automation.x"
    assert active.until == IN_AN_HOUR
    assert active.set_at == NOW
    # Restarted after the expiry: nothing comes back.
    late = OverrideLimiter.from_dict("override", stored, IN_AN_HOUR)
    assert late.active(NOW) is None
    empty = OverrideLimiter.from_dict("override", OverrideLimiter("o").to_dict(), NOW)
    assert empty.controls(NOW) == Controls()


@pytest.mark.parametrize(
    "stored",
    [
        {
            "override": {
                "controls": {"export_limit": -5.0},
                "until": "2025-01-15T03:00:00+00:00",
                "source": "x",
                "set_at": "2025-01-15T02:00:00+00:00",
            }
        },
        {
            "override": {
                "controls": {"colour": 1},
                "until": "2025-01-15T03:00:00+00:00",
                "source": "x",
                "set_at": "2025-01-15T02:00:00+00:00",
            }
        },
        {
            "override": {
                "controls": {},
                "until": "2025-01-15T03:00:00",
                "source": "x",
                "set_at": "2025-01-15T02:00:00+00:00",
            }
        },
        {
            "override": {
                "controls": {},
                "until": "tomorrow",
                "source": "x",
                "set_at": "2025-01-15T02:00:00+00:00",
            }
        },
        {"override": {"controls": {}}},
    ],
)
def test_malformed_storage_is_an_error(stored: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        OverrideLimiter.from_dict("override", stored, NOW)


def test_controls_from_dict_ignores_nones() -> None:
    assert controls_from_dict(Controls(export_limit=5.0).as_dict()) == Controls(export_limit=5.0)
