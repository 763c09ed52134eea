"""SolarEdge's power-control registers and their encoding.

Addresses are the 0-based wire addresses (what goes in the Modbus frame); SolarEdge's
technical note prints them in hex (0xF322), which is the same number. SolarEdge sends its
own 32-bit values (float32, int32, uint32 at 0xE000 and above) **low word first**, unlike
SunSpec, whose registers stay big-endian. Every encoder refuses values the register cannot
hold, so nothing out of range is ever sent.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

# Committed ("global") power control: persistent; a change needs the 5-10 s commit.
COMMIT = 0xF100  # I16: write 1; reads 0 when done, else an error code
REACTIVE_POWER_CONFIG = 0xF104  # I32: 4 = RRCR, which EDPC needs
ADVANCED_POWER_CONTROL_ENABLE = 0xF142  # I32: 1 = power control allowed at all

# Enhanced Dynamic Power Control: held in RAM, lost when the inverter restarts.
EDPC_ENABLE = 0xF300  # U16
MAX_ACTIVE_POWER = 0xF304  # F32, W (read only): the rating
ACTIVE_REACTIVE_PREFERENCE = 0xF308  # U16: 1 = active power first
ACTIVE_POWER_BASE = 0xF30C  # F32, W: what the dynamic limit is a percentage of
COMMAND_TIMEOUT = 0xF310  # U32, s: no dynamic command for this long -> fallback
FALLBACK_LIMIT = 0xF312  # F32, %: the limit the inverter applies after the timeout
RAMP_UP = 0xF318  # F32, %/min; -1 = no ramp
RAMP_DOWN = 0xF31A  # F32, %/min; -1 = no ramp
DYNAMIC_LIMIT = 0xF322  # F32, % of ACTIVE_POWER_BASE; every write restarts the timeout

COMMIT_OK = 0
COMMIT_ERROR_NAMES = {
    1: "internal error 1",
    2: "internal error 2",
    3: "internal error 3",
    4: "internal error 4",
    0xFFFF: "unknown error",
}
FIRST_SETTING_REGISTER = 0xF102
"""A commit result at or above this names the setting register the inverter rejected."""

NO_RAMP = -1.0
PREFER_ACTIVE = 1
ENABLED = 1
DISABLED = 0
RRCR = 4
MAX_TIMEOUT_S = 0xFFFF_FFFF


def _words(data: bytes) -> list[int]:
    """Big-endian 4 bytes as two registers, low word first."""
    high, low = struct.unpack(">HH", data)
    return [low, high]


def _joined(registers: Sequence[int]) -> bytes:
    if len(registers) != 2 or any(not 0 <= reg <= 0xFFFF for reg in registers):
        raise ValueError(f"a 32-bit value needs two 16-bit registers, got {list(registers)}")
    low, high = registers
    return struct.pack(">HH", high, low)


def encode_float(value: float) -> list[int]:
    """Registers of a finite float32, low word first."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    try:
        return _words(struct.pack(">f", value))
    except OverflowError as err:
        raise ValueError(f"{value!r} does not fit a float32") from err


def decode_float(registers: Sequence[int]) -> float | None:
    """A float32 sent low word first; None for NaN (not implemented)."""
    value: float = struct.unpack(">f", _joined(registers))[0]
    return None if math.isnan(value) else value


def encode_uint32(value: int) -> list[int]:
    """Registers of an unsigned 32-bit value, low word first."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIMEOUT_S:
        raise ValueError(f"{value!r} does not fit a uint32")
    return _words(struct.pack(">I", value))


def decode_uint32(registers: Sequence[int]) -> int:
    """An unsigned 32-bit value sent low word first."""
    value: int = struct.unpack(">I", _joined(registers))[0]
    return value


def encode_int32(value: int) -> list[int]:
    """Registers of a signed 32-bit value, low word first."""
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise ValueError(f"{value!r} does not fit an int32")
    return _words(struct.pack(">i", value))


def decode_int32(registers: Sequence[int]) -> int:
    """A signed 32-bit value sent low word first."""
    value: int = struct.unpack(">i", _joined(registers))[0]
    return value


def commit_error(result: int) -> tuple[str, int | None] | None:
    """What a commit result means: None when it succeeded, else (message, rejected register)."""
    if result == COMMIT_OK:
        return None
    if FIRST_SETTING_REGISTER <= result < 0xFFFF:
        return f"the inverter rejected the setting at register 0x{result:04X}", result
    return f"commit failed: {COMMIT_ERROR_NAMES.get(result, f'code {result}')}", None
