"""Fixtures: a simulated SUN2000 on 127.0.0.1, a client for it, a shared clock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from custom_components.dynamic_export.huawei.inverter import HuaweiInverter
from custom_components.dynamic_export.sunspec.connection import ModbusTcpConnection

from ..sungrow.conftest import JumpClock
from .peer import HuaweiPeer

TEST_TIMEOUT_S = 0.5


@pytest.fixture(autouse=True)
def _loopback_sockets(request: pytest.FixtureRequest) -> None:
    """The peer listens on 127.0.0.1; pytest-socket (from the HA plugin) blocks that."""
    with contextlib.suppress(pytest.FixtureLookupError):
        request.getfixturevalue("socket_enabled")


@pytest.fixture
def clock() -> JumpClock:
    return JumpClock()


@pytest.fixture
async def make_peer(clock: JumpClock) -> AsyncIterator[Callable[..., Any]]:
    """Start simulated inverters on the shared clock; all stop after the test."""
    peers: list[HuaweiPeer] = []

    async def _make(**kwargs: Any) -> HuaweiPeer:
        peer = HuaweiPeer(clock=clock, **kwargs)
        await peer.start()
        peers.append(peer)
        return peer

    yield _make
    for peer in peers:
        await peer.stop()


@pytest.fixture
async def make_connection() -> AsyncIterator[Callable[..., ModbusTcpConnection]]:
    """Connections to a peer; all closed after the test."""
    connections: list[ModbusTcpConnection] = []

    def _make(peer: HuaweiPeer, timeout_s: float = TEST_TIMEOUT_S) -> ModbusTcpConnection:
        connection = ModbusTcpConnection("127.0.0.1", peer.port, timeout_s=timeout_s)
        connections.append(connection)
        return connection

    yield _make
    for connection in connections:
        await connection.close()


@pytest.fixture
def make_inverter(
    clock: JumpClock, make_connection: Callable[..., ModbusTcpConnection]
) -> Callable[..., HuaweiInverter]:
    """Clients of a peer, each on a connection of its own."""

    def _make(peer: HuaweiPeer, **kwargs: Any) -> HuaweiInverter:
        return HuaweiInverter(make_connection(peer), peer.unit, clock=clock, **kwargs)

    return _make
