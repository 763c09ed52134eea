"""The physical check: did the site do what the server instructed, as the client could know it?

The instruction at a time is the server's schedule *as the client last fetched it*: a control
published at 12:00:00 and fetched at 12:00:40 is due from 12:00:40; a cancellation counts
from the poll that sees it; the schedule keeps applying while the server is unreachable. Per
control type the program with the best (lowest) primacy wins, then the newest control; with
no control in force, the default control of the best program that sets that type.

A tightening is followed along a ramp: the control's ``rampTms`` when it has one, else the
default control's ``setGradW`` (hundredths of a percent of the rating per second), else the
AS/NZS 4777.2 default gradient (16.67 %/min). The ramp starts from what the site did at the
change, and the site is allowed :data:`LAG_S` to react, plus :data:`MARGIN_W`:

    export(t) <= max(envelope over [t - LAG_S, t]) + MARGIN_W

A step of the test load moves the grid power at once; the loop then has LAG_S to bring
export (or import) back under the cap (the seconds it took are kept as a figure).

The runner samples the site every second while anything moves and, while the site is
settled and nothing is due, once per idle step of up to 15 s (see ``runner.py``): such a
sample stands for every second since the last one (the instruction and the site were the
same throughout), so it is judged once and counted for each of them.

An import cap a solar-only site cannot hold (the load above all its solar) is judged
against what it can do: import no more than the load less the available solar. Seconds
where that floor is above the cap are counted and reported as *unholdable*.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from ..server.state import ActivePower, CsipState, EventStatus
from .site import RATING_W, Sample

LAG_S = 10
MARGIN_W = 50.0
AS4777_GRADIENT_PCT_PER_S = 16.67 / 60.0
"""AS/NZS 4777.2 default power rate limit (wGra): 16.67 % of the rating per minute."""
INACTIVE = {
    EventStatus.CANCELLED,
    EventStatus.CANCELLED_WITH_RANDOMIZATION,
    EventStatus.SUPERSEDED,
}

Kind = Literal["export", "import", "generation"]
KINDS: tuple[Kind, ...] = ("export", "import", "generation")
_FIELD: dict[Kind, str] = {
    "export": "op_mod_exp_lim_w",
    "import": "op_mod_imp_lim_w",
    "generation": "op_mod_gen_lim_w",
}


@dataclass(frozen=True, slots=True)
class KnownControl:
    """A DERControl as the client last saw it."""

    mrid: str
    primacy: int
    creation: int
    start: int
    end: int
    randomize_s: int
    status: int
    caps: dict[Kind, float]
    off: bool
    """opModConnect or opModEnergize false: no generation at all."""
    ramp_s: float | None


@dataclass(frozen=True, slots=True)
class KnownDefault:
    """A program's DefaultDERControl as the client last saw it."""

    primacy: int
    caps: dict[Kind, float]
    off: bool
    set_grad_w: int | None


@dataclass(slots=True)
class Violation:
    """A second the site was above what it was allowed."""

    t: float
    kind: Kind
    value_w: float
    allowed_w: float
    cap_w: float | None
    source: str | None


def _watts(value: ActivePower | None) -> float | None:
    return None if value is None else value.watts


@dataclass(slots=True)
class Instructions:
    """What the client has been told, updated as it fetches lists (see the module doc)."""

    controls: dict[str, KnownControl] = field(default_factory=dict)
    defaults: dict[str, KnownDefault] = field(default_factory=dict)

    def saw_controls(self, state: CsipState, program_id: str) -> None:
        """The client fetched this program's DERControlList now."""
        program = state.programs.get(program_id)
        if program is None:
            return
        for control in program.controls.values():
            base = control.base
            caps = {
                kind: w for kind in KINDS if (w := _watts(getattr(base, _FIELD[kind]))) is not None
            }
            self.controls[control.mrid] = KnownControl(
                mrid=control.mrid,
                primacy=program.primacy,
                creation=control.creation_time,
                start=control.start,
                end=control.end,
                randomize_s=abs(control.randomize_start or 0),
                status=control.current_status,
                caps=caps,
                off=base.op_mod_connect is False or base.op_mod_energize is False,
                ramp_s=None if base.ramp_tms is None else base.ramp_tms / 100.0,
            )

    def saw_default(self, state: CsipState, program_id: str) -> None:
        """The client fetched this program's DefaultDERControl now."""
        program = state.programs.get(program_id)
        if program is None:
            return
        default = program.default
        if default is None:
            self.defaults.pop(program_id, None)
            return
        base = default.base
        caps = {kind: w for kind in KINDS if (w := _watts(getattr(base, _FIELD[kind]))) is not None}
        self.defaults[program_id] = KnownDefault(
            primacy=program.primacy,
            caps=caps,
            off=base.op_mod_connect is False or base.op_mod_energize is False,
            set_grad_w=default.set_grad_w,
        )

    def cap(self, kind: Kind, t: float) -> tuple[float | None, KnownControl | None]:
        """The cap of ``kind`` in force at ``t`` and the control that sets it (None: a
        default, or nothing)."""
        active = [
            c
            for c in self.controls.values()
            if c.status not in INACTIVE
            and c.start <= t < c.end
            and (kind in c.caps or (kind == "generation" and c.off))
        ]
        if active:
            best = min(active, key=lambda c: (c.primacy, -c.creation))
            return (0.0 if kind == "generation" and best.off else best.caps[kind]), best
        defaults = [
            d for d in self.defaults.values() if kind in d.caps or (kind == "generation" and d.off)
        ]
        if defaults:
            best_default = min(defaults, key=lambda d: d.primacy)
            if kind == "generation" and best_default.off:
                return 0.0, None
            return best_default.caps[kind], None
        return None, None

    def gradient_w_per_s(self) -> float:
        """The default ramp: setGradW of the best program's default, else AS/NZS 4777.2's."""
        graded = [d for d in self.defaults.values() if d.set_grad_w]
        if graded:
            grad = min(graded, key=lambda d: d.primacy).set_grad_w or 0
            return grad / 100.0 / 100.0 * RATING_W
        return AS4777_GRADIENT_PCT_PER_S / 100.0 * RATING_W

    def randomize_s(self) -> int:
        """The widest randomised start the client may have drawn."""
        return max((c.randomize_s for c in self.controls.values()), default=0)


@dataclass(slots=True)
class _Track:
    """One control type's envelope."""

    cap: float | None = None
    envelope: float = math.inf
    rate: float = math.inf
    source: str | None = None
    window: deque[float] = field(default_factory=lambda: deque([math.inf] * (LAG_S + 1)))
    """The envelope over the last LAG_S seconds (none known at the start: no bound)."""
    floor_window: deque[float] = field(default_factory=lambda: deque([0.0] * (LAG_S + 1)))


@dataclass(slots=True)
class PhysicalCheck:
    """Judges each second of the site against the instructions (see the module doc)."""

    instructions: Instructions = field(default_factory=Instructions)
    violations: list[Violation] = field(default_factory=list)
    unholdable_s: int = 0
    """Seconds an import cap was below what a solar-only site can reach (load - solar)."""
    checked_s: int = 0
    max_import_w: float = 0.0
    """The most the site imported in any second."""
    tightest: dict[Kind, float] = field(default_factory=dict)
    load_steps: list[float] = field(default_factory=list)
    """When the test load changed: the grid power steps with it, and the loop gets LAG_S
    to bring export and import back under their caps."""
    recovery_s: list[int] = field(default_factory=list)
    """Per load step, the seconds export or import stayed above cap + margin."""
    _tracks: dict[Kind, _Track] = field(default_factory=lambda: {k: _Track() for k in KINDS})
    _previous: Sample | None = None

    def load_changed(self, t: float) -> None:
        """The test load changed at ``t``."""
        self.load_steps.append(t)
        self.recovery_s.append(0)

    def observe(self, sample: Sample, dt: int = 1) -> None:
        """Judge the site at ``sample.t``, ``dt`` seconds after the last sample (longer
        than 1 s only while the site and its instructions stood still over them)."""
        previous = self._previous
        self._previous = sample
        if previous is None:
            return
        self.checked_s += dt
        self.max_import_w = max(self.max_import_w, -sample.export_w)
        lag = LAG_S + self.instructions.randomize_s()
        values: dict[Kind, float] = {
            "export": sample.export_w,
            "import": -sample.export_w,
            "generation": sample.generation_w,
        }
        before: dict[Kind, float] = {
            "export": previous.export_w,
            "import": -previous.export_w,
            "generation": previous.generation_w,
        }
        floor = sample.load_w - sample.available_w
        for kind in KINDS:
            track = self._tracks[kind]
            cap, control = self.instructions.cap(kind, sample.t)
            source = (
                control.mrid if control is not None else ("default" if cap is not None else None)
            )
            if cap is not None and track.cap is None:
                # A first instruction: ramp from what the site does, as from a control.
                track.envelope = max(before[kind], cap)
            if cap is None:
                track.envelope = math.inf
            elif cap >= track.envelope:
                track.envelope = cap
            else:
                if cap != track.cap or source != track.source:
                    if control is not None and control.ramp_s:
                        start = min(track.envelope, before[kind])
                        track.rate = max(start - cap, 0.0) / control.ramp_s
                    elif control is not None and control.off and kind == "generation":
                        track.rate = math.inf
                    else:
                        track.rate = self.instructions.gradient_w_per_s()
                if track.rate == math.inf:
                    track.envelope = cap
                else:
                    track.envelope = max(cap, min(track.envelope, before[kind]) - track.rate * dt)
            track.cap, track.source = cap, source
            if cap is not None:
                self.tightest[kind] = min(self.tightest.get(kind, math.inf), cap)
            for _ in range(min(dt, lag + 1)):
                track.window.append(track.envelope)
                track.floor_window.append(floor)
            while len(track.window) > lag + 1:
                track.window.popleft()
                track.floor_window.popleft()
            allowed = max(track.window)
            if kind == "import":
                reachable = max(track.floor_window)
                if cap is not None and floor > cap:
                    self.unholdable_s += dt
                allowed = max(allowed, reachable)
            over = allowed != math.inf and values[kind] > allowed + MARGIN_W
            since_load = sample.t - self.load_steps[-1] if self.load_steps else math.inf
            if over and kind != "generation" and since_load < LAG_S:
                self.recovery_s[-1] = max(self.recovery_s[-1], int(since_load) + 1)
            elif over:
                self.violations.append(
                    Violation(sample.t, kind, values[kind], allowed, cap, source)
                )

    def summary(self) -> str:
        """One line: the first violations, or held."""
        if not self.violations:
            return f"held ({self.checked_s} s checked)"
        first = self.violations[:5]
        shown = "; ".join(
            f"t={v.t:.0f} {v.kind} {v.value_w:.0f} W > {v.allowed_w:.0f} W "
            f"(cap {v.cap_w} from {v.source})"
            for v in first
        )
        return f"{len(self.violations)} s above the instruction: {shown}"
