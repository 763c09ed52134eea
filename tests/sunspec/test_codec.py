"""Register codec: sentinels, scaling, and agreement with pysunspec2's own encoder."""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import pytest

from custom_components.dynamic_export.core.errors import InvalidDeviceDataError
from custom_components.dynamic_export.sunspec.codec import (
    decode_model,
    decode_point,
    encode_model,
    encode_point,
    to_raw,
)
from custom_components.dynamic_export.sunspec.models import MODELS, PointDef

from .helpers import SpecPoint, assert_close, spec_block, spec_points


def _point(type_: str, size: int = 1) -> PointDef:
    return PointDef("X", 2, type_, size, None, None, "R", False)


@pytest.mark.parametrize(
    ("type_", "regs"),
    [
        ("int16", [0x8000]),
        ("sunssf", [0x8000]),
        ("uint16", [0xFFFF]),
        ("count", [0xFFFF]),
        ("enum16", [0xFFFF]),
        ("bitfield16", [0xFFFF]),
        ("acc16", [0]),
        ("int32", [0x8000, 0]),
        ("uint32", [0xFFFF, 0xFFFF]),
        ("enum32", [0xFFFF, 0xFFFF]),
        ("bitfield32", [0xFFFF, 0xFFFF]),
        ("acc32", [0, 0]),
        ("int64", [0x8000, 0, 0, 0]),
        ("uint64", [0xFFFF] * 4),
        ("acc64", [0] * 4),
        ("float32", [0x7FC0, 0]),
        ("string", [0] * 8),
        ("pad", [0x8000]),
    ],
)
def test_not_implemented_decodes_to_none(type_: str, regs: list[int]) -> None:
    assert decode_point(_point(type_, len(regs)), regs) is None
    assert encode_point(_point(type_, len(regs)), None) == ([0] if type_ == "pad" else regs)


@pytest.mark.parametrize(
    ("type_", "regs", "value"),
    [
        ("int16", [0xFFFE], -2),
        ("int16", [0x7FFF], 32767),
        ("sunssf", [0xFFFE], -2),
        ("uint16", [0xFFFE], 65534),
        ("acc32", [0x0001, 0x0002], 65538),
        ("uint32", [0x0001, 0x0000], 65536),
        ("int32", [0xFFFF, 0xFFFF], -1),
        ("acc64", [0, 0, 1, 0], 65536),
        ("float32", list(struct.unpack(">HH", struct.pack(">f", 1234.5))), 1234.5),
        ("float32", list(struct.unpack(">HH", struct.pack(">f", -0.25))), -0.25),
    ],
)
def test_decode_values(type_: str, regs: list[int], value: int | float) -> None:
    point = _point(type_, len(regs))
    assert decode_point(point, regs) == value
    assert encode_point(point, value) == regs


def test_strings_strip_padding() -> None:
    point = _point("string", 8)
    regs = [0x4672, 0x6F6E, 0x6975, 0x7300, 0, 0, 0, 0]  # "Fronius"
    assert decode_point(point, regs) == "Fronius"
    assert decode_point(point, [0x4142, 0x2020] + [0x2020] * 6) == "AB"
    assert encode_point(point, "Fronius") == regs
    with pytest.raises(ValueError, match="longer"):
        encode_point(point, "x" * 17)


def test_encode_rejects_out_of_range_and_wrong_types() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode_point(_point("uint16"), 65536)
    with pytest.raises(ValueError, match="does not fit"):
        encode_point(_point("int16"), -32769)
    with pytest.raises(TypeError):
        encode_point(_point("uint16"), 1.5)
    with pytest.raises(TypeError):
        encode_point(_point("float32", 2), "1")


def _random_raw(point: SpecPoint, rng: random.Random) -> Any:
    """A valid, implemented raw value for a point (never the sentinel)."""
    t = point.type
    if t == "int16":
        return rng.randint(-32767, 32767)
    if t == "sunssf":
        return rng.randint(-3, 3)
    if t in ("uint16", "enum16", "bitfield16", "count"):
        return rng.randint(0, 0xFFFE)
    if t in ("acc32", "uint32", "bitfield32", "enum32"):
        return rng.randint(1, 0xFFFF_FFFE)
    if t == "acc64":
        return rng.randint(1, 2**63)
    if t == "int32":
        return rng.randint(-(2**31) + 1, 2**31 - 1)
    if t == "float32":
        return struct.unpack(">f", struct.pack(">f", rng.uniform(-1e6, 1e6)))[0]
    if t == "string":
        return "".join(rng.choice("ABCxyz019 -") for _ in range(rng.randint(1, point.size * 2)))
    if t == "pad":
        return None
    raise AssertionError(t)


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_encode_model_agrees_with_pysunspec2(model_id: int) -> None:
    rng = random.Random(model_id)
    spec = spec_points(model_id)
    for _ in range(5):
        values = {
            name: (_random_raw(p, rng) if rng.random() < 0.8 else None)
            for name, p in spec.items()
            if name not in ("ID", "L")
        }
        block = spec_block(model_id, values)
        assert encode_model(MODELS[model_id], values) == block
        decoded = decode_model(MODELS[model_id], block)
        for name, raw in values.items():
            point = spec[name]
            if raw is None or point.type == "pad":
                assert decoded[name] is None
            elif point.type == "string":
                assert decoded[name] == raw.rstrip() or (decoded[name] is None and not raw.strip())
            elif isinstance(point.sf, str):
                sf = values[point.sf]
                if sf is None:
                    assert decoded[name] is None
                else:
                    assert_close(decoded[name], raw * 10**sf)  # type: ignore[arg-type]
            else:
                assert decoded[name] == raw


def test_decode_model_scales_with_sf_from_the_same_block() -> None:
    block = spec_block(
        103,
        {"A": 549, "A_SF": -2, "W": 1307, "W_SF": 0, "Hz": 6001, "Hz_SF": -2, "WH": 1720967,
         "WH_SF": 1, "PF": 979, "PF_SF": -1, "DCW": 13300},
    )  # fmt: skip
    values = decode_model(MODELS[103], block)
    assert_close(values["A"], 5.49)  # type: ignore[arg-type]
    assert values["W"] == 1307
    assert_close(values["Hz"], 60.01)  # type: ignore[arg-type]
    assert values["WH"] == 17209670
    assert_close(values["PF"], 97.9)  # type: ignore[arg-type]
    assert values["DCW"] is None  # DCW_SF not implemented: value unusable
    assert values["TmpCab"] is None  # not implemented (0x8000), as on real Fronius IG+
    assert values["W_SF"] == 0


@pytest.mark.parametrize("sf", [11, -11, 100])
def test_scale_factor_out_of_range_is_invalid_data(sf: int) -> None:
    block = spec_block(103, {"W": 1307, "W_SF": sf})
    with pytest.raises(InvalidDeviceDataError, match="W_SF"):
        decode_model(MODELS[103], block)


def test_out_of_range_sf_on_unimplemented_value_is_ignored() -> None:
    block = spec_block(103, {"W": 1307, "W_SF": 0, "DCW_SF": 50})
    assert decode_model(MODELS[103], block)["DCW"] is None


@pytest.mark.parametrize("length", [65, 66])
def test_common_model_length_65_and_66(length: int) -> None:
    values = {"Mn": "Fronius", "Md": "IG+V7.5U", "Opt": "2.1.18", "Vr": "6.2.0", "SN": "50.25979",
              "DA": 1}  # fmt: skip
    block = spec_block(1, values, length)
    assert len(block) == length + 2
    decoded = decode_model(MODELS[1], block)
    assert decoded["L"] == length
    assert decoded["Mn"] == "Fronius"
    assert decoded["SN"] == "50.25979"
    assert decoded["DA"] == 1
    assert decoded["Pad"] is None
    assert encode_model(MODELS[1], values, length) == block


def test_points_beyond_short_length_are_none() -> None:
    block = spec_block(1, {"Mn": "X", "DA": 7}, 65)
    # A longer buffer must not be read past the device's L.
    assert decode_model(MODELS[1], [*block, 0x1234])["Pad"] is None
    short = spec_block(1, {"Mn": "X", "DA": 7}, 64)
    assert decode_model(MODELS[1], short)["DA"] is None
    with pytest.raises(ValueError, match="beyond"):
        encode_model(MODELS[1], {"DA": 7}, 64)


def test_decode_model_checks_the_model_id() -> None:
    with pytest.raises(InvalidDeviceDataError, match="expected model 123"):
        decode_model(MODELS[123], spec_block(122))
    with pytest.raises(InvalidDeviceDataError):
        decode_model(MODELS[123], [])


def test_encode_model_rejects_unknown_points() -> None:
    with pytest.raises(KeyError):
        encode_model(MODELS[123], {"Bogus": 1})


@pytest.mark.parametrize(
    ("value", "sf", "raw"),
    [(37.5, -2, 3750), (5.49, -2, 549), (7500, 1, 750), (12.6, 0, 13), (12.4, 0, 12),
     (0.001, -3, 1), (-1.5, -1, -15), (57.99, -2, 5799)],
)  # fmt: skip
def test_to_raw(value: float, sf: int, raw: int) -> None:
    assert to_raw(value, sf) == raw


def test_to_raw_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="finite"):
        to_raw(math.nan, 0)
    with pytest.raises(ValueError, match="scale factor"):
        to_raw(1.0, 11)
