"""Independent SunSpec layout from pysunspec2's official model JSON (not our vendored tables)."""

from __future__ import annotations

import json
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any


def _json_dir() -> Path:
    spec = find_spec("sunspec2")
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin).parent / "models" / "json"


@cache
def official_points(model_id: int) -> dict[str, tuple[int, str, int]]:
    """Point name -> (offset from the ID register, type, size), from the fixed block."""
    data = json.loads((_json_dir() / f"model_{model_id}.json").read_text(encoding="utf-8"))
    offset = 0
    points: dict[str, tuple[int, str, int]] = {}
    for point in data["group"]["points"]:
        points[point["name"]] = (offset, point["type"], int(point["size"]))
        offset += int(point["size"])
    return points


def official_length(model_id: int) -> int:
    """The spec's L: body registers after ID and L."""
    return sum(size for _, _, size in official_points(model_id).values()) - 2


def walk_chain(read: Any, base: int = 40000) -> dict[int, tuple[int, int]]:
    """Walk SunS + models with ``read(address, count)``; model id -> (address, L)."""
    assert read(base, 2) == [0x5375, 0x6E53]
    chain: dict[int, tuple[int, int]] = {}
    address = base + 2
    while True:
        model_id, length = read(address, 2)
        if model_id == 0xFFFF:
            assert length == 0
            return chain
        chain[model_id] = (address, length)
        address += 2 + length


def decode(regs: list[int], kind: str) -> int | str:
    """Decode one point's registers by its official type name."""
    data = b"".join(r.to_bytes(2, "big") for r in regs)
    if kind == "string":
        return data.split(b"\x00", 1)[0].decode()
    signed = kind in ("int16", "sunssf", "int32", "int64")
    return int.from_bytes(data, "big", signed=signed)


def read_point(read: Any, chain: dict[int, tuple[int, int]], model_id: int, name: str) -> Any:
    """Read and decode one point, located via the chain and the official offsets."""
    offset, kind, size = official_points(model_id)[name]
    return decode(read(chain[model_id][0] + offset, size), kind)


def scaled(
    read: Any, chain: dict[int, tuple[int, int]], model_id: int, name: str, sf: str
) -> float:
    """A point times 10 to the power of its scale-factor point."""
    value = read_point(read, chain, model_id, name)
    factor = read_point(read, chain, model_id, sf)
    return float(value * 10.0**factor)
