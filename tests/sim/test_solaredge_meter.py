"""The simulated SolarEdge inverter's meter 1, read by the component's own SolarEdge meter client.

Real sockets on 127.0.0.1; simulated time moves only when a test advances it. The simulated
site's grid meter is served twice: as the SunSpec meter (unit 240) and as meter 1 chained in
the first SolarEdge inverter's unit, so the two readings must agree but for SolarEdge's sign,
which the client turns round.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from custom_components.dynamic_export.sim.families import FamilyOptions
from custom_components.dynamic_export.sim.scenario import Scenario
from custom_components.dynamic_export.sim.server import SimulatedSiteServer
from custom_components.dynamic_export.sim.solaredge import (
    GRID_OPTION,
    METER_MODEL,
    SolarEdgeUnit,
)
from custom_components.dynamic_export.solaredge.errors import NoMeterError, NotGridMeterError
from custom_components.dynamic_export.solaredge.inverter import SolarEdgeInverter
from custom_components.dynamic_export.solaredge.meter import (
    METER_COMMON_ADDRESSES,
    SolarEdgeMeter,
    async_read_meter_identity,
)
from custom_components.dynamic_export.sunspec.connection import ModbusTcpConnection
from custom_components.dynamic_export.sunspec.device import SunSpecDevice
from custom_components.dynamic_export.sunspec.errors import ModbusExceptionError
from custom_components.dynamic_export.sunspec.meter import SunSpecMeter

HOST = "127.0.0.1"
LOAD_W = 600.0
SITE = Scenario.from_dict(
    {
        "description": "two 5 kW inverters sharing 6 kW of PV, a 600 W load",
        "duration_s": 3600,
        "repeat": True,
        "inverters": [{"rating_w": 5000}, {"rating_w": 5000}],
        "pv_available_w": 6000.0,
        "load_w": LOAD_W,
    },
    name="still",
)


@pytest.fixture
async def connections() -> AsyncIterator[list[ModbusTcpConnection]]:
    """Connections made by a test, closed after it."""
    made: list[ModbusTcpConnection] = []
    yield made
    for connection in made:
        await connection.close()


def _serve(**options: object) -> SimulatedSiteServer:
    return SimulatedSiteServer(
        SITE,
        port=0,
        autostep=False,
        family="solaredge",
        family_options=FamilyOptions(solaredge_committed=True, **options),  # type: ignore[arg-type]
    )


def _connect(server: SimulatedSiteServer, made: list[ModbusTcpConnection]) -> ModbusTcpConnection:
    connection = ModbusTcpConnection(HOST, server.port, timeout_s=1.0)
    made.append(connection)
    return connection


async def test_meter_reads_as_the_sunspec_meter_with_solaredge_sign(
    connections: list[ModbusTcpConnection],
) -> None:
    """Meter 1 sits where the client looks, says it is at the grid point, and shows the site's
    grid power with export positive on the wire (the client's reading: export negative)."""
    async with _serve() as server:
        server.advance(10.0)  # the inverters are up: the site exports
        assert server.solaredge_meter_unit_id == 1
        connection = _connect(server, connections)
        meter = SolarEdgeMeter(connection, 1, 1, clock=lambda: server.site.now)
        info = await meter.async_setup()
        assert info.address == METER_COMMON_ADDRESSES[0] + 2 + 65
        unit = server.vendor_units[1]
        assert isinstance(unit, SolarEdgeUnit)
        assert unit.meter is not None
        assert info.address == unit.meter.model_address
        assert (info.manufacturer, info.model) == ("SolarEdge", METER_MODEL)
        assert info.option == GRID_OPTION
        assert (info.meter_model_id, info.phases) == (203, 3)

        raw_w = (await connection.read_holding_registers(1, info.address + 2 + 16, 1))[0]
        assert 0 < raw_w < 0x8000  # + export on the wire, as SolarEdge's grid meters report
        reading = await meter.async_read()
        assert reading.grid_power_w < -3000.0
        assert reading.grid_power_w == pytest.approx(server.site.meter.reported_power_w, abs=1.0)
        assert reading.phase_power_w is not None
        assert sum(p or 0.0 for p in reading.phase_power_w) == pytest.approx(
            reading.grid_power_w, abs=3.0
        )
        sunspec = SunSpecMeter(SunSpecDevice(connection, server.meter_unit_id))
        await sunspec.async_setup()
        same = await sunspec.async_read()
        assert reading.grid_power_w == same.grid_power_w
        assert reading.reactive_power_var == same.reactive_power_var  # household imports VArs
        assert (reading.import_energy_wh, reading.export_energy_wh) == (
            same.import_energy_wh,
            same.export_energy_wh,
        )
        assert reading.voltage_v == same.voltage_v
        assert reading.frequency_hz == same.frequency_hz


async def test_counters_move_with_the_simulated_power(
    connections: list[ModbusTcpConnection],
) -> None:
    """Export counts up by the energy exported; import stands still while exporting."""
    async with _serve() as server:
        server.advance(10.0)
        meter = SolarEdgeMeter(_connect(server, connections), 1, 1, clock=lambda: server.site.now)
        before = await meter.async_read()
        exported_before = server.site.meter.export_energy_wh
        server.advance(60.0)
        after = await meter.async_read()
        assert before.export_energy_wh is not None
        assert after.export_energy_wh is not None
        moved = after.export_energy_wh - before.export_energy_wh
        assert moved == pytest.approx(server.site.meter.export_energy_wh - exported_before, abs=1)
        assert moved == pytest.approx(-after.grid_power_w * 60.0 / 3600.0, rel=0.05)
        assert after.import_energy_wh == before.import_energy_wh
        assert after.timestamp == server.site.now  # live: dated when read


async def test_frozen_meter_is_dated_at_its_counters_last_move(
    connections: list[ModbusTcpConnection],
) -> None:
    """The inverter keeps serving meter 1's last values: the client dates them back."""
    async with _serve() as server:
        server.advance(10.0)
        meter = SolarEdgeMeter(_connect(server, connections), 1, 1, clock=lambda: server.site.now)
        for _ in range(5):
            server.advance(2.0)
            await meter.async_read()
        unit = server.vendor_units[1]
        assert isinstance(unit, SolarEdgeUnit)
        assert unit.meter is not None
        unit.meter.frozen = True
        frozen_at = server.site.now
        readings = []
        for _ in range(15):
            server.advance(2.0)
            readings.append(await meter.async_read())
        assert len({r.export_energy_wh for r in readings}) == 1
        assert readings[-1].timestamp <= frozen_at  # older than the site's max age allows
        unit.meter.frozen = False
        server.advance(2.0)
        live = await meter.async_read()
        assert live.timestamp == server.site.now


async def test_grid_point_check_and_the_other_inverters(
    connections: list[ModbusTcpConnection],
) -> None:
    """A meter set up as consumption is refused; the second inverter has no meter; reads past
    the chain's end marker are refused as beyond any map, and the inverter reads as before."""
    async with _serve(solaredge_meter_option="Consumption") as server:
        connection = _connect(server, connections)
        with pytest.raises(NotGridMeterError, match="Consumption"):
            await async_read_meter_identity(connection, 1, 1)
        with pytest.raises(NoMeterError):
            await async_read_meter_identity(connection, 2, 1)
        with pytest.raises(NoMeterError):
            await async_read_meter_identity(connection, 1, 2)
        end = METER_COMMON_ADDRESSES[0] + 2 + 65 + 2 + 105
        assert await connection.read_holding_registers(1, end, 2) == [0xFFFF, 0]
        with pytest.raises(ModbusExceptionError) as refused:
            await connection.read_holding_registers(1, end, 3)
        assert refused.value.code == 2
        inverter = SolarEdgeInverter(connection, 1)
        assert (await inverter.async_setup()).rated_power_w == 5000.0
        assert (await inverter.async_read()).ac_power_w >= 0.0

    async with _serve(solaredge_meter=False) as server:
        assert server.solaredge_meter_unit_id is None
        with pytest.raises(NoMeterError):
            await async_read_meter_identity(_connect(server, connections), 1, 1)
