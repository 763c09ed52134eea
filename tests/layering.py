"""The integration's import contracts, read from its source with ``ast``.

Every ``import`` and ``from ... import`` counts, wherever it is written: at the top, inside a
function, or under ``if TYPE_CHECKING:``. The contracts:

(a) the plain packages never import Home Assistant, nor the integration's Home Assistant layer
    (every module outside the plain packages);
(b) ``csip/sep2/``, the IEEE 2030.5 wire level, imports nothing of ``csip`` outside itself;
(c) ``core`` imports no device or limiter package;
(d) no import circle among the integration's modules;
(e) every sub-package is declared here as plain or as Home Assistant layer, so a new folder
    cannot escape (a) by not being listed.

Only the imports a module writes are counted: the ``__init__`` files Python runs on the way
to a module are not, so a circle needs modules that name each other.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "custom_components.dynamic_export"
PLAIN = (
    "core",
    "csip",
    "sunspec",
    "opendtu",
    "powerwall",
    "solaredge",
    "limiters",
    "sim",
    "victron",
    "sungrow",
    "huawei",
    "goodwe_inverter",
)
"""Packages that run without Home Assistant (the simulator, the benchmark, the tests)."""
HA_LAYER = ("subentries",)
"""Sub-packages of the Home Assistant layer: the HA side of each subentry kind."""
DEVICES_AND_LIMITERS = (
    "sunspec",
    "opendtu",
    "powerwall",
    "solaredge",
    "csip",
    "limiters",
    "sim",
    "victron",
    "sungrow",
    "huawei",
)
WIRE_LEVEL = "csip.sep2"


@dataclass(frozen=True, slots=True)
class Import:
    """``importer`` imports ``target`` (both dotted, absolute) at ``line``."""

    importer: str
    target: str
    line: int


def modules(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of the package whose folder is ``root``, by dotted name."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((package, *parts))] = path
    return found


def imports(root: Path, package: str = PACKAGE) -> list[Import]:
    """Every import written in the package, resolved to the module it loads."""
    known = modules(root, package)
    found: list[Import] = []
    for name, path in known.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [Import(name, alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([base] if base else [])])
                for alias in node.names:
                    # ``from pkg import mod`` loads the module; ``from mod import name`` the module.
                    target = f"{base}.{alias.name}"
                    found.append(Import(name, target if target in known else base, node.lineno))
    return found


def _within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def violations(root: Path, package: str = PACKAGE) -> list[str]:
    """What breaks a contract, one line each (empty when every contract holds)."""
    plain = [f"{package}.{p}" for p in PLAIN]
    core = f"{package}.core"
    wire = f"{package}.{WIRE_LEVEL}"
    csip = f"{package}.csip"
    found: list[str] = []
    graph: dict[str, set[str]] = {name: set() for name in modules(root, package)}
    for imp in imports(root, package):
        where = f"{imp.importer}:{imp.line} imports {imp.target}"
        ours = _within(imp.target, package)
        if _within(imp.importer, *plain):
            if _within(imp.target, "homeassistant"):
                found.append(f"(a) plain package imports Home Assistant: {where}")
            elif ours and not _within(imp.target, *plain):
                found.append(f"(a) plain package imports the Home Assistant layer: {where}")
        if (
            _within(imp.importer, wire)
            and _within(imp.target, csip)
            and not _within(imp.target, wire)
        ):
            found.append(f"(b) csip/sep2 imports csip outside sep2: {where}")
        if _within(imp.importer, core) and _within(
            imp.target, *(f"{package}.{p}" for p in DEVICES_AND_LIMITERS)
        ):
            found.append(f"(c) core imports a device or limiter package: {where}")
        if ours and imp.target in graph and imp.target != imp.importer:
            graph[imp.importer].add(imp.target)
    found += [f"(d) modules that import each other: {', '.join(group)}" for group in circles(graph)]
    declared = (*PLAIN, *HA_LAYER)
    found += [
        f"(e) sub-package declared neither plain nor Home Assistant layer: {package}.{folder.name}"
        for folder in sorted(root.iterdir())
        if (folder / "__init__.py").is_file() and folder.name not in declared
    ]
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each group of modules that import each other, directly or round a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups
