"""Fixtures: a simulated SolarEdge inverter on 127.0.0.1, a client for it, a shared clock."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from custom_components.dynamic_export.solaredge.inverter import SolarEdgeInverter
from custom_components.dynamic_export.sunspec.connection import ModbusTcpConnection

from .peer import UNIT, SolarEdgePeer

TEST_TIMEOUT_S = 0.5


class JumpClock:
    """Real monotonic time plus jumps: commits run in real time, timeouts can be skipped."""

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
    peers: list[SolarEdgePeer] = []

    async def _make(**kwargs: Any) -> SolarEdgePeer:
        kwargs.setdefault("commit_s", 0.3)
        peer = SolarEdgePeer(clock=clock, **kwargs)
        await peer.start()
        peers.append(peer)
        return peer

    yield _make
    for peer in peers:
        await peer.stop()


@pytest.fixture
async def make_inverter(clock: JumpClock) -> AsyncIterator[Callable[..., SolarEdgeInverter]]:
    """Clients of a peer, each on a connection of its own; all closed after the test."""
    connections: list[ModbusTcpConnection] = []

    def _make(peer: SolarEdgePeer, **kwargs: Any) -> SolarEdgeInverter:
        connection = ModbusTcpConnection("127.0.0.1", peer.port, timeout_s=TEST_TIMEOUT_S)
        connections.append(connection)
        kwargs.setdefault("commit_poll_s", 0.02)
        kwargs.setdefault("commit_timeout_s", 2.0)
        return SolarEdgeInverter(connection, UNIT, clock=clock, **kwargs)

    yield _make
    for connection in connections:
        await connection.close()
