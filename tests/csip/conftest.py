"""Fixtures for every CSIP-AUS test: the in-repo IEEE 2030.5 test server and client harness."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .client_harness import Harness, make_harness
from .server.certs import Credentials, CsipPKI
from .server.fixtures import (
    ServerFactory,
    csip_device,
    csip_pki,
    csip_server,
    csip_server_factory,
)

__all__ = ["csip_device", "csip_pki", "csip_server", "csip_server_factory"]


@pytest.fixture
async def harness(
    csip_server_factory: ServerFactory, csip_pki: CsipPKI, csip_device: Credentials
) -> AsyncIterator[Harness]:
    """The test server on a fake clock; the device is not registered yet."""
    async with make_harness(csip_server_factory, csip_pki, csip_device) as made:
        yield made


@pytest.fixture
def h(harness: Harness) -> Harness:
    """The harness with the device registered out of band, as most client tests want."""
    harness.registered()
    return harness
