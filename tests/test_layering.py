"""The integration keeps its import contracts (see ``tests/layering.py``), and they are checked.

Each contract is also broken on purpose in a copy of the integration, so a checker that stopped
seeing imports could not pass silently.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .layering import PACKAGE, PLAIN, imports, modules, violations

ROOT = Path(__file__).parent.parent
INTEGRATION = ROOT / "custom_components" / "dynamic_export"


def test_the_integration_keeps_its_contracts() -> None:
    assert violations(INTEGRATION) == []


def test_imports_are_found_everywhere_they_are_written() -> None:
    """Top-level, relative and absolute, inside functions and under TYPE_CHECKING."""
    found = {(i.importer, i.target) for i in imports(INTEGRATION)}
    assert (f"{PACKAGE}.lifecycle", f"{PACKAGE}.runtime") in found  # relative, top level
    # Inside a function: the MQTT limiter loads Home Assistant's MQTT only when needed.
    assert (f"{PACKAGE}.subentries.limiters.setup", "homeassistant.components") in found
    # Under TYPE_CHECKING, in compat.py.
    assert (f"{PACKAGE}.compat", "probatio") in found


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "dynamic_export"
    shutil.copytree(INTEGRATION, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _plant(root: Path, module: str, code: str) -> None:
    path = root.joinpath(*module.split("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    for folder in path.relative_to(root).parents:
        (root / folder / "__init__.py").touch()
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(old + "\n" + textwrap.dedent(code), encoding="utf-8")


PLANTED = {
    "a: Home Assistant under TYPE_CHECKING": (
        "limiters/fixed.py",
        """
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            from homeassistant.core import HomeAssistant
        """,
        f"(a) plain package imports Home Assistant: {PACKAGE}.limiters.fixed:",
    ),
    "a: the HA layer, inside a function": (
        "sunspec/codec.py",
        """
        def _planted() -> None:
            from ..const import DOMAIN
        """,
        f"(a) plain package imports the Home Assistant layer: {PACKAGE}.sunspec.codec:",
    ),
    "a: the HA layer, absolute": (
        "sim/physics.py",
        f"import {PACKAGE}.compat\n",
        f"(a) plain package imports the Home Assistant layer: {PACKAGE}.sim.physics:",
    ),
    "b: the wire level imports csip": (
        "csip/sep2/planted.py",
        "from ..limiter import CsipLimiter\n",
        f"(b) csip/sep2 imports csip outside sep2: {PACKAGE}.csip.sep2.planted:",
    ),
    "c: core imports a device package": (
        "core/merge.py",
        "from ..sunspec import codec\n",
        f"(c) core imports a device or limiter package: {PACKAGE}.core.merge:",
    ),
    "d: a circle": (
        "core/errors.py",
        """
        def _planted() -> None:
            from .cycle import ControlLoop
        """,
        f"(d) modules that import each other: {PACKAGE}.core.cycle, {PACKAGE}.core.errors",
    ),
    "e: an undeclared sub-package": (
        "gadgets/__init__.py",
        '"""A folder nobody placed on either side."""\n',
        f"(e) sub-package declared neither plain nor Home Assistant layer: {PACKAGE}.gadgets",
    ),
}


@pytest.mark.parametrize("case", list(PLANTED))
def test_a_planted_violation_is_reported(tmp_path: Path, case: str) -> None:
    module, code, expected = PLANTED[case]
    root = _copy(tmp_path)
    _plant(root, module, code)
    reported = violations(root)
    assert len(reported) == 1, reported
    assert reported[0].startswith(expected), reported


def _plain_modules() -> list[str]:
    return sorted(
        name
        for name in modules(INTEGRATION)
        if any(name == f"{PACKAGE}.{p}" or name.startswith(f"{PACKAGE}.{p}.") for p in PLAIN)
    )


def test_plain_packages_import_without_home_assistant() -> None:
    """With Home Assistant made unimportable, every plain module imports; the HA layer not."""
    plain = _plain_modules()
    assert len(plain) > 50
    script = f"""
        import importlib, json, sys
        sys.modules["homeassistant"] = None  # "import homeassistant" now raises ImportError
        for name in {plain!r}:
            importlib.import_module(name)
        top = importlib.import_module({PACKAGE!r})
        refused = []
        for name in ("lifecycle", "runtime", "sensor", "subentries.devices.setup"):
            try:
                importlib.import_module({PACKAGE!r} + "." + name)
            except ImportError:
                refused.append(name)
        print(json.dumps({{"entry_point": hasattr(top, "async_setup_entry"), "refused": refused}}))
    """
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script, no shell
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {
        "entry_point": False,
        "refused": ["lifecycle", "runtime", "sensor", "subentries.devices.setup"],
    }
