"""How much each inverter could produce now, curtailed or not: for automations that want solar.

An EV charger or a water heater started on power the site is curtailing costs nothing, but a
curtailed inverter only shows what its limit lets through. The estimate takes, in order of
trust: what the inverter reports (SunSpec model 122 ``WAval``, a vendor equivalent); its
output when it is not at its limit (it produces all it has); the output per rated watt of
the inverters that are not at their limit (same sun, scaled to this one's rating); its own
output the last time it was not at its limit, for a few minutes; and otherwise its output, a
lower bound. The method is reported with every figure. Nothing here ever raises a limit to
find out: that would export above the limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from .measurements import InverterReading

AT_LIMIT_MARGIN_W = 50.0
"""Output within this of the limit counts as held there (at least this, or ``AT_LIMIT_SHARE``)."""

AT_LIMIT_SHARE = 0.02
"""… or this share of the rating, for large inverters whose output wanders more."""

RECENT_MAX_AGE_S = 300.0
"""How long an inverter's last output off its limit stands for what it could do now."""


class Method(StrEnum):
    """How an available-power figure was found, most trusted first."""

    REPORTED = "reported"
    NOT_LIMITED = "not_limited"
    SIBLINGS = "siblings"
    RECENT = "recent"
    AT_LEAST = "at_least"


TRUST = tuple(Method)
"""Methods by trust; a site figure is as trustworthy as its least trusted part."""


@dataclass(frozen=True, slots=True)
class AvailablePower:
    """What one inverter (or the site) could produce now, and how that was found."""

    watts: float
    method: Method
    age_s: float | None = None
    """For ``recent``: how old the output it stands on is."""


def held_at_limit(reading: InverterReading) -> bool:
    """True when the output is at the limit, so the limit may hide what the panels have."""
    margin = max(AT_LIMIT_MARGIN_W, AT_LIMIT_SHARE * reading.rated_power_w)
    return reading.ac_power_w >= reading.limit_w - margin


class AvailablePowerEstimator:
    """Estimates every inverter's available power each cycle; remembers recent free output."""

    def __init__(self) -> None:
        self._free_output: dict[str, tuple[float, float]] = {}
        """Per inverter: its latest output while not at its limit, and when."""

    def estimate(
        self, now: float, readings: Mapping[str, InverterReading | None]
    ) -> dict[str, AvailablePower]:
        """The figure of each inverter that answered (see the module's order of trust)."""
        answered = {k: r for k, r in readings.items() if r is not None and r.rated_power_w > 0}
        free = {k: r for k, r in answered.items() if not held_at_limit(r)}
        for key, reading in free.items():
            self._free_output[key] = (reading.ac_power_w, now)
        free_rating = sum(r.rated_power_w for r in free.values())
        per_rated_watt = (
            sum(max(0.0, r.ac_power_w) for r in free.values()) / free_rating
            if free_rating > 0
            else None
        )
        estimates: dict[str, AvailablePower] = {}
        for key, reading in answered.items():
            estimates[key] = self._estimate_one(key, reading, now, per_rated_watt)
        return estimates

    def _estimate_one(
        self, key: str, reading: InverterReading, now: float, per_rated_watt: float | None
    ) -> AvailablePower:
        output = max(0.0, reading.ac_power_w)
        rating = reading.rated_power_w
        if reading.available_w is not None and reading.available_w >= 0:
            return AvailablePower(min(rating, max(output, reading.available_w)), Method.REPORTED)
        if not held_at_limit(reading):
            return AvailablePower(output, Method.NOT_LIMITED)
        if per_rated_watt is not None:
            return AvailablePower(
                min(rating, max(output, per_rated_watt * rating)), Method.SIBLINGS
            )
        last = self._free_output.get(key)
        if last is not None and now - last[1] <= RECENT_MAX_AGE_S:
            return AvailablePower(min(rating, max(output, last[0])), Method.RECENT, now - last[1])
        return AvailablePower(output, Method.AT_LEAST)


def site_available_power(estimates: Mapping[str, AvailablePower]) -> AvailablePower | None:
    """The sum over the inverters, as trusted as the least trusted of them (None: no figure)."""
    if not estimates:
        return None
    least = max((e.method for e in estimates.values()), key=TRUST.index)
    return AvailablePower(sum(e.watts for e in estimates.values()), least)
