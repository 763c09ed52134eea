"""Fixtures for the limiter tests: a fake Amber API on 127.0.0.1, a session, a clock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from .amber_server import FakeAmber


class Clock:
    """A settable clock for the client's rate-limit bookkeeping."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        """Move on by a timedelta's keyword arguments; return the new time."""
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture
def clock() -> Clock:
    """12:10 NEM time on the day the fixtures were "captured"."""
    return Clock(datetime(2025, 1, 15, 2, 10, tzinfo=UTC))


@pytest.fixture
async def amber_factory(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[..., Awaitable[FakeAmber]]]:
    """Start fake Amber servers on 127.0.0.1; all stop after the test."""
    # pytest-socket (loaded by the HA test plugin) blocks sockets unless this is requested.
    with contextlib.suppress(pytest.FixtureLookupError):
        request.getfixturevalue("socket_enabled")
    servers: list[FakeAmber] = []

    async def _start(**kwargs: str) -> FakeAmber:
        server = FakeAmber(**kwargs)
        servers.append(server)
        await server.start()
        return server

    yield _start
    for server in servers:
        await server.stop()


@pytest.fixture
async def amber(amber_factory: Callable[..., Awaitable[FakeAmber]]) -> FakeAmber:
    """A fake Amber with the 30-minute site and prices."""
    return await amber_factory()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """Stands in for Home Assistant's shared session (the library never makes its own)."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session
