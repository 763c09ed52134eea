"""The simulated site over a real Modbus TCP socket on 127.0.0.1, read with pymodbus."""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from .sunspec_layout import read_point, scaled, walk_chain

# pymodbus 3.10 renamed the unit keyword from ``slave`` to ``device_id``.
_UNIT = (
    "device_id"
    if "device_id" in inspect.signature(AsyncModbusTcpClient.read_holding_registers).parameters
    else "slave"
)


class Unit:
    """A synchronous-looking view of one unit for the layout helpers."""

    def __init__(self, client: AsyncModbusTcpClient, unit_id: int) -> None:
        self.client = client
        self.unit_id = unit_id
        self.cache: dict[int, int] = {}

    async def load(self, start: int = 40000) -> None:
        """Read the whole map, shrinking the block size at its end."""
        address, count = start, 100
        while count:
            result = await self.read(address, count)
            if result.isError():
                count //= 2
                continue
            self.cache.update(zip(range(address, address + count), result.registers, strict=True))
            address += count

    def get(self, address: int, count: int) -> list[int]:
        return [self.cache[a] for a in range(address, address + count)]

    async def read(self, address: int, count: int) -> Any:
        kwargs: dict[str, Any] = {"count": count, _UNIT: self.unit_id}
        return await self.client.read_holding_registers(address, **kwargs)

    async def write(self, address: int, values: list[int]) -> Any:
        kwargs: dict[str, Any] = {_UNIT: self.unit_id}
        if len(values) == 1:
            return await self.client.write_register(address, values[0], **kwargs)
        return await self.client.write_registers(address, values, **kwargs)


def _code(result: Any) -> int | None:
    """The Modbus exception code of a response, None if it succeeded."""
    return int(result.exception_code) if result.isError() else None


async def _times_out(unit: Unit) -> bool:
    """True if the unit gives no answer (pymodbus raises, or returns a bare error)."""
    try:
        result = await unit.read(40000, 2)
    except ModbusException:
        return True
    return bool(result.isError()) and getattr(result, "exception_code", None) is None


async def _client(server: SimulatedSiteServer, timeout_s: float = 1.0) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=timeout_s, retries=0)
    assert await client.connect()
    return client


@pytest.fixture
async def frozen() -> AsyncIterator[SimulatedSiteServer]:
    """A server whose clock only moves when the test calls advance()."""
    async with SimulatedSiteServer("load_steps", autostep=False) as server:
        yield server


@pytest.mark.asyncio
async def test_sunspec_maps_over_modbus(frozen: SimulatedSiteServer) -> None:
    client = await _client(frozen)
    try:
        assert frozen.inverter_unit_ids == [1, 2]
        for unit_id in (1, 2):
            unit = Unit(client, unit_id)
            await unit.load()
            chain = walk_chain(unit.get)
            assert list(chain) == [1, 103, 120, 121, 122, 123]
            assert read_point(unit.get, chain, 1, "SN") == f"SIM-INV-{unit_id}"
            assert scaled(unit.get, chain, 103, "W", "W_SF") == pytest.approx(3000.0, abs=1)
        meter = Unit(client, 240)
        await meter.load()
        chain = walk_chain(meter.get)
        assert list(chain) == [1, 203]
        grid = scaled(meter.get, chain, 203, "W", "W_SF")
        assert grid == pytest.approx(frozen.site.meter.reported_power_w, abs=1)
        assert grid == pytest.approx(4000.0 - 6000.0, abs=1)  # +import/−export
    finally:
        client.close()


@pytest.mark.asyncio
async def test_limit_write_reduces_output_with_lag(frozen: SimulatedSiteServer) -> None:
    client = await _client(frozen)
    try:
        unit = Unit(client, 1)
        # Fronius recipe: WMaxLimPct (+ WinTms, RvrtTms, RmpTms) then WMaxLim_Ena.
        result = await unit.write(40232, [2000, 0, 0, 0])
        assert not result.isError()
        assert not (await unit.write(40236, [1])).isError()
        inverter = frozen.site.inverters[0]
        assert inverter.limit_enabled
        assert inverter.limit_pct == pytest.approx(20.0)
        assert (await unit.read(40236, 1)).registers == [1]
        frozen.advance(1.0)  # one time constant
        w = (await unit.read(40083, 1)).registers[0]  # 103 W (40069 + 14), W_SF 0
        assert w == pytest.approx(3000 - 2000 * 0.632, abs=2)
        frozen.advance(10.0)
        assert (await unit.read(40083, 1)).registers == [1000]
        assert frozen.site.inverters[1].output_w == pytest.approx(3000.0)
        assert frozen.writes[-1][1:] == (1, 40236, [1])
    finally:
        client.close()


@pytest.mark.asyncio
async def test_revert_timer_releases_limit(frozen: SimulatedSiteServer) -> None:
    client = await _client(frozen)
    try:
        unit = Unit(client, 2)
        assert not (await unit.write(40232, [1000, 0, 5, 0, 1])).isError()
        frozen.advance(4.8)
        assert frozen.site.inverters[1].limit_enabled
        assert (await unit.read(40236, 1)).registers == [1]
        frozen.advance(0.4)
        assert not frozen.site.inverters[1].limit_enabled
        assert (await unit.read(40236, 1)).registers == [0]
        frozen.advance(10.0)
        assert frozen.site.inverters[1].output_w == pytest.approx(3000.0, abs=1)
    finally:
        client.close()


@pytest.mark.asyncio
async def test_disconnect_and_reconnect_timer(frozen: SimulatedSiteServer) -> None:
    client = await _client(frozen)
    try:
        unit = Unit(client, 1)
        assert not (await unit.write(40229, [0, 3, 0])).isError()  # WinTms, RvrtTms, Conn
        frozen.advance(0.1)
        assert frozen.site.inverters[0].output_w == 0.0
        assert (await unit.read(40069 + 38, 1)).registers == [1]  # St OFF
        frozen.advance(3.0)
        assert frozen.site.inverters[0].connected
        assert (await unit.read(40231, 1)).registers == [1]
    finally:
        client.close()


@pytest.mark.asyncio
async def test_bad_requests_get_modbus_exceptions(frozen: SimulatedSiteServer) -> None:
    client = await _client(frozen)
    try:
        inverter, meter = Unit(client, 1), Unit(client, 240)
        result = await inverter.write(40083, [0])  # 103 W is read-only
        assert _code(result) == 2
        result = await inverter.write(40250, [0])  # WMaxLimPct_SF is read-only
        assert _code(result) == 2
        result = await inverter.write(40232, [10001])  # above 100 %
        assert _code(result) == 3
        result = await meter.write(40090, [0])
        assert _code(result) == 2
        result = await inverter.read(39990, 20)  # below the map
        assert _code(result) == 2
        result = await inverter.read(40250, 125)  # past the end marker
        assert _code(result) == 2
        result = await Unit(client, 9).read(40000, 2)  # no such unit behind the gateway
        assert _code(result) == 10
        assert not frozen.site.inverters[0].limit_enabled
        assert (await inverter.read(40000, 2)).registers == [0x5375, 0x6E53]
    finally:
        client.close()


@pytest.mark.asyncio
async def test_offline_units(frozen: SimulatedSiteServer) -> None:
    frozen.set_unit_offline(240, mode="exception")
    client = await _client(frozen, timeout_s=0.3)
    try:
        result = await Unit(client, 240).read(40000, 2)
        assert _code(result) == 11
        assert not (await Unit(client, 1).read(40000, 2)).isError()
        frozen.set_unit_offline(240, False)
        assert not (await Unit(client, 240).read(40000, 2)).isError()
        frozen.set_unit_offline(2)  # silent: the client times out
        assert await _times_out(Unit(client, 2))
    finally:
        client.close()
    frozen.set_unit_offline(2, False)
    client = await _client(frozen)
    try:
        assert not (await Unit(client, 2).read(40000, 2)).isError()
    finally:
        client.close()
    with pytest.raises(ValueError, match="no unit 99"):
        frozen.set_unit_offline(99)


@pytest.mark.asyncio
async def test_real_time_clock_and_speed() -> None:
    async with SimulatedSiteServer("load_steps", speed=20.0, tick_s=0.05) as server:
        client = await _client(server)
        try:
            assert not (await Unit(client, 1).write(40232, [0, 0, 0, 0, 1])).isError()
            await asyncio.sleep(0.5)  # about 10 simulated seconds
            assert 5.0 < server.site.now < 20.0
            assert server.site.inverters[0].output_w < 10.0
            w = (await Unit(client, 1).read(40083, 1)).registers[0]
            assert w < 10
        finally:
            client.close()


@pytest.mark.asyncio
async def test_start_stop_releases_port() -> None:
    server = SimulatedSiteServer("default")
    await server.start()
    port = server.port
    assert port > 0
    assert server.running
    client = await _client(server)  # a connected client must not block stop()
    await server.stop()
    assert not server.running
    client.close()
    for _ in range(3):
        again = SimulatedSiteServer("default", port=port)
        async with again:
            assert again.port == port
            client = await _client(again)
            client.close()
    with socket.socket() as probe:  # nothing listens any more (TIME_WAIT aside)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()
    await server.stop()  # stopping twice is harmless


@pytest.mark.asyncio
async def test_inverter_count_and_validation() -> None:
    server = SimulatedSiteServer("default", inverter_count=3, limit_sf=0)
    assert server.inverter_unit_ids == [1, 2, 3]
    assert [inv.rated_power_w for inv in server.site.inverters] == [10000 / 3] * 3
    assert server.registers(1).image.get(123, "WMaxLimPct_SF") == 0
    with pytest.raises(ValueError, match="clashes"):
        SimulatedSiteServer("default", meter_unit_id=1)
    with pytest.raises(ValueError, match="unknown scenario"):
        SimulatedSiteServer("no-such-scenario")
