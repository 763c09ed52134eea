"""Tell frozen meter values from live ones by the meter's own energy counters.

A gateway that lost its meter (a data manager whose RS-485 link dropped) may keep serving the
last values it had. Protocols without a timestamp (SunSpec) make them look fresh. Energy is
power integrated over time, so while the power reading says energy flows, the import or export
counter must move. Counters that stand still while the power reading adds up to well more than
their resolution mean the values are frozen.

The check is built not to fire on a live meter:

- only the direction whose counter the meter has is counted (an export-only site whose import
  counter is missing is never judged on import);
- each step counts the smaller of the two powers around it, and at most ``max_step_s`` of it,
  so a gap between reads never adds energy that may not have flowed;
- the margin is several counter steps plus a fixed amount, and the counters must also have stood
  still for ``min_still_s``, for meters that update their counters less often than their power;
- a meter is judged only once its counters have moved from one change to the next before the
  check would have called them frozen; counters that update rarely (or never) cannot be told
  from frozen ones, so they are left alone, and an interval that would have been called
  frozen stops the judging until a normal one comes again.
"""

from __future__ import annotations

import logging
import math

from .errors import InvalidDeviceDataError

MARGIN_STEPS = 3.0
"""Counter resolutions the still energy must exceed (with MARGIN_WH)."""
MARGIN_WH = 10.0
MIN_STILL_S = 10.0
MAX_STEP_S = 10.0
FLOAT32_MANTISSA_BITS = 24


def float32_step(value: float) -> float:
    """The spacing of float32 numbers around ``value``: a float counter's resolution."""
    if not math.isfinite(value) or value == 0:
        return 0.0
    _, exponent = math.frexp(abs(value))
    return math.ldexp(1.0, exponent - FLOAT32_MANTISSA_BITS)


class FrozenCounterCheck:
    """Watch one meter's power and energy counters, read after read.

    Feed every successful read to :meth:`observe`; it returns the time the counters last
    moved while the values are judged frozen, else None.
    """

    def __init__(
        self,
        *,
        margin_steps: float = MARGIN_STEPS,
        margin_wh: float = MARGIN_WH,
        min_still_s: float = MIN_STILL_S,
        max_step_s: float = MAX_STEP_S,
    ) -> None:
        """Tune the check (the defaults are what the meters use)."""
        self._margin_steps = margin_steps
        self._margin_wh = margin_wh
        self._min_still_s = min_still_s
        self._max_step_s = max_step_s
        self._counters: tuple[float | None, float | None] | None = None
        self._last_time: float | None = None
        self._last_power_w = 0.0
        self._moved_at: float | None = None
        self._seen_move_at: float | None = None
        self._still_wh = 0.0
        self._armed = False
        self._suspect = False
        self._frozen = False
        self._said_no_counters = False

    @property
    def frozen(self) -> bool:
        """True while the last observation was judged frozen."""
        return self._frozen

    @property
    def armed(self) -> bool:
        """True while the counters have shown, from one move to the next, that they keep up."""
        return self._armed

    @property
    def still_wh(self) -> float:
        """Energy the power reading says flowed since the counters last moved."""
        return self._still_wh

    @property
    def moved_at(self) -> float | None:
        """When the counters last moved (or were first read); None before the first read."""
        return self._moved_at

    def margin_wh(self, resolution_wh: float) -> float:
        """Still energy above which counters of this resolution are frozen."""
        return self._margin_steps * max(0.0, resolution_wh) + self._margin_wh

    def observe(
        self,
        now: float,
        power_w: float,
        import_wh: float | None,
        export_wh: float | None,
        resolution_wh: float,
    ) -> float | None:
        """Take one read (+import/-export power, counters); the time data is valid from if frozen.

        ``resolution_wh`` is the coarsest step of the counters as read (scale factor, or a float
        counter's spacing). Missing counters (None) cannot move: their direction is not counted.
        """
        counters = (import_wh, export_wh)
        previous_time = self._last_time
        if self._counters is None or previous_time is None:
            self._counters, self._last_time, self._last_power_w = counters, now, power_w
            self._moved_at = now
            return None
        if counters != self._counters:
            if self._seen_move_at is not None:
                # From one move to this one: did the counters keep up with the power reading?
                self._armed = not self._suspect
            self._counters, self._still_wh = counters, 0.0
            self._moved_at = self._seen_move_at = now
        elif now > previous_time:
            step_s = min(now - previous_time, self._max_step_s)
            flowing_w = 0.0
            if import_wh is not None:
                flowing_w += max(0.0, min(power_w, self._last_power_w))
            if export_wh is not None:
                flowing_w += max(0.0, min(-power_w, -self._last_power_w))
            self._still_wh += flowing_w * step_s / 3600.0
        self._last_time, self._last_power_w = now, power_w
        moved_at = self._moved_at if self._moved_at is not None else now
        self._suspect = now - moved_at >= self._min_still_s and self._still_wh > self.margin_wh(
            resolution_wh
        )
        self._frozen = self._armed and self._suspect
        return moved_at if self._frozen else None

    def fail_if_frozen(
        self, device: str, now: float, power_w: float, energy_wh: float | None, step_wh: float
    ) -> None:
        """Observe an inverter's lifetime energy; raise while its values look frozen.

        The read then fails like a silent device's: the inverter counts at its rating and
        nothing is written to it (the control loop logs that, and its recovery).
        """
        valid_from = self.observe(now, power_w, energy_wh, None, step_wh)
        if valid_from is not None:
            raise InvalidDeviceDataError(
                f"{device}: values look frozen: lifetime energy unchanged for "
                f"{now - valid_from:.0f} s while its power reading adds up to "
                f"{self.still_wh:.0f} Wh"
            )

    def observe_meter(
        self,
        logger: logging.Logger,
        name: str,
        counters: str,
        now: float,
        power_w: float,
        imported: float | None,
        exported: float | None,
        resolution_wh: float,
    ) -> float | None:
        """:meth:`observe` for a site meter, saying what it finds in ``logger``.

        ``counters`` is how the meter's energy readings are named in its log lines ("energy
        counters", "energy totals"): that the meter has none (once), that its values look
        frozen, and that they move again.
        """
        if imported is None and exported is None and not self._said_no_counters:
            self._said_no_counters = True
            logger.warning("%s reports no %s: frozen values cannot be detected", name, counters)
        was_frozen = self._frozen
        valid_from = self.observe(now, power_w, imported, exported, resolution_wh)
        if valid_from is not None and not was_frozen:
            logger.warning(
                "%s values look frozen: %s unchanged for %.0f s while its power reading adds "
                "up to %.0f Wh; its data counts as %.0f s old",
                name,
                counters,
                now - valid_from,
                self.still_wh,
                now - valid_from,
            )
        elif valid_from is None and was_frozen:
            logger.info("%s %s move again: its values are live", name, counters)
        return valid_from
