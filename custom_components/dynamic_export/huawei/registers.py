"""Huawei SUN2000's register map and its encoding.

Huawei numbers registers as they go on the wire (no 1-based offset). Everything is a holding
register, read with FC3; settings are written with FC16. 32-bit values are sent **high word
first** (big-endian, unlike Sungrow). The encoders refuse what a register cannot hold, so
nothing out of range is ever sent.

Sources: Huawei's "Solar Inverter Modbus Interface Definitions" as summarised in the project's
device notes, cross-checked against published register lists (addresses, gains, status codes).
"""

from __future__ import annotations

from collections.abc import Sequence

# Identity (read-only).
MODEL_NAME = 30000  # STR, 15 registers, e.g. "SUN2000-5KTL-M1"
MODEL_WORDS = 15
SERIAL = 30015  # STR, 10 registers
SERIAL_WORDS = 10
RATED_POWER = 30073  # U32 W (Pn)
P_MAX = 30075  # U32 W (the most the inverter may produce; above Pn on some models)

# Measurements (read-only). ACTIVE_POWER..DEVICE_STATUS is one contiguous block.
ACTIVE_POWER = 32080  # I32 W at the AC port
DEVICE_STATUS = 32089  # U16 status code (STATUS_NAMES)
TOTAL_ENERGY = 32106  # U32, 0.01 kWh: accumulated energy yield
MPPT_PREDICTED_POWER = 42056  # U32 W; meaning not documented (see inverter.py)

# Settings (read/write).
DERATING_PCT = 40125  # I16, 0.1 % of Pmax: the output ceiling this package drives
DERATING_FULL = 1000  # 100.0 %
ACTIVE_POWER_CONTROL_MODE = 47415  # U16: the inverter's own export limiting (read only here)

ENERGY_WH_PER_COUNT = 10.0  # 0.01 kWh
NOT_AVAILABLE_U32 = 0xFFFF_FFFF
NOT_AVAILABLE_I32 = 0x7FFF_FFFF

EXPORT_CONTROL_MODES = {
    0: "unlimited",
    1: "DI active scheduling",
    5: "zero-power grid connection",
    6: "power-limited grid connection (W)",
    7: "power-limited grid connection (%)",
}
"""Register 47415: what the inverter's own meter loop holds export to (left as it is)."""

STATUS_NAMES = {
    0x0000: "standby",  # initialising
    0x0001: "standby",  # detecting insulation resistance
    0x0002: "standby",  # detecting irradiation
    0x0003: "standby",  # grid detecting
    0x0100: "starting",
    0x0200: "mppt",  # on grid
    0x0201: "throttled",  # on grid, power limited
    0x0202: "throttled",  # on grid, self-derating
    0x0300: "fault",  # shut down by a fault
    0x0301: "off",  # shut down by command
    0x0302: "off",  # OVGR
    0x0303: "off",  # communication lost
    0x0304: "off",  # power limited to 0
    0x0305: "off",  # manual start-up needed
    0x0306: "off",  # DC switches open
    0xA000: "sleeping",  # standby: no irradiation
}
"""Register 32089 mapped to the integration's inverter states; other codes are not shown."""


def decode_u32(registers: Sequence[int]) -> int:
    """An unsigned 32-bit value sent high word first."""
    if len(registers) != 2 or any(not 0 <= reg <= 0xFFFF for reg in registers):
        raise ValueError(f"a 32-bit value needs two 16-bit registers, got {list(registers)}")
    return registers[0] << 16 | registers[1]


def decode_s32(registers: Sequence[int]) -> int:
    """A signed 32-bit value sent high word first."""
    value = decode_u32(registers)
    return value - (1 << 32) if value & 0x8000_0000 else value


def decode_s16(register: int) -> int:
    """A signed 16-bit register."""
    if not 0 <= register <= 0xFFFF:
        raise ValueError(f"register value {register} is outside 0..65535")
    return register - 0x10000 if register & 0x8000 else register


def decode_text(registers: Sequence[int]) -> str:
    """An ASCII/UTF-8 string, two bytes a register (high byte first), NUL-padded."""
    data = b"".join(reg.to_bytes(2, "big") for reg in registers)
    return data.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()
