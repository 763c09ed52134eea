"""A simulated SolarEdge inverter: SunSpec models 1 and 103, and Enhanced Dynamic Power Control.

Laid out from :mod:`..solaredge.registers` (the power-control registers, their 32-bit values
**low word first**) and the SunSpec model tables (big-endian, from 40000). What the client
relies on, and what this device does:

- **committed power control**: 0xF142 (enable) and 0xF104 (RRCR = 4) take effect only after
  1 is written to 0xF100; the commit takes ``commit_s`` of site time, meanwhile 0xF100 reads
  the 1 written, then 0 (done). They survive :meth:`SolarEdgeUnit.restart`.
- **EDPC in RAM**: 0xF300-0xF323 are lost by a restart. With power control committed and
  0xF300 = 1, the output ceiling is 0xF322 (% of 0xF30C); when nothing is written to 0xF322
  for the command timeout (0xF310) the fallback limit (0xF312) applies instead, until the
  next write. The ceiling moves at the ramp rates (0xF318/0xF31A, %/min; -1 at once; 5 %/min
  after a restart, as the inverter's default).
- **meter 1** (:class:`SolarEdgeMeterBlocks`, on the first SolarEdge inverter): the site's grid
  meter chained after model 103 as SolarEdge serves it, a common block (L=65) at the address
  :mod:`..solaredge.meter` reads meter 1 from, then meter model 203. Its values are those of
  the SunSpec simulated meter (:class:`.registers.MeterRegisters`: the same delayed, noisy grid
  power and energy counters), with SolarEdge's sign: ``W`` (and ``VAR``) positive for export.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..solaredge import registers as reg
from ..solaredge.meter import METER_COMMON_ADDRESSES
from ..sunspec.models import MODELS
from .physics import SimInverter, SimMeter, SimSite
from .registers import (
    END_MARKER,
    MeterRegisters,
    RegisterImage,
    common_values,
    model_103_scale_factors,
    power_sf,
    refresh_model_103,
)
from .vendor import ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE, VendorUnit

MANUFACTURER = "SolarEdge"
DEFAULT_RAMP_PCT_PER_MIN = 5.0
DEFAULT_TIMEOUT_S = 60
DEFAULT_FALLBACK_PCT = 100.0
DEFAULT_COMMIT_S = 6.0

_FLOATS = (
    reg.ACTIVE_POWER_BASE,
    reg.FALLBACK_LIMIT,
    reg.RAMP_UP,
    reg.RAMP_DOWN,
    reg.DYNAMIC_LIMIT,
)
_PERCENTS = (reg.FALLBACK_LIMIT, reg.DYNAMIC_LIMIT)
GRID_OPTION = "Export+Import"
"""The meter function SolarEdge names a meter at the grid connection point by."""
METER_MODEL = "SE-MTR-3Y-400V-A"
METER_SERIAL = "SIM-SE-MTR-1"
METER_COMMON_LENGTH = 65
_SIGNED_POINTS = ("W", "WphA", "WphB", "WphC", "VAR", "VARphA", "VARphB", "VARphC")
"""Meter points whose sign SolarEdge turns round (export positive)."""


class SolarEdgeMeterBlocks:
    """Meter 1 of a SolarEdge inverter: the site's grid meter, in the inverter's unit.

    The values come from a :class:`MeterRegisters` (the SunSpec meter's physics and scaling),
    whose common block and meter model are served here from meter 1's address on, with the
    power points negated and the common block saying what the meter is set up as.
    """

    def __init__(
        self,
        meter: SimMeter,
        *,
        max_power_w: float,
        unit_id: int,
        counters_start_wh: tuple[float, float] = (0.0, 0.0),
        option: str = GRID_OPTION,
    ) -> None:
        self.meter = meter
        self.frozen = False
        """Serve the last values while the site goes on (the inverter lost its meter)."""
        self.source = MeterRegisters(
            meter,
            max_power_w=max_power_w,
            unit_id=unit_id,
            common_length=METER_COMMON_LENGTH,
            counters_start_wh=counters_start_wh,
        )
        image = self.source.image
        image.set(1, "Mn", MANUFACTURER)
        image.set(1, "Md", METER_MODEL)
        image.set(1, "SN", METER_SERIAL)
        image.set(1, "Opt", option)
        self.start = METER_COMMON_ADDRESSES[0]
        """Where meter 1's common block is served (its ID register)."""
        self._offset = self.start - image.model_address[1]
        self.end = image.end - 2 + self._offset
        """First address after the meter model (where the end marker goes)."""
        self._flip_signs()

    @property
    def model_address(self) -> int:
        """Where the meter model's ID register is served."""
        return self.source.image.model_address[203] + self._offset

    def read(self, address: int, count: int) -> list[int]:
        """Registers as served (caller checks :meth:`contains`)."""
        return self.source.image.read(address - self._offset, count)

    def refresh(self) -> None:
        """The grid meter's present values, in SolarEdge's sign (unless frozen)."""
        if self.frozen:
            return
        self.source.refresh(self.meter)
        self._flip_signs()

    def _flip_signs(self) -> None:
        image = self.source.image
        for name in _SIGNED_POINTS:
            raw = image.get(203, name)
            if isinstance(raw, int):
                image.set(203, name, -raw)


class SolarEdgeUnit(VendorUnit):
    """One SolarEdge inverter (a unit id) standing for site inverter ``index``."""

    family = "solaredge"

    def __init__(
        self,
        unit_id: int,
        index: int,
        inverter: SimInverter,
        *,
        committed: bool = False,
        commit_s: float = DEFAULT_COMMIT_S,
        energy_start_wh: float = 0.0,
    ) -> None:
        super().__init__(unit_id, (index,))
        self.rating_w = inverter.rated_power_w
        self.energy_start_wh = energy_start_wh
        self.w_sf = power_sf(self.rating_w)
        self.sunspec = RegisterImage(
            [
                (
                    MODELS[1],
                    common_values(
                        "Simulated SolarEdge", f"SIM-SE-{index + 1}", unit_id, MANUFACTURER
                    ),
                    65,
                ),
                (MODELS[103], model_103_scale_factors(self.w_sf), None),
            ]
        )
        self.commit_s = commit_s
        self.commit_result = reg.COMMIT_OK
        """What the next commit ends with (a register number makes it fail naming it)."""
        self.commit_done_at: float | None = None
        self.committed_enable = reg.ENABLED if committed else reg.DISABLED
        self.committed_config = reg.RRCR if committed else 0
        self.commits = 0
        self.allow_writes(reg.COMMIT)
        self.allow_writes(reg.REACTIVE_POWER_CONFIG, 2)
        self.allow_writes(reg.ADVANCED_POWER_CONTROL_ENABLE, 2)
        self.holding.define(reg.EDPC_ENABLE, reg.DYNAMIC_LIMIT + 2 - reg.EDPC_ENABLE)
        self.allow_writes(reg.EDPC_ENABLE)
        self.allow_writes(reg.ACTIVE_REACTIVE_PREFERENCE)
        self.allow_writes(reg.COMMAND_TIMEOUT, 2)
        for address in _FLOATS:
            self.allow_writes(address, 2)
        self.holding.write(
            reg.ADVANCED_POWER_CONTROL_ENABLE, reg.encode_int32(self.committed_enable)
        )
        self.holding.write(reg.REACTIVE_POWER_CONFIG, reg.encode_int32(self.committed_config))
        self.in_force_pct = 100.0
        """The EDPC ceiling after ramping, % of the rating (100 while EDPC does not apply)."""
        self.last_command_s = 0.0
        self.fallback_active = False
        self.restart()
        inverter.limit_revert_s = 0.0
        self.meter: SolarEdgeMeterBlocks | None = None
        """Meter 1, when the site's grid meter is wired to this inverter (:meth:`wire_meter`)."""

    def wire_meter(self, meter: SolarEdgeMeterBlocks) -> None:
        """Serve ``meter`` as meter 1, chained right after model 103 (where the end marker was)."""
        if self.sunspec.end - 2 != meter.start:
            raise ValueError(
                f"meter 1 belongs at {meter.start}, but the inverter's models end at "
                f"{self.sunspec.end - 2}"
            )
        self.meter = meter

    # --- state ---------------------------------------------------------------------------

    def restart(self) -> None:
        """The inverter restarts: the EDPC registers (RAM) are back at their defaults."""
        bank = self.holding
        for address in range(reg.EDPC_ENABLE, reg.DYNAMIC_LIMIT + 2):
            bank.values[address] = 0
        bank.write(reg.MAX_ACTIVE_POWER, reg.encode_float(self.rating_w))
        bank.write(reg.ACTIVE_POWER_BASE, reg.encode_float(self.rating_w))
        bank.write(reg.COMMAND_TIMEOUT, reg.encode_uint32(DEFAULT_TIMEOUT_S))
        bank.write(reg.FALLBACK_LIMIT, reg.encode_float(DEFAULT_FALLBACK_PCT))
        bank.write(reg.RAMP_UP, reg.encode_float(DEFAULT_RAMP_PCT_PER_MIN))
        bank.write(reg.RAMP_DOWN, reg.encode_float(DEFAULT_RAMP_PCT_PER_MIN))
        bank.write(reg.DYNAMIC_LIMIT, reg.encode_float(100.0))
        self.fallback_active = False

    def _float(self, address: int) -> float:
        value = reg.decode_float(self.holding.read(address, 2))
        return math.nan if value is None else value

    @property
    def power_control_committed(self) -> bool:
        """Whether the last successful commit put power control (enable + RRCR) in force."""
        return self.committed_enable == reg.ENABLED and self.committed_config == reg.RRCR

    @property
    def edpc_enabled(self) -> bool:
        """0xF300 as written."""
        return self.holding.values[reg.EDPC_ENABLE] == reg.ENABLED

    @property
    def timeout_s(self) -> int:
        """The command timeout (0xF310)."""
        return reg.decode_uint32(self.holding.read(reg.COMMAND_TIMEOUT, 2))

    # --- Modbus --------------------------------------------------------------------------

    def read(self, function: int, address: int, count: int) -> list[int] | int:
        """SunSpec from the model image (and meter 1's blocks), power control from the bank."""
        meter = self.meter
        if function == 3 and meter is not None:
            chain_end = meter.end + len(END_MARKER)
            if self.sunspec.base <= address < chain_end:
                if address + count > chain_end:
                    return ILLEGAL_DATA_ADDRESS  # past the end marker, as beyond any map
                return self._read_chain(meter, address, count)
        if function == 3 and self.sunspec.contains(address, count):
            return self.sunspec.read(address, count)
        return super().read(function, address, count)

    def _read_chain(self, meter: SolarEdgeMeterBlocks, address: int, count: int) -> list[int]:
        """The inverter's models, meter 1's blocks after them, then the end marker."""
        words: list[int] = []
        for at in range(address, address + count):
            if at < meter.start:
                words.append(self.sunspec.read(at, 1)[0])
            elif at < meter.end:
                words.append(meter.read(at, 1)[0])
            else:
                words.append(END_MARKER[at - meter.end])
        return words

    def check_write(self, address: int, values: list[int]) -> int | None:
        """Refuse a commit other than 1, and a float that is not finite or not a percentage."""
        if address == reg.COMMIT and values[:1] != [1]:
            return ILLEGAL_DATA_VALUE
        for start in _FLOATS:
            if address <= start and start + 1 < address + len(values):
                value = reg.decode_float(values[start - address : start - address + 2])
                if value is None or not math.isfinite(value):
                    return ILLEGAL_DATA_VALUE
                if start in _PERCENTS and not 0.0 <= value <= 100.0:
                    return ILLEGAL_DATA_VALUE
        if address <= reg.EDPC_ENABLE < address + len(values) and values[
            reg.EDPC_ENABLE - address
        ] not in (reg.DISABLED, reg.ENABLED):
            return ILLEGAL_DATA_VALUE
        return None

    def written(self, site: SimSite, address: int, values: list[int]) -> None:
        """Start a commit, restart the command timer, and apply the ceiling now."""
        count = len(values)
        if address == reg.COMMIT:
            self.commits += 1
            self.commit_done_at = site.now + self.commit_s
        if self._touches(address, count, (reg.DYNAMIC_LIMIT, reg.DYNAMIC_LIMIT + 1)) or (
            self._touches(address, count, (reg.EDPC_ENABLE,)) and self.edpc_enabled
        ):
            self.last_command_s = site.now
        self.step(site, 0.0)

    def limit_write_pct(self, address: int, values: Sequence[int]) -> float | None:
        """A write to the dynamic limit (0xF322), as written."""
        if address == reg.DYNAMIC_LIMIT and len(values) >= 2:
            return reg.decode_float(list(values[:2]))
        return None

    # --- behaviour -----------------------------------------------------------------------

    def _finish_commit(self) -> None:
        self.commit_done_at = None
        if self.commit_result != reg.COMMIT_OK:
            self.holding.values[reg.COMMIT] = self.commit_result
            return
        self.holding.values[reg.COMMIT] = reg.COMMIT_OK
        bank = self.holding
        self.committed_enable = reg.decode_int32(bank.read(reg.ADVANCED_POWER_CONTROL_ENABLE, 2))
        self.committed_config = reg.decode_int32(bank.read(reg.REACTIVE_POWER_CONFIG, 2))

    def _target_pct(self, now: float) -> float:
        """The ceiling EDPC asks for now, before ramping (% of the rating)."""
        if not (self.power_control_committed and self.edpc_enabled):
            self.fallback_active = False
            return 100.0
        timeout = self.timeout_s
        self.fallback_active = timeout > 0 and now - self.last_command_s > timeout
        pct = self._float(reg.FALLBACK_LIMIT if self.fallback_active else reg.DYNAMIC_LIMIT)
        base = self._float(reg.ACTIVE_POWER_BASE)
        if not math.isfinite(pct) or not math.isfinite(base):
            return 100.0
        return min(100.0, max(0.0, pct * base / self.rating_w))

    def step(self, site: SimSite, dt: float) -> None:
        """Finish a commit that is due, run the timeout and the ramps, set the ceiling."""
        if self.commit_done_at is not None and site.now >= self.commit_done_at:
            self._finish_commit()
        target = self._target_pct(site.now)
        rising = target > self.in_force_pct
        rate = self._float(reg.RAMP_UP if rising else reg.RAMP_DOWN)
        active = self.power_control_committed and self.edpc_enabled
        if not active or not math.isfinite(rate) or rate < 0:
            self.in_force_pct = target
        elif rising:
            self.in_force_pct = min(target, self.in_force_pct + rate / 60.0 * dt)
        else:
            self.in_force_pct = max(target, self.in_force_pct - rate / 60.0 * dt)
        inverter = site.inverters[self.indices[0]]
        inverter.limit_pct = self.in_force_pct
        inverter.limit_enabled = self.in_force_pct < 100.0
        inverter.limit_revert_s = 0.0

    def refresh(self, site: SimSite) -> None:
        """Output, energy and state into model 103."""
        inverter = site.inverters[self.indices[0]]
        lifetime = round(self.energy_start_wh + inverter.lifetime_energy_wh)
        refresh_model_103(self.sunspec, inverter, self.w_sf, lifetime)
        if self.meter is not None:
            self.meter.refresh()
