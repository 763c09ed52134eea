"""The fixed limiter: user-set limits that do not depend on time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from custom_components.dynamic_export.core.controls import (
    BOOLEAN_CONTROLS,
    WATT_CONTROLS,
    Controls,
    ControlType,
)
from custom_components.dynamic_export.limiters.fixed import FixedLimiter

NOON = datetime(2025, 1, 1, 12, tzinfo=UTC)
MIDNIGHT = datetime(2025, 6, 30, 0, tzinfo=UTC)


def test_returns_its_settings_whatever_the_time() -> None:
    settings = Controls(export_limit=5000.0, generation_limit=8000.0, connect=True)
    limiter = FixedLimiter("fixed", settings)
    assert limiter.controls(NOON) == settings
    assert limiter.controls(MIDNIGHT) == settings
    assert limiter.source == "fixed"
    assert limiter.enabled is True


@pytest.mark.parametrize("control", WATT_CONTROLS)
@pytest.mark.parametrize("watts", [0.0, 1500.0, 1e6])
def test_set_limit(control: ControlType, watts: float) -> None:
    limiter = FixedLimiter("fixed", Controls(export_limit=100.0, energize=False))
    limiter.set_limit(control, watts)
    controls = limiter.controls(NOON)
    assert controls.get(control) == watts
    # Nothing else changes.
    assert controls.energize is False
    if control is not ControlType.EXPORT_LIMIT:
        assert controls.export_limit == 100.0


def test_set_limit_none_removes_it() -> None:
    limiter = FixedLimiter("fixed", Controls(export_limit=100.0, generation_limit=200.0))
    limiter.set_limit(ControlType.EXPORT_LIMIT, None)
    assert limiter.controls(NOON) == Controls(generation_limit=200.0)


@pytest.mark.parametrize("watts", [-1.0, -0.001, float("nan"), float("-inf")])
def test_set_limit_rejects_bad_watts(watts: float) -> None:
    limiter = FixedLimiter("fixed", Controls(export_limit=100.0))
    with pytest.raises(ValueError, match="non-negative"):
        limiter.set_limit(ControlType.EXPORT_LIMIT, watts)
    assert limiter.controls(NOON).export_limit == 100.0


@pytest.mark.parametrize("control", BOOLEAN_CONTROLS)
def test_set_limit_rejects_non_watt_control(control: ControlType) -> None:
    limiter = FixedLimiter("fixed", Controls())
    with pytest.raises(ValueError, match="not a watt limit"):
        limiter.set_limit(control, 0.0)
    assert limiter.controls(NOON) == Controls()


def test_settings_returned_earlier_are_not_changed_by_set_limit() -> None:
    limiter = FixedLimiter("fixed", Controls(export_limit=100.0))
    before = limiter.controls(NOON)
    limiter.set_limit(ControlType.EXPORT_LIMIT, 50.0)
    assert before.export_limit == 100.0
    assert limiter.controls(NOON).export_limit == 50.0
