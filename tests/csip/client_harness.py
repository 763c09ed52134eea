"""A CSIP-AUS client wired to the in-repo test server over mutual TLS, on a fake clock.

The server's clock follows the same fake clock, so a test moves time for both by calling
``harness.advance(seconds)`` and then runs the client's due work with ``harness.run()``;
nothing sleeps through a poll interval.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.csip.client import CsipClient
from custom_components.dynamic_export.csip.config import CsipConfig, split_dcap_url
from custom_components.dynamic_export.csip.sep2.tls import client_tls_context
from custom_components.dynamic_export.csip.sep2.transport import Sep2Transport
from custom_components.dynamic_export.csip.telemetry import SiteMeasurements

from .schemas import assert_valid
from .server.app import CsipTestServer
from .server.certs import Credentials, CsipPKI
from .server.state import CsipState, default_tree

START = 1_750_000_200.0
"""A start time on a five-minute boundary (UTC)."""
TEST_PEN = 99999

MEASUREMENTS = SiteMeasurements(
    site_power_w=500.0,
    der_power_w=1000.0,
    rated_w=5000.0,
    connected=True,
    operating=True,
    site_voltage_v=(230.0, None, None),
    site_frequency_hz=50.0,
)
"""An importing site well under every limit: ramps jump straight to their targets."""


class FakeClock:
    """Local time, moved by the test."""

    def __init__(self, start: float = START) -> None:
        self.t = start

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def timestamp(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Harness:
    """Server, clock, HTTP session and a client factory."""

    server: CsipTestServer
    clock: FakeClock
    device: Credentials
    pki: CsipPKI
    session: aiohttp.ClientSession
    clients: list[CsipClient] = field(default_factory=list)

    @property
    def state(self) -> CsipState:
        return self.server.state

    def client(
        self,
        *,
        device: Credentials | None = None,
        ca_pem: bytes | None = None,
        restore: dict[str, Any] | None = None,
        seed: int = 1,
        **config: Any,
    ) -> CsipClient:
        """A client for the test server (``config`` overrides CsipConfig fields)."""
        device = device or self.device
        identity, context = client_tls_context(
            device.cert_path.read_bytes(),
            device.key_path.read_bytes(),
            ca_pem if ca_pem is not None else self.pki.ca_path.read_bytes(),
            verify_server=True,
        )
        base, href = split_dcap_url(self.server.url)
        transport = Sep2Transport(
            self.session, base, context, timeout_s=2.0, retry_delays_s=(0.01,)
        )
        settings = CsipConfig(**{"dcap_href": href, "pen": TEST_PEN, **config})
        client = CsipClient(
            transport, identity, settings, clock=self.clock, rng=random.Random(seed)
        )
        if restore is not None:
            assert client.restore(restore)
        self.clients.append(client)
        return client

    async def run(
        self, client: CsipClient, measurements: SiteMeasurements | None = MEASUREMENTS
    ) -> Controls:
        """One control cycle then the client's due work; returns the controls after it."""
        if measurements is not None:
            client.tick(self.clock(), measurements)
        await client.run_due()
        return client.controls(self.clock())

    async def step(
        self,
        client: CsipClient,
        seconds: float,
        measurements: SiteMeasurements | None = MEASUREMENTS,
    ) -> Controls:
        """Move time on, then :meth:`run`."""
        self.clock.advance(seconds)
        return await self.run(client, measurements)

    def registered(self, **kwargs: Any) -> None:
        """Register the device out of band."""
        self.state.register_device(self.device, **kwargs)

    def now(self) -> int:
        return int(self.clock.t)

    def assert_documents_valid(self) -> None:
        """Everything the client PUT or POSTed validates against the CSIP-AUS XSDs."""
        for request in self.server.requests:
            if request.method in ("PUT", "POST") and request.body:
                assert_valid(request.body)


@contextlib.asynccontextmanager
async def make_harness(
    factory: Callable[..., Awaitable[CsipTestServer]],
    pki: CsipPKI,
    device: Credentials,
    *,
    state: CsipState | None = None,
) -> AsyncIterator[Harness]:
    """Start a server on a fake clock and yield the harness."""
    clock = FakeClock()
    server_state = state or default_tree(CsipState(clock=clock.timestamp))
    server_state.clock = clock.timestamp
    server_state.pen = TEST_PEN  # mRIDs must carry it, as the reference server checks
    server = await factory(state=server_state)
    async with aiohttp.ClientSession() as session:
        harness = Harness(server, clock, device, pki, session)
        try:
            yield harness
        finally:
            for client in harness.clients:
                await client.async_stop()
