"""The 2030.5 transport over real mutual TLS against the in-repo test server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from custom_components.dynamic_export.csip.sep2.parse import parse_device_capability
from custom_components.dynamic_export.csip.sep2.resources import EndDevice
from custom_components.dynamic_export.csip.sep2.serialise import end_device_xml
from custom_components.dynamic_export.csip.sep2.tls import client_tls_context
from custom_components.dynamic_export.csip.sep2.transport import (
    BodyTooLargeError,
    CertificateRejectedError,
    HttpStatusError,
    Sep2Transport,
    ServerCertificateError,
    ServerUnreachableError,
    TlsHandshakeError,
)

from ..server.app import CsipTestServer
from ..server.certs import Credentials, CsipPKI


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain shared session, as Home Assistant hands out."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def _transport(
    session: aiohttp.ClientSession,
    server: CsipTestServer,
    device: Credentials,
    pki: CsipPKI,
    *,
    ca_pem: bytes | None = None,
) -> Sep2Transport:
    _identity, context = client_tls_context(
        device.cert_path.read_bytes(),
        device.key_path.read_bytes(),
        ca_pem if ca_pem is not None else pki.ca_path.read_bytes(),
        verify_server=True,
    )
    return Sep2Transport(session, server.base_url, context, timeout_s=2.0, retry_delays_s=(0.05,))


async def test_get_over_mutual_tls(
    session: aiohttp.ClientSession,
    csip_server: CsipTestServer,
    csip_device: Credentials,
    csip_pki: CsipPKI,
) -> None:
    """The device presents its certificate; the server sees its LFDI."""
    transport = _transport(session, csip_server, csip_device, csip_pki)
    answer = await transport.get(csip_server.url)
    dcap = parse_device_capability(answer.body)
    assert dcap is not None
    assert csip_server.requests[-1].lfdi.upper() == csip_device.lfdi.upper()


async def test_post_returns_location(
    session: aiohttp.ClientSession,
    csip_server: CsipTestServer,
    csip_device: Credentials,
    csip_pki: CsipPKI,
) -> None:
    """In-band registration: POST an EndDevice, follow Location."""
    transport = _transport(session, csip_server, csip_device, csip_pki)
    document = end_device_xml(
        EndDevice(href=None, lfdi=csip_device.lfdi, sfdi=csip_device.sfdi, changed_time=0)
    )
    answer = await transport.post("/edev", document)
    assert answer.status == 201
    assert answer.location is not None
    assert answer.location.startswith("/edev/")


async def test_server_not_trusted(
    session: aiohttp.ClientSession,
    csip_server: CsipTestServer,
    csip_device: Credentials,
    csip_pki: CsipPKI,
) -> None:
    """A server whose certificate does not chain to the configured CA is refused."""
    other = csip_pki.new_ca("impostor")
    transport = _transport(
        session, csip_server, csip_device, csip_pki, ca_pem=other.path.read_bytes()
    )
    with pytest.raises(ServerCertificateError):
        await transport.get(csip_server.url)


async def test_device_certificate_rejected(
    session: aiohttp.ClientSession, csip_server: CsipTestServer, csip_pki: CsipPKI
) -> None:
    """A self-signed device the server does not trust is told apart from a network fault."""
    stranger = csip_pki.device("stranger", self_signed=True)
    transport = _transport(session, csip_server, stranger, csip_pki)
    # A server refuses with a TLS alert, or (like this one) by closing the handshake.
    with pytest.raises((CertificateRejectedError, TlsHandshakeError)):
        await transport.get(csip_server.url)
    assert csip_server.tls_failures, "the server saw and refused the certificate"
    assert not csip_server.requests


async def test_http_errors_and_retries(
    session: aiohttp.ClientSession,
    csip_server: CsipTestServer,
    csip_device: Credentials,
    csip_pki: CsipPKI,
) -> None:
    """5xx is retried and then reported; 404 is reported at once."""
    transport = _transport(session, csip_server, csip_device, csip_pki)
    fault = csip_server.inject("/tm", "status", status=503)
    with pytest.raises(HttpStatusError) as info:
        await transport.get("/tm")
    assert info.value.status == 503
    assert fault.hits == 2  # first try and one retry
    csip_server.clear_faults()
    missing = csip_server.inject("/tm", "status", status=404)
    with pytest.raises(HttpStatusError):
        await transport.get("/tm")
    assert missing.hits == 1


async def test_huge_body_refused(
    session: aiohttp.ClientSession,
    csip_server: CsipTestServer,
    csip_device: Credentials,
    csip_pki: CsipPKI,
) -> None:
    """A body above the limit is refused before anything parses it."""
    transport = _transport(session, csip_server, csip_device, csip_pki)
    csip_server.inject("/tm", "huge", size=3 << 20)
    with pytest.raises(BodyTooLargeError):
        await transport.get("/tm")


async def test_server_down(
    session: aiohttp.ClientSession,
    csip_server: CsipTestServer,
    csip_device: Credentials,
    csip_pki: CsipPKI,
) -> None:
    """A stopped server is "unreachable", and reachable again once it is back."""
    transport = _transport(session, csip_server, csip_device, csip_pki)
    await csip_server.stop()
    with pytest.raises(ServerUnreachableError):
        await transport.get(csip_server.url)
    await csip_server.start()
    assert (await transport.get(csip_server.url)).status == 200
