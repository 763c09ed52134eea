"""What a site's configured devices can really enforce, for advertising to a utility.

A utility server trusts what the site claims (IEEE 2030.5 DERCapability), so the claim is
derived from the devices, never assumed. The rules:

* connect / energize: every configured inverter must open its relay or power off when told
  to (``Inverter.supports_connect``). One that cannot keeps generating, so the site as a
  whole would not be disconnected; a 0 % limit through an entity is not a disconnection.
* generation limit: inverters that limit their own output; the cycle caps generation from
  the inverters alone. A device that only caps feed-in at its grid point (a Victron GX's ESS
  maximum feed-in, ``limits_generation`` False) cannot hold generation below the load.
* export and import limits: inverters and a site meter; both are measured at the grid
  connection point, which only the meter sees (without it the loop is in fail-safe).
* load limit: only for a site with controllable load, which no device kind provides yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .controls import ControlType
from .devices import Inverter, SiteMeter


@dataclass(frozen=True, slots=True)
class SiteCapability:
    """The site's devices in the terms a utility asks about."""

    rated_w: float
    """Sum of the inverters' known ratings (0 while none is known)."""
    inverters: int
    has_meter: bool
    can_connect: bool
    """True when every inverter disconnects on ``connect=False`` (and there is one)."""
    can_energize: bool
    """True when every inverter stops energising on ``energize=False`` (and there is one)."""
    controllable_load: bool = False
    can_limit_generation: bool = True
    """True when every inverter limits its own output (not only its feed-in)."""

    @property
    def controls(self) -> frozenset[ControlType]:
        """The controls the devices can hold (see the module docstring for the rules)."""
        out: set[ControlType] = set()
        if self.can_connect:
            out.add(ControlType.CONNECT)
        if self.can_energize:
            out.add(ControlType.ENERGIZE)
        if self.inverters:
            if self.can_limit_generation:
                out.add(ControlType.GENERATION_LIMIT)
            if self.has_meter:
                out |= {ControlType.EXPORT_LIMIT, ControlType.IMPORT_LIMIT}
        if self.controllable_load and self.has_meter:
            out.add(ControlType.LOAD_LIMIT)
        return frozenset(out)


def site_capability(
    *,
    meter: SiteMeter | None,
    inverters: Mapping[str, Inverter],
    ratings: Mapping[str, float],
) -> SiteCapability:
    """The capability of a site with these devices (e.g. a ControlLoop's fields).

    Cheap: call it whenever the capability is reported, so a change of devices or of a
    learnt rating shows at the next report.
    """
    relays = bool(inverters) and all(inv.supports_connect for inv in inverters.values())
    # Optional on the Inverter protocol: only a device that caps feed-in says False.
    generation = all(getattr(inv, "limits_generation", True) for inv in inverters.values())
    return SiteCapability(
        rated_w=sum(w for key, w in ratings.items() if key in inverters and w > 0),
        inverters=len(inverters),
        has_meter=meter is not None,
        can_connect=relays,
        can_energize=relays,
        can_limit_generation=generation,
    )
