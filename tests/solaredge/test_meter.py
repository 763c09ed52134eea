"""A meter wired to a SolarEdge inverter, read over the inverter's connection on 127.0.0.1.

The peer chains its meters after the inverter's models as SolarEdge does (common block and
meter model per meter, laid out from pysunspec2), reports W positive for export, and serves
one Modbus client at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from custom_components.dynamic_export.core.errors import InvalidDeviceDataError
from custom_components.dynamic_export.core.measurements import InverterCommand
from custom_components.dynamic_export.solaredge.errors import (
    NoMeterError,
    NotGridMeterError,
    NotSolarEdgeError,
)
from custom_components.dynamic_export.solaredge.inverter import SolarEdgeInverter
from custom_components.dynamic_export.solaredge.meter import (
    SolarEdgeMeter,
    async_read_meter_identity,
    is_grid_meter,
)
from custom_components.dynamic_export.sunspec.connection import ModbusTcpConnection

from .conftest import TEST_TIMEOUT_S, JumpClock
from .peer import (
    GRID_OPTION,
    METER_COMMON,
    METER_MODEL,
    METER_SERIAL,
    UNIT,
    PeerMeter,
    SolarEdgePeer,
)

type MakePeer = Callable[..., Any]


@pytest.fixture
async def connection(make_peer: MakePeer) -> AsyncIterator[Callable[[SolarEdgePeer], Any]]:
    """One connection per peer, as the site's pool gives the inverter and its meter."""
    made: list[ModbusTcpConnection] = []

    def _make(peer: SolarEdgePeer) -> ModbusTcpConnection:
        conn = ModbusTcpConnection("127.0.0.1", peer.port, timeout_s=TEST_TIMEOUT_S)
        made.append(conn)
        return conn

    yield _make
    for conn in made:
        await conn.close()


@pytest.mark.parametrize(
    ("option", "grid"),
    [
        ("Export+Import", True),
        ("export + import", True),
        ("Consumption", False),
        ("Production", False),
        ("Export", False),
        ("", False),
        (None, False),
    ],
)
def test_only_an_export_import_meter_is_at_the_grid_point(option: str | None, grid: bool) -> None:
    assert is_grid_meter(option) is grid


def test_meter_number_is_checked_before_anything_is_sent() -> None:
    conn = ModbusTcpConnection("127.0.0.1", 1)
    for bad in (0, 4):
        with pytest.raises(ValueError, match="meter number"):
            SolarEdgeMeter(conn, UNIT, bad)
    with pytest.raises(TypeError):
        SolarEdgeMeter(conn, UNIT, True)


async def test_reads_the_meter_with_solaredge_sign_and_writes_nothing(
    make_peer: MakePeer, connection: Callable[[SolarEdgePeer], ModbusTcpConnection]
) -> None:
    meter_peer = PeerMeter(grid_w=-1500.0)  # exporting 1.5 kW
    peer = await make_peer(meters=[meter_peer])
    assert meter_peer.registers[meter_peer.address] == 203
    raw_w = meter_peer.registers[meter_peer.address + 18]
    assert raw_w == 1500  # on the wire: + export, as SolarEdge's grid meters report
    meter = SolarEdgeMeter(connection(peer), UNIT, 1)
    info = await meter.async_setup()
    assert (info.manufacturer, info.model, info.serial_number) == (
        "SolarEdge",
        METER_MODEL,
        METER_SERIAL,
    )
    assert (info.option, info.version, info.meter_model_id, info.phases) == (
        GRID_OPTION,
        "3.18",
        203,
        3,
    )
    assert info.address == METER_COMMON[0] + 67 == 40188
    reading = await meter.async_read()
    assert reading.grid_power_w == -1500.0  # core: + import / - export
    assert reading.export_w == 1500.0
    assert reading.phase_power_w == (-500.0, -500.0, -500.0)
    assert reading.reactive_power_var == -150.0
    assert reading.voltage_v == pytest.approx(230.1)
    assert reading.phase_voltage_v == pytest.approx((230.0, 230.2, 230.1))
    assert reading.frequency_hz == pytest.approx(50.01)
    # Energy counters are named for what they count: exported stays exported.
    assert reading.export_energy_wh == pytest.approx(int(meter_peer.export_wh), abs=1)
    assert reading.import_energy_wh == pytest.approx(int(meter_peer.import_wh), abs=1)
    assert reading.export_energy_wh is not None
    assert reading.import_energy_wh is not None
    assert reading.export_energy_wh > reading.import_energy_wh

    meter_peer.grid_w = 820.0  # importing
    reading = await meter.async_read()
    assert reading.grid_power_w == 820.0
    assert not peer.writes()


async def test_a_cycle_reads_the_meter_in_one_request(
    make_peer: MakePeer, connection: Callable[[SolarEdgePeer], ModbusTcpConnection]
) -> None:
    peer = await make_peer(meters=[PeerMeter(grid_w=-300.0)])
    meter = SolarEdgeMeter(connection(peer), UNIT)
    await meter.async_read()  # sets up first
    before = len(peer.requests)
    await meter.async_read()
    (request,) = peer.requests[before:]
    assert (request.function, request.address, request.count) == (3, 40188, 107)


async def test_meter_and_inverter_share_one_client(
    make_peer: MakePeer, connection: Callable[[SolarEdgePeer], ModbusTcpConnection]
) -> None:
    """Interleaved reads and limit writes on the site's one connection: never a second client.

    The peer knocks off the older client when another connects, as a SolarEdge does.
    """
    peer = await make_peer(committed=True, meters=[PeerMeter(grid_w=-2000.0)])
    conn = connection(peer)
    inverter = SolarEdgeInverter(conn, UNIT, revert_timeout_s=30.0)
    meter = SolarEdgeMeter(conn, UNIT, 1)
    await asyncio.gather(inverter.async_setup(), meter.async_setup())
    for pct in (80.0, 60.0, 40.0):
        reading, _, _ = await asyncio.gather(
            meter.async_read(),
            inverter.async_read(),
            inverter.async_apply(InverterCommand(limit_pct=pct, connect=True)),
        )
        assert reading.grid_power_w == -2000.0
    assert peer.float_at(0xF322) == 40.0
    assert (peer.connections, peer.peak_clients, peer.knocked_off) == (1, 1, 0)

    # A second connection (what a meter on its own client would be) knocks the first off.
    other = SolarEdgeMeter(connection(peer), UNIT, 1)
    await other.async_read()
    assert (peer.peak_clients, peer.knocked_off) == (2, 1)


async def test_the_meter_asked_for_among_three(
    make_peer: MakePeer, connection: Callable[[SolarEdgePeer], ModbusTcpConnection]
) -> None:
    """Meter 1 measures consumption and is refused; meter 2 is the grid meter; no meter 3."""
    meters = [
        PeerMeter(option="Consumption", grid_w=900.0, serial="C0"),
        PeerMeter(grid_w=-700.0, serial="G1", model_id=204),
    ]
    peer = await make_peer(meters=meters)
    conn = connection(peer)
    assert meters[1].address == METER_COMMON[1] + 67
    with pytest.raises(NotGridMeterError, match="'Consumption'") as refused:
        await async_read_meter_identity(conn, UNIT, 1)
    assert refused.value.option == "Consumption"
    info = await async_read_meter_identity(conn, UNIT, 2)
    assert (info.serial_number, info.meter_model_id, info.address) == ("G1", 204, 40295 + 67)
    assert (await SolarEdgeMeter(conn, UNIT, 2).async_read()).grid_power_w == -700.0
    with pytest.raises(NoMeterError, match="meter 3"):
        await async_read_meter_identity(conn, UNIT, 3)
    # A consumption meter never gives a reading either: the site cannot take it for the grid.
    with pytest.raises(NotGridMeterError):
        await SolarEdgeMeter(conn, UNIT, 1).async_read()
    assert not peer.writes()


async def test_no_meter_and_not_solaredge(
    make_peer: MakePeer, connection: Callable[[SolarEdgePeer], ModbusTcpConnection]
) -> None:
    bare = await make_peer()  # the chain ends after model 103
    with pytest.raises(NoMeterError, match="meter 1"):
        await async_read_meter_identity(connection(bare), UNIT, 1)
    past_map = await make_peer()
    for address in range(40121, 40130):
        past_map.exceptions[(UNIT, address)] = 2  # illegal data address, as past a map's end
    with pytest.raises(NoMeterError):
        await async_read_meter_identity(connection(past_map), UNIT, 1)
    fronius = await make_peer(manufacturer="Fronius", meters=[PeerMeter()])
    with pytest.raises(NotSolarEdgeError):
        await async_read_meter_identity(connection(fronius), UNIT, 1)


async def test_a_moved_meter_fails_the_read_and_is_identified_again(
    make_peer: MakePeer, connection: Callable[[SolarEdgePeer], ModbusTcpConnection]
) -> None:
    meter_peer = PeerMeter(grid_w=-100.0)
    peer = await make_peer(meters=[meter_peer])
    meter = SolarEdgeMeter(connection(peer), UNIT)
    await meter.async_read()
    peer.registers[meter_peer.address] = 0xFFFF  # the chain ends there now
    with pytest.raises(InvalidDeviceDataError, match="no longer at 40188"):
        await meter.async_read()
    with pytest.raises(NoMeterError):
        await meter.async_read()
    peer.registers[meter_peer.address] = 203
    assert (await meter.async_read()).grid_power_w == -100.0


async def test_frozen_values_date_the_reading_at_the_last_move(
    make_peer: MakePeer,
    connection: Callable[[SolarEdgePeer], ModbusTcpConnection],
    clock: JumpClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same check as SunSpec meters: counters still while 1.5 kW flows (1 Wh counters).

    Live counters move about every 2.4 s at 1.5 kW; frozen, 3 steps + 10 Wh take 31 s.
    """
    meter_peer = PeerMeter(grid_w=-1500.0)
    peer = await make_peer(meters=[meter_peer])
    meter = SolarEdgeMeter(connection(peer), UNIT, clock=clock)
    for _ in range(20):
        clock.jump(1.0)
        reading = await meter.async_read()
        assert reading.timestamp == pytest.approx(clock(), abs=0.5)
    meter_peer.freeze()
    frozen_at = clock()
    dated = []
    with caplog.at_level(logging.INFO):
        for _ in range(40):
            clock.jump(1.0)
            reading = await meter.async_read()
            dated.append(clock() - reading.timestamp)
    # Live for the first 30 s (still energy below 13 Wh), then as old as the last move.
    assert all(age < 0.5 for age in dated[:29]), dated
    assert dated[-1] >= 35.0, dated
    assert reading.timestamp <= frozen_at + 0.5
    warnings = [r for r in caplog.records if "values look frozen" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("SolarEdge meter 1 (unit 1) values look frozen")

    meter_peer.freeze(False)
    clock.jump(1.0)
    reading = await meter.async_read()
    assert reading.timestamp == pytest.approx(clock(), abs=0.5)
    assert any("move again" in r.getMessage() for r in caplog.records)
    assert not peer.writes()
