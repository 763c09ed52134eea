"""A control the schedule knows, and when it applies once better controls cut it short.

An entry keeps what must never be recomputed once drawn or decided: the randomised start
and end, a cancellation, the supersession cuts that took effect, whether it started and how
it ended. Supersession is worked out per control type over these entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..core.controls import ControlType
from .control_base import base_types
from .sep2.codes import EventStatus, ResponseStatus
from .sep2.resources import DERControl

FOREVER = 2**62
"""Later than any server time."""

type Window = tuple[int, int]
"""[start, end) in server seconds."""
type Windows = dict[str, dict[ControlType, Window]]
"""Per control mRID and type, when it applies."""


@dataclass(frozen=True, slots=True)
class ControlRef:
    """What responses need to know about a control."""

    mrid: str
    program_mrid: str | None
    reply_to: str | None
    response_required: int
    end: int
    """When the control stops applying here (effective end)."""


@dataclass(slots=True)
class Entry:
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
        primacy = c.primacy if c.primacy is not None else FOREVER
        return (primacy, c.status == EventStatus.SUPERSEDED, -c.creation_time, c.mrid)

    @property
    def stop(self) -> int:
        """When it stops applying: its end, or its cancellation if that came first."""
        return self.end if self.cancel_at is None else min(self.end, self.cancel_at)

    def ref(self, end: int) -> ControlRef:
        """What responses need, with ``end`` as the effective end."""
        c = self.control
        return ControlRef(c.mrid, c.program_mrid, c.reply_to, c.response_required, end)


def latest_end(control: DERControl) -> int:
    """The latest the control could end whatever the random draw."""
    return (
        control.start
        + control.duration
        + max(control.randomize_start, 0)
        + max(control.randomize_duration, 0)
    )


def nominal(control: DERControl) -> Window:
    """The control's window as the server wrote it, before random offsets."""
    return (control.start, control.start + control.duration)


def _overlap(a: Window, b: Window) -> bool:
    return max(a[0], b[0]) < min(a[1], b[1])


def _overlapping_groups(entries: list[Entry]) -> list[list[Entry]]:
    """Split into runs of nominally overlapping controls: only these can supersede.

    Keeps the pairwise work small when the server publishes a day of
    back-to-back five-minute controls.
    """
    groups: list[list[Entry]] = []
    reach = -FOREVER
    for entry in sorted(entries, key=lambda e: nominal(e.control)):
        start, end = nominal(entry.control)
        if not groups or start >= reach:
            groups.append([])
            reach = end
        groups[-1].append(entry)
        reach = max(reach, end)
    return groups


def effective_windows(entries: Mapping[str, Entry], now: int, *, freeze: bool) -> Windows:
    """Per control and type, when it applies once supersession has cut it short.

    Controls are taken best-first; a better control that overlaps a worse one
    (nominally and as randomised) ends the worse one's type where it starts,
    or at once if it was due first.
    Nominal overlap is required so back-to-back controls whose random offsets
    happen to overlap are not "superseded". ``freeze`` records the cuts that have
    taken effect by ``now`` in the entries.
    """
    result: Windows = {m: {} for m in entries}
    for control_type in ControlType:
        members = [e for e in entries.values() if control_type in e.types]
        for group in _overlapping_groups(members):
            _place(control_type, group, now, freeze, result)
    return result


def _place(
    control_type: ControlType, group: list[Entry], now: int, freeze: bool, result: Windows
) -> None:
    """Windows for one group of nominally overlapping controls, best first."""
    placed: list[tuple[Window, Window]] = []
    for entry in sorted(group, key=lambda e: e.rank):
        c = entry.control
        own_nominal = nominal(c)
        own = (entry.start, entry.stop)
        end = min(entry.stop, entry.cuts.get(control_type, FOREVER))
        for better_nominal, better in placed:
            if _overlap(own_nominal, better_nominal) and _overlap(own, better):
                # Superseded from its start if the better one was due first: random
                # offsets must not let the loser run for a few seconds.
                due_first = better_nominal[0] <= own_nominal[0]
                cut = entry.start if due_first else max(entry.start, better[0])
                end = min(end, cut)
                if freeze and cut <= now:
                    entry.cuts[control_type] = min(cut, entry.cuts.get(control_type, FOREVER))
        window = (entry.start, max(entry.start, end))
        result[c.mrid][control_type] = window
        placed.append((own_nominal, window))
