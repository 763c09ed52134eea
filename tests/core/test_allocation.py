"""Splitting a site generation target among inverters."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.core.allocation import (
    MIN_HEADROOM_W,
    AllocationInput,
    allocate,
    headroom_w,
)


def inv(
    key: str, rating: float, output: float | None = None, limit: float | None = None
) -> AllocationInput:
    """An inverter; by default it produces all it is allowed (a full one)."""
    limit = rating if limit is None else limit
    return AllocationInput(key, rating, limit if output is None else output, limit)


def test_no_inverters() -> None:
    assert allocate(1000.0, []) == {}


def test_headroom_has_a_floor() -> None:
    assert headroom_w(100.0) == MIN_HEADROOM_W
    assert headroom_w(10_000.0) == pytest.approx(500.0)


@pytest.mark.parametrize("target", [0.0, 1000.0, 4500.0, 9000.0])
def test_split_by_rating_when_all_can_produce(target: float) -> None:
    shares = allocate(target, [inv("a", 6000.0), inv("b", 3000.0)])
    assert shares["a"] == pytest.approx(target * 2 / 3)
    assert shares["b"] == pytest.approx(target / 3)


def test_negative_target_gives_nothing() -> None:
    assert allocate(-500.0, [inv("a", 5000.0), inv("b", 5000.0)]) == {"a": 0.0, "b": 0.0}


def test_target_above_total_rating_is_capped_at_ratings() -> None:
    shares = allocate(50_000.0, [inv("a", 5000.0), inv("b", 3000.0)])
    assert shares == pytest.approx({"a": 5000.0, "b": 3000.0})


def test_shaded_inverter_does_not_hold_others_back() -> None:
    # "a" may produce 5 kW but only makes 1 kW (shade): it gets its output plus
    # headroom, and "b" takes the rest of the target.
    shaded = inv("a", 5000.0, output=1000.0, limit=5000.0)
    full = inv("b", 5000.0)
    shares = allocate(6000.0, [shaded, full])
    assert shares["a"] == pytest.approx(1000.0 + headroom_w(5000.0))
    assert shares["b"] == pytest.approx(6000.0 - shares["a"])
    assert sum(shares.values()) == pytest.approx(6000.0)


def test_small_shortfall_is_not_taken_for_shade() -> None:
    # Producing just under its limit: the inverter is held by the limit, not by
    # the sun, and keeps its rating share.
    near = inv("a", 5000.0, output=4900.0, limit=5000.0)
    shares = allocate(6000.0, [near, inv("b", 5000.0)])
    assert shares == pytest.approx({"a": 3000.0, "b": 3000.0})


def test_inverter_at_a_low_limit_is_not_shaded() -> None:
    # Output equals a low limit we set: that is our curtailment, not shade.
    held = inv("a", 5000.0, output=1000.0, limit=1000.0)
    shares = allocate(6000.0, [held, inv("b", 5000.0)])
    assert shares == pytest.approx({"a": 3000.0, "b": 3000.0})


def test_shaded_inverter_stays_shaded_at_the_share_it_was_given() -> None:
    # Next cycle the shaded inverter's limit is the share it was given; it still
    # produces the same. The split must not flip back to rating shares (that would
    # alternate between two splits and write every cycle).
    first = allocate(6000.0, [inv("a", 5000.0, 1000.0, 5000.0), inv("b", 5000.0)])
    limit_a = first["a"]
    second = allocate(
        6000.0, [inv("a", 5000.0, 1000.0, limit_a), inv("b", 5000.0, output=first["b"])]
    )
    assert second == pytest.approx(first)


def test_negative_output_counts_as_zero() -> None:
    shares = allocate(3000.0, [inv("a", 5000.0, output=-20.0), inv("b", 5000.0)])
    assert shares["a"] == pytest.approx(headroom_w(5000.0))
    assert sum(shares.values()) == pytest.approx(3000.0)


def test_headroom_never_exceeds_rating() -> None:
    tiny = inv("a", 40.0, output=0.0, limit=40.0)
    shares = allocate(10.0, [tiny, inv("b", 5000.0)])
    assert shares["a"] <= 40.0
    assert sum(shares.values()) == pytest.approx(10.0)


def test_target_beyond_what_they_can_produce_holds_nobody_below_capability() -> None:
    shaded = inv("a", 5000.0, output=1000.0, limit=5000.0)
    also_shaded = inv("b", 5000.0, output=500.0, limit=5000.0)
    shares = allocate(8000.0, [shaded, also_shaded])
    # Both are given more than they produce plus headroom, and the target holds.
    assert shares["a"] >= 1000.0 + headroom_w(5000.0)
    assert shares["b"] >= 500.0 + headroom_w(5000.0)
    assert sum(shares.values()) == pytest.approx(8000.0)
    assert all(shares[k] <= 5000.0 + 1e-9 for k in shares)


def test_full_target_gives_everyone_their_rating() -> None:
    shaded = inv("a", 5000.0, output=1000.0, limit=5000.0)
    shares = allocate(10_000.0, [shaded, inv("b", 5000.0)])
    assert shares == pytest.approx({"a": 5000.0, "b": 5000.0})


def test_several_rounds_of_capping() -> None:
    # Capping "a" pushes "b" past its own cap; "c" takes what is left.
    a = inv("a", 4000.0, output=100.0, limit=4000.0)  # cap 300
    b = inv("b", 4000.0, output=1500.0, limit=4000.0)  # cap 1700
    c = inv("c", 4000.0)
    shares = allocate(6000.0, [a, b, c])
    assert shares["a"] == pytest.approx(100.0 + headroom_w(4000.0))
    assert shares["b"] == pytest.approx(1500.0 + headroom_w(4000.0))
    assert shares["c"] == pytest.approx(6000.0 - shares["a"] - shares["b"])


def test_zero_rated_inverter_gets_nothing() -> None:
    shares = allocate(3000.0, [inv("dead", 0.0), inv("b", 5000.0)])
    assert shares == pytest.approx({"dead": 0.0, "b": 3000.0})


def test_all_zero_rated() -> None:
    assert allocate(3000.0, [inv("a", 0.0)]) == {"a": 0.0}


@pytest.mark.parametrize("target", [0.0, 250.0, 2000.0, 5555.0, 9000.0, 11_000.0, 14_000.0])
def test_shares_sum_to_target_and_stay_within_ratings(target: float) -> None:
    inverters = [
        inv("a", 5000.0, output=800.0, limit=5000.0),
        inv("b", 3000.0, output=2900.0, limit=3000.0),
        inv("c", 6000.0, output=0.0, limit=2000.0),
        inv("d", 0.0),
    ]
    shares = allocate(target, inverters)
    assert set(shares) == {"a", "b", "c", "d"}
    assert sum(shares.values()) == pytest.approx(min(target, 14_000.0))
    for i in inverters:
        assert -1e-9 <= shares[i.key] <= i.rated_power_w + 1e-9
