"""Fixtures: a fake OpenDTU on 127.0.0.1, a client session and a shared fake clock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from custom_components.dynamic_export.opendtu.client import OpenDtuClient

from .dtu import PASSWORD, FakeDtu


class FakeClock:
    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _loopback_sockets(request: pytest.FixtureRequest) -> None:
    """The DTU listens on 127.0.0.1; pytest-socket (from the HA plugin) blocks that."""
    with contextlib.suppress(pytest.FixtureLookupError):
        request.getfixturevalue("socket_enabled")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def dtu(clock: FakeClock) -> AsyncIterator[FakeDtu]:
    dtu = FakeDtu(clock)
    await dtu.start()
    yield dtu
    await dtu.stop()
    # Whatever a test did, nothing may ever ask for a persistent (EEPROM) limit.
    assert set(dtu.posted_types()) <= {0, 1}, dtu.posted_types()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """Stands in for Home Assistant's shared session (the library never makes its own)."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def client(dtu: FakeDtu, session: aiohttp.ClientSession, clock: FakeClock) -> OpenDtuClient:
    return OpenDtuClient(session, "127.0.0.1", PASSWORD, port=dtu.port, timeout_s=1.0, clock=clock)
