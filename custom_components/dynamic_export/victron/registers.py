"""The GX's Modbus TCP registers used here, from Victron's register list (attributes.csv).

Addresses are wire addresses (what goes in the frame). Each service answers at a unit id:
``system``, ``settings`` and ``hub4`` at 100 (device instance 0); every other service at
its device instance (a grid meter usually at 30 or above; the GX lists them under
*Settings → Services → Modbus TCP → Available services*). The GX sends 32-bit values
**high word first**. A register of a service that is not at the unit answers exception 10
(gateway path unavailable); an address that is not in the list answers exception 2, as does
a write the GX does not allow (a read-only register, or Modbus TCP writes not allowed on the
GX). A value the GX does not have (no PV inverter on the output, say) reads as 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SYSTEM_UNIT = 100

# com.victronenergy.system (unit 100)
SYSTEM_SERIAL = 800  # string[6]: the GX's VRM portal id
SYSTEM_SERIAL_REGS = 6
SYSTEM_AC_BLOCK = 808  # 808-816 PV on output/grid/genset L1-L3 (uint16 W), 817-819 consumption
SYSTEM_AC_BLOCK_REGS = 15  # ... 820-822 grid L1-L3 (int16 W, + import)
PV_ON_OUTPUT = slice(0, 3)
PV_ON_GRID = slice(3, 6)
CONSUMPTION = slice(9, 12)
GRID = slice(12, 15)
SYSTEM_DC_PV = 850  # uint16 W: DC-coupled PV (solar chargers)

# com.victronenergy.settings (unit 100): persistent settings
MAX_FEED_IN_100W = 2706  # int16, 100 W units; -1 = no limit
MAX_FEED_IN_W = 2722  # int32 W (newer firmware); -1 = no limit
HUB4_MODE = 2902  # 1 ESS with phase compensation, 2 without, 3 external control
EXTERNAL_CONTROL = 3

# com.victronenergy.hub4 (unit 100): present only while ESS runs
PV_LIMITER_ACTIVE = 2709  # 1 = the GX is curtailing PV for the feed-in limit

# com.victronenergy.grid (its own unit id)
GRID_POWER = 2600  # int16 W per phase L1-L3, + import
GRID_SERIAL = 2609  # string[7]
GRID_SERIAL_REGS = 7
GRID_VOLTAGE_CURRENT = 2616  # L1 V (uint16 /10), L1 A (int16 /10), L2 V, L2 A, L3 V, L3 A
GRID_ENERGY = 2634  # uint32 kWh/100 forward (import), then reverse (export) at 2636

NO_LIMIT = -1
ILLEGAL_DATA_ADDRESS = 2
GATEWAY_PATH_UNAVAILABLE = 10
GATEWAY_NO_RESPONSE = 11


def int16(word: int) -> int:
    """A register as a signed 16-bit value."""
    return word - 0x10000 if word & 0x8000 else word


def int32(words: Sequence[int]) -> int:
    """Two registers, high word first, as a signed 32-bit value."""
    high, low = words
    value = high << 16 | low
    return value - (1 << 32) if value & 0x8000_0000 else value


def uint32(words: Sequence[int]) -> int:
    """Two registers, high word first, as an unsigned 32-bit value."""
    high, low = words
    return high << 16 | low


def encode_int32(value: int) -> list[int]:
    """Registers of a signed 32-bit value, high word first; refuses what does not fit."""
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise ValueError(f"{value!r} does not fit an int32")
    raw = value & 0xFFFF_FFFF
    return [raw >> 16, raw & 0xFFFF]


def encode_int16(value: int) -> list[int]:
    """The register of a signed 16-bit value; refuses what does not fit."""
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**15) <= value < 2**15:
        raise ValueError(f"{value!r} does not fit an int16")
    return [value & 0xFFFF]


def text(words: Sequence[int]) -> str | None:
    """A string register block (two characters a register, NUL padded); None when empty."""
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    value = raw.split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()
    return value or None


def feed_in_registers(watts: int, *, wide: bool) -> list[int]:
    """The registers holding a maximum feed-in of ``watts`` (-1 = no limit).

    ``wide``: the int32 W register (2722); otherwise 2706 in 100 W units, where ``watts``
    must be a multiple of 100.
    """
    if isinstance(watts, bool) or not isinstance(watts, int) or watts < NO_LIMIT:
        raise ValueError(f"maximum feed-in {watts!r} W must be -1 (no limit) or a whole W >= 0")
    if wide:
        return encode_int32(watts)
    if watts == NO_LIMIT:
        return encode_int16(NO_LIMIT)
    if watts % 100:
        raise ValueError(f"register 2706 holds 100 W steps, not {watts} W")
    return encode_int16(watts // 100)


def feed_in_watts(words: Sequence[int], *, wide: bool) -> int:
    """The maximum feed-in the registers hold, in W (-1 = no limit, any negative too)."""
    value = int32(words) if wide else int16(words[0])
    if value < 0:
        return NO_LIMIT
    return value if wide else value * 100


def floor_to(watts: float, step_w: int) -> int:
    """``watts`` rounded down to a multiple of ``step_w`` (never up: a cap must hold)."""
    return math.floor(watts / step_w + 1e-9) * step_w
