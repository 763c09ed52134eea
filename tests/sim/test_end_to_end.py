"""The project's own SunSpec client against the simulated site, over 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from custom_components.dynamic_export.core.errors import DeviceError
from custom_components.dynamic_export.core.measurements import InverterCommand
from custom_components.dynamic_export.sim.server import SimulatedSiteServer
from custom_components.dynamic_export.sunspec.connection import ModbusTcpConnection
from custom_components.dynamic_export.sunspec.device import SunSpecDevice
from custom_components.dynamic_export.sunspec.inverter import SunSpecInverter
from custom_components.dynamic_export.sunspec.meter import SunSpecMeter


@pytest.fixture
async def site() -> AsyncIterator[tuple[SimulatedSiteServer, ModbusTcpConnection]]:
    async with SimulatedSiteServer("load_steps", autostep=False) as server:
        connection = ModbusTcpConnection("127.0.0.1", server.port, timeout_s=0.5)
        try:
            yield server, connection
        finally:
            await connection.close()


@pytest.mark.asyncio
async def test_client_limits_a_simulated_inverter(
    site: tuple[SimulatedSiteServer, ModbusTcpConnection],
) -> None:
    server, connection = site
    inverter = SunSpecInverter(SunSpecDevice(connection, 1), revert_timeout_s=30)
    info = await inverter.async_setup()
    assert info.serial_number == "SIM-INV-1"
    assert info.rated_power_w == 5000.0
    reading = await inverter.async_read()
    assert reading.ac_power_w == pytest.approx(3000.0, abs=1)
    assert reading.limit_enabled is False

    await inverter.async_apply(InverterCommand(connect=True, limit_pct=12.5))
    sim = server.site.inverters[0]
    assert sim.limit_enabled
    assert sim.limit_pct == pytest.approx(12.5)
    assert sim.limit_revert_s == 30.0
    server.advance(10.0)
    reading = await inverter.async_read()
    assert reading.ac_power_w == pytest.approx(625.0, abs=1)
    assert reading.limit_pct == pytest.approx(12.5)
    assert reading.status is not None

    await inverter.async_release()
    assert not sim.limit_enabled
    server.advance(10.0)
    assert (await inverter.async_read()).ac_power_w == pytest.approx(3000.0, abs=1)


@pytest.mark.asyncio
async def test_client_reads_the_delayed_meter(
    site: tuple[SimulatedSiteServer, ModbusTcpConnection],
) -> None:
    server, connection = site
    meter = SunSpecMeter(SunSpecDevice(connection, 240))
    assert (await meter.async_read()).grid_power_w == pytest.approx(-2000.0, abs=1)
    server.advance(31.0)  # the load drops 3 kW at 30 s; the meter lags 2 s
    assert (await meter.async_read()).grid_power_w == pytest.approx(-2000.0, abs=1)
    server.advance(1.5)
    reading = await meter.async_read()
    assert reading.grid_power_w == pytest.approx(-5000.0, abs=1)
    assert reading.export_energy_wh is not None
    assert reading.export_energy_wh > 0

    server.set_unit_offline(240)
    with pytest.raises(DeviceError):
        await meter.async_read()
    server.set_unit_offline(240, False)
    assert (await meter.async_read()).grid_power_w == pytest.approx(-5000.0, abs=1)
