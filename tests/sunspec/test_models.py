"""The vendored model tables match the official pysunspec2 JSON and the generator."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from custom_components.dynamic_export.sunspec.models import MODELS

from .helpers import JSON_DIR, spec_length, spec_points

REPO = Path(__file__).resolve().parents[2]
EXPECTED_IDS = {1, 101, 102, 103, 111, 112, 113, 120, 121, 122, 123}
EXPECTED_IDS |= {201, 202, 203, 204, 211, 212, 213, 214}


def _load_generator() -> ModuleType:
    path = REPO / "scripts" / "gen_sunspec_models.py"
    spec = importlib.util.spec_from_file_location("gen_sunspec_models", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_models_py_is_what_the_generator_writes_now() -> None:
    generator = _load_generator()
    expected = generator.render(JSON_DIR, generator.installed_version())
    models_py = REPO / "custom_components" / "dynamic_export" / "sunspec" / "models.py"
    assert models_py.read_text(encoding="utf-8") == expected, "run scripts/gen_sunspec_models.py"


def test_generator_check_mode_detects_stale_output(tmp_path: Path) -> None:
    generator = _load_generator()
    out = tmp_path / "models.py"
    assert generator.main(["--output", str(out)]) == 0
    assert generator.main(["--output", str(out), "--check"]) == 0
    out.write_text(out.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert generator.main(["--output", str(out), "--check"]) == 1


def test_exactly_the_needed_models_are_vendored() -> None:
    assert set(MODELS) == EXPECTED_IDS


@pytest.mark.parametrize("model_id", sorted(EXPECTED_IDS))
def test_points_match_official_json(model_id: int) -> None:
    model = MODELS[model_id]
    spec = spec_points(model_id)
    assert model.id == model_id
    assert model.length == spec_length(model_id)
    assert [p.name for p in model.points] == list(spec)
    for point in model.points:
        ref = spec[point.name]
        assert (point.offset, point.type, point.size, point.access) == (
            ref.offset,
            ref.type,
            ref.size,
            ref.access,
        )
        assert point.sf == ref.sf


# Offsets quoted in the device-protocol notes (counted from the ID register).
@pytest.mark.parametrize(
    ("model_id", "name", "offset"),
    [
        (1, "SN", 50),
        (1, "Pad", 67),
        (103, "W", 14),
        (103, "WH", 24),
        (103, "St", 38),
        (113, "W", 22),
        (113, "WH", 32),
        (121, "WMax", 2),
        (121, "WMax_SF", 22),
        (123, "Conn", 4),
        (123, "WMaxLimPct", 5),
        (123, "WMaxLimPct_RvrtTms", 7),
        (123, "WMaxLim_Ena", 9),
        (123, "WMaxLimPct_SF", 23),
        (203, "W", 18),
        (203, "TotWhExp", 38),
        (203, "TotWhImp", 46),
        (213, "W", 28),
        (213, "TotWhExp", 60),
        (213, "TotWhImp", 68),
    ],
)
def test_known_offsets(model_id: int, name: str, offset: int) -> None:
    assert MODELS[model_id].point(name).offset == offset


def test_known_lengths() -> None:
    lengths = {mid: MODELS[mid].length for mid in (1, 103, 113, 120, 121, 122, 123, 203, 213)}
    assert lengths == {
        1: 66,
        103: 50,
        113: 60,
        120: 26,
        121: 30,
        122: 44,
        123: 24,
        203: 105,
        213: 124,
    }


def test_point_lookup_raises_key_error() -> None:
    with pytest.raises(KeyError):
        MODELS[123].point("NoSuchPoint")
    assert MODELS[123].point("WMaxLimPct").sf == "WMaxLimPct_SF"
    assert MODELS[123].point("WMaxLimPct").access == "RW"
    assert MODELS[123].point("WMaxLimPct").mandatory is True
