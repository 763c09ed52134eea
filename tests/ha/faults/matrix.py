"""The fault matrix: what the site does when a device misbehaves, as the tests measure it.

Each device kind has a test module here (``test_<device>.py``) that defines ``OUTCOMES``, one
:class:`Outcome` per fault in :data:`FAULTS`, and tests marked with :func:`covers` that drive
that fault against the real protocol peer on 127.0.0.1 and assert the outcome: the action,
the time bound in ``how_fast`` and what ``user_sees``. ``test_matrix.py`` checks that no cell
is empty or untested and that the README's *Reliability* table is this one, rendered by
``python -m tests.ha.faults.matrix``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

DEVICES: dict[str, str] = {
    "sunspec_tcp": "SunSpec Modbus TCP",
    "sunspec_rtu": "SunSpec RS-485",
    "opendtu": "OpenDTU",
    "powerwall": "Powerwall 2",
    "ha_entities": "HA entities",
    "csip": "CSIP-AUS server",
    "sungrow": "Sungrow SG/SH",
    "huawei": "Huawei SUN2000",
    "solaredge": "SolarEdge",
    "solaredge_meter": "SolarEdge meter (through the inverter)",
    "victron": "Victron GX",
    "goodwe": "GoodWe",
}
"""Device kind (the test module's suffix) -> how the README names it."""

FAULTS: dict[str, str] = {
    "timeout": "No answer (timeout)",
    "exception": "Error answer",
    "disconnect_mid_write": "Disconnect mid-write",
    "slow_reply": "Slow replies",
    "gone_at_start": "Gone at start-up",
    "back_after_an_hour": "Back after an hour",
    "frozen_data": "Frozen data",
    "restart_during_control": "HA restart while limiting",
    "clock_jump": "Clock jump",
}
"""Fault key -> how the README names it, in table order."""

README_START = "<!-- reliability-matrix:start -->"
README_END = "<!-- reliability-matrix:end -->"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One cell of the matrix, in the words the README shows."""

    site_does: str
    """What the site does about it (e.g. "fail-safe: generation held at the fail-safe level")."""
    how_fast: str
    """The bound the tests assert (e.g. "next cycle after the 5 s device timeout")."""
    user_sees: str
    """States, log lines and repairs ("control state fail_safe; WARNING 'meter unavailable'")."""


F = TypeVar("F", bound=Callable[..., Any])


def covers(*faults: str) -> Callable[[F], F]:
    """Mark a test as measuring these faults of its module's device."""
    unknown = set(faults) - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown faults: {sorted(unknown)}")

    def mark(test: F) -> F:
        test.covers_faults = (*getattr(test, "covers_faults", ()), *faults)  # type: ignore[attr-defined]
        return test

    return mark


def device_module(device: str) -> ModuleType:
    """The test module of one device kind."""
    return importlib.import_module(f"{__package__}.test_{device}")


def covered_faults(module: ModuleType) -> set[str]:
    """The faults the module's tests are marked as measuring."""
    return {
        fault
        for name, value in vars(module).items()
        if name.startswith("test") and callable(value)
        for fault in getattr(value, "covers_faults", ())
    }


def outcomes() -> dict[tuple[str, str], Outcome]:
    """Every cell, from the device modules."""
    cells: dict[tuple[str, str], Outcome] = {}
    for device in DEVICES:
        module_outcomes: dict[str, Outcome] = device_module(device).OUTCOMES
        for fault, outcome in module_outcomes.items():
            cells[device, fault] = outcome
    return cells


def render_table(cells: dict[tuple[str, str], Outcome]) -> str:
    """The README table: one row per fault and device, faults in order."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "| Fault | Device | What the site does | How fast | What you see |",
        "| --- | --- | --- | --- | --- |",
    ]
    for fault, fault_name in FAULTS.items():
        for device, device_name in DEVICES.items():
            outcome = cells.get((device, fault))
            if outcome is None:
                lines.append(f"| {fault_name} | {device_name} |  |  |  |")
                continue
            lines.append(
                f"| {fault_name} | {device_name} | {cell(outcome.site_does)} "
                f"| {cell(outcome.how_fast)} | {cell(outcome.user_sees)} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    print(README_START)
    print(render_table(outcomes()))
    print(README_END)
