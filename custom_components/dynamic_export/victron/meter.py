"""The GX's grid meter (``com.victronenergy.grid``) as the site meter.

The meter is a service of its own on the GX, at the unit id of its device instance (usually
30 or above; the GX lists it under *Available services*). Power is per phase, int16 W,
+ import, as the GX's ESS loop sees it; energy is the meter's total import and export
(uint32, 0.01 kWh), on firmware that has it.

The GX serves whatever its grid service last had, with no timestamp, so values that stopped
moving look fresh. As for SunSpec meters, energy totals that stand still while the power
reading says energy flows mean frozen values: the reading then counts as old as the totals'
last move, and the controller's meter age limit sends the site to fail-safe. Firmware
without the totals cannot be judged (said once in the log).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.frozen import FrozenCounterCheck
from ..core.measurements import MeterReading
from ..sunspec.connection import RegisterConnection
from ..sunspec.errors import ModbusExceptionError
from . import registers as reg
from .errors import GridMeterUnavailableError

DEFAULT_GRID_METER_UNIT = 30
ENERGY_STEP_WH = 10.0
"""The totals' resolution: 0.01 kWh."""

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GridMeterInfo:
    """What set-up learned about the grid meter."""

    serial_number: str | None
    phases: int


async def async_read_grid_meter(connection: RegisterConnection, unit_id: int) -> GridMeterInfo:
    """Identify the grid meter at ``unit_id`` without writing; count its live phases.

    Raises GridMeterUnavailableError when the unit holds no grid meter service.
    """
    try:
        await connection.read_holding_registers(unit_id, reg.GRID_POWER, 3)
        serial = reg.text(
            await connection.read_holding_registers(unit_id, reg.GRID_SERIAL, reg.GRID_SERIAL_REGS)
        )
        volts_amps = await connection.read_holding_registers(unit_id, reg.GRID_VOLTAGE_CURRENT, 6)
    except ModbusExceptionError as err:
        if err.code not in (
            reg.ILLEGAL_DATA_ADDRESS,
            reg.GATEWAY_PATH_UNAVAILABLE,
            reg.GATEWAY_NO_RESPONSE,
        ):
            raise
        raise GridMeterUnavailableError(f"unit {unit_id} holds no GX grid meter: {err}") from err
    phases = sum(1 for volts in volts_amps[0::2] if volts > 0) or 1
    return GridMeterInfo(serial, phases)


class VictronGridMeter:
    """Implements core.devices.SiteMeter for the GX's grid meter."""

    def __init__(
        self,
        connection: RegisterConnection,
        unit_id: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """The meter at ``unit_id`` behind the GX's connection."""
        self._connection = connection
        self._unit_id = unit_id
        self._clock = clock
        self._info: GridMeterInfo | None = None
        self._has_energy = True
        self._frozen_check = FrozenCounterCheck()

    @property
    def unit_id(self) -> int:
        """Modbus unit id of the meter service."""
        return self._unit_id

    async def async_setup(self) -> GridMeterInfo:
        """Identify the meter."""
        self._info = await async_read_grid_meter(self._connection, self._unit_id)
        return self._info

    async def async_read(self) -> MeterReading:
        """Grid power (+ import) per phase and in total, voltage, energy where available."""
        if self._info is None:
            await self.async_setup()
        info = self._info
        assert info is not None
        timestamp = self._clock()
        read = self._connection.read_holding_registers
        powers = [float(reg.int16(w)) for w in await read(self._unit_id, reg.GRID_POWER, 3)]
        volts_amps = await read(self._unit_id, reg.GRID_VOLTAGE_CURRENT, 6)
        imported = exported = None
        if self._has_energy:
            try:
                energy = await read(self._unit_id, reg.GRID_ENERGY, 4)
            except ModbusExceptionError as err:
                if err.code != reg.ILLEGAL_DATA_ADDRESS:
                    raise
                self._has_energy = False  # older firmware: no totals
            else:
                imported = reg.uint32(energy[0:2]) * 10.0  # 0.01 kWh -> Wh
                exported = reg.uint32(energy[2:4]) * 10.0
        phases: tuple[float | None, float | None, float | None] = (
            powers[0],
            powers[1] if info.phases >= 2 else None,
            powers[2] if info.phases >= 3 else None,
        )
        grid_w = sum(p for p in phases if p is not None)
        valid_from = self._check_frozen(timestamp, grid_w, imported, exported)
        return MeterReading(
            timestamp=timestamp if valid_from is None else valid_from,
            grid_power_w=grid_w,
            phase_power_w=phases if info.phases > 1 else None,
            import_energy_wh=imported,
            export_energy_wh=exported,
            voltage_v=volts_amps[0] / 10.0 if volts_amps[0] else None,
        )

    def _check_frozen(
        self, now: float, power_w: float, imported: float | None, exported: float | None
    ) -> float | None:
        """When the values are frozen, the time they were last live; log the transitions."""
        return self._frozen_check.observe_meter(
            _LOGGER,
            f"Victron grid meter (unit {self._unit_id})",
            "energy totals",
            now,
            power_w,
            imported,
            exported,
            ENERGY_STEP_WH,
        )
