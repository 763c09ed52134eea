"""Which DERControl applies now, per control type, and what the server must be told.

Fed with every program on every poll and asked about one instant at a time.
Time is server-time Unix seconds, passed in; randomness comes from an injected
``random.Random``, so the same inputs always give the same schedule. How better
controls cut others short is in ``entries``, the choice per control type in ``selection``.

Where this deliberately differs from open-dynamic-export:

* a superseded control stops the moment its superseder starts, instead of
  running on to its own end; one the server marks superseded (EventStatus 4) never
  starts, and a running one stops at once;
* cancel-with-randomisation ends a running control at a random time;
* a gap of a few seconds between consecutive controls holds the earlier value
  rather than dropping to the default and ramping back.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from ..core.controls import Controls, ControlType
from .control_base import base_controls, base_value, to_controls
from .entries import ControlRef, Entry, effective_windows, latest_end, nominal
from .selection import Selection, select_control, select_fallback
from .sep2.codes import EventStatus, ResponseStatus
from .sep2.resources import DefaultDERControl, DERControl, DERControlBase, DERProgram
from .sep2.units import ActivePower

DEFAULT_GAP_BRIDGE_S = 10
"""Largest gap between consecutive controls held at the earlier value (ODE #75)."""

_FORMAT = 1
_CANCELLED = (EventStatus.CANCELLED, EventStatus.CANCELLED_WITH_RANDOMIZATION)


@dataclass(frozen=True, slots=True)
class ScheduleEvent:
    """A transition the server may need a Response for."""

    control: ControlRef
    status: ResponseStatus
    at: int


@dataclass(frozen=True, slots=True)
class UpcomingControl:
    """The next control due to start (for entities)."""

    mrid: str
    program_mrid: str | None
    start: int
    end: int
    controls: Controls


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
        self._entries: dict[str, Entry] = {}
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
            if latest_end(control) <= now:
                return events
            start = control.start + self._draw(control.randomize_start)
            end = max(start, start + control.duration + self._draw(control.randomize_duration))
            entry = Entry(control, start, end)
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
        elif control.status == EventStatus.SUPERSEDED and not entry.done:
            # The server says another event replaced it: it never starts (a running one
            # stops now) and is answered "superseded", as for one we found superseded.
            # An empty window also keeps it from cutting short the controls it would beat.
            entry.cancel_at = now if entry.started else entry.start
            entry.done, entry.outcome = True, ResponseStatus.SUPERSEDED
            events.append(ScheduleEvent(entry.ref(entry.stop), ResponseStatus.SUPERSEDED, now))
        return events

    # -- time ---------------------------------------------------------------------------

    def advance(self, now: int) -> list[ScheduleEvent]:
        """Move to ``now``: report starts, completions and supersessions once each."""
        windows = effective_windows(self._entries, now, freeze=True)
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
            if latest_end(entry.control) > now:
                continue
            nominal_end = nominal(entry.control)[1]
            bridging = entry.stop == entry.end and any(
                min(w.control.start - nominal_end, w.start - entry.end) <= self.gap_bridge_s
                for w in waiting
            )
            if not bridging:
                del self._entries[mrid]

    # -- answers ------------------------------------------------------------------------

    def selections(self, now: int) -> dict[ControlType, Selection]:
        """The value in force per control type; a missing type means no opinion."""
        windows = effective_windows(self._entries, now, freeze=False)
        result: dict[ControlType, Selection] = {}
        for control_type in ControlType:
            chosen = select_control(
                control_type, self._entries.values(), windows, now, gap_bridge_s=self.gap_bridge_s
            )
            if chosen is None:
                chosen = select_fallback(control_type, self._defaults, self.fixed_default)
            if chosen is not None:
                result[control_type] = chosen
        return result

    def controls(self, now: int) -> Controls:
        """The controls in force at ``now``, as the core's limiter output."""
        return to_controls({t: s.value for t, s in self.selections(now).items()})

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
        windows = effective_windows(self._entries, now, freeze=False)
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
            entry = Entry(
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


def _fields_of(resource: Any) -> dict[str, Any]:
    return {f.name: getattr(resource, f.name) for f in fields(resource)}


def _known(cls: type[Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """The items of ``data`` that are fields of ``cls`` (a newer save may hold more)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _base_to_dict(base: DERControlBase) -> dict[str, Any]:
    return {
        name: [value.value, value.multiplier] if isinstance(value, ActivePower) else value
        for name, value in _fields_of(base).items()
    }


def _base_from_dict(data: dict[str, Any]) -> DERControlBase:
    values: dict[str, Any] = {
        k: ActivePower(int(v[0]), int(v[1])) if isinstance(v, list) else v
        for k, v in _known(DERControlBase, data).items()
    }
    return DERControlBase(**values)


def _control_to_dict(control: DERControl) -> dict[str, Any]:
    out = _fields_of(control)
    out["status"] = int(control.status)
    out["base"] = _base_to_dict(control.base)
    return out


def _control_from_dict(data: dict[str, Any]) -> DERControl:
    values = _known(DERControl, data)
    values["status"] = EventStatus(values["status"])
    values["base"] = _base_from_dict(values["base"])
    return DERControl(**values)


def _default_to_dict(default: DefaultDERControl) -> dict[str, Any]:
    out = _fields_of(default)
    out["base"] = _base_to_dict(default.base)
    return out


def _default_from_dict(data: dict[str, Any]) -> DefaultDERControl:
    values = _known(DefaultDERControl, data)
    values["base"] = _base_from_dict(values["base"])
    return DefaultDERControl(**values)


def refs(events: Iterable[ScheduleEvent]) -> list[tuple[str, ResponseStatus]]:
    """``(mRID, status)`` of each event, in order: handy for logs and tests."""
    return [(e.control.mrid, e.status) for e in events]
