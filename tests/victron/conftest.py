"""Fixtures: a simulated GX on 127.0.0.1 on a hand-driven clock, and clients for it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from custom_components.dynamic_export.sunspec.connection import ModbusTcpConnection
from custom_components.dynamic_export.victron.inverter import VictronGxInverter
from custom_components.dynamic_export.victron.meter import VictronGridMeter

from .peer import GRID_UNIT, GxPeer

TEST_TIMEOUT_S = 0.5


class StepClock:
    """Time that moves only when the test says so: the PV's lag is stepped, not waited for."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def step(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _loopback_sockets(request: pytest.FixtureRequest) -> None:
    """The peer listens on 127.0.0.1; pytest-socket (from the HA plugin) blocks that."""
    with contextlib.suppress(pytest.FixtureLookupError):
        request.getfixturevalue("socket_enabled")


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
async def make_peer(clock: StepClock) -> AsyncIterator[Callable[..., Any]]:
    """Start simulated GXs on the shared clock; all stop after the test."""
    peers: list[GxPeer] = []

    async def _make(**kwargs: Any) -> GxPeer:
        peer = GxPeer(clock=clock, **kwargs)
        await peer.start()
        peers.append(peer)
        return peer

    yield _make
    for peer in peers:
        await peer.stop()


@pytest.fixture
async def connect(clock: StepClock) -> AsyncIterator[Callable[[GxPeer], ModbusTcpConnection]]:
    """A connection of its own to a peer; all closed after the test."""
    connections: list[ModbusTcpConnection] = []

    def _connect(peer: GxPeer) -> ModbusTcpConnection:
        connection = ModbusTcpConnection("127.0.0.1", peer.port, timeout_s=TEST_TIMEOUT_S)
        connections.append(connection)
        return connection

    yield _connect
    for connection in connections:
        await connection.close()


@pytest.fixture
def make_gx(
    clock: StepClock, connect: Callable[[GxPeer], ModbusTcpConnection]
) -> Callable[..., VictronGxInverter]:
    def _make(peer: GxPeer, **kwargs: Any) -> VictronGxInverter:
        kwargs.setdefault("rated_power_w", 5000.0)
        return VictronGxInverter(connect(peer), clock=clock, **kwargs)

    return _make


@pytest.fixture
def make_meter(
    clock: StepClock, connect: Callable[[GxPeer], ModbusTcpConnection]
) -> Callable[..., VictronGridMeter]:
    def _make(peer: GxPeer, unit_id: int = GRID_UNIT) -> VictronGridMeter:
        return VictronGridMeter(connect(peer), unit_id, clock=clock)

    return _make
