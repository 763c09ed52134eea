"""The perfect reactive tracker: the floor for a controller that only reacts.

Every 0.1 s it sets each inverter's limit to the ideal output for the load and PV of that
instant, with no delay, no deadband and no quantisation; the inverters still follow their limit
with their own first-order lag (the same :class:`SimInverter` physics as the simulated site).
It runs on the inputs a real-time run recorded, so both face exactly the same load and sun.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from custom_components.dynamic_export.sim.physics import SimInverter

from ..metrics import possible_generation_w


@dataclass(frozen=True, slots=True)
class TrackerInputs:
    """What the site did by itself: per sample its time, load and each inverter's PV."""

    times: Sequence[float]
    load_w: Sequence[float]
    available_w: Sequence[Sequence[float]]
    """Per sample, per inverter: PV it could convert if unlimited (before its rating)."""
    export_limit_w: Sequence[float | None]
    generation_limit_w: Sequence[float | None]


@dataclass(frozen=True, slots=True)
class TrackerRun:
    """The tracker's true site values at each sample time."""

    times: list[float]
    generation_w: list[float]
    export_w: list[float]
    setpoint_w: list[float]


def ideal_split(
    total_w: float, available_w: Sequence[float], ratings_w: Sequence[float]
) -> list[float]:
    """Share ``total_w`` over the inverters in proportion to what each can produce now."""
    caps = [max(0.0, min(a, r)) for a, r in zip(available_w, ratings_w, strict=True)]
    whole = sum(caps)
    if whole <= 0:
        return [0.0 for _ in caps]
    return [total_w * cap / whole for cap in caps]


def run_tracker(
    inputs: TrackerInputs, ratings_w: Sequence[float], time_constants_s: Sequence[float]
) -> TrackerRun:
    """Replay ``inputs`` with the ideal limit written every sample; starts settled."""
    inverters = [
        SimInverter(rated_power_w=r, time_constant_s=tau)
        for r, tau in zip(ratings_w, time_constants_s, strict=True)
    ]
    run = TrackerRun([], [], [], [])
    count = len(inputs.times)
    for i in range(count):
        available = inputs.available_w[i]
        capped = sum(min(a, r) for a, r in zip(available, ratings_w, strict=True))
        ideal = possible_generation_w(
            capped, inputs.generation_limit_w[i], inputs.load_w[i], inputs.export_limit_w[i]
        )
        shares = ideal_split(ideal, available, ratings_w)
        for index, inverter in enumerate(inverters):
            pct = 100.0 * shares[index] / inverter.rated_power_w
            inverter.write_limit(inputs.times[i], limit_pct=pct, enabled=True)
            if i == 0:
                inverter.settle(available[index])
        generation = sum(inv.output_w for inv in inverters)
        run.times.append(inputs.times[i])
        run.generation_w.append(generation)
        run.export_w.append(generation - inputs.load_w[i])
        run.setpoint_w.append(sum(inv.limit_w for inv in inverters))
        if i + 1 < count:
            dt = inputs.times[i + 1] - inputs.times[i]
            for index, inverter in enumerate(inverters):
                inverter.step(dt, available[index])
    return run
