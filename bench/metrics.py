"""Pure metric functions over sampled series (no I/O, no simulator).

A series is parallel sequences: ``times`` (s, increasing), ``values`` (W) and, where a limit
applies, ``limits`` (W, None = no limit at that sample). Energies integrate with the
trapezoid rule between consecutive samples that both lie inside the window asked for.
Windows are closed, so adjacent windows share their boundary sample but no segment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

WS_PER_WH = 3600.0


def _in_window(t: float, start: float, end: float) -> bool:
    return start - 1e-9 <= t <= end + 1e-9


def _excess(value: float, limit: float | None) -> float:
    return 0.0 if limit is None else max(0.0, value - limit)


def integrate_wh(
    times: Sequence[float],
    values: Sequence[float],
    start: float = -math.inf,
    end: float = math.inf,
    jumps: Sequence[float] = (),
) -> float:
    """∫ values dt in Wh over the samples within [start, end] (trapezoid rule).

    ``jumps`` are instants where an input steps exactly at a sample: that sample already
    shows the new value, so the segment that ends there is integrated with its left
    value rather than a ramp towards the new one.
    """
    total = 0.0
    for i in range(1, len(times)):
        t0, t1 = times[i - 1], times[i]
        if _in_window(t0, start, end) and _in_window(t1, start, end):
            if any(abs(t1 - jump) <= 1e-9 for jump in jumps):
                total += values[i - 1] * (t1 - t0)
            else:
                total += (values[i - 1] + values[i]) / 2.0 * (t1 - t0)
    return total / WS_PER_WH


def excess_energy_wh(
    times: Sequence[float],
    values: Sequence[float],
    limits: Sequence[float | None],
    start: float = -math.inf,
    end: float = math.inf,
    jumps: Sequence[float] = (),
) -> float:
    """Energy above the limit in Wh: ∫ max(0, value − limit) dt over [start, end]."""
    excess = [_excess(v, lim) for v, lim in zip(values, limits, strict=True)]
    return integrate_wh(times, excess, start, end, jumps)


def worst_excess_w(
    times: Sequence[float],
    values: Sequence[float],
    limits: Sequence[float | None],
    start: float = -math.inf,
    end: float = math.inf,
) -> float:
    """Largest value − limit over the samples within [start, end], 0 if never above."""
    worst = 0.0
    for t, v, lim in zip(times, values, limits, strict=True):
        if _in_window(t, start, end):
            worst = max(worst, _excess(v, lim))
    return worst


def time_to_comply(
    times: Sequence[float],
    values: Sequence[float],
    limits: Sequence[float | None],
    step_time: float,
    *,
    tolerance_w: float = 50.0,
    hold_s: float = 5.0,
) -> float | None:
    """Seconds from ``step_time`` to the start of the first ``hold_s`` window of compliance.

    Compliance means value ≤ limit + ``tolerance_w`` at every sample of the window. The
    start of the window is interpolated linearly between the last sample above and the
    first sample within the band (so the result is not rounded to the sample period); a
    series that is within the band at the step gives 0. None: never compliant for
    ``hold_s`` before the series ends.
    """
    since: float | None = None
    previous: tuple[float, float] | None = None  # (t, value − limit − tolerance)
    for t, v, lim in zip(times, values, limits, strict=True):
        over = -math.inf if lim is None else v - lim - tolerance_w
        if t < step_time - 1e-9:
            previous = (t, over)
            continue
        if over > 0:
            since = None
        elif since is None:
            if previous is None or previous[1] <= 0:
                since = step_time  # within the band from the step on
            else:
                t0, e0 = previous
                since = max(step_time, t0 + (t - t0) * e0 / (e0 - over))
        if since is not None and t - since >= hold_s - 1e-9:
            return max(0.0, since - step_time)
        previous = (t, over)
    return None


def possible_generation_w(
    available_w: float,
    generation_limit_w: float | None,
    load_w: float,
    export_limit_w: float | None,
) -> float:
    """Generation allowed and possible: min(available, generation limit, load + export limit).

    ``available_w`` is what the inverters could convert, each capped at its rating.
    """
    possible = available_w
    if generation_limit_w is not None:
        possible = min(possible, generation_limit_w)
    if export_limit_w is not None:
        possible = min(possible, load_w + export_limit_w)
    return max(0.0, possible)


def curtailment_beyond_need(
    times: Sequence[float],
    possible: Sequence[float],
    actual: Sequence[float],
    start: float = -math.inf,
    end: float = math.inf,
    jumps: Sequence[float] = (),
) -> tuple[float, float]:
    """(Wh, % of ∫possible) of ∫ max(0, possible − actual) dt over [start, end]."""
    shortfall = [max(0.0, p - a) for p, a in zip(possible, actual, strict=True)]
    lost = integrate_wh(times, shortfall, start, end, jumps)
    reachable = integrate_wh(times, possible, start, end, jumps)
    return lost, (100.0 * lost / reachable if reachable > 0 else 0.0)


def rate_per_minute_per_unit(count: int, units: int, duration_s: float) -> float:
    """``count`` events spread over ``units`` units and ``duration_s`` seconds, per minute."""
    if units <= 0 or duration_s <= 0:
        return 0.0
    return count / units / (duration_s / 60.0)


def direction_reversals(values: Sequence[float], threshold: float) -> int:
    """Count changes of direction of a setpoint series, ignoring moves under ``threshold``.

    A move counts once the series has gone ``threshold`` or more from the last turning
    point (so an oscillation made of several small writes is still seen, and a dither
    smaller than ``threshold`` is not). The first counted move sets the direction;
    every later counted move the other way is one reversal.
    """
    if not values:
        return 0
    reference = values[0]
    direction = 0
    reversals = 0
    for value in values[1:]:
        delta = value - reference
        if direction >= 0 and delta <= -threshold:
            reversals += direction > 0
            direction, reference = -1, value
        elif direction <= 0 and delta >= threshold:
            reversals += direction < 0
            direction, reference = 1, value
        elif (direction > 0 and value > reference) or (direction < 0 and value < reference):
            reference = value  # the move goes on: measure a turn from its extreme
    return reversals


def refresh_flags(
    writes: Sequence[tuple[float, int, float]],
    refresh_after_s: float,
    tolerance: float,
) -> list[bool]:
    """For (time, unit, value) writes in time order: True where a write is a refresh.

    A refresh comes ``refresh_after_s`` or more after the unit's previous write and moves
    its value by less than ``tolerance`` (it rewrites the limit so the inverter's revert
    timer does not drop it, possibly with a rounding-sized update). Every other write,
    including a unit's first, is a change.
    """
    last: dict[int, tuple[float, float]] = {}
    flags: list[bool] = []
    for t, unit, value in writes:
        previous = last.get(unit)
        flags.append(
            previous is not None
            and t - previous[0] >= refresh_after_s - 1e-9
            and abs(value - previous[1]) < tolerance
        )
        last[unit] = (t, value)
    return flags


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """Median (mean of the two middle values for an even count) of a non-empty sequence."""
    if not values:
        raise ValueError("median of an empty sequence")
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2.0
