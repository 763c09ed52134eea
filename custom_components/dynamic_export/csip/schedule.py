"""Which DERControl applies now, per control type, and what the server must be told.

Fed with every program on every poll and asked about one instant at a time.
Time is server-time Unix seconds, passed in; randomness comes from an injected
``random.Random``, so the same inputs always give the same schedule.

Where this deliberately differs from open-dynamic-export:

* a superseded control stops the moment its superseder starts, instead of
  running on to its own end;
* cancel-with-randomisation ends a running control at a random time;
* a gap of a few seconds between consecutive controls holds the earlier value
  rather than dropping to the default and ramping back.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from ..core.controls import Controls, ControlType
from .sep2.codes import EventStatus, ResponseStatus
from .sep2.resources import DefaultDERControl, DERControl, DERControlBase, DERProgram
from .sep2.units import ActivePower

DEFAULT_GAP_BRIDGE_S = 10
"""Largest gap between consecutive controls held at the earlier value (ODE #75)."""

_FORMAT = 1
_FOREVER = 2**62
_CANCELLED = (EventStatus.CANCELLED, EventStatus.CANCELLED_WITH_RANDOMIZATION)

_BASE_FIELD: dict[ControlType, str] = {
    ControlType.CONNECT: "op_mod_connect",
    ControlType.ENERGIZE: "op_mod_energize",
    ControlType.EXPORT_LIMIT: "op_mod_exp_lim_w",
    ControlType.GENERATION_LIMIT: "op_mod_gen_lim_w",
    ControlType.IMPORT_LIMIT: "op_mod_imp_lim_w",
    ControlType.LOAD_LIMIT: "op_mod_load_lim_w",
}


def base_value(base: DERControlBase, control_type: ControlType) -> bool | float | None:
    """The value ``base`` sets for one control type (watts for limits), or None."""
    raw: bool | ActivePower | None = getattr(base, _BASE_FIELD[control_type])
    if isinstance(raw, ActivePower):
        return max(0.0, raw.watts)
    return raw


def base_types(base: DERControlBase) -> tuple[ControlType, ...]:
    """The control types ``base`` sets: the only ones its control competes for."""
    return tuple(t for t in ControlType if getattr(base, _BASE_FIELD[t]) is not None)


def to_controls(values: Mapping[ControlType, bool | float | None]) -> Controls:
    """Per-type values as core :class:`Controls` (missing types: no opinion)."""

    def flag(control_type: ControlType) -> bool | None:
        value = values.get(control_type)
        return None if value is None else bool(value)

    def watts(control_type: ControlType) -> float | None:
        value = values.get(control_type)
        return None if value is None else float(value)

    return Controls(
        connect=flag(ControlType.CONNECT),
        energize=flag(ControlType.ENERGIZE),
        export_limit=watts(ControlType.EXPORT_LIMIT),
        generation_limit=watts(ControlType.GENERATION_LIMIT),
        import_limit=watts(ControlType.IMPORT_LIMIT),
        load_limit=watts(ControlType.LOAD_LIMIT),
    )


def base_controls(base: DERControlBase) -> Controls:
    """``base`` as core :class:`Controls`."""
    return to_controls({t: base_value(base, t) for t in ControlType})


class Source(StrEnum):
    """Where the value in force for a control type comes from."""

    CONTROL = "control"
    BRIDGE = "bridge"
    """The previous control, held across a short gap before the next one."""
    DEFAULT = "default"
    """The server's DefaultDERControl."""
    FIXED = "fixed"
    """The caller's configured fallback."""


@dataclass(frozen=True, slots=True)
class ControlRef:
    """What responses need to know about a control."""

    mrid: str
    program_mrid: str | None
    reply_to: str | None
    response_required: int
    end: int
    """When the control stops applying here (effective end)."""


@dataclass(frozen=True, slots=True)
class ScheduleEvent:
    """A transition the server may need a Response for."""

    control: ControlRef
    status: ResponseStatus
    at: int


@dataclass(frozen=True, slots=True)
class Selection:
    """The value in force for one control type, and where it comes from."""

    control_type: ControlType
    value: bool | float
    source: Source
    mrid: str | None = None
    program_mrid: str | None = None
    start: int | None = None
    end: int | None = None
    """Effective end for a control; the next control's start for a bridge."""
    ramp_tms: int | None = None


@dataclass(frozen=True, slots=True)
class UpcomingControl:
    """The next control due to start (for entities)."""

    mrid: str
    program_mrid: str | None
    start: int
    end: int
    controls: Controls


@dataclass(slots=True)
class _Entry:
    """A known control with the state we must never recompute (offsets, outcome)."""

    control: DERControl
    start: int
    """Randomised start."""
    end: int
    """Randomised end, before any cancellation or supersession."""
    cancel_at: int | None = None
    cuts: dict[ControlType, int] = field(default_factory=dict)
    """Supersession cuts that have taken effect: final even if the superseder goes."""
    started: bool = False
    done: bool = False
    outcome: ResponseStatus | None = None
    types: tuple[ControlType, ...] = field(init=False)
    """Cached: the base never changes once a control is known."""

    def __post_init__(self) -> None:
        self.types = base_types(self.control.base)

    @property
    def rank(self) -> tuple[int, bool, int, str]:
        """Lower wins: primacy, then not server-superseded, then newest, then mRID."""
        c = self.control
        primacy = c.primacy if c.primacy is not None else _FOREVER
        return (primacy, c.status == EventStatus.SUPERSEDED, -c.creation_time, c.mrid)

    @property
    def stop(self) -> int:
        return self.end if self.cancel_at is None else min(self.end, self.cancel_at)

    def ref(self, end: int) -> ControlRef:
        c = self.control
        return ControlRef(c.mrid, c.program_mrid, c.reply_to, c.response_required, end)


_Window = tuple[int, int]


def _latest_end(control: DERControl) -> int:
    """The latest the control could end whatever the random draw."""
    return (
        control.start
        + control.duration
        + max(control.randomize_start, 0)
        + max(control.randomize_duration, 0)
    )


def _overlap(a: _Window, b: _Window) -> bool:
    return max(a[0], b[0]) < min(a[1], b[1])


def _nominal(control: DERControl) -> _Window:
    return (control.start, control.start + control.duration)


def _overlapping_groups(entries: list[_Entry]) -> list[list[_Entry]]:
    """Split into runs of nominally overlapping controls: only these can supersede.

    Keeps the pairwise work small when the server publishes a day of
    back-to-back five-minute controls.
    """
    groups: list[list[_Entry]] = []
    reach = -_FOREVER
    for entry in sorted(entries, key=lambda e: _nominal(e.control)):
        start, end = _nominal(entry.control)
        if not groups or start >= reach:
            groups.append([])
            reach = end
        groups[-1].append(entry)
        reach = max(reach, end)
    return groups


class ControlSchedule:
    """All known controls and defaults, answering "what applies now" per type."""

    def __init__(
        self,
        *,
        fixed_default: Controls | None = None,
        gap_bridge_s: int = DEFAULT_GAP_BRIDGE_S,
        rng: random.Random | None = None,
    ) -> None:
        """Set the caller's fallback, the gap to bridge and the random source."""
        self.fixed_default = fixed_default or Controls()
        self.gap_bridge_s = gap_bridge_s
        self._rng = rng or random.Random()
        self._entries: dict[str, _Entry] = {}
        self._defaults: tuple[DefaultDERControl, ...] = ()

    # -- intake -------------------------------------------------------------------------

    def update(self, programs: Sequence[DERProgram], now: int) -> list[ScheduleEvent]:
        """Take in a full poll of programs; return the transitions it caused.

        Controls missing from the poll are kept until they end (deletion is not
        cancellation); defaults are replaced by what the poll holds.
        """
        events: list[ScheduleEvent] = []
        defaults: list[DefaultDERControl] = []
        seen: set[str] = set()
        for program in sorted(programs, key=lambda p: (p.primacy, p.mrid)):
            mrid, primacy = program.mrid, program.primacy
            if program.default_control is not None:
                defaults.append(
                    replace(program.default_control, program_mrid=mrid, primacy=primacy)
                )
            for control in program.controls:
                if control.mrid not in seen:
                    seen.add(control.mrid)
                    own = replace(control, program_mrid=mrid, primacy=primacy)
                    events.extend(self._intake(own, now))
        self._defaults = tuple(defaults)
        events.extend(self.advance(now))
        return events

    def _draw(self, bound: int) -> int:
        """A random offset in [min(bound, 0), max(bound, 0)] seconds."""
        return self._rng.randint(min(bound, 0), max(bound, 0)) if bound else 0

    def _intake(self, control: DERControl, now: int) -> list[ScheduleEvent]:
        entry = self._entries.get(control.mrid)
        events: list[ScheduleEvent] = []
        if entry is None:
            if _latest_end(control) <= now:
                return events
            start = control.start + self._draw(control.randomize_start)
            end = max(start, start + control.duration + self._draw(control.randomize_duration))
            entry = _Entry(control, start, end)
            self._entries[control.mrid] = entry
            events.append(ScheduleEvent(entry.ref(end), ResponseStatus.RECEIVED, now))
        else:
            # Edits other than status are not allowed by 2030.5; keep the first copy.
            entry.control = replace(
                entry.control,
                status=control.status,
                primacy=control.primacy,
                program_mrid=control.program_mrid,
            )
        if control.status in _CANCELLED and not entry.done:
            entry.cancel_at = now
            randomised = control.status == EventStatus.CANCELLED_WITH_RANDOMIZATION
            if randomised and entry.started and entry.start <= now < entry.end:
                bound = control.randomize_duration or control.randomize_start
                entry.cancel_at = min(entry.end, now + self._rng.randint(0, abs(bound)))
            entry.done, entry.outcome = True, ResponseStatus.CANCELLED
            events.append(ScheduleEvent(entry.ref(entry.stop), ResponseStatus.CANCELLED, now))
        return events

    # -- time ---------------------------------------------------------------------------

    def advance(self, now: int) -> list[ScheduleEvent]:
        """Move to ``now``: report starts, completions and supersessions once each."""
        windows = self._windows(now, freeze=True)
        events: list[ScheduleEvent] = []
        for mrid, entry in sorted(self._entries.items(), key=lambda i: (i[1].start, i[0])):
            if entry.done:
                continue
            own = windows[mrid]
            stop = max((w[1] for w in own.values() if w[0] < w[1]), default=entry.start)
            if not entry.started and any(s <= now < e for s, e in own.values()):
                entry.started = True
                events.append(ScheduleEvent(entry.ref(stop), ResponseStatus.STARTED, now))
            types = entry.types
            if types and all(t in entry.cuts for t in types):
                entry.done, entry.outcome = True, ResponseStatus.SUPERSEDED
            elif now >= entry.end:
                entry.done = True
                entry.outcome = ResponseStatus.COMPLETED if entry.started else None
            if entry.outcome is not None:
                events.append(ScheduleEvent(entry.ref(stop), entry.outcome, now))
        self._prune(now)
        order = {ResponseStatus.RECEIVED: 0, ResponseStatus.STARTED: 2}
        return sorted(events, key=lambda e: order.get(e.status, 1))

    def _prune(self, now: int) -> None:
        """Forget finished controls once no server copy could bring them back.

        A control that ended on its own is kept while a control that has not started yet
        follows it closely enough to be bridged to: the bridge needs it.
        """
        waiting = [e for e in self._entries.values() if not e.done and not e.started]
        for mrid in [m for m, e in self._entries.items() if e.done]:
            entry = self._entries[mrid]
            if _latest_end(entry.control) > now:
                continue
            nominal_end = _nominal(entry.control)[1]
            bridging = entry.stop == entry.end and any(
                min(w.control.start - nominal_end, w.start - entry.end) <= self.gap_bridge_s
                for w in waiting
            )
            if not bridging:
                del self._entries[mrid]

    def _windows(self, now: int, *, freeze: bool) -> dict[str, dict[ControlType, _Window]]:
        """Per control and type, when it applies once supersession has cut it short.

        Controls are taken best-first; a better control that overlaps a worse one
        (nominally and as randomised) ends the worse one's type where it starts,
        or at once if it was due first.
        Nominal overlap is required so back-to-back controls whose random offsets
        happen to overlap are not "superseded".
        """
        result: dict[str, dict[ControlType, _Window]] = {m: {} for m in self._entries}
        for control_type in ControlType:
            members = [e for e in self._entries.values() if control_type in e.types]
            for group in _overlapping_groups(members):
                self._place(control_type, group, now, freeze, result)
        return result

    @staticmethod
    def _place(
        control_type: ControlType,
        group: list[_Entry],
        now: int,
        freeze: bool,
        result: dict[str, dict[ControlType, _Window]],
    ) -> None:
        """Windows for one group of nominally overlapping controls, best first."""
        placed: list[tuple[_Window, _Window]] = []
        for entry in sorted(group, key=lambda e: e.rank):
            c = entry.control
            nominal = _nominal(c)
            own = (entry.start, entry.stop)
            end = min(entry.stop, entry.cuts.get(control_type, _FOREVER))
            for better_nominal, better in placed:
                if _overlap(nominal, better_nominal) and _overlap(own, better):
                    # Superseded from its start if the better one was due first: random
                    # offsets must not let the loser run for a few seconds.
                    due_first = better_nominal[0] <= nominal[0]
                    cut = entry.start if due_first else max(entry.start, better[0])
                    end = min(end, cut)
                    if freeze and cut <= now:
                        entry.cuts[control_type] = min(cut, entry.cuts.get(control_type, _FOREVER))
            window = (entry.start, max(entry.start, end))
            result[c.mrid][control_type] = window
            placed.append((nominal, window))

    # -- answers ------------------------------------------------------------------------

    def selections(self, now: int) -> dict[ControlType, Selection]:
        """The value in force per control type; a missing type means no opinion."""
        windows = self._windows(now, freeze=False)
        result: dict[ControlType, Selection] = {}
        for control_type in ControlType:
            chosen = self._select_control(control_type, now, windows)
            if chosen is None:
                chosen = self._select_fallback(control_type)
            if chosen is not None:
                result[control_type] = chosen
        return result

    def controls(self, now: int) -> Controls:
        """The controls in force at ``now``, as the core's limiter output."""
        return to_controls({t: s.value for t, s in self.selections(now).items()})

    def _select_control(
        self, control_type: ControlType, now: int, windows: dict[str, dict[ControlType, _Window]]
    ) -> Selection | None:
        candidates = [
            (e, w[control_type])
            for e in self._entries.values()
            if control_type in (w := windows[e.control.mrid])
            and w[control_type][0] < w[control_type][1]
        ]
        running = [(e, w) for e, w in candidates if w[0] <= now < w[1]]
        if running:
            entry, window = min(running, key=lambda item: item[0].rank)
            return self._selection(control_type, entry, window, Source.CONTROL)
        # Bridge: the latest control that ended on its own, if the next one is close.
        ended = [(e, w) for e, w in candidates if w[1] <= now and w[1] == e.end]
        upcoming = [(e, w) for e, w in candidates if w[0] > now]
        if not ended or not upcoming:
            return None
        last, last_window = max(ended, key=lambda item: item[1][1])
        following, following_window = min(upcoming, key=lambda item: (item[1][0], item[0].rank))
        nominal_gap = following.control.start - _nominal(last.control)[1]
        actual_gap = following_window[0] - last_window[1]
        if min(nominal_gap, actual_gap) > self.gap_bridge_s:
            return None
        return self._selection(
            control_type, last, (last_window[1], following_window[0]), Source.BRIDGE
        )

    @staticmethod
    def _selection(
        control_type: ControlType, entry: _Entry, window: _Window, source: Source
    ) -> Selection | None:
        value = base_value(entry.control.base, control_type)
        if value is None:
            return None
        c = entry.control
        return Selection(
            control_type, value, source, c.mrid, c.program_mrid, *window, c.base.ramp_tms
        )

    def _select_fallback(self, control_type: ControlType) -> Selection | None:
        for default in self._defaults:
            value = base_value(default.base, control_type)
            if value is not None:
                return Selection(
                    control_type,
                    value,
                    Source.DEFAULT,
                    mrid=default.mrid,
                    program_mrid=default.program_mrid,
                    ramp_tms=default.base.ramp_tms,
                )
        fixed = self.fixed_default.get(control_type)
        return None if fixed is None else Selection(control_type, fixed, Source.FIXED)

    @property
    def defaults(self) -> Controls:
        """The server's default per type (best primacy that sets it), for entities."""
        return to_controls(
            {
                t: next(
                    (v for d in self._defaults if (v := base_value(d.base, t)) is not None), None
                )
                for t in ControlType
            }
        )

    @property
    def set_grad_w(self) -> int | None:
        """The setGradW of the best-primacy default that has one (for the ramp)."""
        return next((d.set_grad_w for d in self._defaults if d.set_grad_w is not None), None)

    def next_control(self, now: int) -> UpcomingControl | None:
        """The next control that will start applying after ``now``."""
        windows = self._windows(now, freeze=False)
        upcoming = [
            e
            for e in self._entries.values()
            if not e.done
            and e.start > now
            and any(s < end for s, end in windows[e.control.mrid].values())
        ]
        if not upcoming:
            return None
        entry = min(upcoming, key=lambda e: (e.start, e.rank))
        c = entry.control
        return UpcomingControl(
            c.mrid, c.program_mrid, entry.start, entry.stop, base_controls(c.base)
        )

    def running(self, now: int) -> list[ControlRef]:
        """Controls that have started and not finished (to opt out of, say)."""
        return [
            e.ref(e.stop)
            for e in self._entries.values()
            if e.started and not e.done and e.start <= now < e.stop
        ]

    # -- persistence --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to keep applying stored controls after a restart (JSON)."""
        return {
            "format": _FORMAT,
            "defaults": [_default_to_dict(d) for d in self._defaults],
            "entries": [
                {
                    "control": _control_to_dict(e.control),
                    "start": e.start,
                    "end": e.end,
                    "cancel_at": e.cancel_at,
                    "cuts": {t.value: at for t, at in e.cuts.items()},
                    "started": e.started,
                    "done": e.done,
                    "outcome": None if e.outcome is None else int(e.outcome),
                }
                for e in self._entries.values()
            ],
        }

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        *,
        fixed_default: Controls | None = None,
        gap_bridge_s: int = DEFAULT_GAP_BRIDGE_S,
        rng: random.Random | None = None,
    ) -> ControlSchedule:
        """Rebuild a schedule saved by :meth:`to_dict`; configuration is given anew."""
        if data.get("format") != _FORMAT:
            raise ValueError(f"unknown schedule format {data.get('format')!r}")
        schedule = cls(fixed_default=fixed_default, gap_bridge_s=gap_bridge_s, rng=rng)
        schedule._defaults = tuple(_default_from_dict(d) for d in data["defaults"])
        for item in data["entries"]:
            outcome = item["outcome"]
            entry = _Entry(
                control=_control_from_dict(item["control"]),
                start=int(item["start"]),
                end=int(item["end"]),
                cancel_at=None if item["cancel_at"] is None else int(item["cancel_at"]),
                cuts={ControlType(t): int(at) for t, at in item["cuts"].items()},
                started=bool(item["started"]),
                done=bool(item["done"]),
                outcome=None if outcome is None else ResponseStatus(outcome),
            )
            schedule._entries[entry.control.mrid] = entry
        return schedule


# -- resource (de)serialisation (JSON-friendly, for persistence only) ------------------


def _base_to_dict(base: DERControlBase) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(base):
        value = getattr(base, f.name)
        out[f.name] = [value.value, value.multiplier] if isinstance(value, ActivePower) else value
    return out


def _base_from_dict(data: dict[str, Any]) -> DERControlBase:
    known = {f.name for f in fields(DERControlBase)}
    values: dict[str, Any] = {
        k: ActivePower(int(v[0]), int(v[1])) if isinstance(v, list) else v
        for k, v in data.items()
        if k in known
    }
    return DERControlBase(**values)


def _control_to_dict(control: DERControl) -> dict[str, Any]:
    out = {f.name: getattr(control, f.name) for f in fields(control)}
    out["status"] = int(control.status)
    out["base"] = _base_to_dict(control.base)
    return out


def _control_from_dict(data: dict[str, Any]) -> DERControl:
    known = {f.name for f in fields(DERControl)}
    values = {k: v for k, v in data.items() if k in known}
    values["status"] = EventStatus(values["status"])
    values["base"] = _base_from_dict(values["base"])
    return DERControl(**values)


def _default_to_dict(default: DefaultDERControl) -> dict[str, Any]:
    out = {f.name: getattr(default, f.name) for f in fields(default)}
    out["base"] = _base_to_dict(default.base)
    return out


def _default_from_dict(data: dict[str, Any]) -> DefaultDERControl:
    known = {f.name for f in fields(DefaultDERControl)}
    values = {k: v for k, v in data.items() if k in known}
    values["base"] = _base_from_dict(values["base"])
    return DefaultDERControl(**values)


def refs(events: Iterable[ScheduleEvent]) -> list[tuple[str, ResponseStatus]]:
    """``(mRID, status)`` of each event, in order: handy for logs and tests."""
    return [(e.control.mrid, e.status) for e in events]
