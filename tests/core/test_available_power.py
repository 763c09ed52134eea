"""Available power: what each inverter could produce now, and how that is known."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.core.available_power import (
    RECENT_MAX_AGE_S,
    AvailablePower,
    AvailablePowerEstimator,
    Method,
    held_at_limit,
    site_available_power,
)
from custom_components.dynamic_export.core.measurements import InverterReading


def _reading(
    output: float, limit_pct: float | None = None, rating: float = 5000.0, **kw: float
) -> InverterReading:
    return InverterReading(
        timestamp=0.0,
        ac_power_w=output,
        rated_power_w=rating,
        limit_pct=limit_pct,
        limit_enabled=limit_pct is not None,
        **kw,  # type: ignore[arg-type]
    )


def test_output_at_its_limit_is_held_there() -> None:
    assert held_at_limit(_reading(1420.0, limit_pct=30.0))  # 1500 W limit, 2 % of 5 kW margin
    assert not held_at_limit(_reading(1380.0, limit_pct=30.0))
    assert held_at_limit(_reading(560.0, limit_pct=20.0, rating=3000.0))  # at least 50 W
    assert not held_at_limit(_reading(3000.0))  # no limit: held only at the rating
    assert held_at_limit(_reading(4990.0))


def test_an_inverter_below_its_limit_has_what_it_produces() -> None:
    estimates = AvailablePowerEstimator().estimate(0.0, {"a": _reading(2100.0, limit_pct=80.0)})
    assert estimates == {"a": AvailablePower(2100.0, Method.NOT_LIMITED)}


def test_a_reported_figure_comes_first_but_never_below_the_output_or_above_the_rating() -> None:
    estimator = AvailablePowerEstimator()
    held = _reading(1500.0, limit_pct=30.0, available_w=4200.0)
    assert estimator.estimate(0.0, {"a": held})["a"] == AvailablePower(4200.0, Method.REPORTED)
    low = _reading(1500.0, limit_pct=30.0, available_w=900.0)
    assert estimator.estimate(0.0, {"a": low})["a"].watts == 1500.0
    high = _reading(1500.0, limit_pct=30.0, available_w=9000.0)
    assert estimator.estimate(0.0, {"a": high})["a"].watts == 5000.0


def test_a_held_inverter_is_scaled_from_those_not_held() -> None:
    readings = {
        "held": _reading(1000.0, limit_pct=20.0),  # 5 kW held at 1 kW
        "free": _reading(1800.0, rating=3000.0),  # 3 kW producing 60 % of its rating
    }
    estimates = AvailablePowerEstimator().estimate(0.0, readings)
    assert estimates["held"] == AvailablePower(3000.0, Method.SIBLINGS)
    assert estimates["free"] == AvailablePower(1800.0, Method.NOT_LIMITED)
    site = site_available_power(estimates)
    assert site == AvailablePower(4800.0, Method.SIBLINGS)  # as trusted as its weakest part


def test_a_held_inverter_alone_stands_on_its_last_free_output_for_a_while() -> None:
    estimator = AvailablePowerEstimator()
    estimator.estimate(0.0, {"a": _reading(3200.0)})  # free: 3.2 kW of sun
    held = {"a": _reading(1500.0, limit_pct=30.0)}
    assert estimator.estimate(60.0, held)["a"] == AvailablePower(3200.0, Method.RECENT, 60.0)
    later = estimator.estimate(RECENT_MAX_AGE_S + 1.0, held)["a"]
    assert later == AvailablePower(1500.0, Method.AT_LEAST)


@pytest.mark.parametrize("rating", [0.0, -1.0])
def test_an_inverter_without_a_rating_or_reading_gets_no_figure(rating: float) -> None:
    estimates = AvailablePowerEstimator().estimate(
        0.0, {"a": _reading(100.0, rating=rating), "b": None}
    )
    assert estimates == {}
    assert site_available_power(estimates) is None
