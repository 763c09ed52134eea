"""Connection test for the config flow: identify a Sungrow inverter without writing.

Failures are distinct errors the flow maps to form errors: DeviceUnavailableError (nothing
answers), NotSungrowError, PowerLimitUnsupportedError, ModbusExceptionError and
InvalidDeviceDataError.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import registers as reg
from .inverter import SungrowConnection, SungrowInfo, async_read_identity, async_read_limit


@dataclass(frozen=True, slots=True)
class SungrowProbe:
    """What the flow shows and stores; ``limited`` tells whether a limitation is on now."""

    info: SungrowInfo
    limited: bool


async def async_probe(connection: SungrowConnection, unit_id: int) -> SungrowProbe:
    """Read the identity and the power limitation registers."""
    info = await async_read_identity(connection, unit_id)
    switch, _ = await async_read_limit(connection, unit_id, info.family)
    return SungrowProbe(info, limited=switch == reg.ENABLE)
