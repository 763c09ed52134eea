"""The conformance table: what each reference procedure gives on this site, as the tests assert.

:data:`EXPECTED` holds, for every procedure that applies, what ``test_procedures.py``
asserts of its run: the protocol result (its criteria pass, or it is a known defect,
xfail(strict)), the physical result, which WARNING lines are the procedure's own doing,
and what the run does not cover. Procedures that do not apply are listed with the reason
from ``procedures.py``. ``test_conformance.py`` checks every procedure of the installed
``cactus-test-definitions`` is in one or the other and that the README's *CSIP-AUS*
conformance table is this one, rendered by ``python -m tests.csip.cactus.conformance``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .procedures import GAPS, all_ids, load, not_applicable

README_START = "<!-- cactus-conformance:start -->"
README_END = "<!-- cactus-conformance:end -->"

HELD = "held"
HELD_AS_SOLAR_CAN = (
    "held as far as solar can: the import cap is below the load less all the solar, so the "
    "site generates all it has (and says it cannot hold the cap)"
)
NO_CAP = "not exercised: no limit was in force before the procedure ended"

COMMS_LOSS = ("CSIP-AUS",)
"""Warnings the client logs while the server answers HTTP 500 (communications lost)."""
IMPORT_UNHELD = ("cannot hold the utility's import limit",)


@dataclass(frozen=True, slots=True)
class Expected:
    """What one procedure's run must give."""

    physical: str = HELD
    defect: str | None = None
    """A known defect the procedure exposes: its test is xfail(strict) naming it."""
    warnings: tuple[str, ...] = ()
    """Substrings of the WARNING lines the procedure itself provokes (no others allowed)."""
    not_covered: str = ""
    never_imports: bool = False
    """The site exports throughout (asserted): its import caps are never approached."""
    loop_debug: bool = True
    """Run with the event loop's debug mode (as every test here, by the HA test plugin).
    Off only for the 72-hour soak: the source traceback it takes of every task and
    callback is most of the soak's CPU, and the other procedures run the same code with
    it on."""


LOAD_BELOW_SOLAR = (
    "the test load (at most 20 % of the rating) stays below the solar, so the import caps "
    "are held by generating; LOA-03 and LOA-09 load the site beyond its solar"
)
EXPORTS_THROUGHOUT = (
    "import caps: the procedure assumes a DER that consumes; this solar site exports "
    "throughout, so they are never approached"
)
LOAD_LIMIT = (
    "load limits (opModLoadLimW): a solar-only site has no controllable load and reports "
    "them as not enforced, so they get no physical check"
)

RATE_LIMITED = ("HTTP 429",)
"""The client logs each rate-limited request."""
REQUEST_COUNT = (
    "resource-requests counts as the reference runner does: every request for a "
    "DERControlList or DERControl path (/edev/*/derp/*/derc, /edev/*/derp/*/derc/*, each "
    "page and any method) from the test's creation to its finish, whatever the answer (the "
    "forced 429s count); the 429 is forced from the request that triggers the step for "
    "duration_seconds"
)


EXPECTED: dict[str, Expected] = {
    "ALL-01": Expected(NO_CAP),
    "ALL-02": Expected(NO_CAP),
    "ALL-03": Expected(NO_CAP),
    "ALL-03-REJ": Expected(NO_CAP, warnings=("registration PIN differs",)),
    "ALL-04": Expected(),
    "ALL-05": Expected(NO_CAP, warnings=("offers no Registration",)),
    "ALL-06": Expected(),
    "ALL-07": Expected(
        NO_CAP, not_covered="the AC isolator is modelled as the inverter off the grid"
    ),
    "ALL-08": Expected(NO_CAP, not_covered="'power source at 0 W' is the PV giving nothing"),
    "ALL-09": Expected(NO_CAP),
    "ALL-10": Expected(),
    "ALL-11": Expected(),
    "ALL-12": Expected(),
    "ALL-13": Expected(),
    "ALL-18": Expected(),
    "ALL-19": Expected(),
    "ALL-20": Expected(),
    "ALL-21": Expected(),
    "ALL-22": Expected(
        not_covered=(
            "randomised starts are judged by the reference only by inspection; the physical "
            "check widens its window by the randomisation"
        )
    ),
    "ALL-23": Expected(warnings=COMMS_LOSS),
    "ALL-24": Expected(),
    "ALL-25": Expected(),
    "ALL-25-EXT": Expected(loop_debug=False),
    "ALL-26": Expected(),
    "ALL-27": Expected(),
    "ALL-28": Expected(),
    "ALL-29": Expected(),
    "ALL-30": Expected(
        warnings=COMMS_LOSS,
        not_covered=(
            "the power cycle is a Home Assistant restart with the stored state while the "
            "server answers HTTP 500 (the reference's communications loss)"
        ),
    ),
    "ALT-ALL-29": Expected(),
    "ALT-LOA-13": Expected(not_covered=LOAD_BELOW_SOLAR),
    "GEN-01": Expected(),
    "GEN-02": Expected(),
    "GEN-03": Expected(),
    "GEN-04": Expected(),
    "GEN-09": Expected(),
    "GEN-10": Expected(),
    "GEN-11": Expected(),
    "GEN-12": Expected(),
    "GEN-13": Expected(),
    "LOA-02": Expected(not_covered=LOAD_LIMIT),
    "LOA-03": Expected(HELD_AS_SOLAR_CAN, warnings=IMPORT_UNHELD),
    "LOA-04": Expected(not_covered=LOAD_LIMIT),
    "LOA-09": Expected(HELD_AS_SOLAR_CAN, warnings=IMPORT_UNHELD),
    "LOA-10": Expected(not_covered=EXPORTS_THROUGHOUT, never_imports=True),
    "LOA-11": Expected(not_covered=EXPORTS_THROUGHOUT, never_imports=True),
    "LOA-12": Expected(not_covered=EXPORTS_THROUGHOUT, never_imports=True),
    "LOA-13": Expected(not_covered=LOAD_BELOW_SOLAR),
    "P-02": Expected(),
    "P-03": Expected(),
    "P-04": Expected(),
    "P-05": Expected(warnings=RATE_LIMITED, not_covered=REQUEST_COUNT),
    "P-06": Expected(warnings=RATE_LIMITED, not_covered=REQUEST_COUNT),
}
"""Every procedure that applies, and what its run gives (see the module doc)."""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The README table."""
    rows = [
        "| procedure | what it tests | procedure-driven test | physical | not covered, and why |",
        "| --- | --- | --- | --- | --- |",
    ]
    for pid in all_ids():
        description = _cell(load(pid).description)
        reason = not_applicable(pid)
        if reason is not None:
            verdict = "not run yet" if pid in GAPS else "does not apply"
            rows.append(f"| {pid} | {description} | {verdict} | – | {_cell(reason)} |")
            continue
        expected = EXPECTED[pid]
        result = "pass" if expected.defect is None else f"**fails**: {expected.defect}"
        rows.append(
            f"| {pid} | {description} | {_cell(result)} | {_cell(expected.physical)} "
            f"| {_cell(expected.not_covered) or '–'} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(render())
