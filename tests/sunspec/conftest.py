"""Fixtures for the SunSpec tests: loopback sockets, servers and a connection.

``make_server`` starts the hand-written ``FakeModbusServer`` (for tests that need its fault
injection); ``make_peer`` is parametrised to start either it or pymodbus' own server, so tests
that only read and write registers check the client against an independent implementation.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from custom_components.dynamic_export.sunspec.connection import ModbusTcpConnection

from .helpers import DeviceImage, FakeModbusServer, PymodbusServer

TEST_TIMEOUT_S = 0.5


@pytest.fixture(autouse=True)
def _loopback_sockets(request: pytest.FixtureRequest) -> None:
    """These tests talk TCP to 127.0.0.1; pytest-socket (loaded by the HA plugin) blocks that."""
    # Without pytest-socket installed nothing blocks sockets and the fixture does not exist.
    with contextlib.suppress(pytest.FixtureLookupError):
        request.getfixturevalue("socket_enabled")


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., Any]]:
    """Start FakeModbusServers; all are stopped after the test."""
    servers: list[FakeModbusServer] = []

    async def _make(units: Mapping[int, DeviceImage | dict[int, int]]) -> FakeModbusServer:
        server = FakeModbusServer(units)
        await server.start()
        servers.append(server)
        return server

    yield _make
    for server in servers:
        await server.stop()


PEERS = {"fake": FakeModbusServer, "pymodbus": PymodbusServer}


@pytest.fixture(params=list(PEERS))
async def make_peer(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[..., Any]]:
    """Start servers of one kind per test run: the fake, then pymodbus' own server."""
    peer_cls = PEERS[request.param]
    servers: list[FakeModbusServer | PymodbusServer] = []

    async def _make(
        units: Mapping[int, DeviceImage | dict[int, int]],
    ) -> FakeModbusServer | PymodbusServer:
        server = peer_cls(units)
        await server.start()
        servers.append(server)
        return server

    yield _make
    for server in servers:
        await server.stop()


@pytest.fixture
async def make_connection() -> AsyncIterator[Callable[..., ModbusTcpConnection]]:
    """Create connections to a port; all are closed after the test."""
    connections: list[ModbusTcpConnection] = []

    def _make(port: int, timeout_s: float = TEST_TIMEOUT_S) -> ModbusTcpConnection:
        connection = ModbusTcpConnection("127.0.0.1", port, timeout_s=timeout_s)
        connections.append(connection)
        return connection

    yield _make
    for connection in connections:
        await connection.close()
