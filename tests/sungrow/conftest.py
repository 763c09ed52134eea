"""Fixtures: a simulated Sungrow inverter on 127.0.0.1, a client for it, a shared clock."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from custom_components.dynamic_export.sungrow.inverter import SungrowInverter
from custom_components.dynamic_export.sunspec.connection import ModbusTcpConnection

from .peer import UNIT, SungrowPeer

TEST_TIMEOUT_S = 0.5


class JumpClock:
    """Real monotonic time plus jumps: the peer's lag and the rewrite hold-off can be skipped."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds


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
    peers: list[SungrowPeer] = []

    async def _make(*args: Any, **kwargs: Any) -> SungrowPeer:
        peer = SungrowPeer(*args, clock=clock, **kwargs)
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

    def _make(peer: SungrowPeer, timeout_s: float = TEST_TIMEOUT_S) -> ModbusTcpConnection:
        connection = ModbusTcpConnection("127.0.0.1", peer.port, timeout_s=timeout_s)
        connections.append(connection)
        return connection

    yield _make
    for connection in connections:
        await connection.close()


@pytest.fixture
def make_inverter(
    clock: JumpClock, make_connection: Callable[..., ModbusTcpConnection]
) -> Callable[..., SungrowInverter]:
    """Clients of a peer, each on a connection of its own."""

    def _make(peer: SungrowPeer, **kwargs: Any) -> SungrowInverter:
        return SungrowInverter(make_connection(peer), UNIT, clock=clock, **kwargs)

    return _make
