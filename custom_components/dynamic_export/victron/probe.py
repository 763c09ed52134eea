"""Connection tests for the config flow: identify a GX, or its grid meter, without writing.

A set-up check never changes the GX: the feed-in setting it holds now is only read, and the
flow stores it as the GX's own setting (what releasing writes back, and a ceiling the site
never raises). Failures are distinct errors the flow maps to form errors.
"""

from __future__ import annotations

from ..sunspec.connection import RegisterConnection
from .inverter import GxInfo, async_read_gx, async_read_gx_serial
from .meter import GridMeterInfo, async_read_grid_meter


async def async_probe_gx(connection: RegisterConnection) -> GxInfo:
    """Identify the GX (unit 100) and read its ESS feed-in setting."""
    return await async_read_gx(connection)


async def async_probe_grid_meter(connection: RegisterConnection, unit_id: int) -> GridMeterInfo:
    """Identify the GX's grid meter at ``unit_id`` (and that unit 100 is a GX; ESS or not)."""
    await async_read_gx_serial(connection)
    return await async_read_grid_meter(connection, unit_id)
