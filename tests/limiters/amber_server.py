"""A stand-in for the Amber API on 127.0.0.1, replaying fixture files in the real shapes.

Tests queue replies (status, body, headers, delay) with :meth:`FakeAmber.reply`; when the
queue is empty the server answers the fixture for the path. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "psk_0d4e9f1c2b3a47d5a8e6f7c9b1d2e3f4"


def fixture(name: str) -> Any:
    """A fixture file, parsed."""
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    """One request as the server saw it."""

    path: str
    query: dict[str, str]
    authorization: str | None


class FakeAmber:
    """The fake API; ``base_url`` is what the client is given."""

    def __init__(self, sites: str = "sites.json", prices: str = "prices_30min.json") -> None:
        self.sites: Any = fixture(sites)
        self.prices: Any = fixture(prices)
        self.replies: list[Reply] = []
        self.requests: list[Seen] = []
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.port = 0

    @property
    def base_url(self) -> str:
        """The API root, like ``https://api.amber.com.au/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def reply(self, status: int = 200, body: bytes | None = None, **kwargs: Any) -> None:
        """Queue one scripted answer."""
        self.replies.append(Reply(status, body, **kwargs))

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_get("/v1/sites", self._sites)
        app.router.add_get("/v1/sites/{site_id}/prices/current", self._prices)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop listening (a later client call gets "connection refused")."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _answer(self, request: web.Request, default: Any) -> web.Response:
        self.requests.append(
            Seen(request.path, dict(request.query), request.headers.get("Authorization"))
        )
        headers = {"RateLimit-Limit": "50", "RateLimit-Policy": "50;w=300"}
        if self.replies:
            scripted = self.replies.pop(0)
            # A slow answer; stop() cuts it short so no handler outlives the test.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), scripted.delay)
            body = scripted.body
            if body is None:
                body = json.dumps(default).encode()
            return web.Response(
                status=scripted.status,
                body=body,
                headers={**headers, **scripted.headers},
                content_type="application/json",
            )
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"message": "Unauthorized"}, status=401, headers=headers)
        return web.json_response(default, headers={**headers, "RateLimit-Remaining": "42"})

    async def _sites(self, request: web.Request) -> web.Response:
        return await self._answer(request, self.sites)

    async def _prices(self, request: web.Request) -> web.Response:
        return await self._answer(request, self.prices)
