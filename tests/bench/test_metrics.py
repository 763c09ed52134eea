"""The benchmark's metrics on synthetic sample series with known answers."""

from __future__ import annotations

import math

import pytest

from bench import metrics


def _grid(start: float, end: float, dt: float = 0.1) -> list[float]:
    return [round(start + i * dt, 9) for i in range(round((end - start) / dt) + 1)]


def _drop_response(times: list[float], step: float, cycle: float, excess: float) -> list[float]:
    """Export above a 1500 W limit: ``excess`` from the step, decaying (τ 1 s) from ``cycle``."""
    out = []
    for t in times:
        if t < step:
            out.append(1400.0)
        elif t < cycle:
            out.append(1500.0 + excess)
        else:
            out.append(1500.0 + excess * math.exp(-(t - cycle)))
    return out


# --- integration ----------------------------------------------------------------------------


def test_integrate_constant_power() -> None:
    times = _grid(0, 10)
    assert metrics.integrate_wh(times, [3600.0] * len(times)) == pytest.approx(10.0)


def test_integrate_ramp_is_exact_with_trapezoids() -> None:
    times = _grid(0, 2)
    values = [1800.0 * t for t in times]  # 0 → 3600 W over 2 s: 3600 Ws
    assert metrics.integrate_wh(times, values) == pytest.approx(1.0)


def test_integrate_only_inside_the_window() -> None:
    times = _grid(0, 10)
    values = [3600.0 if t < 5 - 1e-9 else 0.0 for t in times]
    assert metrics.integrate_wh(times, values, 0.0, 4.0) == pytest.approx(4.0)
    assert metrics.integrate_wh(times, values, 6.0, 10.0) == pytest.approx(0.0)


def test_adjacent_windows_add_up_to_the_whole() -> None:
    times = _grid(0, 10)
    values = [100.0 + 10.0 * t * t for t in times]
    whole = metrics.integrate_wh(times, values)
    parts = metrics.integrate_wh(times, values, 0.0, 3.5) + metrics.integrate_wh(
        times, values, 3.5, 10.0
    )
    assert parts == pytest.approx(whole)


def test_a_jump_at_a_sample_holds_the_left_value() -> None:
    # 0 W until 1.0 s, 3600 W from 1.0 s on (the sample at 1.0 already shows it).
    times = _grid(0, 2)
    values = [0.0 if t < 1.0 - 1e-9 else 3600.0 for t in times]
    exact = 3600.0 * 1.0 / 3600.0
    assert metrics.integrate_wh(times, values, jumps=[1.0]) == pytest.approx(exact)
    # Without the jump the segment 0.9–1.0 ramps: 0.05 s × 3600 W too much.
    assert metrics.integrate_wh(times, values) == pytest.approx(exact + 0.05)


# --- excess ---------------------------------------------------------------------------------


def test_excess_energy_counts_only_what_is_above_the_limit() -> None:
    times = _grid(0, 7.2)
    values = [2000.0] * len(times)
    assert metrics.excess_energy_wh(times, values, [1500.0] * len(times)) == pytest.approx(1.0)
    assert metrics.excess_energy_wh(times, values, [2500.0] * len(times)) == 0.0
    assert metrics.excess_energy_wh(times, values, [None] * len(times)) == 0.0


def test_excess_energy_of_a_load_drop_matches_the_closed_form() -> None:
    # 1400 W above for 0.5 s, then a first-order decay: 700 Ws + 1400 Ws.
    times = _grid(20, 60)
    values = _drop_response(times, 30.5, 31.0, 1400.0)
    limits: list[float | None] = [1500.0] * len(times)
    energy = metrics.excess_energy_wh(times, values, limits, 30.5, 60.0, jumps=[30.5])
    assert energy == pytest.approx(2100.0 / 3600.0, rel=2e-3)


def test_worst_excess() -> None:
    times = [0.0, 1.0, 2.0, 3.0]
    values = [100.0, 900.0, 400.0, 2000.0]
    limits: list[float | None] = [500.0, 500.0, None, 500.0]
    assert metrics.worst_excess_w(times, values, limits, 0.0, 2.5) == pytest.approx(400.0)
    assert metrics.worst_excess_w(times, values, limits) == pytest.approx(1500.0)
    assert metrics.worst_excess_w(times, [0.0] * 4, limits) == 0.0


# --- time to comply -------------------------------------------------------------------------


def test_time_to_comply_after_a_drop() -> None:
    times = _grid(20, 60)
    values = _drop_response(times, 30.5, 31.0, 1400.0)
    limits: list[float | None] = [1500.0] * len(times)
    ttc = metrics.time_to_comply(times, values, limits, 30.5)
    # half a cycle to notice, then ln(1400 / 50) s for the lag to bring it within 50 W
    assert ttc == pytest.approx(0.5 + math.log(1400 / 50), abs=0.01)


def test_time_to_comply_is_zero_when_never_above() -> None:
    times = _grid(0, 20)
    values = [1500.0 + 50.0] * len(times)  # on the edge of the band counts as within
    assert metrics.time_to_comply(times, values, [1500.0] * len(times), 5.0) == 0.0


def test_time_to_comply_counts_from_a_step_between_samples() -> None:
    times = _grid(0, 20)
    assert metrics.time_to_comply(times, [0.0] * len(times), [1500.0] * len(times), 5.05) == 0.0


def test_time_to_comply_ignores_excess_before_the_step() -> None:
    times = _grid(0, 20)
    values = [3000.0 if t < 4.95 else 1000.0 for t in times]
    assert metrics.time_to_comply(times, values, [1500.0] * len(times), 5.0) == 0.0


def test_time_to_comply_needs_the_whole_hold_window() -> None:
    # Within the band 1–4 s after the step, above again at 4–5 s, within from 5 s on.
    times = _grid(0, 30)
    values = [
        1400.0 if t < 10 else 3000.0 if t < 11 else 1400.0 if t < 14 else 3000.0 if t < 15 else 0.0
        for t in times
    ]
    limits: list[float | None] = [1500.0] * len(times)
    ttc = metrics.time_to_comply(times, values, limits, 10.0)
    assert ttc is not None
    assert 4.9 < ttc < 5.0  # the start of the good window, interpolated within 14.9–15.0


def test_time_to_comply_interpolates_between_samples() -> None:
    times = [0.0, 1.0, 2.0, 10.0]
    values = [2550.0, 1550.0, 1000.0, 1000.0]  # band edge 1550 reached exactly at 1.0 s
    limits: list[float | None] = [1500.0] * 4
    assert metrics.time_to_comply(times, values, limits, 0.0) == pytest.approx(1.0)
    values = [2550.0, 1050.0, 1000.0, 1000.0]  # edge crossed two thirds of the way
    assert metrics.time_to_comply(times, values, limits, 0.0) == pytest.approx(2 / 3)


def test_time_to_comply_is_none_without_a_full_window() -> None:
    times = _grid(0, 12)
    values = [3000.0 if t < 9 else 0.0 for t in times]
    limits: list[float | None] = [1500.0] * len(times)
    assert metrics.time_to_comply(times, values, limits, 1.0) is None
    assert metrics.time_to_comply(times, [3000.0] * len(times), limits, 1.0) is None


def test_time_to_comply_respects_tolerance_and_hold() -> None:
    times = _grid(0, 30)
    values = [1600.0 if t < 10 else 1540.0 for t in times]
    limits: list[float | None] = [1500.0] * len(times)
    assert metrics.time_to_comply(times, values, limits, 0.0) == pytest.approx(10.0, abs=0.1)
    assert metrics.time_to_comply(times, values, limits, 0.0, tolerance_w=20.0) is None
    assert metrics.time_to_comply(times, values, limits, 0.0, tolerance_w=100.0) == 0.0
    assert metrics.time_to_comply(times, values, limits, 0.0, hold_s=25.0) is None


# --- curtailment ----------------------------------------------------------------------------


def test_possible_generation() -> None:
    assert metrics.possible_generation_w(6000.0, None, 3100.0, 1500.0) == 4600.0
    assert metrics.possible_generation_w(6000.0, None, 6100.0, 1500.0) == 6000.0
    assert metrics.possible_generation_w(7000.0, 1000.0, 4000.0, 1500.0) == 1000.0
    assert metrics.possible_generation_w(7000.0, None, 4000.0, None) == 7000.0
    assert metrics.possible_generation_w(0.0, 1000.0, 0.0, 0.0) == 0.0


def test_curtailment_beyond_need() -> None:
    times = _grid(0, 36)
    possible = [1000.0] * len(times)
    actual = [900.0] * len(times)
    lost, pct = metrics.curtailment_beyond_need(times, possible, actual)
    assert lost == pytest.approx(1.0)
    assert pct == pytest.approx(10.0)


def test_producing_too_much_does_not_offset_curtailment() -> None:
    times = _grid(0, 36)
    possible = [1000.0] * len(times)
    actual = [900.0 if t < 18 - 1e-9 else 1100.0 for t in times]
    lost, pct = metrics.curtailment_beyond_need(times, possible, actual, jumps=[18.0])
    assert lost == pytest.approx(0.5)
    assert pct == pytest.approx(5.0)
    assert metrics.curtailment_beyond_need(times, [0.0] * len(times), actual) == (0.0, 0.0)


# --- writes ---------------------------------------------------------------------------------


def test_rate_per_minute_per_unit() -> None:
    assert metrics.rate_per_minute_per_unit(24, 2, 120.0) == pytest.approx(6.0)
    assert metrics.rate_per_minute_per_unit(10, 0, 60.0) == 0.0
    assert metrics.rate_per_minute_per_unit(10, 1, 0.0) == 0.0


def test_refresh_flags() -> None:
    writes = [
        (0.0, 1, 46.0),  # first write to unit 1: a change
        (0.0, 2, 46.0),  # first write to unit 2: a change
        (30.0, 1, 46.0),  # 30 s later, same value: refresh
        (30.0, 2, 45.99),  # 30 s later, rounding-sized move: refresh
        (35.0, 1, 46.0),  # same value but only 5 s later: not a refresh
        (65.0, 1, 48.0),  # 30 s later but moved 2 points: a change
        (70.0, 2, 45.99),  # 40 s after unit 2's last write, same value: refresh
    ]
    assert metrics.refresh_flags(writes, 30.0, 1.0) == [
        False,
        False,
        True,
        True,
        False,
        False,
        True,
    ]


# --- oscillation ----------------------------------------------------------------------------


def test_monotone_setpoints_have_no_reversal() -> None:
    assert metrics.direction_reversals([7600.0, 4600.0, 4300.0, 4200.0, 4200.0], 100.0) == 0
    assert metrics.direction_reversals([], 100.0) == 0
    assert metrics.direction_reversals([1.0], 100.0) == 0


def test_each_turn_is_one_reversal() -> None:
    assert metrics.direction_reversals([100.0, 0.0, 100.0, 0.0], 50.0) == 2
    assert metrics.direction_reversals([4600.0, 4350.0, 4090.0, 4220.0, 4390.0], 100.0) == 1


def test_moves_under_the_threshold_are_ignored() -> None:
    dither = [1000.0, 1040.0, 990.0, 1030.0, 1000.0]
    assert metrics.direction_reversals(dither, 50.0) == 0


def test_small_moves_that_add_up_are_seen() -> None:
    assert metrics.direction_reversals([0.0, 30.0, 60.0, 30.0, 0.0], 50.0) == 1


def test_a_turn_is_measured_from_the_extreme() -> None:
    # Up to 100, back to 60: only 40 from the top, not a reversal at threshold 50.
    assert metrics.direction_reversals([0.0, 60.0, 100.0, 60.0], 50.0) == 0
    assert metrics.direction_reversals([0.0, 60.0, 100.0, 45.0], 50.0) == 1


# --- statistics -----------------------------------------------------------------------------


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert metrics.percentile(values, 99) == 99.0
    assert metrics.percentile(values, 100) == 100.0
    assert metrics.percentile(values, 50) == 50.0
    assert metrics.percentile([5.0, 1.0, 3.0], 99) == 5.0
    tens = [float(v) for v in range(1, 11)]
    assert metrics.percentile(tens, 25) == 3.0  # rank ceil(2.5) = 3
    assert metrics.percentile(tens, 91) == 10.0  # rank ceil(9.1) = 10
    with pytest.raises(ValueError, match="empty"):
        metrics.percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        metrics.percentile([1.0], 101)


def test_median() -> None:
    assert metrics.median([3.0, 1.0, 2.0]) == 2.0
    assert metrics.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError, match="empty"):
        metrics.median([])
