"""Ramping a watt limit when the value the schedule asks for changes.

2030.5 ``rampTms`` is the time, in hundredths of a second, to move from the
current setting to the new one (3000 means 30 s). Without it the DER's default
gradient applies: DefaultDERControl ``setGradW`` in hundredths of a percent of
rated power per second, or AS/NZS 4777.2's 16.67 %/min when the server gives
none. ``setGradW`` 0 means "no ramp limit", and so does an unknown rating.

Both directions ramp, as CSIP-AUS expects (the limit rises at the gradient
when a tighter control ends). The one rule that matters most for compliance: a
downward ramp starts from, and keeps following, the lower of the limit and what
the site actually does, so a high old limit (say 200 % of rating) never leaves
the site unlimited while the limit value slides down through empty headroom.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..core.controls import WATT_CONTROLS, Controls, ControlType

AS4777_GRAD_W = 10000 / 6 / 60
"""16.67 %/min as hundredths of a percent per second (≈ 27.8)."""


def ramp_rate_w_per_s(
    distance_w: float, *, rated_w: float | None, ramp_tms: int | None, set_grad_w: int | None
) -> float | None:
    """Watts per second for a ramp covering ``distance_w``; None means jump at once."""
    if ramp_tms is not None:
        seconds = ramp_tms / 100.0
        return distance_w / seconds if seconds > 0 and distance_w > 0 else None
    grad = AS4777_GRAD_W if set_grad_w is None else float(set_grad_w)
    if grad <= 0 or rated_w is None or rated_w <= 0:
        return None
    return grad / 10000.0 * rated_w


@dataclass(slots=True)
class LimitRamp:
    """One ramped watt limit; ``value`` is the limit in effect (None: unlimited).

    A removed limit (target None) rises at the ramp rate to the DER's rating
    and only then disappears; an appearing limit starts from the present
    measured value, so it bites at once and slides down to the target.
    """

    value: float | None = None
    target: float | None = None
    rate: float | None = None
    last: float | None = None

    def step(
        self,
        now: float,
        target: float | None,
        *,
        present_w: float | None,
        rated_w: float | None,
        ramp_tms: int | None = None,
        set_grad_w: int | None = None,
    ) -> float | None:
        """Advance to ``now`` towards ``target`` and return the limit to apply.

        ``present_w`` is what the site does now for this quantity (export for
        the export limit, and so on); ``rated_w`` the DER's rated power;
        ``ramp_tms`` the rampTms of the mode now in force, if it has one.
        """
        elapsed = 0.0 if self.last is None else max(0.0, now - self.last)
        self.last = now
        self._move(elapsed, present_w, rated_w)
        if target != self.target:
            self._begin(target, present_w, rated_w, ramp_tms, set_grad_w)
        return self.value

    def _begin(
        self,
        target: float | None,
        present_w: float | None,
        rated_w: float | None,
        ramp_tms: int | None,
        set_grad_w: int | None,
    ) -> None:
        self.target = target
        current = self.value
        goal: float
        if target is None:
            if current is None or rated_w is None or current >= rated_w:
                self.value, self.rate = None, None
                return
            start, goal = current, rated_w
        elif current is None:
            start = present_w if present_w is not None and present_w > target else target
            goal = target
        elif target < current and present_w is not None:
            start, goal = max(target, min(current, present_w)), target
        else:
            start, goal = current, target
        self.value = start
        self.rate = ramp_rate_w_per_s(
            abs(goal - start), rated_w=rated_w, ramp_tms=ramp_tms, set_grad_w=set_grad_w
        )
        if self.rate is None:
            self.value = target

    def _move(self, elapsed: float, present_w: float | None, rated_w: float | None) -> None:
        value, target, rate = self.value, self.target, self.rate
        if value is None or rate is None:
            self.value = target
        elif target is None:
            value += rate * elapsed
            self.value = None if rated_w is None or value >= rated_w else value
        elif value < target:
            self.value = min(target, value + rate * elapsed)
        elif value > target:
            value = max(target, value - rate * elapsed)
            self.value = value if present_w is None else max(target, min(value, present_w))


class ControlRamps:
    """A :class:`LimitRamp` per watt control; connect and energize pass straight."""

    def __init__(self) -> None:
        """Start with no limit in effect."""
        self.ramps = {t: LimitRamp() for t in WATT_CONTROLS}

    def step(
        self,
        now: float,
        controls: Controls,
        *,
        present_w: Mapping[ControlType, float | None],
        rated_w: float | None,
        ramp_tms: Mapping[ControlType, int | None] | None = None,
        set_grad_w: int | None = None,
    ) -> Controls:
        """Ramp every watt limit of ``controls`` and return what to apply now."""
        tms = ramp_tms or {}
        out: dict[ControlType, float | None] = {}
        for control_type, ramp in self.ramps.items():
            target = controls.get(control_type)
            out[control_type] = ramp.step(
                now,
                None if target is None else float(target),
                present_w=present_w.get(control_type),
                rated_w=rated_w,
                ramp_tms=tms.get(control_type),
                set_grad_w=set_grad_w,
            )
        return Controls(
            connect=controls.connect,
            energize=controls.energize,
            export_limit=out[ControlType.EXPORT_LIMIT],
            generation_limit=out[ControlType.GENERATION_LIMIT],
            import_limit=out[ControlType.IMPORT_LIMIT],
            load_limit=out[ControlType.LOAD_LIMIT],
        )
