"""The perfect reactive tracker: the floor for a controller that only reacts.

It sets every inverter's limit to the ideal output every physics step (0.1 s), with no
delay, from the true load, and the inverters still follow with their own lag. Run on the
same simulated site as a scenario, it gives the figures a reacting controller can at best
reach there; the benchmark prints its own figures beside them.
"""

from __future__ import annotations

from collections.abc import Sequence

from custom_components.dynamic_export.limiters.fixed import FixedLimiter
from custom_components.dynamic_export.sim.physics import SimSite

from .report import ScenarioResult
from .runner import CONTROL_INTERVAL_S, SUBSTEP_S, CycleRecord, RunResult, _limits, _sample
from .scenarios import BenchScenario


def _ideal_total_w(site: SimSite, export: float | None, generation: float | None) -> float:
    target = sum(inv.rated_power_w for inv in site.inverters)
    if generation is not None:
        target = min(target, generation)
    if export is not None:
        target = min(target, site.load_w + export)
    return max(0.0, target)


def _fill(total_w: float, available_w: list[float]) -> list[float]:
    """Split ``total_w`` so no inverter is given more than it can make (water-filling)."""
    shares = [0.0] * len(available_w)
    left, open_ = total_w, sorted(range(len(available_w)), key=lambda i: available_w[i])
    while open_:
        even = left / len(open_)
        index = open_.pop(0)
        shares[index] = min(even, available_w[index])
        left -= shares[index]
    return shares


def run_tracker(bench: BenchScenario) -> RunResult:
    """Run ``bench``'s site under the perfect tracker (physics only, no Modbus)."""
    limiters = {name: FixedLimiter(source=name, settings=c) for name, c in bench.limiters}
    changes = sorted(bench.changes, key=lambda c: c.t)
    site = SimSite(bench.sim)
    ratings = [inv.rated_power_w for inv in site.inverters]
    result = RunResult(
        key=f"{bench.key} (tracker)",
        inverter_units=list(range(1, len(ratings) + 1)),
        ratings_w={i + 1: r for i, r in enumerate(ratings)},
    )
    steps = round(bench.duration_s / SUBSTEP_S)
    for k in range(steps + 1):
        while changes and changes[0].t <= site.now + 1e-9:
            change = changes.pop(0)
            limiters[change.limiter].set_limit(change.control, change.watts)
        export, generation = _limits(limiters)
        ideal = _ideal_total_w(site, export, generation)
        available = [
            min(site.scenario.inverter_available_at(i, site.now), rating)
            for i, rating in enumerate(ratings)
        ]
        for index, share in enumerate(_fill(ideal, available)):
            site.write_limit(index, limit_pct=100.0 * share / ratings[index], enabled=True)
        result.samples.append(_sample(site, limiters))
        if k % round(CONTROL_INTERVAL_S / SUBSTEP_S) == 0:
            # One record a control interval, so reversals are counted as for a controller.
            result.cycles.append(
                CycleRecord(site.now, 0.0, ideal, ideal, "tracker", "controlling", 0, ())
            )
        if k < steps:
            site.step(round((k + 1) * SUBSTEP_S, 9) - site.now)
    return result


def _mean_drop_ttc(result: ScenarioResult) -> float | None:
    """Mean time to comply over the large load drops (None when one never complied)."""
    times = [s.time_to_comply_s for s in result.steps if s.drop_target]
    if not times or any(t is None for t in times):
        return None
    return sum(t for t in times if t is not None) / len(times)


def _ratio(ours: float, floor: float, *, zero: float = 0.005) -> str:
    """``ours`` as a multiple of ``floor``; below ``zero`` (Wh) both count as nothing."""
    if floor >= zero:
        return f"{ours / floor:.2f}×"
    return "both ~0" if ours < zero else "∞"


def versus_table(pairs: Sequence[tuple[ScenarioResult, ScenarioResult]]) -> str:
    """Each scenario's figures beside the perfect reactive tracker's on the same site."""
    lines = [
        "| scenario | energy above limit, Wh: ours / tracker (ratio) | time to comply "
        "after a load drop, s: ours / tracker | curtailed beyond need: ours / tracker "
        "(difference) | write requests /min/inverter |",
        "| --- | --- | --- | --- | --- |",
    ]
    for ours, floor in pairs:
        ttc_ours, ttc_floor = _mean_drop_ttc(ours), _mean_drop_ttc(floor)
        ttc = (
            "–"
            if ttc_floor is None and ttc_ours is None
            else f"{_seconds(ttc_ours)} / {_seconds(ttc_floor)}"
        )
        lines.append(
            f"| {ours.key} | {ours.export_excess_wh:.2f} / {floor.export_excess_wh:.2f} "
            f"({_ratio(ours.export_excess_wh, floor.export_excess_wh)}) | {ttc} | "
            f"{ours.curtailment_pct:.2f} % / {floor.curtailment_pct:.2f} % "
            f"({ours.curtailment_pct - floor.curtailment_pct:+.2f} pp) | "
            f"{ours.write_requests_per_min_per_inverter:.1f} |"
        )
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"
