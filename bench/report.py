"""Turn lock-step runs into metrics, check them against the issue's targets, print a table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from custom_components.dynamic_export.core.write_policy import REFRESH_FRACTION

from . import metrics
from .cpu import CpuResult
from .runner import REVERT_TIMEOUT_S, RunResult, Sample
from .scenarios import BenchScenario, Quantity

TOLERANCE_W = 50.0
HOLD_S = 5.0
REVERSAL_THRESHOLD = 0.01  # of the total rating
REFRESH_AFTER_S = REVERT_TIMEOUT_S * REFRESH_FRACTION
REFRESH_TOLERANCE_PCT = 1.0  # the default write deadband, % of the inverter's rating
CPU_TARGETS_MS = {10: 2.0, 50: 10.0}

ODE_LINE = (
    "open-dynamic-export, figures quoted in the issue (scenarios a/b): time to comply after "
    "a 3 kW load drop 11.4 s; 1.5 Wh above the limit per drop; 8 % curtailed beyond need; "
    "60 limit writes per minute per inverter."
)


@dataclass(frozen=True, slots=True)
class Check:
    """One target of the issue applied to one scenario."""

    name: str
    target: str
    value: str
    passed: bool

    @property
    def marker(self) -> str:
        """PASS or MISS."""
        return "PASS" if self.passed else "MISS"


@dataclass(frozen=True, slots=True)
class StepResult:
    """What followed one step, within its window (the step to the next step or the end)."""

    t: float
    label: str
    quantity: Quantity
    window: tuple[float, float]
    excess_wh: float
    worst_excess_w: float
    time_to_comply_s: float | None
    reversals: int
    drop_target: bool


@dataclass(slots=True)
class ScenarioResult:
    """Metrics of one scenario."""

    key: str
    title: str
    description: str
    inverters: int
    total_rating_w: float
    measured_window: tuple[float, float]
    rate_window: tuple[float, float]
    steady_window: tuple[float, float]
    export_excess_wh: float
    export_worst_w: float
    generation_excess_wh: float | None
    generation_worst_w: float | None
    steps: list[StepResult]
    possible_wh: float
    curtailment_wh: float
    curtailment_pct: float
    limit_writes: int
    limit_writes_per_min_per_inverter: float
    write_requests: int
    write_requests_per_min_per_inverter: float
    steady_changes: int
    steady_refreshes: int
    cycle_median_ms: float
    cycle_p99_ms: float
    cycles: int
    cycles_with_errors: int
    first_error: str | None
    run_wall_s: float
    checks: list[Check] = field(default_factory=list)


def _series(
    samples: Sequence[Sample], quantity: Quantity
) -> tuple[list[float], list[float], list[float | None]]:
    times = [s.t for s in samples]
    if quantity == "export":
        return times, [s.export_w for s in samples], [s.export_limit_w for s in samples]
    return times, [s.generation_w for s in samples], [s.generation_limit_w for s in samples]


def _in(t: float, window: tuple[float, float]) -> bool:
    return window[0] - 1e-9 <= t < window[1] - 1e-9


def evaluate(bench: BenchScenario, run: RunResult) -> ScenarioResult:
    """Compute every metric of a scenario from its run."""
    start, end = bench.measured_window
    samples = run.samples
    times, export, export_limits = _series(samples, "export")
    _, generation, generation_limits = _series(samples, "generation")
    has_generation_limit = any(lim is not None for lim in generation_limits)

    steps: list[StepResult] = []
    ordered = sorted(bench.steps, key=lambda s: s.t)
    jumps = [s.t for s in ordered]
    for index, step in enumerate(ordered):
        window = (step.t, ordered[index + 1].t if index + 1 < len(ordered) else end)
        _, values, limits = _series(samples, step.quantity)
        before = [c.setpoint_total_w for c in run.cycles if c.t < step.t - 1e-9][-1:]
        inside = [c.setpoint_total_w for c in run.cycles if _in(c.t, window)]
        steps.append(
            StepResult(
                t=step.t,
                label=step.label,
                quantity=step.quantity,
                window=window,
                excess_wh=metrics.excess_energy_wh(times, values, limits, *window, jumps),
                worst_excess_w=metrics.worst_excess_w(times, values, limits, *window),
                time_to_comply_s=metrics.time_to_comply(
                    times, values, limits, step.t, tolerance_w=TOLERANCE_W, hold_s=HOLD_S
                ),
                reversals=metrics.direction_reversals(
                    before + inside, REVERSAL_THRESHOLD * bench.total_rating_w
                ),
                drop_target=step.drop_target,
            )
        )

    possible = [s.possible_w for s in samples]
    lost_wh, lost_pct = metrics.curtailment_beyond_need(
        times, possible, generation, start, end, jumps
    )
    rate_window = bench.write_rate_window
    rate_s = rate_window[1] - rate_window[0]
    limit_writes = [w for w in run.writes if w.limit_pct is not None]
    refreshes = metrics.refresh_flags(
        [(w.t, w.unit, w.limit_pct or 0.0) for w in limit_writes],
        REFRESH_AFTER_S,
        REFRESH_TOLERANCE_PCT,
    )
    steady = [
        not refresh
        for w, refresh in zip(limit_writes, refreshes, strict=True)
        if _in(w.t, bench.steady_window)
    ]
    in_rate = [w for w in limit_writes if _in(w.t, rate_window)]
    requests = [w for w in run.writes if _in(w.t, rate_window)]
    units = len(run.inverter_units)
    walls = [c.wall_s for c in run.cycles]
    errors = [c for c in run.cycles if c.errors]
    result = ScenarioResult(
        key=bench.key,
        title=bench.title,
        description=bench.description,
        inverters=units,
        total_rating_w=bench.total_rating_w,
        measured_window=bench.measured_window,
        rate_window=rate_window,
        steady_window=bench.steady_window,
        export_excess_wh=metrics.excess_energy_wh(times, export, export_limits, start, end, jumps),
        export_worst_w=metrics.worst_excess_w(times, export, export_limits, start, end),
        generation_excess_wh=metrics.excess_energy_wh(
            times, generation, generation_limits, start, end, jumps
        )
        if has_generation_limit
        else None,
        generation_worst_w=metrics.worst_excess_w(times, generation, generation_limits, start, end)
        if has_generation_limit
        else None,
        steps=steps,
        possible_wh=metrics.integrate_wh(times, possible, start, end, jumps),
        curtailment_wh=lost_wh,
        curtailment_pct=lost_pct,
        limit_writes=len(in_rate),
        limit_writes_per_min_per_inverter=metrics.rate_per_minute_per_unit(
            len(in_rate), units, rate_s
        ),
        write_requests=len(requests),
        write_requests_per_min_per_inverter=metrics.rate_per_minute_per_unit(
            len(requests), units, rate_s
        ),
        steady_changes=sum(steady),
        steady_refreshes=len(steady) - sum(steady),
        cycle_median_ms=1000.0 * metrics.median(walls),
        cycle_p99_ms=1000.0 * metrics.percentile(walls, 99),
        cycles=len(run.cycles),
        cycles_with_errors=len(errors),
        first_error=f"t={errors[0].t:.1f} s: {errors[0].errors[0]}" if errors else None,
        run_wall_s=run.wall_s,
    )
    result.checks = _checks(bench, result)
    return result


def _checks(bench: BenchScenario, r: ScenarioResult) -> list[Check]:
    t = bench.targets
    checks: list[Check] = []
    drops = [s for s in r.steps if s.drop_target]
    if t.drop_time_to_comply_s is not None and drops:
        worst = max(math.inf if s.time_to_comply_s is None else s.time_to_comply_s for s in drops)
        checks.append(
            Check(
                "time to comply after a 3 kW drop",
                f"≤ {t.drop_time_to_comply_s:g} s",
                _seconds(worst),
                worst <= t.drop_time_to_comply_s,
            )
        )
    if t.drop_excess_wh is not None and drops:
        worst_wh = max(s.excess_wh for s in drops)
        checks.append(
            Check(
                "energy above the limit per 3 kW drop",
                f"≤ {t.drop_excess_wh:g} Wh",
                f"{worst_wh:.2f} Wh",
                worst_wh <= t.drop_excess_wh,
            )
        )
    if t.curtailment_pct is not None:
        checks.append(
            Check(
                "curtailment beyond need",
                f"< {t.curtailment_pct:g} %",
                f"{r.curtailment_pct:.2f} %",
                r.curtailment_pct < t.curtailment_pct,
            )
        )
    if t.writes_per_min_per_inverter is not None:
        checks.append(
            Check(
                "limit writes per minute per inverter",
                f"≤ {t.writes_per_min_per_inverter:g}",
                f"{r.limit_writes_per_min_per_inverter:.2f}",
                r.limit_writes_per_min_per_inverter <= t.writes_per_min_per_inverter,
            )
        )
    if t.steady_changes is not None:
        checks.append(
            Check(
                "limit writes other than refreshes while nothing changes",
                "none" if t.steady_changes == 0 else f"≤ {t.steady_changes}",
                str(r.steady_changes),
                r.steady_changes <= t.steady_changes,
            )
        )
    if t.reversals_per_step is not None:
        worst_rev = max((s.reversals for s in r.steps), default=0)
        checks.append(
            Check(
                "direction reversals per step",
                f"≤ {t.reversals_per_step}",
                str(worst_rev),
                worst_rev <= t.reversals_per_step,
            )
        )
    return checks


def cpu_checks(result: CpuResult) -> list[Check]:
    """The issue's CPU target for this inverter count, on the median and on p99."""
    target = CPU_TARGETS_MS.get(result.inverters)
    if target is None:
        return []
    return [
        Check(
            f"CPU per cycle, {stat}, {result.inverters} inverters",
            f"< {target:g} ms",
            f"{value:.3f} ms",
            value < target,
        )
        for stat, value in (("median", result.median_ms), ("p99", result.p99_ms))
    ]


# --- formatting ----------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    if value is None or math.isinf(value):
        return "never"
    return f"{value:.2f}"


def _find(checks: Sequence[Check], prefix: str) -> Check | None:
    return next((c for c in checks if c.name.startswith(prefix)), None)


def _mark(check: Check | None) -> str:
    return "" if check is None else f" ({check.target} {check.marker})"


def _per_step(values: Sequence[str], limit: int = 3) -> str:
    return ", ".join(values) if len(values) <= limit else ""


def _excess_cell(r: ScenarioResult) -> str:
    per_step = [s.excess_wh for s in r.steps]
    shown = _per_step([f"{v:.2f}" for v in per_step])
    if shown:
        quantity = {s.quantity for s in r.steps}
        cell = ("gen " if quantity == {"generation"} else "") + shown
    else:
        cell = f"max {max(per_step):.2f}/step"
    cell += f"; total {r.export_excess_wh:.2f}"
    if r.generation_excess_wh is not None:
        cell += f", gen {r.generation_excess_wh:.2f}"
    return cell + _mark(_find(r.checks, "energy above"))


def _worst_cell(r: ScenarioResult) -> str:
    cell = f"{r.export_worst_w:.0f}"
    if r.generation_worst_w is not None:
        cell += f"; gen {r.generation_worst_w:.0f}"
    return cell


def _ttc_cell(r: ScenarioResult) -> str:
    values = [s.time_to_comply_s for s in r.steps]
    shown = _per_step([_seconds(v) for v in values])
    if not shown:
        worst = max(math.inf if v is None else v for v in values)
        shown = f"max {_seconds(worst)} ({len(values)} steps)"
    return shown + _mark(_find(r.checks, "time to comply"))


def _reversal_cell(r: ScenarioResult) -> str:
    values = [s.reversals for s in r.steps]
    shown = _per_step([str(v) for v in values]) or f"max {max(values)} ({len(values)} steps)"
    return shown + _mark(_find(r.checks, "direction"))


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "scenario",
    "energy above limit, Wh (per step)",
    "worst excess, W",
    "time to comply, s (per step)",
    "curtailed beyond need",
    "limit writes /min/inverter (all write requests)",
    "steady-window writes: other (+refresh)",
    "reversals per step",
    "cycle time, ms: median (p99)",
)


def table(results: Sequence[ScenarioResult], cpu: Sequence[CpuResult]) -> str:
    """The markdown table: one row per scenario, one per inverter count for (f)."""
    lines = [_row(HEADER), _row(["---"] * len(HEADER))]
    for r in results:
        steady = f"{r.steady_changes} (+{r.steady_refreshes})" + _mark(
            _find(r.checks, "limit writes other")
        )
        lines.append(
            _row(
                [
                    f"{r.key}: {r.title}",
                    _excess_cell(r),
                    _worst_cell(r),
                    _ttc_cell(r),
                    f"{r.curtailment_wh:.1f} Wh, {r.curtailment_pct:.2f} %"
                    + _mark(_find(r.checks, "curtailment")),
                    f"{r.limit_writes_per_min_per_inverter:.2f} "
                    f"({r.write_requests_per_min_per_inverter:.2f})"
                    + _mark(_find(r.checks, "limit writes per minute")),
                    steady,
                    _reversal_cell(r),
                    f"{r.cycle_median_ms:.2f} ({r.cycle_p99_ms:.2f}) over TCP, {r.inverters} inv.",
                ]
            )
        )
    for c in cpu:
        checks = cpu_checks(c)
        marks = "/".join(ch.marker for ch in checks)
        target = f" (< {CPU_TARGETS_MS[c.inverters]:g}: {marks})" if checks else ""
        loopback = (
            f"; over TCP {c.loopback_median_ms:.2f}" if c.loopback_median_ms is not None else ""
        )
        lines.append(
            _row(
                [
                    f"f: CPU, {c.inverters} inverter{'s' if c.inverters > 1 else ''}",
                    *(["–"] * 7),
                    f"{c.median_ms:.3f} ({c.p99_ms:.3f}) in memory{target}{loopback}",
                ]
            )
        )
    return "\n".join(lines)


def notes(
    results: Sequence[ScenarioResult], benches: dict[str, BenchScenario], cpu: Sequence[CpuResult]
) -> list[str]:
    """Scenario descriptions, windows, and how each metric is measured."""
    out: list[str] = []
    for r in results:
        bench = benches[r.key]
        steps = "; ".join(f"{s.t:g} s {s.label}" for s in bench.steps[:6]) + (
            "; …" if len(bench.steps) > 6 else ""
        )
        out.append(
            f"- **{r.key}** {r.description} Steps: {steps}. Measured {_window(r.measured_window)}"
            f", writes counted {_window(r.rate_window)}, steady window "
            f"{_window(r.steady_window)}. {r.cycles} cycles, {r.cycles_with_errors} with "
            f"device errors or fail-safe"
            + (f" (first: {r.first_error})" if r.first_error else "")
            + f"; ran in {r.run_wall_s:.1f} s."
        )
    if cpu:
        parts = "; ".join(
            f"{c.inverters} inverter(s): {c.cycles} timed cycles, {c.writes_per_cycle:.1f} "
            f"inverters written per cycle, TCP median over {c.loopback_cycles} cycles"
            for c in cpu
        )
        out.append(
            "- **f** In memory: the real ControlLoop with fake devices answering pre-built "
            "readings that change every cycle (busy site: nearly every cycle writes every "
            "inverter), time.perf_counter around async_run_cycle, after "
            f"200 warm-up cycles; p99 is nearest-rank. Over TCP: site (a) split over N "
            f"inverters, lock-step, 60 s (for information). Per count: {parts}."
        )
    return out


def _window(window: tuple[float, float]) -> str:
    return f"{window[0]:g}–{window[1]:g} s"


METHOD = (
    "- Lock-step: simulated time stands still while a cycle runs; between cycles (1 s) the "
    "site advances in 0.1 s substeps. The controller, SunSpec client and simulator talk "
    "Modbus TCP on 127.0.0.1 for every read and write; the loop and the device clients read "
    "the simulator's clock. Metrics use the simulator's true (undelayed) values sampled "
    "every 0.1 s; energies by the trapezoid rule, except that the 0.1 s segment ending at a "
    "step is taken at its left value (the step lands exactly on a sample, which already "
    "shows it).",
    "- A step's window runs from the step to the next step (or the end). Energy above the "
    "limit and worst excess per step are taken inside that window; totals over the measured "
    "part. Time to comply: from the step to the start of the first 5 s stretch with the "
    "value ≤ limit + 50 W at every sample (start interpolated between samples; the stretch "
    "may run past the next step; 0 if never above).",
    "- Curtailed beyond need: ∫ max(0, possible − generation), possible = max(0, min(PV "
    "the inverters could convert, each capped at its rating, generation limit, load + "
    "export limit)); % of ∫ possible. The inverter lag after a rise counts as curtailment.",
    "- Limit writes: WMaxLimPct writes seen by the simulator (the first apply also "
    "writes WMaxLimPct_RvrtTms and WMaxLim_Ena, later ones only when the inverter no "
    "longer holds them: all count as Modbus write requests). "
    "Steady window: WMaxLimPct writes, split into refreshes (≥ 30 s after the "
    "unit's previous write, i.e. the revert-timer refresh at half of the 60 s timeout, and "
    "moving the value by < 1 % of rating; they may carry a rounding-sized update) and "
    "other writes; the target (none) is on the other writes.",
    "- Other families (--family): their limit register stands for WMaxLimPct: SolarEdge's "
    "dynamic limit (0xF322, refreshed at half its command timeout), Sungrow's ratio, "
    "Huawei's derating (no revert timer: no refreshes), a Victron GX's maximum feed-in (its "
    "cap as a share of the PV rating; one device for all the PV), a GoodWe's export limit "
    "(as a share of its rating; persistent, no refreshes).",
    "- Reversals: on the sum of the limits in force after each cycle (from the last cycle "
    "before the step through the window); a move counts once it goes 1 % of the total "
    "rating from the last turning point, each later counted move the other way is one "
    "reversal.",
)
