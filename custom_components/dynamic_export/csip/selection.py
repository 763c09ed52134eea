"""The value in force for one control type, and where it comes from.

A running control wins (best rank first); right after a control that ended on its own, a
short gap before the next one is bridged with the earlier value rather than dropping to the
default and ramping back; otherwise the server's default applies, then the caller's fixed one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from ..core.controls import Controls, ControlType
from .control_base import base_value
from .entries import Entry, Window, Windows, nominal
from .sep2.resources import DefaultDERControl


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


def select_control(
    control_type: ControlType,
    entries: Iterable[Entry],
    windows: Windows,
    now: int,
    *,
    gap_bridge_s: int,
) -> Selection | None:
    """The running control for ``control_type``, or a bridge to the next one; else None."""
    candidates = [
        (e, w[control_type])
        for e in entries
        if control_type in (w := windows[e.control.mrid])
        and w[control_type][0] < w[control_type][1]
    ]
    running = [(e, w) for e, w in candidates if w[0] <= now < w[1]]
    if running:
        entry, window = min(running, key=lambda item: item[0].rank)
        return _selection(control_type, entry, window, Source.CONTROL)
    # Bridge: the latest control that ended on its own, if the next one is close.
    ended = [(e, w) for e, w in candidates if w[1] <= now and w[1] == e.end]
    upcoming = [(e, w) for e, w in candidates if w[0] > now]
    if not ended or not upcoming:
        return None
    last, last_window = max(ended, key=lambda item: item[1][1])
    following, following_window = min(upcoming, key=lambda item: (item[1][0], item[0].rank))
    nominal_gap = following.control.start - nominal(last.control)[1]
    actual_gap = following_window[0] - last_window[1]
    if min(nominal_gap, actual_gap) > gap_bridge_s:
        return None
    return _selection(control_type, last, (last_window[1], following_window[0]), Source.BRIDGE)


def _selection(
    control_type: ControlType, entry: Entry, window: Window, source: Source
) -> Selection | None:
    value = base_value(entry.control.base, control_type)
    if value is None:
        return None
    c = entry.control
    return Selection(control_type, value, source, c.mrid, c.program_mrid, *window, c.base.ramp_tms)


def select_fallback(
    control_type: ControlType, defaults: Sequence[DefaultDERControl], fixed_default: Controls
) -> Selection | None:
    """The best-primacy server default that sets ``control_type``, else the fixed one."""
    for default in defaults:
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
    fixed = fixed_default.get(control_type)
    return None if fixed is None else Selection(control_type, fixed, Source.FIXED)


def fixed_selections(fixed_default: Controls) -> dict[ControlType, Selection]:
    """The caller's fixed values alone, for when nothing from the server may apply."""
    return {
        t: Selection(t, value, Source.FIXED)
        for t in ControlType
        if (value := fixed_default.get(t)) is not None
    }
