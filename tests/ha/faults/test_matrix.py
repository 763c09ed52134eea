"""The fault matrix is complete, every cell is measured, and the README shows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .matrix import (
    DEVICES,
    FAULTS,
    README_END,
    README_START,
    covered_faults,
    device_module,
    outcomes,
    render_table,
)

README = Path(__file__).parents[3] / "README.md"


@pytest.mark.parametrize("device", list(DEVICES))
def test_every_fault_has_an_outcome_and_a_test(device: str) -> None:
    module = device_module(device)
    assert set(module.OUTCOMES) == set(FAULTS), "an empty cell"
    for fault, outcome in module.OUTCOMES.items():
        assert outcome.site_does.strip(), (device, fault)
        assert outcome.how_fast.strip(), (device, fault)
        assert outcome.user_sees.strip(), (device, fault)
    assert covered_faults(module) == set(FAULTS), "a cell no test measures"


def test_readme_shows_the_matrix() -> None:
    text = README.read_text(encoding="utf-8")
    assert README_START in text, "README has no Reliability table"
    shown = text.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert shown == render_table(outcomes()), (
        "README's Reliability table is out of date: paste `python -m tests.ha.faults.matrix`"
    )
