"""The conformance table covers every reference procedure, and the README shows it."""

from __future__ import annotations

from pathlib import Path

from .conformance import EXPECTED, README_END, README_START, render
from .procedures import all_ids, not_applicable

README = Path(__file__).parents[3] / "README.md"


def test_every_procedure_is_run_or_has_a_reason() -> None:
    ids = all_ids()
    run = {pid for pid in ids if not_applicable(pid) is None}
    assert run == set(EXPECTED), "conformance.EXPECTED must list exactly the procedures run"
    assert len(ids) >= 86, "the installed cactus-test-definitions lost procedures"


def test_readme_shows_the_table() -> None:
    text = README.read_text(encoding="utf-8")
    assert README_START in text, "README has no CSIP-AUS conformance table"
    shown = text.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert shown == render(), (
        "README's CSIP-AUS conformance table is out of date: paste "
        "`python -m tests.csip.cactus.conformance`"
    )
