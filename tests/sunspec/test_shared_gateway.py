"""Fronius Datamanager pattern: inverters on units 1 and 2 and the meter on 240, one socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from custom_components.dynamic_export.core.measurements import InverterCommand
from custom_components.dynamic_export.sunspec.connection import ConnectionPool
from custom_components.dynamic_export.sunspec.device import SunSpecDevice
from custom_components.dynamic_export.sunspec.inverter import SunSpecInverter
from custom_components.dynamic_export.sunspec.meter import SunSpecMeter

from .conftest import TEST_TIMEOUT_S
from .helpers import (
    DeviceImage,
    inverter_image,
    inverter_values,
    meter_image,
    meter_values,
)


def _site() -> dict[int, DeviceImage]:
    return {
        1: inverter_image(103, limit_sf=0, wmax=8200, inverter=inverter_values(103, w=3000.0)),
        2: inverter_image(113, limit_sf=-2, wmax=5000, inverter=inverter_values(113, w=1234.5)),
        240: meter_image(203, values=meter_values(203, w=-2500.0)),
    }


@pytest.fixture
async def pool() -> AsyncIterator[ConnectionPool]:
    pool = ConnectionPool(timeout_s=TEST_TIMEOUT_S)
    yield pool
    await pool.close()


async def _exercise_site(pool: ConnectionPool, port: int) -> None:
    inverter1 = SunSpecInverter(SunSpecDevice(pool.get("127.0.0.1", port), 1))
    inverter2 = SunSpecInverter(SunSpecDevice(pool.get("127.0.0.1", port), 2))
    meter = SunSpecMeter(SunSpecDevice(pool.get("127.0.0.1", port), 240))
    assert inverter1.device.connection is meter.device.connection
    info1, info2, meter_info = await asyncio.gather(
        inverter1.async_setup(), inverter2.async_setup(), meter.async_setup()
    )
    assert (info1.inverter_model_id, info1.rated_power_w) == (103, 8200.0)
    assert (info2.inverter_model_id, info2.rated_power_w) == (113, 5000.0)
    assert meter_info.meter_model_id == 203
    for _ in range(3):
        r1, r2, m = await asyncio.gather(
            inverter1.async_read(), inverter2.async_read(), meter.async_read()
        )
        assert (r1.ac_power_w, r2.ac_power_w, m.grid_power_w) == (3000.0, 1234.5, -2500.0)
    await asyncio.gather(
        inverter1.async_apply(InverterCommand(connect=True, limit_pct=50.0)),
        inverter2.async_apply(InverterCommand(connect=True, limit_pct=50.0)),
        meter.async_read(),
    )
    r1, r2 = await asyncio.gather(inverter1.async_read(), inverter2.async_read())
    assert (r1.limit_pct, r1.limit_enabled) == (50, True)
    assert (r2.limit_pct, r2.limit_enabled) == (50.0, True)


async def test_units_share_one_connection(make_peer, pool: ConnectionPool) -> None:
    """Against the fake and against pymodbus' own server (3.8 and 3.10+ datastore APIs)."""
    site = _site()
    server = await make_peer(site)
    await _exercise_site(pool, server.port)
    assert server.connections == 1
    assert {r.unit for r in server.requests} == {1, 2, 240}
    wmaxlimpct = {unit: (await server.snapshot(unit)).value(123, "WMaxLimPct") for unit in (1, 2)}
    assert wmaxlimpct == {1: 50, 2: 5000}  # each unit with its own SF
    assert {r.unit for r in server.writes()} == {1, 2}
