"""Sungrow's register map, per family, and its encoding.

Sungrow's protocol documents number registers from 1 ("doc numbers"); the wire address is the
doc number minus 1, so every address here is written as ``wire(doc)``. Input registers
(read-only measurements) are read with FC4, holding registers (settings) with FC3 and written
with FC16. 32-bit values are sent **low word first**. The encoders refuse what a register
cannot hold, so nothing out of range is ever sent.

Sources: Sungrow's "Communication Protocol of Residential and Commercial PV Grid-connected
Inverter" V1.1.53 (SG) and "... Residential Hybrid Inverter" V1.1.9 (SH), as summarised in
the project's device notes; cross-checked against field register lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from ..core import persistent_limit


def wire(doc: int) -> int:
    """The wire address of a register Sungrow documents as ``doc`` (1-based)."""
    if not 1 <= doc <= 0x10000:
        raise ValueError(f"doc register {doc} is outside 1..65536")
    return doc - 1


# Input registers shared by SG and SH (doc numbers).
DOC_SERIAL = 4990  # UTF-8, 10 registers
SERIAL_WORDS = 10
DOC_DEVICE_TYPE = 5000  # U16 device type code
DOC_NOMINAL_POWER = 5001  # U16, 0.1 kW
DOC_TOTAL_ENERGY = 5004  # U32 (5004-5005): SG in kWh, SH in 0.1 kWh

ENABLE = 0xAA
DISABLE = 0x55
RATIO_FULL = 1000  # 100.0 % in 0.1 % steps
RATIO_MAX_READ = 1110  # some SG (SG250HX) accept up to 111 %
NOT_AVAILABLE_U16 = 0xFFFF


class Family(StrEnum):
    """The two register layouts Dynamic Export drives."""

    SG = "sg"  # string inverters
    SH = "sh"  # hybrid inverters


@dataclass(frozen=True, slots=True)
class FamilyMap:
    """Where one family keeps its output and its power limitation (doc numbers)."""

    active_power: int  # input, 32-bit W, low word first
    active_power_signed: bool
    energy_scale_wh: float  # Wh per count of DOC_TOTAL_ENERGY
    limit_switch: int  # holding, ENABLE / DISABLE
    limit_ratio: int  # holding, 0.1 % of the rating; the next register after the switch


MAPS = {
    # SG: 5031-5032 total active power (U32 W); 5007 power limitation switch, 5008 setting.
    Family.SG: FamilyMap(5031, False, 1000.0, 5007, 5008),
    # SH: 13034-13035 total active power (S32 W); 13089 active power limitation switch,
    # 13090 its ratio (a generation limit at the inverter's AC port, not the export limit).
    Family.SH: FamilyMap(13034, True, 100.0, 13089, 13090),
}

SH_TYPE_HIGH_BYTES = frozenset({0x0D, 0x0E})
"""Device type codes of the hybrids (SH…K-20/-30 are 0x0Dxx; SH…RS/RT/T and MG…RL 0x0Exx)."""


def family_of(device_type: int) -> Family | None:
    """The family of a device type code; None for 0, 0xFFFF or a code out of 16 bits."""
    if not 0 < device_type < NOT_AVAILABLE_U16:
        return None
    return Family.SH if device_type >> 8 in SH_TYPE_HIGH_BYTES else Family.SG


def decode_u32(registers: Sequence[int]) -> int:
    """An unsigned 32-bit value sent low word first."""
    low, high = _pair(registers)
    return high << 16 | low


def decode_s32(registers: Sequence[int]) -> int:
    """A signed 32-bit value sent low word first."""
    value = decode_u32(registers)
    return value - (1 << 32) if value & 0x8000_0000 else value


def _pair(registers: Sequence[int]) -> tuple[int, int]:
    if len(registers) != 2 or any(not 0 <= reg <= 0xFFFF for reg in registers):
        raise ValueError(f"a 32-bit value needs two 16-bit registers, got {list(registers)}")
    return registers[0], registers[1]


def decode_text(registers: Sequence[int]) -> str:
    """A UTF-8 string, two bytes a register (high byte first), NUL-padded."""
    data = b"".join(reg.to_bytes(2, "big") for reg in registers)
    return data.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()


ratio_value = persistent_limit.ratio_value
"""The ratio register (0.1 %) for a limit: the persistent-limit policy's rounding."""
