"""The 2030.5 transport over real mutual TLS against the in-repo test server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

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
    retry_after_s,
)

from ..server.app import CsipTestServer
from ..server.certs import Credentials, CsipPKI

type Connect = Callable[..., Sep2Transport]


@pytest.fixture
async def connect(
    csip_server: CsipTestServer, csip_device: Credentials, csip_pki: CsipPKI
) -> AsyncIterator[Connect]:
    """Transports to the test server over one plain shared session, as Home Assistant's.

    Each is set up as the product does (``client_tls_context``), as ``device`` (default the
    registered test device) trusting ``ca_pem`` (default the test PKI's CA).
    """
    async with aiohttp.ClientSession() as session:

        def make(device: Credentials = csip_device, ca_pem: bytes | None = None) -> Sep2Transport:
            _identity, context = client_tls_context(
                device.cert_path.read_bytes(),
                device.key_path.read_bytes(),
                ca_pem if ca_pem is not None else csip_pki.ca_path.read_bytes(),
                verify_server=True,
            )
            return Sep2Transport(
                session, csip_server.base_url, context, timeout_s=2.0, retry_delays_s=(0.05,)
            )

        yield make


async def test_get_over_mutual_tls(
    connect: Connect, csip_server: CsipTestServer, csip_device: Credentials
) -> None:
    """The device presents its certificate; the server sees its LFDI."""
    transport = connect()
    answer = await transport.get(csip_server.url)
    dcap = parse_device_capability(answer.body)
    assert dcap is not None
    assert csip_server.requests[-1].lfdi.upper() == csip_device.lfdi.upper()


async def test_post_returns_location(connect: Connect, csip_device: Credentials) -> None:
    """In-band registration: POST an EndDevice, follow Location."""
    transport = connect()
    document = end_device_xml(
        EndDevice(href=None, lfdi=csip_device.lfdi, sfdi=csip_device.sfdi, changed_time=0)
    )
    answer = await transport.post("/edev", document)
    assert answer.status == 201
    assert answer.location is not None
    assert answer.location.startswith("/edev/")


async def test_server_not_trusted(
    connect: Connect, csip_server: CsipTestServer, csip_pki: CsipPKI
) -> None:
    """A server whose certificate does not chain to the configured CA is refused."""
    other = csip_pki.new_ca("impostor")
    transport = connect(ca_pem=other.path.read_bytes())
    with pytest.raises(ServerCertificateError):
        await transport.get(csip_server.url)


async def test_device_certificate_rejected(
    connect: Connect, csip_server: CsipTestServer, csip_pki: CsipPKI
) -> None:
    """A self-signed device the server does not trust is told apart from a network fault."""
    stranger = csip_pki.device("stranger", self_signed=True)
    transport = connect(stranger)
    # A server refuses with a TLS alert, or (like this one) by closing the handshake.
    with pytest.raises((CertificateRejectedError, TlsHandshakeError)):
        await transport.get(csip_server.url)
    assert csip_server.tls_failures, "the server saw and refused the certificate"
    assert not csip_server.requests


async def test_http_errors_and_retries(connect: Connect, csip_server: CsipTestServer) -> None:
    """5xx is retried and then reported; 404 is reported at once."""
    transport = connect()
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


async def test_huge_body_refused(connect: Connect, csip_server: CsipTestServer) -> None:
    """A body above the limit is refused before anything parses it."""
    transport = connect()
    csip_server.inject("/tm", "huge", size=3 << 20)
    with pytest.raises(BodyTooLargeError):
        await transport.get("/tm")


async def test_server_down(connect: Connect, csip_server: CsipTestServer) -> None:
    """A stopped server is "unreachable", and reachable again once it is back."""
    transport = connect()
    await csip_server.stop()
    with pytest.raises(ServerUnreachableError):
        await transport.get(csip_server.url)
    await csip_server.start()
    assert (await transport.get(csip_server.url)).status == 200


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "180"}, 180.0),
        ({"Retry-After": " 0 "}, 0.0),
        ({"Retry-After": "999999"}, 3600.0),  # capped: a typo must not silence a resource for days
        (
            {
                "Retry-After": "Wed, 21 Oct 2026 07:30:00 GMT",
                "Date": "Wed, 21 Oct 2026 07:28:00 GMT",
            },
            120.0,
        ),
        (
            {
                "Retry-After": "Wed, 21 Oct 2026 07:20:00 GMT",
                "Date": "Wed, 21 Oct 2026 07:28:00 GMT",
            },
            0.0,
        ),
        ({"Retry-After": "Wed, 21 Oct 2026 07:30:00 GMT"}, None),  # no Date: no clock to read it on
        ({"Retry-After": "-5"}, None),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_header(headers: dict[str, str], seconds: float | None) -> None:
    """Delay-seconds or an HTTP date read on the server's own Date; anything else is ignored."""
    assert retry_after_s(headers) == seconds
