"""A simulated Huawei SUN2000 inverter, laid out from ``huawei.registers``.

Huawei numbers registers as they go on the wire; everything is a holding register and 32-bit
values go **high word first**. The active power derating (40125, 0.1 % of Pmax) caps the
output and is held until changed (no revert timer). MPPT_PREDICTED_POWER holds the power the
panels could give. A unit id other than the inverter's is answered by no one (an SDongle
answers exception 11 for it, see the server).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..huawei import registers as reg
from .physics import SimInverter, SimSite
from .vendor import ILLEGAL_DATA_VALUE, VendorUnit, text_words

STATUS_ON_GRID = 0x0200
STATUS_LIMITED = 0x0201
STATUS_NO_IRRADIATION = 0xA000
STATUS_SHUT_DOWN = 0x0301


def _u32_words(value: int) -> list[int]:
    """A 32-bit value (two's complement if negative) as two registers, high word first."""
    raw = value & 0xFFFF_FFFF
    return [raw >> 16, raw & 0xFFFF]


class HuaweiUnit(VendorUnit):
    """One SUN2000 (a unit id) standing for site inverter ``index``."""

    family = "huawei"

    def __init__(
        self,
        unit_id: int,
        index: int,
        inverter: SimInverter,
        *,
        energy_start_wh: float = 0.0,
    ) -> None:
        super().__init__(unit_id, (index,))
        self.energy_start_wh = energy_start_wh
        rating = round(inverter.rated_power_w)
        bank = self.holding
        bank.write(reg.MODEL_NAME, text_words(f"SUN2000-{rating / 1000:g}KTL-SIM", reg.MODEL_WORDS))
        bank.write(reg.SERIAL, text_words(f"SIM-HW-{index + 1}", reg.SERIAL_WORDS))
        bank.write(reg.RATED_POWER, _u32_words(rating))
        bank.write(reg.P_MAX, _u32_words(rating))
        bank.define(reg.ACTIVE_POWER, reg.DEVICE_STATUS - reg.ACTIVE_POWER + 1)
        bank.define(reg.TOTAL_ENERGY, 2)
        bank.define(reg.MPPT_PREDICTED_POWER, 2)
        bank.write(reg.ACTIVE_POWER_CONTROL_MODE, [0])  # the inverter's own export limit: off
        self.allow_writes(reg.DERATING_PCT)
        bank.write(reg.DERATING_PCT, [reg.DERATING_FULL])
        self.flash_writes = 0
        """Writes that changed the derating (users report it kept in non-volatile memory)."""
        self._apply(inverter)

    def check_write(self, address: int, values: list[int]) -> int | None:
        """A derating outside 0-100 % (I16, 0.1 %) is refused."""
        value = values[reg.DERATING_PCT - address]
        signed = value - 0x10000 if value & 0x8000 else value
        if not 0 <= signed <= reg.DERATING_FULL:
            return ILLEGAL_DATA_VALUE
        return None

    def written(self, site: SimSite, address: int, values: list[int]) -> None:
        """The derating applies at once."""
        inverter = site.inverters[self.indices[0]]
        if inverter.limit_pct != values[0] / 10.0 or not inverter.limit_enabled:
            self.flash_writes += 1
        self._apply(inverter)

    def _apply(self, inverter: SimInverter) -> None:
        inverter.limit_pct = self.holding.values[reg.DERATING_PCT] / 10.0
        inverter.limit_enabled = True
        inverter.limit_revert_s = 0.0

    def limit_write_pct(self, address: int, values: Sequence[int]) -> float | None:
        """A write to the derating, in %."""
        if address == reg.DERATING_PCT and values:
            return values[0] / 10.0
        return None

    def refresh(self, site: SimSite) -> None:
        """Output, status, energy (0.01 kWh) and the predicted (available) power."""
        inverter = site.inverters[self.indices[0]]
        bank = self.holding
        bank.write(reg.ACTIVE_POWER, _u32_words(round(inverter.output_w)))
        if not inverter.connected:
            status = STATUS_SHUT_DOWN
        elif inverter.available_w <= 0:
            status = STATUS_NO_IRRADIATION
        elif inverter.available_w > inverter.limit_w:
            status = STATUS_LIMITED
        else:
            status = STATUS_ON_GRID
        bank.write(reg.DEVICE_STATUS, [status])
        energy_wh = self.energy_start_wh + inverter.lifetime_energy_wh
        bank.write(reg.TOTAL_ENERGY, _u32_words(int(energy_wh // reg.ENERGY_WH_PER_COUNT)))
        available = min(inverter.available_w, inverter.rated_power_w)
        bank.write(reg.MPPT_PREDICTED_POWER, _u32_words(round(available)))
