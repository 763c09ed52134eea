"""Fixtures: simulated GoodWe ET inverters on loopback UDP 8899, clients, a jumping clock."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from custom_components.dynamic_export.goodwe_inverter.client import GoodWeEtClient
from custom_components.dynamic_export.goodwe_inverter.inverter import GoodWeInverter

from .peer import GoodWeEtPeer

TEST_TIMEOUT_S = 0.3


class JumpClock:
    """Real monotonic time plus jumps: the settings' age and the rewrite hold-off can be skipped."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture(autouse=True)
def _loopback_sockets(request: pytest.FixtureRequest) -> None:
    """The peer listens on loopback; pytest-socket (from the HA plugin) blocks that."""
    with contextlib.suppress(pytest.FixtureLookupError):
        request.getfixturevalue("socket_enabled")


async def library_timers_done(timeout_s: float = TEST_TIMEOUT_S) -> None:
    """Wait out the retry timers goodwe 0.3 leaves behind each request (one time-out long).

    They only close the request's socket, but Home Assistant's test plugin fails a test that
    ends with a timer still scheduled. goodwe 0.4 cancels its timer on the answer.
    """
    await asyncio.sleep(timeout_s + 0.05)


@pytest.fixture
def clock() -> JumpClock:
    return JumpClock()


@pytest.fixture
async def make_peer() -> AsyncIterator[Callable[..., Any]]:
    """Start simulated inverters; all stop after the test."""
    peers: list[GoodWeEtPeer] = []

    async def _make(**kwargs: Any) -> GoodWeEtPeer:
        peer = GoodWeEtPeer(**kwargs)
        await peer.start()
        peers.append(peer)
        return peer

    yield _make
    for peer in peers:
        await peer.stop()
    await library_timers_done()


def client_of(peer: GoodWeEtPeer, **kwargs: Any) -> GoodWeEtClient:
    """A library client of ``peer`` with test time-outs (one retry)."""
    return GoodWeEtClient(peer.host, timeout_s=kwargs.pop("timeout_s", TEST_TIMEOUT_S), **kwargs)


@pytest.fixture
def make_inverter(clock: JumpClock) -> Callable[..., GoodWeInverter]:
    """Site clients of a peer on the shared clock."""

    def _make(peer: GoodWeEtPeer, **kwargs: Any) -> GoodWeInverter:
        return GoodWeInverter(client_of(peer), clock=clock, **kwargs)

    return _make
