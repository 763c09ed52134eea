"""Scenarios: what the sun and the household do over time, kept as plain data.

A scenario is loaded from JSON so new test cases and benchmark runs need no code.
It only describes inputs (available PV, load, events); how the inverters respond
to limits is the job of :mod:`.physics`.
"""

from __future__ import annotations

import json
import math
import random
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

SCENARIO_DIR = Path(__file__).parent / "scenarios"

EVENT_TYPES = ("load_step", "pv_step", "cloud", "shade", "load_ramp")
FAMILIES = ("sunspec", "solaredge", "sungrow_sg", "sungrow_sh", "huawei", "victron", "goodwe")
"""How a simulated inverter is reached: its register map and control (see ``sim/families``).

``victron``: the inverter is one of the PV inverters a Victron GX manages; the GX, not the
inverter, answers on Modbus (unit 100, its grid meter on unit 30). ``goodwe``: an ET inverter
with its own meter, over UDP 8899 at a loopback address of its own.
"""


@dataclass(frozen=True, slots=True)
class Profile:
    """A piecewise-linear time series; held flat before the first and after the last point.

    Two points at the same time make an instantaneous step (the later one wins).
    """

    points: tuple[tuple[float, float], ...]
    _times: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_times", tuple(t for t, _ in self.points))

    @classmethod
    def constant(cls, value: float) -> Profile:
        """A profile that never changes."""
        return cls(((0.0, value),))

    def at(self, t: float) -> float:
        """The value at time ``t``."""
        idx = bisect_right(self._times, t)
        if idx == 0:
            return self.points[0][1]
        if idx == len(self.points):
            return self.points[-1][1]
        (t0, v0), (t1, v1) = self.points[idx - 1], self.points[idx]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


@dataclass(frozen=True, slots=True)
class Noise:
    """Seeded random noise that holds each value for ``period_s`` (reproducible run to run).

    Values follow a first-order autoregression with standard deviation ``sigma_w`` and lag-one
    ``correlation``: 0 gives independent values each period, values near 1 a slow wander. A
    household load is both (its 1 s changes are much smaller than its spread), so it is not
    white noise. ``span_s`` values are drawn; past the end the last one holds.
    """

    sigma_w: float
    period_s: float = 1.0
    correlation: float = 0.0
    seed: int = 0
    span_s: float = 0.0
    _values: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        count = max(1, math.ceil(self.span_s / self.period_s) + 1)
        innovation = self.sigma_w * math.sqrt(1.0 - self.correlation**2)
        value = rng.gauss(0.0, self.sigma_w)
        values = [value]
        for _ in range(count - 1):
            value = self.correlation * value + rng.gauss(0.0, innovation)
            values.append(value)
        object.__setattr__(self, "_values", tuple(values))

    def at(self, t: float) -> float:
        """The noise at time ``t`` (the first value before 0)."""
        index = min(max(math.floor(t / self.period_s + 1e-9), 0), len(self._values) - 1)
        return self._values[index]


@dataclass(frozen=True, slots=True)
class InverterSpec:
    """One simulated inverter.

    Its available power is ``availability`` times either its own profile or
    ``share`` of the site's PV (default: its share of the total rating). ``family`` is the
    register map it is served with (one of :data:`FAMILIES`).
    """

    rating_w: float
    time_constant_s: float = 1.0
    availability: float = 1.0
    share: float | None = None
    pv_available_w: Profile | None = None
    family: str = "sunspec"


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happens at ``t`` seconds into the scenario.

    - ``load_step``: load changes by ``delta_w`` from ``t`` on.
    - ``pv_step``: site PV changes by ``delta_w`` from ``t`` on.
    - ``cloud``: available PV drops by ``depth`` (0..1) for ``duration_s``,
      ramping in and out over ``ramp_s``.
    - ``shade``: inverter ``inverter`` (0-based) gets availability ``factor`` from ``t`` on.
    - ``load_ramp``: load changes at ``rate_w_per_s`` for ``duration_s``, then holds the
      change (a slow drift, e.g. a heat pump winding down).
    """

    t: float
    type: str
    delta_w: float = 0.0
    duration_s: float = 0.0
    depth: float = 0.0
    ramp_s: float = 0.0
    inverter: int = 0
    factor: float = 1.0
    rate_w_per_s: float = 0.0

    def load_ramp_w(self, t: float) -> float:
        """Load change from this ramp at time ``t`` (0 before it starts)."""
        if t <= self.t:
            return 0.0
        return self.rate_w_per_s * min(t - self.t, self.duration_s)

    def cloud_factor(self, t: float) -> float:
        """PV multiplier from this cloud at time ``t`` (1 = no effect)."""
        start, end = self.t, self.t + self.duration_s
        if t <= start or t >= end:
            return 1.0
        edge = min(t - start, end - t)
        cover = 1.0 if self.ramp_s <= 0 or edge >= self.ramp_s else edge / self.ramp_s
        return 1.0 - self.depth * cover


@dataclass(frozen=True, slots=True)
class Scenario:
    """Inputs for one simulated run; see ``scenarios/*.json`` for the file format."""

    name: str
    duration_s: float
    inverters: tuple[InverterSpec, ...]
    pv_available_w: Profile
    load_w: Profile
    events: tuple[Event, ...] = ()
    meter_delay_s: float = 0.0
    repeat: bool = False
    export_limit_w: float | None = None
    description: str = ""
    load_noise: Noise | None = None
    """Household load that moves on its own (added to ``load_w``)."""
    meter_noise: Noise | None = None
    """Measurement noise of the grid meter: in what it reports, not in the true power."""

    def scenario_time(self, now: float) -> float:
        """Map simulation time onto the scenario's own timeline (wrapping if it repeats)."""
        if self.repeat:
            return now % self.duration_s
        return now

    def load_at(self, now: float) -> float:
        """Household load in W at simulation time ``now`` (never negative)."""
        t = self.scenario_time(now)
        load = self.load_w.at(t)
        load += sum(e.delta_w for e in self.events if e.type == "load_step" and e.t <= t)
        load += sum(e.load_ramp_w(t) for e in self.events if e.type == "load_ramp")
        if self.load_noise is not None:
            load += self.load_noise.at(t)
        return max(load, 0.0)

    def meter_noise_at(self, now: float) -> float:
        """What the meter adds to the true grid power at ``now`` (W)."""
        if self.meter_noise is None:
            return 0.0
        return self.meter_noise.at(self.scenario_time(now))

    def pv_at(self, now: float) -> float:
        """Site-wide available PV in W at ``now``, before clouds."""
        t = self.scenario_time(now)
        pv = self.pv_available_w.at(t)
        pv += sum(e.delta_w for e in self.events if e.type == "pv_step" and e.t <= t)
        return max(pv, 0.0)

    def cloud_factor_at(self, now: float) -> float:
        """Combined PV multiplier of all clouds at ``now``."""
        t = self.scenario_time(now)
        factor = 1.0
        for event in self.events:
            if event.type == "cloud":
                factor *= event.cloud_factor(t)
        return factor

    def availability_at(self, index: int, now: float) -> float:
        """Availability factor of inverter ``index`` at ``now`` (shade events override)."""
        t = self.scenario_time(now)
        factor = self.inverters[index].availability
        latest = -math.inf
        for event in self.events:
            if event.type == "shade" and event.inverter == index and latest <= event.t <= t:
                factor, latest = event.factor, event.t
        return factor

    def inverter_available_at(self, index: int, now: float) -> float:
        """Power inverter ``index`` could produce at ``now`` if unlimited, before its rating."""
        spec = self.inverters[index]
        if spec.pv_available_w is not None:
            base = spec.pv_available_w.at(self.scenario_time(now))
        else:
            base = self.pv_at(now) * self.share_of(index)
        return max(base, 0.0) * self.cloud_factor_at(now) * self.availability_at(index, now)

    def share_of(self, index: int) -> float:
        """Fraction of the site PV that feeds inverter ``index``."""
        spec = self.inverters[index]
        if spec.share is not None:
            return spec.share
        return spec.rating_w / sum(inv.rating_w for inv in self.inverters)

    def with_inverter_count(self, count: int) -> Scenario:
        """The same site with its total rating split evenly over ``count`` inverters.

        Own per-inverter profiles, shares and shade events are dropped, since
        they no longer map onto the new inverters.
        """
        if count < 1:
            raise ValueError(f"inverter count must be >= 1, got {count}")
        if count == len(self.inverters):
            return self
        total = sum(inv.rating_w for inv in self.inverters)
        first = self.inverters[0]
        spec = InverterSpec(
            rating_w=total / count, time_constant_s=first.time_constant_s, family=first.family
        )
        events = tuple(e for e in self.events if e.type != "shade")
        return replace(self, inverters=(spec,) * count, events=events)

    def with_family(self, family: str) -> Scenario:
        """The same site with every inverter served as ``family`` (one of :data:`FAMILIES`)."""
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r} (one of {', '.join(FAMILIES)})")
        inverters = tuple(replace(inv, family=family) for inv in self.inverters)
        return replace(self, inverters=inverters)

    @property
    def families(self) -> tuple[str, ...]:
        """The families of the site's inverters, each once, in site order."""
        return tuple(dict.fromkeys(inv.family for inv in self.inverters))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str = "scenario") -> Scenario:
        """Build and validate a scenario; raises ValueError naming the offending field."""
        return _parse_scenario(data, name)


def builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped with the simulator."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.json"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a built-in scenario by name, or a scenario JSON file by path."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        builtin = SCENARIO_DIR / f"{name_or_path}.json"
        if not builtin.is_file():
            known = ", ".join(builtin_scenarios())
            raise ValueError(f"unknown scenario {str(name_or_path)!r} (built-in: {known})")
        path = builtin
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"cannot read scenario {str(path)!r}: {err}") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"scenario {str(path)!r} is not valid JSON: {err}") from err
    return Scenario.from_dict(data, name=path.stem)


# --- validation ----------------------------------------------------------------------------


class _Fields:
    """Reads typed fields from one JSON object, naming the path in every error."""

    def __init__(self, data: object, where: str, allowed: Sequence[str]) -> None:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
        self.data = data
        self.where = where

    def number(
        self,
        key: str,
        default: float | None = None,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        above: float | None = None,
    ) -> float:
        """A finite number within the given bounds."""
        value = self.data.get(key, default)
        if value is None:
            raise ValueError(f"{self.where}.{key} is required")
        return _check_number(
            value, f"{self.where}.{key}", minimum=minimum, maximum=maximum, above=above
        )

    def optional_number(self, key: str, *, minimum: float | None = None) -> float | None:
        """A finite number, or None when absent."""
        if self.data.get(key) is None:
            return None
        return self.number(key, minimum=minimum)

    def boolean(self, key: str, default: bool) -> bool:
        """A JSON boolean."""
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise ValueError(f"{self.where}.{key} must be true or false, got {value!r}")
        return value

    def string(self, key: str, default: str) -> str:
        """A JSON string."""
        value = self.data.get(key, default)
        if not isinstance(value, str):
            raise ValueError(f"{self.where}.{key} must be a string, got {value!r}")
        return value


def _check_number(
    value: object,
    where: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    number = float(value)
    if minimum is not None and number < minimum:
        raise ValueError(f"{where} must be >= {minimum:g}, got {number:g}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{where} must be <= {maximum:g}, got {number:g}")
    if above is not None and number <= above:
        raise ValueError(f"{where} must be > {above:g}, got {number:g}")
    return number


def _parse_profile(value: object, where: str) -> Profile:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Profile.constant(_check_number(value, where, minimum=0))
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where} must be a number or a non-empty list of [t, W] points")
    points: list[tuple[float, float]] = []
    for i, point in enumerate(value):
        if not isinstance(point, list) or len(point) != 2:
            raise ValueError(f"{where}[{i}] must be a [t, W] pair, got {point!r}")
        t = _check_number(point[0], f"{where}[{i}] time", minimum=0)
        w = _check_number(point[1], f"{where}[{i}] power", minimum=0)
        if points and t < points[-1][0]:
            raise ValueError(
                f"{where}[{i}]: times must not decrease ({t:g} after {points[-1][0]:g})"
            )
        points.append((t, w))
    return Profile(tuple(points))


_EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "load_step": ("delta_w",),
    "pv_step": ("delta_w",),
    "cloud": ("duration_s", "depth", "ramp_s"),
    "shade": ("inverter", "factor"),
    "load_ramp": ("duration_s", "rate_w_per_s"),
}


def _parse_event(value: object, where: str, duration_s: float, inverter_count: int) -> Event:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be an object, got {type(value).__name__}")
    kind = value.get("type")
    if kind not in _EVENT_FIELDS:
        raise ValueError(f"{where}.type must be one of {', '.join(EVENT_TYPES)}, got {kind!r}")
    f = _Fields(value, where, ("t", "type", "note", *_EVENT_FIELDS[kind]))
    t = f.number("t", minimum=0, maximum=duration_s)
    if kind in ("load_step", "pv_step"):
        return Event(t=t, type=kind, delta_w=f.number("delta_w"))
    if kind == "load_ramp":
        return Event(
            t=t,
            type=kind,
            duration_s=f.number("duration_s", above=0),
            rate_w_per_s=f.number("rate_w_per_s"),
        )
    if kind == "cloud":
        return Event(
            t=t,
            type=kind,
            duration_s=f.number("duration_s", above=0),
            depth=f.number("depth", minimum=0, maximum=1),
            ramp_s=f.number("ramp_s", 0.0, minimum=0),
        )
    index = f.number("inverter", minimum=0, maximum=inverter_count - 1)
    if index != int(index):
        raise ValueError(f"{where}.inverter must be a whole number, got {index:g}")
    return Event(
        t=t, type=kind, inverter=int(index), factor=f.number("factor", minimum=0, maximum=1)
    )


_INVERTER_FIELDS = (
    "rating_w",
    "time_constant_s",
    "availability",
    "share",
    "pv_available_w",
    "family",
)


def _parse_inverter(value: object, where: str) -> InverterSpec:
    f = _Fields(value, where, _INVERTER_FIELDS)
    own = value.get("pv_available_w") if isinstance(value, Mapping) else None
    family = f.string("family", "sunspec")
    if family not in FAMILIES:
        raise ValueError(f"{where}.family must be one of {', '.join(FAMILIES)}, got {family!r}")
    return InverterSpec(
        rating_w=f.number("rating_w", above=0),
        time_constant_s=f.number("time_constant_s", 1.0, minimum=0),
        availability=f.number("availability", 1.0, minimum=0, maximum=1),
        share=f.optional_number("share", minimum=0),
        pv_available_w=None if own is None else _parse_profile(own, f"{where}.pv_available_w"),
        family=family,
    )


_SCENARIO_FIELDS = (
    "description",
    "duration_s",
    "repeat",
    "meter_delay_s",
    "export_limit_w",
    "inverters",
    "pv_available_w",
    "load_w",
    "events",
    "load_noise",
    "meter_noise",
)

_NOISE_FIELDS = ("sigma_w", "period_s", "correlation", "seed")


def _parse_noise(value: object, where: str, span_s: float) -> Noise:
    f = _Fields(value, where, _NOISE_FIELDS)
    seed = f.number("seed", 0.0, minimum=0)
    if seed != int(seed):
        raise ValueError(f"{where}.seed must be a whole number, got {seed:g}")
    return Noise(
        sigma_w=f.number("sigma_w", minimum=0),
        period_s=f.number("period_s", 1.0, above=0),
        correlation=f.number("correlation", 0.0, minimum=0, maximum=1),
        seed=int(seed),
        span_s=span_s,
    )


def _parse_scenario(data: Mapping[str, Any], name: str) -> Scenario:
    where = f"scenario {name!r}"
    f = _Fields(data, where, _SCENARIO_FIELDS)
    duration_s = f.number("duration_s", above=0)
    raw_inverters = data.get("inverters")
    if not isinstance(raw_inverters, list) or not raw_inverters:
        raise ValueError(f"{where}.inverters must be a non-empty list")
    inverters = tuple(
        _parse_inverter(inv, f"{where}.inverters[{i}]") for i, inv in enumerate(raw_inverters)
    )
    for key in ("pv_available_w", "load_w"):
        if key not in data:
            raise ValueError(f"{where}.{key} is required")
    raw_events = data.get("events", [])
    if not isinstance(raw_events, list):
        raise ValueError(f"{where}.events must be a list")
    events = tuple(
        _parse_event(ev, f"{where}.events[{i}]", duration_s, len(inverters))
        for i, ev in enumerate(raw_events)
    )
    return Scenario(
        name=name,
        description=f.string("description", ""),
        duration_s=duration_s,
        repeat=f.boolean("repeat", False),
        meter_delay_s=f.number("meter_delay_s", 0.0, minimum=0),
        export_limit_w=f.optional_number("export_limit_w", minimum=0),
        inverters=inverters,
        pv_available_w=_parse_profile(data["pv_available_w"], f"{where}.pv_available_w"),
        load_w=_parse_profile(data["load_w"], f"{where}.load_w"),
        events=tuple(sorted(events, key=lambda e: e.t)),
        load_noise=None
        if data.get("load_noise") is None
        else _parse_noise(data["load_noise"], f"{where}.load_noise", duration_s),
        meter_noise=None
        if data.get("meter_noise") is None
        else _parse_noise(data["meter_noise"], f"{where}.meter_noise", duration_s),
    )
