"""Modbus TCP transport: chunking, errors, timeouts, reconnects, sharing."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from custom_components.dynamic_export.core.errors import (
    DeviceResponseError,
    DeviceUnavailableError,
)
from custom_components.dynamic_export.sunspec import library_log
from custom_components.dynamic_export.sunspec.connection import (
    ConnectionPool,
    ModbusTcpConnection,
)

from .conftest import TEST_TIMEOUT_S
from .helpers import FakeModbusServer, free_port


def _ramp(start: int, count: int) -> dict[int, int]:
    return {start + i: (i * 7 + 3) & 0xFFFF for i in range(count)}


async def test_reads_are_split_into_chunks_of_125(make_peer, make_connection) -> None:
    image = _ramp(1000, 300)
    server = await make_peer({1: image})
    connection = make_connection(server.port)
    regs = await connection.read_holding_registers(1, 1000, 300)
    assert regs == [image[1000 + i] for i in range(300)]
    reads = [(r.address, r.count) for r in server.requests]
    assert reads == [(1000, 125), (1125, 125), (1250, 50)]


async def test_write_registers_uses_fc16(make_peer, make_connection) -> None:
    image = _ramp(10, 5)
    server = await make_peer({3: image})
    connection = make_connection(server.port)
    await connection.write_registers(3, 11, [0xABCD, 0])
    assert (await server.snapshot(3)).registers == image | {11: 0xABCD, 12: 0}
    assert [(r.function, r.unit, r.address, r.values) for r in server.writes()] == [
        (16, 3, 11, (0xABCD, 0))
    ]


async def test_write_validates_before_sending(make_peer, make_connection) -> None:
    server = await make_peer({1: _ramp(0, 5)})
    connection = make_connection(server.port)
    with pytest.raises(ValueError, match="must be 0"):
        await connection.write_registers(1, 0, [0x10000])
    with pytest.raises(ValueError, match="outside"):
        await connection.write_registers(1, 0, [])
    with pytest.raises(ValueError, match="outside"):
        await connection.read_holding_registers(1, 65535, 2)
    assert server.requests == []


async def _assert_exception(
    connection: ModbusTcpConnection, unit: int, address: int, code: int, text: str
) -> None:
    with pytest.raises(DeviceResponseError, match=text) as info:
        await connection.read_holding_registers(unit, address, 2)
    assert f"exception {code}" in str(info.value)
    assert getattr(info.value, "code", None) == code
    # The connection stays usable after an exception response.
    assert await connection.read_holding_registers(1, 0, 2) == [3, 10]


@pytest.mark.parametrize("address", [5000, 9, 0xFFFE])
async def test_illegal_address_is_device_response_error(
    make_peer, make_connection, address: int
) -> None:
    server = await make_peer({1: _ramp(0, 10)})  # 9: the read runs past the end of the map
    connection = make_connection(server.port)
    await _assert_exception(connection, 1, address, 2, "illegal data address")
    assert server.connections == 1


async def test_gateway_exception_is_device_response_error(make_server, make_connection) -> None:
    server = await make_server({1: _ramp(0, 10)})  # unit 9 absent: the fake answers 11
    connection = make_connection(server.port)
    await _assert_exception(connection, 9, 0, 11, "gateway target failed to respond")
    assert server.connections == 1


async def test_server_that_never_answers_times_out(make_server, make_connection) -> None:
    server = await make_server({1: _ramp(0, 10)})
    server.hang = True
    connection = make_connection(server.port, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(DeviceUnavailableError, match="no response"):
        await connection.read_holding_registers(1, 0, 2)
    assert time.monotonic() - started < 0.3 + 0.4
    server.hang = False
    assert await connection.read_holding_registers(1, 0, 2) == [3, 10]
    assert server.connections == 2  # the timed-out socket was dropped


async def test_connection_refused_is_unavailable(make_connection) -> None:
    connection = make_connection(free_port())
    with pytest.raises(DeviceUnavailableError, match="cannot connect"):
        await connection.read_holding_registers(1, 0, 1)


async def test_disconnect_mid_request_fails_only_that_request(make_server, make_connection) -> None:
    server = await make_server({1: _ramp(0, 10)})
    connection = make_connection(server.port, timeout_s=2.0)
    assert await connection.read_holding_registers(1, 0, 1) == [3]
    server.drop_next = 1
    started = time.monotonic()
    with pytest.raises(DeviceUnavailableError, match="connection lost"):
        await connection.read_holding_registers(1, 1, 1)
    assert time.monotonic() - started < 1.0  # noticed the disconnect, did not wait 2 s
    assert await connection.read_holding_registers(1, 2, 1) == [17]
    assert server.connections == 2


async def test_disconnect_between_requests_reconnects(make_server, make_connection) -> None:
    server = await make_server({1: _ramp(0, 10)})
    connection = make_connection(server.port)
    assert await connection.read_holding_registers(1, 0, 1) == [3]
    await server.drop_connections()
    assert await connection.read_holding_registers(1, 0, 1) == [3]
    assert server.connections == 2


async def test_stopped_server_is_unavailable(make_peer, make_connection) -> None:
    server = await make_peer({1: _ramp(0, 10)})
    connection = make_connection(server.port)
    assert await connection.read_holding_registers(1, 0, 1) == [3]
    await server.stop()
    with pytest.raises(DeviceUnavailableError):
        await connection.read_holding_registers(1, 0, 1)
    with pytest.raises(DeviceUnavailableError):
        await connection.read_holding_registers(1, 0, 1)


async def test_concurrent_requests_share_one_socket(make_peer, make_connection) -> None:
    images = {unit: _ramp(unit * 100, 50) for unit in (1, 2, 240)}
    server = await make_peer(images)
    if isinstance(server, FakeModbusServer):
        server.response_delay = 0.005
    connection = make_connection(server.port)

    async def read(unit: int, offset: int) -> tuple[int, int, list[int]]:
        return unit, offset, await connection.read_holding_registers(unit, unit * 100 + offset, 3)

    jobs = [read(unit, offset) for offset in range(0, 30, 5) for unit in images]
    for unit, offset, regs in await asyncio.gather(*jobs):
        start = unit * 100 + offset
        assert regs == [images[unit][start + i] for i in range(3)]
    assert server.connections == 1


def test_pool_shares_connections_per_endpoint() -> None:
    pool = ConnectionPool(timeout_s=1.5)
    first = pool.get("192.0.2.10", 502)
    assert pool.get("192.0.2.10", 502) is first
    assert pool.get(" 192.0.2.10 ", 502) is first
    assert pool.get("192.0.2.10", 1502) is not first
    assert pool.get("192.0.2.11", 502) is not first
    assert first.timeout_s == 1.5
    assert isinstance(first, ModbusTcpConnection)


async def test_pool_close_closes_connections(make_peer) -> None:
    server = await make_peer({1: _ramp(0, 10)})
    pool = ConnectionPool(timeout_s=TEST_TIMEOUT_S)
    connection = pool.get("127.0.0.1", server.port)
    assert await connection.read_holding_registers(1, 0, 1) == [3]
    assert server.open_connections == 1
    await pool.close()
    assert pool.get("127.0.0.1", server.port) is not connection
    for _ in range(50):  # until the server has seen the socket close
        if not server.open_connections:
            break
        await asyncio.sleep(0.01)
    assert server.open_connections == 0


def _pymodbus_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("pymodbus")]


async def test_pymodbus_messages_for_our_requests_stay_out_of_the_log(
    make_server, make_connection, caplog: pytest.LogCaptureFixture
) -> None:
    """Exception answers, timeouts and refused connects are ours to report, once.

    The peer is the plain fake server: pymodbus's own server would log its side too.
    """
    server = await make_server({1: _ramp(0, 10)})
    connection = make_connection(server.port, timeout_s=0.3)
    refused = make_connection(free_port())
    caplog.set_level(logging.INFO)
    for _ in range(3):
        with pytest.raises(DeviceResponseError):
            await connection.read_holding_registers(9, 0, 2)  # no unit 9: exception 11
        with pytest.raises(DeviceUnavailableError):
            await refused.read_holding_registers(1, 0, 1)
    server.hang = True
    with pytest.raises(DeviceUnavailableError):
        await connection.read_holding_registers(1, 0, 2)
    assert _pymodbus_records(caplog) == []


async def test_pymodbus_messages_show_with_debug_logging(
    make_connection, caplog: pytest.LogCaptureFixture
) -> None:
    """Debug logging for pymodbus brings them back, as DEBUG lines."""
    refused = make_connection(free_port())
    caplog.set_level(logging.DEBUG, logger="pymodbus")
    with pytest.raises(DeviceUnavailableError):
        await refused.read_holding_registers(1, 0, 1)
    records = _pymodbus_records(caplog)
    assert any("Failed to connect" in r.getMessage() for r in records)  # a WARNING of pymodbus
    assert {r.levelno for r in records} == {logging.DEBUG}


def test_pymodbus_messages_of_others_are_untouched(caplog: pytest.LogCaptureFixture) -> None:
    """Another integration's pymodbus client logs as pymodbus decides."""
    caplog.set_level(logging.INFO)
    logging.getLogger(library_log.PYMODBUS_LOGGER).error("Exception response 131 / 2")
    (record,) = _pymodbus_records(caplog)
    assert record.levelno == logging.ERROR
