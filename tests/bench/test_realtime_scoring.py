"""The real-time bench's perfect tracker and scoring, on synthetic inputs (no Home Assistant)."""

from __future__ import annotations

import math

import pytest

from bench.realtime.__main__ import main as realtime_main
from bench.realtime.scenarios import SCENARIOS
from bench.realtime.score import (
    Figures,
    Series,
    checks,
    ratio,
    score,
    scored_drops,
    step_times,
)
from bench.realtime.tracker import TrackerInputs, ideal_split, run_tracker

DT = 0.1


def _inputs(load: list[float], pv: float = 6500.0, limit: float | None = 1500.0) -> TrackerInputs:
    n = len(load)
    return TrackerInputs(
        times=[round(i * DT, 9) for i in range(n)],
        load_w=load,
        available_w=[(pv,)] * n,
        export_limit_w=[limit] * n,
        generation_limit_w=[None] * n,
    )


def _series(inputs: TrackerInputs, export: list[float], generation: list[float]) -> Series:
    possible = [
        min(6000.0, 6500.0, load + 1500.0) for load in inputs.load_w
    ]  # one 6 kW inverter, 6.5 kW of PV
    return Series(
        times=inputs.times,
        export_w=export,
        generation_w=generation,
        possible_w=possible,
        export_limit_w=inputs.export_limit_w,
        setpoint_w=generation,
    )


def test_tracker_holds_export_at_the_limit_while_nothing_moves() -> None:
    inputs = _inputs([1000.0] * 300)
    run = run_tracker(inputs, [6000.0], [1.0])
    assert run.export_w == pytest.approx([1500.0] * 300)
    assert run.setpoint_w[0] == pytest.approx(2500.0)


def test_tracker_follows_a_drop_only_as_fast_as_the_inverter_lag() -> None:
    load = [4000.0] * 100 + [1000.0] * 200  # a 3 kW drop at t = 10 s
    inputs = _inputs(load)
    run = run_tracker(inputs, [6000.0], [1.0])
    assert run.export_w[99] == pytest.approx(1500.0)
    assert run.export_w[100] == pytest.approx(4500.0)  # the limit is set, the output lags
    assert run.export_w[110] - 1500.0 == pytest.approx(3000.0 * math.exp(-1.0), rel=1e-6)
    figures = score(
        _series(inputs, run.export_w, run.generation_w),
        drops=[10.0],
        steps=[10.0],
        total_rating_w=6000.0,
        jumps=[10.0],
    )
    # ln(3000 / 50) ≈ 4.09 s to get within 50 W; the lag's excess integrates to 3000 W × τ.
    assert figures.comply_s[0] == pytest.approx(math.log(3000.0 / 50.0), abs=0.05)
    assert figures.first_within_s[0] == pytest.approx(figures.comply_s[0])  # no noise: same
    assert figures.energy_above_wh == pytest.approx(3000.0 * 1.0 / 3600.0, rel=0.03)
    assert figures.reversals == 0


def test_slower_inverter_means_a_slower_tracker_and_a_rise_costs_curtailment() -> None:
    load = [1000.0] * 100 + [4000.0] * 200  # a 3 kW rise: the tracker must ramp up too
    inputs = _inputs(load)
    fast = run_tracker(inputs, [6000.0], [1.0])
    slow = run_tracker(inputs, [6000.0], [5.0])
    kwargs = {"drops": [], "steps": [10.0], "total_rating_w": 6000.0, "jumps": [10.0]}
    fast_fig = score(_series(inputs, fast.export_w, fast.generation_w), **kwargs)  # type: ignore[arg-type]
    slow_fig = score(_series(inputs, slow.export_w, slow.generation_w), **kwargs)  # type: ignore[arg-type]
    assert fast_fig.energy_above_wh == 0.0
    assert 0.0 < fast_fig.curtailed_wh < slow_fig.curtailed_wh
    # 3 kW short for a lag: 3000 W × τ × (1 − e^(−19.9 s / τ)) over the 19.9 s after the rise.
    assert fast_fig.curtailed_wh == pytest.approx(3000.0 * 1.0 / 3600.0, rel=0.03)
    expected_slow = 3000.0 * 5.0 * (1.0 - math.exp(-19.9 / 5.0)) / 3600.0
    assert slow_fig.curtailed_wh == pytest.approx(expected_slow, rel=0.03)


def test_ideal_split_follows_what_each_inverter_can_make() -> None:
    assert ideal_split(3000.0, [6000.0, 1000.0], [5000.0, 5000.0]) == pytest.approx([2500.0, 500.0])
    assert ideal_split(3000.0, [0.0, 0.0], [5000.0, 5000.0]) == [0.0, 0.0]


def _figures(**changes: object) -> Figures:
    base = Figures(
        energy_above_wh=1.0,
        worst_excess_w=100.0,
        above_band_pct=10.0,
        comply_s=[4.0],
        comply_mean_s=4.0,
        comply_max_s=4.0,
        curtailed_wh=1.0,
        curtailed_pct=2.0,
        first_within_s=[4.0],
        reversals=0,
        reversals_max_per_step=0,
        write_requests_per_min_per_inverter=10.0,
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_checks_compare_with_the_tracker() -> None:
    tracker = _figures()
    assert all(c.passed for c in checks(_figures(), tracker, load_noise=True))
    missed = {
        c.name
        for c in checks(
            _figures(
                energy_above_wh=1.01,
                comply_mean_s=4.6,
                comply_max_s=16.0,
                curtailed_pct=2.6,
                write_requests_per_min_per_inverter=12.5,
            ),
            tracker,
            load_noise=True,
        )
        if not c.passed
    }
    assert missed == {
        "energy above the limit",
        "time to comply, mean",
        "time to comply, max",
        "curtailed beyond need",
        "write requests /min/inverter",
    }
    never = checks(_figures(comply_s=[None], comply_mean_s=3.0), tracker, load_noise=False)
    assert [c.name for c in never if not c.passed] == [
        "time to comply, mean",
        "time to comply, max",
    ]


def test_a_run_that_never_complies_counts_its_whole_window() -> None:
    inputs = _inputs([4000.0] * 100 + [1000.0] * 100)
    stuck = [4500.0 if i >= 100 else 1500.0 for i in range(200)]
    figures = score(
        _series(inputs, stuck, [5500.0] * 200), drops=[10.0], steps=[10.0], total_rating_w=6000.0
    )
    assert figures.comply_s == [None]
    assert figures.comply_max_s == pytest.approx(9.9)
    assert figures.above_band_pct == pytest.approx(50.0)


def test_step_times_keep_large_load_steps_inside_the_run() -> None:
    events = [(5.0, 3000.0), (20.0, -3000.0), (30.0, 500.0), (200.0, -3000.0)]
    assert step_times(events, 180.0) == [5.0, 20.0]
    assert scored_drops(events, 180.0) == [20.0]
    assert scored_drops(events, 39.0) == []  # 19 s left: too little to show compliance
    assert ratio(2.0, 1.0) == "2.00×"
    assert ratio(1.0, 0.0) == "–"


def test_scenarios_load_and_the_slow_one_overrides_the_lag() -> None:
    for bench in SCENARIOS.values():
        sim = bench.sim()
        assert sim.load_noise is not None
        assert sim.export_limit_w == 1500
    assert SCENARIOS["slow"].sim().inverters[0].time_constant_s == 5.0
    assert SCENARIOS["busy"].busy_cpus == 1
    drops = [e for e in SCENARIOS["drops"].sim().events if e.delta_w <= -3000]
    assert len(drops) >= 3


def test_unknown_scenario_is_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        realtime_main(["--scenario", "nope"])
    assert "unknown scenario nope" in capsys.readouterr().err


def test_first_within_band_ignores_the_hold_that_time_to_comply_needs() -> None:
    inputs = _inputs([4000.0] * 100 + [1000.0] * 200)
    export = [1500.0] * 100 + [4500.0] * 20 + [1500.0] * 10 + [1700.0] * 50 + [1500.0] * 120
    figures = score(
        _series(inputs, export, [3000.0] * 300),
        drops=[10.0],
        steps=[10.0],
        total_rating_w=6000.0,
        jumps=[10.0],
    )
    assert figures.first_within_s[0] == pytest.approx(1.9, abs=0.11)
    assert figures.comply_s[0] == pytest.approx(7.9, abs=0.11)
