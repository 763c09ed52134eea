"""Fixtures: a fake gateway on 127.0.0.1 over HTTPS and a client session for it.

The gateway's wall clock follows the fake monotonic clock (``WALL_ZERO`` at 0), so a test
that advances ``clock`` ages the gateway's meter data too, without waiting.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from custom_components.dynamic_export.powerwall.client import PowerwallClient

from .gateway import PASSWORD, Gateway

WALL_ZERO = datetime(2025, 1, 15, 1, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def wall(self, skew_s: float = 0.0) -> Callable[[], datetime]:
        """A wall clock in step with this one, ``skew_s`` ahead."""
        return lambda: WALL_ZERO + timedelta(seconds=self.now + skew_s)


@pytest.fixture(autouse=True)
def _loopback_sockets(request: pytest.FixtureRequest) -> None:
    """The gateway listens on 127.0.0.1; pytest-socket (from the HA plugin) blocks that."""
    with contextlib.suppress(pytest.FixtureLookupError):
        request.getfixturevalue("socket_enabled")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def gateway(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Gateway]:
    gateway = Gateway(tmp_path, clock=clock.wall())
    await gateway.start()
    yield gateway
    await gateway.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """Stands in for Home Assistant's shared session (the library never makes its own)."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def client(gateway: Gateway, session: aiohttp.ClientSession, clock: FakeClock) -> PowerwallClient:
    return PowerwallClient(
        session,
        "127.0.0.1",
        PASSWORD,
        fingerprint=gateway.fingerprint,
        port=gateway.port,
        timeout_s=1.0,
        clock=clock,
    )
