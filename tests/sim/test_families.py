"""Each vendor family of the simulated site, read and limited with the component's own client.

Real sockets on 127.0.0.1; simulated time moves only when a test advances it (except where a
commit has to run while the client polls).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from custom_components.dynamic_export.core.measurements import InverterCommand
from custom_components.dynamic_export.huawei import registers as huawei_reg
from custom_components.dynamic_export.huawei.inverter import HuaweiInverter
from custom_components.dynamic_export.sim.families import FamilyOptions
from custom_components.dynamic_export.sim.scenario import Scenario
from custom_components.dynamic_export.sim.server import SimulatedSiteServer
from custom_components.dynamic_export.sim.solaredge import SolarEdgeUnit
from custom_components.dynamic_export.sim.sungrow import SungrowUnit
from custom_components.dynamic_export.sim.victron import VictronGxUnit
from custom_components.dynamic_export.solaredge import registers as se_reg
from custom_components.dynamic_export.solaredge.errors import CommitError
from custom_components.dynamic_export.solaredge.inverter import SolarEdgeInverter
from custom_components.dynamic_export.sungrow import registers as sungrow_reg
from custom_components.dynamic_export.sungrow.inverter import SungrowInverter
from custom_components.dynamic_export.sunspec.connection import ModbusTcpConnection
from custom_components.dynamic_export.sunspec.device import SunSpecDevice
from custom_components.dynamic_export.sunspec.errors import ModbusExceptionError
from custom_components.dynamic_export.sunspec.meter import SunSpecMeter
from custom_components.dynamic_export.victron import registers as victron_reg
from custom_components.dynamic_export.victron.inverter import VictronGxInverter
from custom_components.dynamic_export.victron.meter import VictronGridMeter

HOST = "127.0.0.1"
PV_EACH_W = 3000.0
LOAD_W = 600.0
STILL = Scenario.from_dict(
    {
        "description": "two 5 kW inverters sharing 6 kW of PV (3 kW each), a 600 W load",
        "duration_s": 3600,
        "repeat": True,
        "inverters": [{"rating_w": 5000}, {"rating_w": 5000}],
        "pv_available_w": 2 * PV_EACH_W,
        "load_w": LOAD_W,
    },
    name="still",
)


@pytest.fixture
async def connection_to() -> AsyncIterator[list[ModbusTcpConnection]]:
    """Connections made by a test, closed after it."""
    made: list[ModbusTcpConnection] = []
    yield made
    for connection in made:
        await connection.close()


def _connect(server: SimulatedSiteServer, made: list[ModbusTcpConnection]) -> ModbusTcpConnection:
    connection = ModbusTcpConnection(HOST, server.port, timeout_s=1.0)
    made.append(connection)
    return connection


def _settle(server: SimulatedSiteServer, seconds: float = 10.0) -> None:
    server.advance(seconds)


@pytest.mark.asyncio
async def test_solaredge_commits_once_limits_and_falls_back(
    connection_to: list[ModbusTcpConnection],
) -> None:
    """Set-up commits (polled while site time runs), EDPC limits, the timeout applies 0 %."""
    server = SimulatedSiteServer(
        STILL,
        family="solaredge",
        speed=20.0,
        family_options=FamilyOptions(solaredge_commit_s=2.0),
    )
    async with server:
        site = server.site
        unit = server.vendor_units[1]
        assert isinstance(unit, SolarEdgeUnit)
        assert server.device_units == [("solaredge", 1), ("solaredge", 2)]
        client = SolarEdgeInverter(
            _connect(server, connection_to),
            1,
            revert_timeout_s=10,
            fallback_pct=0.0,
            commit_poll_s=0.02,
            clock=lambda: site.now,
        )
        info = await client.async_setup()
        assert info.manufacturer == "SolarEdge"
        assert info.rated_power_w == 5000.0
        assert info.inverter_model_id == 103
        assert client.commits == 1 == unit.commits
        assert unit.power_control_committed
        server.autostep = False  # from here on, time moves only when the test says
        await client.async_apply(InverterCommand(connect=True, limit_pct=40.0))
        assert unit.edpc_enabled
        # The client turned the 5 %/min ramps off (-1): the limit applies at once.
        assert se_reg.decode_float(unit.holding.read(se_reg.RAMP_UP, 2)) == -1.0
        _settle(server)
        reading = await client.async_read()
        assert reading.limit_pct == pytest.approx(40.0)
        assert reading.ac_power_w == pytest.approx(2000.0, abs=5)
        assert site.inverters[0].limit_w == pytest.approx(2000.0)
        # Nothing written for longer than the command timeout: the fallback (0 %) applies.
        server.advance(11.0)
        assert unit.fallback_active
        reading = await client.async_read()
        assert reading.ac_power_w == pytest.approx(0.0, abs=5)
        # A second client set-up finds power control committed: no second commit.
        again = SolarEdgeInverter(_connect(server, connection_to), 1, clock=lambda: site.now)
        await again.async_setup()
        assert again.commits == 0
        assert unit.commits == 1


@pytest.mark.asyncio
async def test_solaredge_restart_loses_edpc_and_the_client_sets_it_up_again(
    connection_to: list[ModbusTcpConnection],
) -> None:
    server = SimulatedSiteServer(
        STILL,
        family="solaredge",
        autostep=False,
        family_options=FamilyOptions(solaredge_committed=True),
    )
    async with server:
        unit = server.vendor_units[2]
        assert isinstance(unit, SolarEdgeUnit)
        client = SolarEdgeInverter(_connect(server, connection_to), 2, clock=lambda: 0.0)
        await client.async_setup()
        assert client.commits == 0
        await client.async_apply(InverterCommand(connect=True, limit_pct=20.0))
        unit.restart()  # RAM lost: EDPC off, ramps back at 5 %/min
        reading = await client.async_read()
        assert reading.limit_enabled is False
        await client.async_apply(InverterCommand(connect=True, limit_pct=20.0))
        assert unit.edpc_enabled
        _settle(server)
        assert server.site.inverters[1].output_w == pytest.approx(1000.0, abs=5)
        # Only the dynamic limit and EDPC settings were written: nothing committed.
        assert unit.commits == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("family", "expected"),
    [("sungrow_sg", sungrow_reg.Family.SG), ("sungrow_sh", sungrow_reg.Family.SH)],
)
async def test_sungrow_limits_through_its_power_limitation(
    connection_to: list[ModbusTcpConnection], family: str, expected: sungrow_reg.Family
) -> None:
    """Input registers (FC4), low word first, the switch and ratio at their doc numbers - 1."""
    async with SimulatedSiteServer(STILL, family=family, autostep=False) as server:
        unit = server.vendor_units[1]
        assert isinstance(unit, SungrowUnit)
        client = SungrowInverter(_connect(server, connection_to), 1, clock=lambda: 0.0)
        info = await client.async_setup()
        assert info.family is expected
        assert info.rated_power_w == 5000.0
        assert info.serial_number == f"SIM-{expected.name}-1"
        reading = await client.async_read()
        assert reading.ac_power_w == pytest.approx(PV_EACH_W, abs=1)
        assert reading.limit_enabled is False
        # 9,000 kWh at start: the SH's 0.1 kWh count (90,000) needs its high word.
        assert reading.lifetime_energy_wh == pytest.approx(9_000_000.0, abs=1000.0)
        await client.async_apply(InverterCommand(connect=True, limit_pct=50.0))
        assert unit.holding.values[unit.switch_address] == sungrow_reg.ENABLE
        assert unit.holding.values[unit.ratio_address] == 500
        _settle(server)
        reading = await client.async_read()
        assert reading.limit_pct == 50.0
        assert reading.limit_enabled is True
        assert reading.ac_power_w == pytest.approx(2500.0, abs=5)
        # No revert timer: an hour without writes changes nothing.
        server.advance(3600.0)
        assert server.site.inverters[0].output_w == pytest.approx(2500.0, abs=5)
        # Release restores what the installer left: switch off, 100 %.
        await client.async_release()
        assert unit.holding.values[unit.switch_address] == sungrow_reg.DISABLE
        assert unit.holding.values[unit.ratio_address] == sungrow_reg.RATIO_FULL
        assert unit.flash_writes == 4
        # A ratio above 100 % is refused as the inverter refuses it.
        with pytest.raises(ModbusExceptionError):
            await _connect(server, connection_to).write_registers(1, unit.ratio_address, [1001])


@pytest.mark.asyncio
async def test_huawei_limits_through_its_derating(
    connection_to: list[ModbusTcpConnection],
) -> None:
    """High word first (energy in 0.01 kWh), derating at 40125, MPPT power as available."""
    async with SimulatedSiteServer(STILL, family="huawei", autostep=False) as server:
        client = HuaweiInverter(_connect(server, connection_to), 2, clock=lambda: 0.0)
        info = await client.async_setup()
        assert info.model.startswith("SUN2000")
        assert info.rated_power_w == 5000.0
        assert info.export_control_mode == 0
        reading = await client.async_read()
        assert reading.ac_power_w == pytest.approx(PV_EACH_W, abs=1)
        assert reading.lifetime_energy_wh == pytest.approx(9_000_000.0, abs=20.0)
        assert reading.available_w == pytest.approx(PV_EACH_W, abs=1)
        await client.async_apply(InverterCommand(connect=True, limit_pct=30.0))
        _settle(server)
        reading = await client.async_read()
        assert reading.limit_pct == 30.0
        assert reading.status == "throttled"
        assert reading.ac_power_w == pytest.approx(1500.0, abs=5)
        assert server.site.inverters[1].output_w == pytest.approx(1500.0, abs=5)
        assert server.site.inverters[0].output_w == pytest.approx(PV_EACH_W, abs=5)
        with pytest.raises(ModbusExceptionError) as refused:
            await _connect(server, connection_to).write_registers(
                2, huawei_reg.DERATING_PCT, [1200]
            )
        assert refused.value.code == 3


@pytest.mark.asyncio
async def test_victron_gx_curtails_its_own_pv_to_the_feed_in_limit(
    connection_to: list[ModbusTcpConnection],
) -> None:
    """The client writes a cap; the GX's ESS loop holds export there by curtailing its PV."""
    async with SimulatedSiteServer(STILL, family="victron", autostep=False) as server:
        assert server.device_units == [("victron", victron_reg.SYSTEM_UNIT)]
        gx_unit = server.vendor_units[victron_reg.SYSTEM_UNIT]
        assert isinstance(gx_unit, VictronGxUnit)
        connection = _connect(server, connection_to)
        gx = VictronGxInverter(connection, rated_power_w=10_000.0, clock=lambda: 0.0)
        meter = VictronGridMeter(connection, 30, clock=lambda: 0.0)
        info = await gx.async_setup()
        assert info.wide_register is True
        assert info.max_feed_in_w == victron_reg.NO_LIMIT
        grid_info = await meter.async_setup()
        assert grid_info.phases == 3
        _settle(server)
        before = await meter.async_read()
        assert before.grid_power_w == pytest.approx(LOAD_W - 2 * PV_EACH_W, abs=5)
        # 2,500,000 Wh imported at start, in 0.01 kWh: needs the high word.
        assert before.import_energy_wh == pytest.approx(2_500_000.0, abs=20.0)
        reading = await gx.async_read()
        assert reading.ac_power_w == pytest.approx(2 * PV_EACH_W, abs=5)
        # Ask for 2,100 W of generation: the load (600 W) + 1,500 W export.
        await gx.async_apply(InverterCommand(connect=True, limit_pct=21.0))
        assert gx_unit.max_feed_in_w == 1500
        _settle(server)
        after = await meter.async_read()
        assert after.grid_power_w == pytest.approx(-1500.0, abs=10)
        reading = await gx.async_read()
        assert reading.status == "throttled"
        assert reading.ac_power_w == pytest.approx(2100.0, abs=10)
        # Release writes the GX's own setting back: no limit, all the PV again.
        await gx.async_release()
        _settle(server)
        assert gx_unit.max_feed_in_w == victron_reg.NO_LIMIT
        assert (await gx.async_read()).ac_power_w == pytest.approx(2 * PV_EACH_W, abs=5)
        # Services per unit: the grid meter's registers answer 10 at unit 100, unknown ones 2.
        with pytest.raises(ModbusExceptionError) as other_service:
            await connection.read_holding_registers(100, victron_reg.GRID_POWER, 3)
        assert other_service.value.code == victron_reg.GATEWAY_PATH_UNAVAILABLE
        with pytest.raises(ModbusExceptionError) as unknown:
            await connection.read_holding_registers(100, 5000, 1)
        assert unknown.value.code == victron_reg.ILLEGAL_DATA_ADDRESS


@pytest.mark.asyncio
async def test_victron_gx_without_register_2722_takes_100_w_steps(
    connection_to: list[ModbusTcpConnection],
) -> None:
    server = SimulatedSiteServer(
        STILL,
        family="victron",
        autostep=False,
        family_options=FamilyOptions(victron_wide=False),
    )
    async with server:
        gx_unit = server.vendor_units[victron_reg.SYSTEM_UNIT]
        assert isinstance(gx_unit, VictronGxUnit)
        gx = VictronGxInverter(
            _connect(server, connection_to), rated_power_w=10_000.0, clock=lambda: 0.0
        )
        info = await gx.async_setup()
        assert info.wide_register is False
        await gx.async_apply(InverterCommand(connect=True, limit_pct=21.5))
        assert gx_unit.max_feed_in_w == 1500  # 1,550 W rounded down to 100 W
        assert gx_unit.holding.values[victron_reg.MAX_FEED_IN_100W] == 15


@pytest.mark.asyncio
async def test_a_mixed_site_serves_each_family_on_its_unit(
    connection_to: list[ModbusTcpConnection],
) -> None:
    """Families mix: a SunSpec inverter on unit 1 beside a Huawei on unit 2, one meter."""
    scenario = STILL
    inverters = (scenario.inverters[0], replace(scenario.inverters[1], family="huawei"))
    async with SimulatedSiteServer(
        replace(scenario, inverters=inverters), autostep=False
    ) as server:
        assert server.device_units == [("sunspec", 1), ("huawei", 2)]
        connection = _connect(server, connection_to)
        meter = SunSpecMeter(SunSpecDevice(connection, 240))
        await meter.async_setup()
        huawei = HuaweiInverter(connection, 2, clock=lambda: 0.0)
        await huawei.async_setup()
        await huawei.async_apply(InverterCommand(connect=True, limit_pct=10.0))
        _settle(server)
        reading = await meter.async_read()
        assert reading.grid_power_w == pytest.approx(LOAD_W - PV_EACH_W - 500.0, abs=10)
        # A SunSpec read of the Huawei unit finds no SunSpec map there.
        with pytest.raises(ModbusExceptionError):
            await connection.read_holding_registers(2, 40000, 2)


def test_a_scenario_names_each_inverters_family() -> None:
    data = {
        "duration_s": 60,
        "inverters": [{"rating_w": 5000, "family": "huawei"}, {"rating_w": 3000}],
        "pv_available_w": 6000,
        "load_w": 500,
    }
    scenario = Scenario.from_dict(data)
    assert scenario.families == ("huawei", "sunspec")
    assert scenario.with_family("victron").families == ("victron",)
    assert scenario.with_inverter_count(3).families == ("huawei",)
    with pytest.raises(ValueError, match="family"):
        Scenario.from_dict({**data, "inverters": [{"rating_w": 5000, "family": "enphase"}]})
    with pytest.raises(ValueError, match="unknown family"):
        scenario.with_family("enphase")


@pytest.mark.asyncio
async def test_single_client_mode_knocks_the_older_connection_off() -> None:
    """As a SolarEdge inverter or an SDongle: the newcomer wins, the older one sees EOF."""
    async with SimulatedSiteServer(STILL, family="huawei", single_client=True) as server:
        first_reader, first_writer = await asyncio.open_connection(HOST, server.port)
        second = ModbusTcpConnection(HOST, server.port, timeout_s=1.0)
        try:
            client = HuaweiInverter(second, 1, clock=lambda: 0.0)
            await client.async_setup()  # the second client works
            assert await asyncio.wait_for(first_reader.read(), 2.0) == b""  # the first: EOF
            assert server.knocked_off == 1
        finally:
            first_writer.close()
            await second.close()


@pytest.mark.asyncio
async def test_solaredge_commit_that_names_a_register_fails_and_changes_nothing(
    connection_to: list[ModbusTcpConnection],
) -> None:
    server = SimulatedSiteServer(
        STILL, family="solaredge", family_options=FamilyOptions(solaredge_commit_s=0.0)
    )
    async with server:
        unit = server.vendor_units[1]
        assert isinstance(unit, SolarEdgeUnit)
        unit.commit_result = se_reg.REACTIVE_POWER_CONFIG
        client = SolarEdgeInverter(
            _connect(server, connection_to), 1, commit_poll_s=0.01, clock=lambda: server.site.now
        )
        with pytest.raises(CommitError) as failed:
            await client.async_setup()
        assert failed.value.register == se_reg.REACTIVE_POWER_CONFIG
        assert not unit.power_control_committed
        assert server.site.inverters[0].limit_enabled is False
