"""Connection test for the config flow: identify a SolarEdge inverter without writing.

A set-up check must never change an inverter: the committed power-control settings are
left to the first control cycle (:class:`~.inverter.SolarEdgeInverter`). Failures are
distinct errors the flow maps to form errors: DeviceUnavailableError (nothing answers),
NotSunSpecError, NotSolarEdgeError, PowerControlUnsupportedError, ModbusExceptionError and
InvalidDeviceDataError.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sunspec.connection import RegisterConnection
from ..sunspec.device import SunSpecDevice
from ..sunspec.errors import ModbusExceptionError
from . import registers as reg
from .errors import PowerControlUnsupportedError
from .inverter import ILLEGAL_DATA_ADDRESS, SolarEdgeInfo, async_read_identity


@dataclass(frozen=True, slots=True)
class SolarEdgeProbe:
    """What the flow shows and stores; ``committed`` tells whether set-up will commit."""

    info: SolarEdgeInfo
    committed: bool


async def async_probe(connection: RegisterConnection, unit_id: int) -> SolarEdgeProbe:
    """Identify the inverter and check its power-control registers can be read."""
    device = SunSpecDevice(connection, unit_id)
    info, _ = await async_read_identity(device)
    try:
        await connection.read_holding_registers(unit_id, reg.EDPC_ENABLE, 1)
        enable = reg.decode_int32(
            await connection.read_holding_registers(unit_id, reg.ADVANCED_POWER_CONTROL_ENABLE, 2)
        )
        config = reg.decode_int32(
            await connection.read_holding_registers(unit_id, reg.REACTIVE_POWER_CONFIG, 2)
        )
    except ModbusExceptionError as err:
        if err.code != ILLEGAL_DATA_ADDRESS:
            raise
        raise PowerControlUnsupportedError(
            f"unit {unit_id} has no Enhanced Dynamic Power Control registers: {err}"
        ) from err
    return SolarEdgeProbe(info, committed=enable == reg.ENABLED and config == reg.RRCR)
