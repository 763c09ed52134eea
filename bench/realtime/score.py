"""Score a real-time run and the perfect tracker with the lock-step bench's definitions.

Energy above the limit, worst excess, time to comply (50 W band held 5 s) and curtailment beyond
need come from :mod:`bench.metrics` exactly as :mod:`bench.report` uses them; write and state
rates are per minute (per inverter) and per hour of the measured window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .. import metrics
from ..report import HOLD_S, REVERSAL_THRESHOLD, TOLERANCE_W, Check

LARGE_STEP_W = 1000.0
"""A load step at least this large is a "large" drop or rise whose aftermath is measured."""
STEP_WINDOW_S = 30.0
"""Reversals after a large step are counted up to the next step, or this long at most."""
WRITE_BUDGET_PER_MIN = 12.0
COMPLY_MAX_S = 15.0
COMPLY_MARGIN_S = 0.5
CURTAIL_MARGIN_PP = 0.5


@dataclass(frozen=True, slots=True)
class Series:
    """True site values on the sample grid (scenario seconds), for one run or the tracker."""

    times: Sequence[float]
    export_w: Sequence[float]
    generation_w: Sequence[float]
    possible_w: Sequence[float]
    export_limit_w: Sequence[float | None]
    setpoint_w: Sequence[float]


@dataclass(slots=True)
class Figures:
    """Every figure of one run over its measured window."""

    energy_above_wh: float
    worst_excess_w: float
    above_band_pct: float
    """Share of samples with export above limit + 50 W."""
    comply_s: list[float | None]
    """Per large drop: seconds to comply; None = not within the run (counted as its window)."""
    comply_mean_s: float | None
    comply_max_s: float | None
    curtailed_wh: float
    curtailed_pct: float
    first_within_s: list[float | None]
    """Per large drop: seconds until export is first within limit + 50 W (no hold)."""
    reversals: int
    reversals_max_per_step: int
    write_requests_per_min_per_inverter: float | None = None
    limit_writes_per_min_per_inverter: float | None = None
    state_writes_per_hour: float | None = None
    recorder_rows_per_hour: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


def step_times(events: Sequence[tuple[float, float]], duration_s: float) -> list[float]:
    """Times of the large load steps (``(t, delta_w)`` pairs) inside the run."""
    return [t for t, delta in events if abs(delta) >= LARGE_STEP_W and 0 < t < duration_s]


def scored_drops(events: Sequence[tuple[float, float]], duration_s: float) -> list[float]:
    """Large load drops with time left to comply: ``COMPLY_MAX_S + HOLD_S`` before the end.

    A drop closer to the end could only show "never", whatever the controller does.
    """
    return [
        t
        for t, delta in events
        if delta <= -LARGE_STEP_W and 0 < t <= duration_s - COMPLY_MAX_S - HOLD_S
    ]


def score(
    series: Series,
    *,
    drops: Sequence[float],
    steps: Sequence[float],
    total_rating_w: float,
    jumps: Sequence[float] = (),
) -> Figures:
    """Figures of ``series``: ``drops`` are the large load drops, ``steps`` every large step."""
    times, export, limits = series.times, series.export_w, series.export_limit_w
    end = times[-1] if times else 0.0
    over = [
        lim is not None and value > lim + TOLERANCE_W
        for value, lim in zip(export, limits, strict=True)
    ]
    comply: list[float | None] = [
        metrics.time_to_comply(times, export, limits, t, tolerance_w=TOLERANCE_W, hold_s=HOLD_S)
        for t in drops
    ]
    counted = [end - t if c is None else c for c, t in zip(comply, drops, strict=True)]
    lost_wh, lost_pct = metrics.curtailment_beyond_need(
        times, series.possible_w, series.generation_w, jumps=jumps
    )
    threshold = REVERSAL_THRESHOLD * total_rating_w
    per_step = []
    ordered = sorted(steps)
    for index, t in enumerate(ordered):
        stop = min(t + STEP_WINDOW_S, ordered[index + 1] if index + 1 < len(ordered) else end)
        before = [s for s, x in zip(series.setpoint_w, times, strict=True) if x < t][-1:]
        inside = [s for s, x in zip(series.setpoint_w, times, strict=True) if t <= x < stop]
        per_step.append(metrics.direction_reversals(before + inside, threshold))
    return Figures(
        energy_above_wh=metrics.excess_energy_wh(times, export, limits, jumps=jumps),
        worst_excess_w=metrics.worst_excess_w(times, export, limits),
        above_band_pct=100.0 * sum(over) / len(over) if over else 0.0,
        comply_s=comply,
        comply_mean_s=sum(counted) / len(counted) if counted else None,
        comply_max_s=max(counted) if counted else None,
        curtailed_wh=lost_wh,
        curtailed_pct=lost_pct,
        first_within_s=[
            metrics.time_to_comply(times, export, limits, t, tolerance_w=TOLERANCE_W, hold_s=0.0)
            for t in drops
        ],
        reversals=metrics.direction_reversals(list(series.setpoint_w), threshold),
        reversals_max_per_step=max(per_step, default=0),
    )


def ratio(value: float | None, floor: float | None) -> str:
    """``value / floor`` for the printout ("–" when either is missing or the floor is 0)."""
    if value is None or floor is None or floor <= 0 or not math.isfinite(floor):
        return "–"
    return f"{value / floor:.2f}×"


def checks(run: Figures, tracker: Figures, *, load_noise: bool) -> list[Check]:
    """The issue's targets on the real-time bench, each against the tracker's figure."""
    out = [
        Check(
            "energy above the limit",
            f"≤ 1.0 × tracker ({tracker.energy_above_wh:.2f} Wh)",
            f"{run.energy_above_wh:.2f} Wh",
            run.energy_above_wh <= tracker.energy_above_wh + 1e-9,
        )
    ]
    if run.comply_mean_s is not None and tracker.comply_mean_s is not None:
        never = any(c is None for c in run.comply_s)
        out.append(
            Check(
                "time to comply, mean",
                f"≤ tracker + {COMPLY_MARGIN_S} s "
                f"({tracker.comply_mean_s + COMPLY_MARGIN_S:.1f} s)",
                f"{run.comply_mean_s:.1f} s",
                run.comply_mean_s <= tracker.comply_mean_s + COMPLY_MARGIN_S and not never,
            )
        )
        out.append(
            Check(
                "time to comply, max",
                f"≤ {COMPLY_MAX_S:.0f} s",
                "never" if never else f"{run.comply_max_s:.1f} s",
                not never and (run.comply_max_s or 0.0) <= COMPLY_MAX_S,
            )
        )
    out.append(
        Check(
            "curtailed beyond need",
            f"≤ tracker + {CURTAIL_MARGIN_PP} pp "
            f"({tracker.curtailed_pct + CURTAIL_MARGIN_PP:.2f} %)",
            f"{run.curtailed_pct:.2f} %",
            run.curtailed_pct <= tracker.curtailed_pct + CURTAIL_MARGIN_PP,
        )
    )
    if load_noise and run.write_requests_per_min_per_inverter is not None:
        out.append(
            Check(
                "write requests /min/inverter",
                f"≤ {WRITE_BUDGET_PER_MIN:.0f}",
                f"{run.write_requests_per_min_per_inverter:.1f}",
                run.write_requests_per_min_per_inverter <= WRITE_BUDGET_PER_MIN,
            )
        )
    return out
