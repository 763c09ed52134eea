"""Connection test for the config flow: identify a Huawei SUN2000 without writing.

Failures are distinct errors the flow maps to form errors: DeviceUnavailableError (nothing
answers), NotHuaweiError, DeratingUnsupportedError, ModbusExceptionError and
InvalidDeviceDataError.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sunspec.connection import RegisterConnection
from .inverter import HuaweiInfo, async_read_derating, async_read_identity


@dataclass(frozen=True, slots=True)
class HuaweiProbe:
    """What the flow shows and stores; ``derating_pct`` is the output cap in force now."""

    info: HuaweiInfo
    derating_pct: float


async def async_probe(connection: RegisterConnection, unit_id: int) -> HuaweiProbe:
    """Read the identity and the derating register."""
    info = await async_read_identity(connection, unit_id)
    derating = await async_read_derating(connection, unit_id)
    return HuaweiProbe(info, derating / 10.0)
