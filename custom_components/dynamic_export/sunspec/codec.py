"""Convert between SunSpec registers and point values.

Decoding turns "not implemented" sentinels into None, so callers never mistake 0xFFFF or
0x8000 for a measurement, and applies scale factors only from the same block read, so a value
and its SF are always consistent.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence

from ..core.errors import InvalidDeviceDataError
from .models import ModelDef, PointDef

type PointValue = int | float | str | None

SF_MIN = -10
SF_MAX = 10

# type -> (registers, signed, "not implemented" value)
_INTEGER_TYPES: dict[str, tuple[int, bool, int]] = {
    "int16": (1, True, -0x8000),
    "sunssf": (1, True, -0x8000),
    "uint16": (1, False, 0xFFFF),
    "count": (1, False, 0xFFFF),
    "enum16": (1, False, 0xFFFF),
    "bitfield16": (1, False, 0xFFFF),
    "acc16": (1, False, 0),
    "int32": (2, True, -0x8000_0000),
    "uint32": (2, False, 0xFFFF_FFFF),
    "enum32": (2, False, 0xFFFF_FFFF),
    "bitfield32": (2, False, 0xFFFF_FFFF),
    "acc32": (2, False, 0),
    "ipaddr": (2, False, 0),
    "int64": (4, True, -0x8000_0000_0000_0000),
    "uint64": (4, False, 0xFFFF_FFFF_FFFF_FFFF),
    "acc64": (4, False, 0),
}
_FLOAT_TYPES: dict[str, tuple[int, str]] = {"float32": (2, ">f"), "float64": (4, ">d")}


def _pow10(exponent: int) -> int:
    """10**exponent for exponent >= 0 (an exact int, unlike 10.0**exponent)."""
    return int(10**exponent)


def _regs_to_bytes(regs: Sequence[int]) -> bytes:
    for reg in regs:
        if not 0 <= reg <= 0xFFFF:
            raise ValueError(f"register value {reg} is not 16-bit")
    return b"".join(reg.to_bytes(2, "big") for reg in regs)


def _bytes_to_regs(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def decode_point(point: PointDef, regs: Sequence[int]) -> PointValue:
    """Raw (unscaled) value of one point; None where the device marks it not implemented."""
    if len(regs) < point.size:
        raise ValueError(f"{point.name} needs {point.size} registers, got {len(regs)}")
    data = _regs_to_bytes(regs[: point.size])
    if point.type in _INTEGER_TYPES:
        _, signed, sentinel = _INTEGER_TYPES[point.type]
        value = int.from_bytes(data, "big", signed=signed)
        return None if value == sentinel else value
    if point.type in _FLOAT_TYPES:
        number: float = struct.unpack(_FLOAT_TYPES[point.type][1], data)[0]
        return None if math.isnan(number) else number
    if point.type == "string":
        # NUL-padded: anything after the first NUL is padding.
        text = data.split(b"\x00", 1)[0].decode("utf-8", errors="replace").rstrip()
        return text or None
    if point.type == "pad":
        return None
    raise ValueError(f"unsupported SunSpec type {point.type!r} for {point.name}")


def _scale(value: PointValue, sf: int | None, sf_name: str) -> PointValue:
    if value is None or isinstance(value, str):
        return value
    if sf is None:
        return None
    if not SF_MIN <= sf <= SF_MAX:
        raise InvalidDeviceDataError(f"scale factor {sf_name}={sf} is outside {SF_MIN}..{SF_MAX}")
    if sf >= 0:
        return value * _pow10(sf)
    return value / _pow10(-sf)


def decode_model(model: ModelDef, block: Sequence[int]) -> dict[str, PointValue]:
    """Decode a block read from the ID register on; values with an SF come back scaled.

    Points beyond the device's L (e.g. model 1 ``Pad`` when L=65) are None.
    """
    if len(block) < 2 or block[0] != model.id:
        found = block[0] if block else None
        raise InvalidDeviceDataError(f"expected model {model.id} at block start, found {found}")
    end = min(len(block), block[1] + 2)
    raw: dict[str, PointValue] = {}
    for point in model.points:
        if point.offset + point.size <= end:
            raw[point.name] = decode_point(point, block[point.offset : point.offset + point.size])
        else:
            raw[point.name] = None
    values: dict[str, PointValue] = {}
    for point in model.points:
        value = raw[point.name]
        if isinstance(point.sf, str):
            sf = raw[point.sf]
            values[point.name] = _scale(value, sf if isinstance(sf, int) else None, point.sf)
        elif isinstance(point.sf, int):
            values[point.name] = _scale(value, point.sf, str(point.sf))
        else:
            values[point.name] = value
    return values


def encode_point(point: PointDef, raw: PointValue) -> list[int]:
    """Registers for one raw (unscaled) value; None encodes the "not implemented" sentinel."""
    if point.type in _INTEGER_TYPES:
        size, signed, sentinel = _INTEGER_TYPES[point.type]
        value = sentinel if raw is None else raw
        if not isinstance(value, int):
            raise TypeError(f"{point.name} ({point.type}) needs an int, got {value!r}")
        try:
            data = value.to_bytes(size * 2, "big", signed=signed)
        except OverflowError as err:
            raise ValueError(f"{value} does not fit {point.name} ({point.type})") from err
        return _bytes_to_regs(data)
    if point.type in _FLOAT_TYPES:
        size, fmt = _FLOAT_TYPES[point.type]
        number = math.nan if raw is None else raw
        if isinstance(number, str):
            raise TypeError(f"{point.name} ({point.type}) needs a number, got {number!r}")
        try:
            return _bytes_to_regs(struct.pack(fmt, number))
        except (OverflowError, struct.error) as err:
            raise ValueError(f"{number} does not fit {point.name} ({point.type})") from err
    if point.type == "string":
        text = "" if raw is None else raw
        if not isinstance(text, str):
            raise TypeError(f"{point.name} (string) needs a str, got {text!r}")
        data = text.encode("utf-8")
        if len(data) > point.size * 2:
            raise ValueError(f"{text!r} is longer than {point.size * 2} bytes for {point.name}")
        return _bytes_to_regs(data.ljust(point.size * 2, b"\x00"))
    if point.type == "pad":
        return [0] * point.size
    raise ValueError(f"unsupported SunSpec type {point.type!r} for {point.name}")


def encode_model(
    model: ModelDef, raw_values: Mapping[str, PointValue], length: int | None = None
) -> list[int]:
    """Registers ID, L and body for a model; unset points get their sentinels.

    ``length`` (the device's L) may be shorter than the spec's, as model 1 with L=65 is;
    points that no longer fit are left out.
    """
    body_length = model.length if length is None else length
    if not 0 <= body_length <= 0xFFFF:
        raise ValueError(f"model length {body_length} out of range")
    unknown = set(raw_values) - {point.name for point in model.points}
    if unknown:
        raise KeyError(f"model {model.id} has no points {sorted(unknown)}")
    regs = [0] * (body_length + 2)
    regs[0] = model.id
    regs[1] = body_length
    for point in model.points:
        if point.name in ("ID", "L"):
            continue
        value = raw_values.get(point.name)
        if point.offset + point.size > body_length + 2:
            if value is not None:
                raise ValueError(f"{point.name} lies beyond L={body_length} of model {model.id}")
            continue
        regs[point.offset : point.offset + point.size] = encode_point(point, value)
    return regs


def to_raw(value: float, sf: int) -> int:
    """Raw register value for a scaled value, rounded to nearest (raw = value / 10^sf)."""
    if not SF_MIN <= sf <= SF_MAX:
        raise ValueError(f"scale factor {sf} is outside {SF_MIN}..{SF_MAX}")
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    if sf <= 0:
        return round(value * _pow10(-sf))
    return round(value / _pow10(sf))
