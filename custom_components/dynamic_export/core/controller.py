"""Turn merged limits and fresh measurements into one command per inverter.

The data flow is: site target from the limits and the meter, then a bounded
increase (decreases apply at once), then a split among the inverters. The
controller is synchronous and keeps only the previous target, so one call is one
decision that tests can check on its own.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from .allocation import AllocationInput, allocate
from .controls import ControlType
from .inverter_lag import InverterLag
from .load_noise import LoadNoise
from .measurements import InverterCommand, InverterReading, MeterReading
from .merge import MergedControls

# Export this close above the limit is measurement and rounding noise, not a breach
# that justifies writing an otherwise negligible reduction.
OVER_LIMIT_TOLERANCE_W = 20.0
# Inverter limits read back this far above the generation limit are float or register
# rounding, not limits to take down.
CEILING_TOLERANCE_W = 1.0
# Under an export limit the target sits this many typical 1 s load changes below
# ``load + limit`` (at most MAX_MARGIN_W), so the load's own flicker rarely carries the
# export over the limit before the next cycle sees it.
MARGIN_SIGMAS = 0.5
MAX_MARGIN_W = 250.0
# While the target that is in force stays between ``load + limit`` (plus the tolerance
# above) and this many typical changes below the margin, it is kept: the inverters are not
# rewritten for every flicker. Wider bands write less and curtail more (see README
# *Performance* for the trade-off measured).
BAND_SIGMAS = 2.0


class ControlState(StrEnum):
    """What the controller is doing this cycle."""

    CONTROLLING = "controlling"
    MONITOR_ONLY = "monitor_only"
    FAIL_SAFE = "fail_safe"


class FailSafeReason(StrEnum):
    """Why the controller fell back to the level that holds whatever the load."""

    NO_METER = "no_meter"
    METER_UNAVAILABLE = "meter_unavailable"
    METER_STALE = "meter_stale"


class Constraint(StrEnum):
    """What set the generation target this cycle."""

    RATING = "rating"
    EXPORT_LIMIT = "export_limit"
    GENERATION_LIMIT = "generation_limit"
    IMPORT_LIMIT = "import_limit"
    ENERGIZE = "energize"
    CONNECT = "connect"
    RAMP = "ramp"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    """Tuning of the controller (all user options)."""

    meter_max_age_s: float = 5.0
    ramp_up_pct_per_s: float = 25.0
    """Largest increase of the site target per second, in % of the total rating."""


@dataclass(frozen=True, slots=True)
class ControlPlan:
    """One decision of the controller."""

    state: ControlState
    generation_target_w: float
    constraint: Constraint
    commands: dict[str, InverterCommand]
    fail_safe_reason: FailSafeReason | None = None
    load_w: float | None = None
    unenforced: dict[ControlType, str] = field(default_factory=dict)
    """Controls asked for that the site cannot enforce, with the reason."""
    over_export_limit: bool = False
    """The site was exporting above its limit when the plan was made."""
    over_generation_limit: bool = False
    """The limits the inverters held (unreachable ones at rating) allowed more than the
    generation limit when the plan was made."""


class Controller:
    """Compute inverter commands from limits and measurements, keeping the last target."""

    def __init__(self, settings: ControllerSettings | None = None) -> None:
        """Start with no history: the first increase ramps from present output."""
        self.settings = settings or ControllerSettings()
        self._previous_target_w: float | None = None
        self._previous_time: float | None = None
        self._previous_constraint: Constraint | None = None
        self._previous_available: frozenset[str] = frozenset()
        self.load_noise = LoadNoise()
        self.inverter_lag = InverterLag()

    def reset(self) -> None:
        """Forget the previous target (after control was off)."""
        self._previous_target_w = None
        self._previous_time = None
        self._previous_constraint = None
        self._previous_available = frozenset()
        self.load_noise.reset()
        self.inverter_lag.reset()

    def compute(
        self,
        merged: MergedControls,
        meter: MeterReading | None,
        inverters: Mapping[str, InverterReading | None],
        ratings: Mapping[str, float],
        now: float,
        *,
        meter_fresh: bool = True,
        not_following: Collection[str] = (),
    ) -> ControlPlan:
        """Decide the commands for the inverters that answered this cycle.

        ``inverters`` maps every configured inverter to its reading, or None when
        it did not answer; ``ratings`` gives the rated power of every inverter whose
        rating is known, so an unreachable one can be accounted for. ``meter_fresh`` is
        False when the meter failed this cycle and ``meter`` is an older reading.
        ``not_following`` names inverters that answer but refused our last write: they
        may produce up to the limit they hold, and the others are given only what is
        left (see :func:`_shares`).
        """
        available = {key: r for key, r in inverters.items() if r is not None}
        rating_available = sum(r.rated_power_w for r in available.values())
        # Output of unreachable inverters is unknown: for a generation limit and for
        # the fail-safe level, count them at their rating, the side that holds. One
        # whose rating was never learnt could produce anything: nothing is left for the
        # others under those limits.
        unreachable = [key for key, r in inverters.items() if r is None]
        rating_unreachable = sum(ratings.get(key, math.inf) for key in unreachable)
        output_w = sum(max(0.0, r.ac_power_w) for r in available.values())
        unenforced: dict[ControlType, str] = {}
        if merged.load_limit is not None:
            unenforced[ControlType.LOAD_LIMIT] = "no controllable load at this site"

        state = ControlState.CONTROLLING
        reason: FailSafeReason | None = None
        load_w: float | None = None
        floor: float | None = None
        over = False
        if meter is None:
            state = ControlState.FAIL_SAFE
            # A configured meter that never answered is unavailable, not missing.
            reason = FailSafeReason.NO_METER if meter_fresh else FailSafeReason.METER_UNAVAILABLE
        elif now - meter.timestamp > self.settings.meter_max_age_s:
            state = ControlState.FAIL_SAFE
            reason = FailSafeReason.METER_STALE if meter_fresh else FailSafeReason.METER_UNAVAILABLE

        target, constraint = rating_available, Constraint.RATING
        over_generation = False
        if merged.generation_limit is not None:
            ceiling_w = sum(r.limit_w for r in available.values()) + rating_unreachable
            over_generation = ceiling_w > merged.generation_limit + CEILING_TOLERANCE_W
            generation_cap = max(0.0, merged.generation_limit - rating_unreachable)
            if generation_cap < target:
                target, constraint = generation_cap, Constraint.GENERATION_LIMIT
        if state is ControlState.FAIL_SAFE:
            # Without a meter the load is unknown: allow only what the export limit
            # permits with no load at all, unreachable inverters counted at rating.
            if merged.export_limit is not None:
                fail_safe_cap = max(0.0, merged.export_limit - rating_unreachable)
                if fail_safe_cap < target:
                    target, constraint = fail_safe_cap, Constraint.EXPORT_LIMIT
            if merged.import_limit is not None:
                unenforced[ControlType.IMPORT_LIMIT] = "site meter unavailable"
        else:
            assert meter is not None
            load_w = output_w + meter.grid_power_w
            if meter_fresh:
                self.load_noise.update(load_w, meter.timestamp)
                self.inverter_lag.observe(output_w, now)
            if merged.export_limit is not None:
                export_cap = self._export_cap(load_w + merged.export_limit)
                over = meter.export_w > merged.export_limit + OVER_LIMIT_TOLERANCE_W
                if export_cap < target:
                    target, constraint = export_cap, Constraint.EXPORT_LIMIT
            if merged.import_limit is not None:
                # Curtailing by X raises import by X: never go so low that import
                # exceeds the import limit (a floor under the target). Both limits
                # are >= 0, so the export limit never contradicts it; only the
                # rating, the generation limit and the ramp can.
                floor = load_w - merged.import_limit
                if floor > target:
                    unenforced[ControlType.IMPORT_LIMIT] = (
                        f"needs {floor:.0f} W of generation, "
                        f"{constraint.value.replace('_', ' ')} allows {target:.0f} W"
                    )
                    floor = target

        target = max(0.0, target)
        # The fail-safe level does not depend on the meter, so a failing meter is
        # no reason to hold below it.
        hold = not meter_fresh and state is not ControlState.FAIL_SAFE
        # Inverters that answer again were never told the target planned without them:
        # their output is already there, so the ramp starts above it, not below.
        returned_w = sum(
            max(0.0, r.ac_power_w)
            for key, r in available.items()
            if key not in self._previous_available
        )
        target, constraint = self._bound_increase(
            target, constraint, output_w, rating_available, now, hold=hold, returned_w=returned_w
        )
        if floor is not None and not hold and target < floor:
            # The ramp smooths increases but must not leave the site importing
            # above its limit.
            target, constraint = floor, Constraint.IMPORT_LIMIT
        if not merged.energize:
            target, constraint = 0.0, Constraint.ENERGIZE
        if not merged.connect:
            target, constraint = 0.0, Constraint.CONNECT
        commanded = target
        if state is ControlState.CONTROLLING and meter_fresh and self._previous_time is not None:
            # A large cut is commanded a little deeper for one cycle, so the inverters' own
            # lag does not keep the site above its limit (see ``core.inverter_lag``).
            commanded = self.inverter_lag.command(
                target,
                output_w,
                now,
                cycle_s=now - self._previous_time,
                min_cut_w=3.0 * self.load_noise.sigma_w,
            )
        self._previous_target_w = target
        self._previous_time = now
        self._previous_constraint = constraint
        self._previous_available = frozenset(available)

        shares = _shares(commanded, available, not_following)
        commands = {
            # De-energized is ceasing to energize, not a 0 % limit (still synchronised and
            # operating): the inverters stop as when disconnected (CSIP-AUS ALL-11, ALL-26).
            key: InverterCommand(
                connect=merged.connect and merged.energize,
                limit_pct=_percent(shares[key], available[key].rated_power_w),
            )
            for key in available
        }
        return ControlPlan(
            state=state,
            generation_target_w=target,
            constraint=constraint,
            commands=commands,
            fail_safe_reason=reason,
            load_w=load_w,
            unenforced=unenforced,
            over_export_limit=over,
            over_generation_limit=over_generation,
        )

    def _export_cap(self, ceiling_w: float) -> float:
        """The most generation the export limit allows this cycle.

        ``ceiling_w`` (load + limit) puts the export exactly at the limit. The cap sits a
        noise-sized margin below it; the cap of the last cycle is kept while it stays
        within a band below the ceiling, so a flickering load does not rewrite the inverters
        every second (and a kept target is never above the ceiling).
        """
        sigma = self.load_noise.sigma_w
        cap = ceiling_w - min(MARGIN_SIGMAS * sigma, MAX_MARGIN_W)
        previous = self._previous_target_w
        if (
            previous is not None
            and self._previous_constraint is Constraint.EXPORT_LIMIT
            and cap - BAND_SIGMAS * sigma <= previous <= ceiling_w + OVER_LIMIT_TOLERANCE_W
        ):
            return previous
        return cap

    def _bound_increase(
        self,
        target: float,
        constraint: Constraint,
        output_w: float,
        rating_w: float,
        now: float,
        *,
        hold: bool,
        returned_w: float = 0.0,
    ) -> tuple[float, Constraint]:
        """Let the target rise by at most the ramp rate; never hold back a decrease.

        ``returned_w`` is the output of inverters that were unreachable last cycle: the
        previous target did not include it, so the rise is counted from above it.
        """
        previous = self._previous_target_w
        if previous is None or self._previous_time is None:
            previous, elapsed = output_w, 1.0
        else:
            previous += returned_w
            elapsed = max(0.0, now - self._previous_time)
        if target <= previous:
            return target, constraint
        if hold:
            return previous, Constraint.HOLD
        step = self.settings.ramp_up_pct_per_s / 100.0 * rating_w * elapsed
        if target > previous + step:
            return previous + step, Constraint.RAMP
        return target, constraint


def _percent(share_w: float, rated_power_w: float) -> float:
    if rated_power_w <= 0 or not math.isfinite(share_w):
        return 0.0
    return min(100.0, max(0.0, 100.0 * share_w / rated_power_w))


def _shares(
    target: float, available: Mapping[str, InverterReading], not_following: Collection[str]
) -> dict[str, float]:
    """Split ``target`` so it holds even while some inverters refuse their limits.

    An inverter that refuses our writes may go on producing up to the limit it holds (or
    its output, if more). The others share only what that leaves, so the target holds
    whatever it does; the refusing one is still sent the share a full split would give it,
    capped at that ceiling, so the total holds too on the cycle it starts to take limits.
    """
    inputs = [
        AllocationInput(key, r.rated_power_w, r.ac_power_w, r.limit_w)
        for key, r in available.items()
    ]
    full = allocate(target, inputs)
    stuck = {
        key: max(r.ac_power_w, r.limit_w) for key, r in available.items() if key in not_following
    }
    if not stuck:
        return full
    following = [i for i in inputs if i.key not in stuck]
    shares = allocate(max(0.0, target - sum(stuck.values())), following)
    shares.update({key: min(full[key], ceiling) for key, ceiling in stuck.items()})
    return shares
