"""Which reference procedures apply to this integration's site, and why the others do not.

A site without storage, reporting its inverters as one DER under one EndDevice, polling
(no subscriptions), with no tariffs. Every procedure of the installed
``cactus-test-definitions`` is either run or listed here with its reason; a procedure the
package adds later runs by default (and fails loudly on anything the runner does not know).
"""

from __future__ import annotations

from cactus_test_definitions.client.test_procedures import (
    TestProcedure,
    TestProcedureId,
    get_test_procedure,
)

STORAGE = "storage: the site has no battery (DER-STO/STO classes)"
PRICES = "tariffs and prices: the client does not read TariffProfiles (PRC class)"
SUBSCRIPTIONS = (
    "subscriptions and notifications: the client polls every list at its pollRate and "
    "never subscribes (S-G/S-L classes)"
)
DEVICE_DR = (
    "a directly controlled demand-response device (DR-* classes): the integration controls "
    "a site through its grid meter, not a single appliance"
)

BY_CLASS: dict[str, str] = {
    "STO": STORAGE,
    "DER-STO": STORAGE,
    "PRC": PRICES,
    "S-G": SUBSCRIPTIONS,
    "S-L": SUBSCRIPTIONS,
    "DR-D": DEVICE_DR,
    "DR-L": DEVICE_DR,
    "DR-G": DEVICE_DR,
}
"""A class of the procedure that makes it not apply."""

BY_ID: dict[str, str] = {
    "DRA-01": DEVICE_DR,
    "LOA-01": (
        "a DER that consumes: its preconditions want the DER's own active power between "
        "-105 % and -50 % of its rating (a load or a battery charging); solar inverters "
        "only generate. LOA-03, LOA-09 and LOA-13 cover import limits on this site"
    ),
    "MUL-01": (
        "several DERs under one EndDevice: the site reports its inverters together as one "
        "DER (DER 1), so it has no per-DER status to change"
    ),
    "MUL-02": (
        "several DERs under one EndDevice: the site posts one DER usage point for all its inverters"
    ),
    "MUL-03": "several DERs under one EndDevice, each with its own DERSettings",
    "P-01": "an aggregator certificate with several EndDevices (end-device-count)",
    "SDVN-01": (
        "service discovery (.well-known/csipaus) and proxied routes: the client is "
        "configured with its DeviceCapability URL"
    ),
}
"""Procedures that do not apply, by id."""


GAPS: dict[str, str] = {}
"""Procedures that apply but are not run yet: the gap, named."""


def all_ids() -> list[str]:
    """Every client procedure id of the installed package, in its order."""
    return [str(pid) for pid in TestProcedureId]


def load(pid: str) -> TestProcedure:
    """The procedure as the package defines it."""
    return get_test_procedure(TestProcedureId(pid))


def not_applicable(pid: str) -> str | None:
    """Why the procedure does not apply to this site, or is not run (``None``: it runs)."""
    if pid in GAPS:
        return GAPS[pid]
    if pid in BY_ID:
        return BY_ID[pid]
    for cls in load(pid).classes:
        if cls in BY_CLASS:
            return BY_CLASS[cls]
    return None
