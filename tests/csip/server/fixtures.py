"""Pytest fixtures for the CSIP-AUS test server.

Use them as a plugin (``pytest_plugins = ["tests.csip.server.fixtures"]`` in a root
conftest) or import them into a conftest (``from tests.csip.server.fixtures import *``).

- ``csip_pki``: a fresh ``CsipPKI`` in ``tmp_path``: SERCA, MICA, server certificate and a
  device factory (``csip_pki.device("name", expired=..., self_signed=..., issuer=...)``).
- ``csip_device``: one MICA-issued device (``Credentials``: cert_path, key_path, lfdi, sfdi).
- ``csip_server``: a started ``CsipTestServer`` with ``default_tree()`` and no EndDevice
  registered (register ``csip_device`` out of band, or let the client POST /edev). It is
  stopped after the test. Loopback sockets are enabled for the test.
- ``csip_server_factory``: ``await csip_server_factory(state=None, **CsipTestServer kwargs)``
  starts further servers (e.g. ``require_client_cert=False``,
  ``maximum_tls_version=ssl.TLSVersion.TLSv1_2``, ``state=default_tree(CsipState(prefix=
  "/api/v2"))``); all are stopped after the test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from .app import CsipTestServer
from .certs import Credentials, CsipPKI
from .state import CsipState, default_tree

__all__ = ["csip_device", "csip_pki", "csip_server", "csip_server_factory"]

ServerFactory = Callable[..., Awaitable[CsipTestServer]]


@pytest.fixture
def csip_pki(tmp_path: Path) -> CsipPKI:
    """The test PKI, written under ``tmp_path / "pki"``."""
    return CsipPKI(tmp_path / "pki")


@pytest.fixture
def csip_device(csip_pki: CsipPKI) -> Credentials:
    """A device certificate and key issued by the MICA."""
    return csip_pki.device("device")


@pytest.fixture
async def csip_server_factory(
    request: pytest.FixtureRequest, csip_pki: CsipPKI
) -> AsyncIterator[ServerFactory]:
    """Start servers on 127.0.0.1 (default tree unless ``state`` is given)."""
    # pytest-socket (loaded by the HA test plugin) blocks sockets unless this is requested.
    with contextlib.suppress(pytest.FixtureLookupError):
        request.getfixturevalue("socket_enabled")
    servers: list[CsipTestServer] = []

    async def _start(state: CsipState | None = None, **kwargs: Any) -> CsipTestServer:
        server = CsipTestServer(csip_pki, state or default_tree(), **kwargs)
        servers.append(server)
        await server.start()
        return server

    try:
        yield _start
    finally:
        for server in servers:
            await server.stop()


@pytest.fixture
async def csip_server(csip_server_factory: ServerFactory) -> CsipTestServer:
    """A running server on 127.0.0.1 with the default CSIP-AUS tree."""
    return await csip_server_factory()
