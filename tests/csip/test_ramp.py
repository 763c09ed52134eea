"""Ramping watt limits: rampTms, setGradW, and ramps that start from what the site does."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.core.controls import Controls, ControlType
from custom_components.dynamic_export.csip.ramp import (
    AS4777_GRAD_W,
    ControlRamps,
    LimitRamp,
    ramp_rate_w_per_s,
)

RATED = 10_000.0


def settled(value: float | None, present: float | None = None, **kw: int | None) -> LimitRamp:
    """A ramp holding ``value`` at t=0."""
    ramp = LimitRamp()
    ramp.step(0.0, value, present_w=present, rated_w=RATED, set_grad_w=0, **kw)
    assert ramp.value == value
    return ramp


def test_ramp_tms_is_hundredths_of_a_second() -> None:
    ramp = settled(6000.0)
    assert ramp.step(0.0, 3000.0, present_w=6000.0, rated_w=RATED, ramp_tms=3000) == 6000.0
    assert ramp.step(15.0, 3000.0, present_w=6000.0, rated_w=RATED, ramp_tms=3000) == (
        pytest.approx(4500.0)
    )
    assert ramp.step(30.0, 3000.0, present_w=6000.0, rated_w=RATED, ramp_tms=3000) == 3000.0
    assert ramp.step(31.0, 3000.0, present_w=6000.0, rated_w=RATED, ramp_tms=3000) == 3000.0


def test_ramp_tms_zero_applies_at_once() -> None:
    ramp = settled(6000.0)
    assert ramp.step(1.0, 3000.0, present_w=6000.0, rated_w=RATED, ramp_tms=0) == 3000.0


def test_ramp_tms_takes_precedence_over_set_grad_w() -> None:
    ramp = settled(6000.0)
    ramp.step(0.0, 3000.0, present_w=6000.0, rated_w=RATED, ramp_tms=1000, set_grad_w=0)
    assert ramp.step(5.0, 3000.0, present_w=6000.0, rated_w=RATED) == pytest.approx(4500.0)


def test_set_grad_w_is_hundredths_of_a_percent_of_rating_per_second() -> None:
    # 100 → 1 %/s of 10 kW = 100 W/s.
    ramp = settled(5000.0)
    ramp.step(0.0, 4000.0, present_w=5000.0, rated_w=RATED, set_grad_w=100)
    assert ramp.step(5.0, 4000.0, present_w=5000.0, rated_w=RATED) == pytest.approx(4500.0)
    assert ramp.step(10.0, 4000.0, present_w=5000.0, rated_w=RATED) == 4000.0


def test_without_set_grad_w_the_as4777_default_applies() -> None:
    assert round(AS4777_GRAD_W, 2) == 27.78
    rate = ramp_rate_w_per_s(1.0, rated_w=6000.0, ramp_tms=None, set_grad_w=None)
    assert rate == pytest.approx(6000.0 / 6 / 60)  # 16.67 %/min
    ramp = settled(6000.0)
    ramp.step(0.0, 0.0, present_w=6000.0, rated_w=6000.0)
    assert ramp.step(60.0, 0.0, present_w=6000.0, rated_w=6000.0) == pytest.approx(5000.0)


@pytest.mark.parametrize(("grad", "rated"), [(0, RATED), (100, None), (100, 0.0)])
def test_no_ramp_limit_when_set_grad_w_is_zero_or_rating_unknown(
    grad: int, rated: float | None
) -> None:
    ramp = settled(5000.0)
    assert ramp.step(1.0, 1000.0, present_w=5000.0, rated_w=rated, set_grad_w=grad) == 1000.0


def test_ramp_down_starts_from_the_present_value_not_the_old_limit() -> None:
    # Old limit 12 kW (200 %), the site only exports 5 kW: the ramp must bite at once.
    ramp = settled(12000.0)
    assert ramp.step(0.0, 2000.0, present_w=5000.0, rated_w=RATED, set_grad_w=100) == 5000.0
    assert ramp.step(10.0, 2000.0, present_w=5000.0, rated_w=RATED) == pytest.approx(4000.0)


def test_ramp_down_follows_the_site_when_it_drops_below_the_ramp() -> None:
    ramp = settled(8000.0)
    ramp.step(0.0, 2000.0, present_w=8000.0, rated_w=RATED, set_grad_w=100)
    assert ramp.step(5.0, 2000.0, present_w=3000.0, rated_w=RATED) == 3000.0
    # A cloud passing does not let the limit jump back up.
    assert ramp.step(6.0, 2000.0, present_w=9000.0, rated_w=RATED) == pytest.approx(2900.0)


def test_ramp_down_never_goes_below_the_target() -> None:
    ramp = settled(8000.0)
    assert ramp.step(0.0, 2000.0, present_w=500.0, rated_w=RATED, set_grad_w=100) == 2000.0


def test_ramp_down_without_a_measurement_starts_from_the_old_limit() -> None:
    ramp = settled(8000.0)
    assert ramp.step(0.0, 2000.0, present_w=None, rated_w=RATED, set_grad_w=100) == 8000.0


def test_ramp_up_starts_from_the_limit_in_effect() -> None:
    ramp = settled(2000.0)
    assert ramp.step(0.0, 5000.0, present_w=1500.0, rated_w=RATED, set_grad_w=100) == 2000.0
    assert ramp.step(10.0, 5000.0, present_w=1500.0, rated_w=RATED) == pytest.approx(3000.0)
    assert ramp.step(40.0, 5000.0, present_w=1500.0, rated_w=RATED) == 5000.0


def test_appearing_limit_ramps_down_from_the_present_value() -> None:
    ramp = LimitRamp()
    assert ramp.step(0.0, None, present_w=7000.0, rated_w=RATED) is None
    assert ramp.step(1.0, 2000.0, present_w=7000.0, rated_w=RATED, set_grad_w=100) == 7000.0
    assert ramp.step(11.0, 2000.0, present_w=7000.0, rated_w=RATED) == pytest.approx(6000.0)


@pytest.mark.parametrize("present", [None, 1000.0])
def test_appearing_limit_applies_at_once_if_site_is_below_it_or_unknown(
    present: float | None,
) -> None:
    ramp = LimitRamp()
    assert ramp.step(0.0, 2000.0, present_w=present, rated_w=RATED, set_grad_w=100) == 2000.0


def test_removed_limit_rises_to_the_rating_then_disappears() -> None:
    ramp = settled(6000.0)
    assert ramp.step(0.0, None, present_w=6000.0, rated_w=RATED, set_grad_w=100) == 6000.0
    assert ramp.step(20.0, None, present_w=6000.0, rated_w=RATED) == pytest.approx(8000.0)
    assert ramp.step(40.0, None, present_w=6000.0, rated_w=RATED) is None
    assert ramp.step(50.0, None, present_w=6000.0, rated_w=RATED) is None


@pytest.mark.parametrize(("old", "rated"), [(6000.0, None), (12000.0, RATED)])
def test_removed_limit_goes_at_once_without_rating_or_above_it(
    old: float, rated: float | None
) -> None:
    ramp = settled(old)
    assert ramp.step(1.0, None, present_w=6000.0, rated_w=rated, set_grad_w=100) is None


def test_new_target_mid_ramp_starts_from_where_the_ramp_is() -> None:
    ramp = settled(8000.0)
    ramp.step(0.0, 2000.0, present_w=9000.0, rated_w=RATED, set_grad_w=100)
    assert ramp.step(10.0, 2000.0, present_w=9000.0, rated_w=RATED) == pytest.approx(7000.0)
    assert ramp.step(10.0, 9000.0, present_w=7000.0, rated_w=RATED, set_grad_w=100) == (
        pytest.approx(7000.0)
    )
    assert ramp.step(15.0, 9000.0, present_w=7000.0, rated_w=RATED) == pytest.approx(7500.0)


def test_unchanged_target_does_not_restart_the_ramp() -> None:
    ramp = settled(8000.0)
    ramp.step(0.0, 2000.0, present_w=9000.0, rated_w=RATED, set_grad_w=100)
    for t in range(1, 11):
        value = ramp.step(float(t), 2000.0, present_w=9000.0, rated_w=RATED, set_grad_w=100)
    assert value == pytest.approx(7000.0)


def test_clock_going_backwards_does_not_move_the_ramp() -> None:
    ramp = settled(8000.0)
    ramp.step(100.0, 2000.0, present_w=9000.0, rated_w=RATED, set_grad_w=100)
    assert ramp.step(50.0, 2000.0, present_w=9000.0, rated_w=RATED) == 8000.0


def test_control_ramps_ramp_each_watt_limit_and_pass_booleans() -> None:
    ramps = ControlRamps()
    present = {ControlType.EXPORT_LIMIT: 6000.0, ControlType.GENERATION_LIMIT: 6000.0}
    first = Controls(connect=True, export_limit=6000.0, generation_limit=9000.0)
    assert ramps.step(0.0, first, present_w=present, rated_w=RATED, set_grad_w=0) == first
    second = Controls(connect=False, energize=True, export_limit=3000.0, generation_limit=9000.0)
    out = ramps.step(
        0.0,
        second,
        present_w=present,
        rated_w=RATED,
        ramp_tms={ControlType.EXPORT_LIMIT: 3000},
    )
    assert out == Controls(
        connect=False, energize=True, export_limit=6000.0, generation_limit=9000.0
    )
    out = ramps.step(15.0, second, present_w=present, rated_w=RATED)
    assert out.export_limit == pytest.approx(4500.0)
    assert out.import_limit is None
