"""A simulated Sungrow string (SG) or hybrid (SH) inverter, laid out from ``sungrow.registers``.

Sungrow numbers registers from 1; every register here sits at ``wire(doc)``. Two banks, as on
the inverter: input registers (identity and measurements, FC4) and holding registers (the
power limitation, FC3/FC16). 32-bit values go **low word first**. The power limitation is a
switch (0xAA on, 0x55 off) and a ratio of the rating in 0.1 %, held until changed (no revert
timer): the output ceiling is ratio × rating while the switch is on.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..sungrow import registers as reg
from .physics import SimInverter, SimSite
from .vendor import ILLEGAL_DATA_VALUE, RegisterBank, VendorUnit, text_words

DEVICE_TYPES = {reg.Family.SG: 0x2603, reg.Family.SH: 0x0E03}
"""A device type code of each family (an SG string inverter, an SH…RT hybrid)."""
_IDENTITY_END_DOC = reg.DOC_TOTAL_ENERGY + 1


def _u32_words(value: int) -> list[int]:
    """A 32-bit value (two's complement if negative) as two registers, low word first."""
    raw = value & 0xFFFF_FFFF
    return [raw & 0xFFFF, raw >> 16]


class SungrowUnit(VendorUnit):
    """One Sungrow inverter of ``family`` (a unit id) standing for site inverter ``index``."""

    def __init__(
        self,
        unit_id: int,
        index: int,
        inverter: SimInverter,
        family: reg.Family,
        *,
        energy_start_wh: float = 0.0,
    ) -> None:
        super().__init__(unit_id, (index,))
        self.family = f"sungrow_{family.value}"
        self.map = reg.MAPS[family]
        self.sungrow_family = family
        self.energy_start_wh = energy_start_wh
        inputs = RegisterBank()
        inputs.define(reg.wire(reg.DOC_SERIAL), _IDENTITY_END_DOC - reg.DOC_SERIAL + 1)
        inputs.define(reg.wire(self.map.active_power), 2)
        inputs.write(
            reg.wire(reg.DOC_SERIAL), text_words(f"SIM-{family.name}-{index + 1}", reg.SERIAL_WORDS)
        )
        inputs.write(reg.wire(reg.DOC_DEVICE_TYPE), [DEVICE_TYPES[family]])
        inputs.write(reg.wire(reg.DOC_NOMINAL_POWER), [round(inverter.rated_power_w / 100.0)])
        self.inputs = inputs
        self.switch_address = reg.wire(self.map.limit_switch)
        self.ratio_address = reg.wire(self.map.limit_ratio)
        self.allow_writes(self.switch_address)
        self.allow_writes(self.ratio_address)
        self.holding.write(self.switch_address, [reg.DISABLE])
        self.holding.write(self.ratio_address, [reg.RATIO_FULL])
        self.flash_writes = 0
        """Writes that changed a setting (Sungrow may keep them in flash)."""
        self._apply(inverter)

    def check_write(self, address: int, values: list[int]) -> int | None:
        """A switch other than 0xAA/0x55 or a ratio above 100 % is refused."""
        for offset, value in enumerate(values):
            if address + offset == self.switch_address and value not in (reg.ENABLE, reg.DISABLE):
                return ILLEGAL_DATA_VALUE
            if address + offset == self.ratio_address and value > reg.RATIO_FULL:
                return ILLEGAL_DATA_VALUE
        return None

    def write(self, site: SimSite, address: int, values: Sequence[int]) -> int | None:
        """Count a write that changes a setting as a flash write."""
        before = (
            self.holding.read(address, len(values))
            if self.holding.contains(address, len(values))
            else None
        )
        refused = super().write(site, address, values)
        if refused is None and before != list(values):
            self.flash_writes += 1
        return refused

    def written(self, site: SimSite, address: int, values: list[int]) -> None:
        """The limitation applies at once."""
        self._apply(site.inverters[self.indices[0]])

    def _apply(self, inverter: SimInverter) -> None:
        switch = self.holding.values[self.switch_address]
        inverter.limit_enabled = switch == reg.ENABLE
        inverter.limit_pct = self.holding.values[self.ratio_address] / 10.0
        inverter.limit_revert_s = 0.0

    def limit_write_pct(self, address: int, values: Sequence[int]) -> float | None:
        """A write to the ratio register, in %."""
        if address <= self.ratio_address < address + len(values):
            return values[self.ratio_address - address] / 10.0
        return None

    def refresh(self, site: SimSite) -> None:
        """Output (U32 for SG, S32 for SH) and total energy (SG kWh, SH 0.1 kWh)."""
        inverter = site.inverters[self.indices[0]]
        assert self.inputs is not None
        self.inputs.write(reg.wire(self.map.active_power), _u32_words(round(inverter.output_w)))
        energy_wh = self.energy_start_wh + inverter.lifetime_energy_wh
        self.inputs.write(
            reg.wire(reg.DOC_TOTAL_ENERGY),
            _u32_words(int(energy_wh // self.map.energy_scale_wh)),
        )
