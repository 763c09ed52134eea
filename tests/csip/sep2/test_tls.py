"""Mutual TLS: the context settings and real handshakes against a loopback TLS server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from custom_components.dynamic_export.csip.sep2 import identity, tls

from .pki import Issued, issue

TLS12 = ssl.TLSVersion.TLSv1_2
SERVER_TLS12_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-CCM8:@SECLEVEL=0"


def _has_ccm8() -> bool:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with contextlib.suppress(ssl.SSLError):
        context.set_ciphers("ECDHE-ECDSA-AES128-CCM8")
        return True
    return False


@pytest.fixture(autouse=True)
def _loopback_sockets(request: pytest.FixtureRequest) -> None:
    """The handshakes talk TCP to 127.0.0.1; pytest-socket (from the HA plugin) blocks that."""
    with contextlib.suppress(pytest.FixtureLookupError):
        request.getfixturevalue("socket_enabled")


class Pki:
    """SERCA → MICA → device, SERCA → server; plus a stranger CA the client must not trust."""

    def __init__(self) -> None:
        self.serca = issue("SERCA", ca=True)
        self.mica = issue("MICA", self.serca, ca=True)
        self.device = issue("device", self.mica)
        self.server = issue("server", self.serca, dns=("localhost",), ip=("127.0.0.1",))
        self.stranger = issue("stranger CA", ca=True)

    def device_identity(self) -> identity.DeviceIdentity:
        return identity.load_identity(
            self.device.cert_pem + self.mica.cert_pem, self.device.key_pem
        )


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def _server_context(pki: Pki, server: Issued, tmp_path: Path) -> ssl.SSLContext:
    """A TLS 1.2 server that requires a client certificate chaining to the SERCA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_bytes(server.cert_pem)
    key.write_bytes(server.key_pem)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cadata=pki.serca.cert_pem.decode())
    context.verify_mode = ssl.CERT_REQUIRED
    if _has_ccm8():
        # GCM listed first, but the client's order decides: CCM8 must win because we offer it
        # first (Python servers default to their own order, real ones vary).
        context.set_ciphers(SERVER_TLS12_CIPHERS)
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


@contextlib.asynccontextmanager
async def _serve(context: ssl.SSLContext) -> AsyncIterator[int]:
    """Answer each connection with the client's LFDI, then close."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.write(identity.lfdi_from_der(peer).encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _talk(port: int, context: ssl.SSLContext, hostname: str = "localhost") -> dict[str, Any]:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=hostname), 5
    )
    try:
        lfdi = (await asyncio.wait_for(reader.read(), 5)).decode()
        ssl_object = writer.get_extra_info("ssl_object")
        return {"lfdi": lfdi, "version": ssl_object.version(), "cipher": ssl_object.cipher()[0]}
    finally:
        writer.close()


def test_context_settings(pki: Pki) -> None:
    context = tls.build_ssl_context(pki.device_identity(), ca_certificates=[pki.serca.cert])
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN
    tls12 = [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert all(name.startswith("ECDHE-") for name in tls12)
    if _has_ccm8():
        assert tls12[0] == "ECDHE-ECDSA-AES128-CCM8"
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in tls12


def test_no_verification_only_when_asked(pki: Pki) -> None:
    context = tls.build_ssl_context(pki.device_identity(), verify_server=False)
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


def test_key_file_is_private_encrypted_and_removed(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int, bytes]] = []
    original = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        seen.append(
            (
                stat.S_IMODE(os.stat(Path(keyfile).parent).st_mode),
                stat.S_IMODE(os.stat(keyfile).st_mode),
                Path(keyfile).read_bytes(),
            )
        )
        original(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    tls.build_ssl_context(pki.device_identity(), verify_server=False, temp_dir=str(tmp_path))
    ((dir_mode, key_mode, key_pem),) = seen
    assert (dir_mode, key_mode) == (0o700, 0o600)
    assert key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert list(tmp_path.iterdir()) == []


async def test_mutual_tls_handshake(pki: Pki, tmp_path: Path) -> None:
    """From the installer's PEM text, as the integration sets it up."""
    device, client = tls.client_tls_context(
        pki.device.cert_pem + pki.mica.cert_pem,
        pki.device.key_pem,
        pki.serca.cert_pem,
        verify_server=True,
    )
    async with _serve(_server_context(pki, pki.server, tmp_path)) as port:
        result = await _talk(port, client)
    # The server verified our leaf through the MICA we sent with it and saw our LFDI.
    assert result["lfdi"] == device.lfdi
    assert result["version"] == "TLSv1.2"
    if _has_ccm8():
        assert result["cipher"] == "ECDHE-ECDSA-AES128-CCM8"


async def test_ccm8_only_server_is_reached_and_still_verified(pki: Pki, tmp_path: Path) -> None:
    """A server offering nothing but 2030.5's mandatory suite (OpenSSL 3.6 rates it low)."""
    client = tls.build_ssl_context(pki.device_identity(), ca_certificates=[pki.serca.cert])
    server = _server_context(pki, pki.server, tmp_path)
    server.set_ciphers("ECDHE-ECDSA-AES128-CCM8:@SECLEVEL=0")
    async with _serve(server) as port:
        assert (await _talk(port, client))["cipher"] == "ECDHE-ECDSA-AES128-CCM8"
    impostor = _server_context(pki, issue("server", pki.stranger, ip=("127.0.0.1",)), tmp_path)
    impostor.set_ciphers("ECDHE-ECDSA-AES128-CCM8:@SECLEVEL=0")
    async with _serve(impostor) as port:
        with pytest.raises(ssl.SSLCertVerificationError):
            await _talk(port, client)


async def test_untrusted_server_is_rejected(pki: Pki, tmp_path: Path) -> None:
    impostor = issue("server", pki.stranger, dns=("localhost",), ip=("127.0.0.1",))
    server = _server_context(pki, impostor, tmp_path)
    client = tls.build_ssl_context(pki.device_identity(), ca_certificates=[pki.serca.cert])
    async with _serve(server) as port:
        with pytest.raises(ssl.SSLCertVerificationError):
            await _talk(port, client)
        # A test server may be reached without verification, but only by asking for it.
        lax = tls.build_ssl_context(pki.device_identity(), verify_server=False)
        assert (await _talk(port, lax))["lfdi"] == pki.device_identity().lfdi


async def test_hostname_check(pki: Pki, tmp_path: Path) -> None:
    elsewhere = issue("server", pki.serca, dns=("utility.example",))
    device = pki.device_identity()
    async with _serve(_server_context(pki, elsewhere, tmp_path)) as port:
        strict = tls.build_ssl_context(device, ca_certificates=[pki.serca.cert])
        with pytest.raises(ssl.SSLCertVerificationError, match=r"(?i)hostname|IP address"):
            await _talk(port, strict)
        chain_only = tls.build_ssl_context(
            device, ca_certificates=[pki.serca.cert], check_hostname=False
        )
        assert (await _talk(port, chain_only))["lfdi"] == device.lfdi


async def test_intermediate_as_trust_anchor(pki: Pki, tmp_path: Path) -> None:
    """A configured chain holding only an intermediate still verifies (partial chain)."""
    intermediate = issue("SMICA", pki.serca, ca=True)
    server = issue("server", intermediate, dns=("localhost",))
    client = tls.build_ssl_context(pki.device_identity(), ca_certificates=[intermediate.cert])
    async with _serve(_server_context(pki, server, tmp_path)) as port:
        assert (await _talk(port, client))["lfdi"] == pki.device_identity().lfdi


def test_client_context_from_pem(pki: Pki) -> None:
    """TLS 1.2 exactly; the CA given, else the system store; no checks only when asked."""
    chain, key = pki.device.cert_pem + pki.mica.cert_pem, pki.device.key_pem
    device, strict = tls.client_tls_context(chain, key, pki.serca.cert_pem, verify_server=True)
    assert device.lfdi == pki.device_identity().lfdi
    assert (strict.minimum_version, strict.maximum_version) == (TLS12, TLS12)
    assert (strict.verify_mode, strict.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert strict.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN
    _device, system = tls.client_tls_context(chain, key, None, verify_server=True)
    assert system.maximum_version == TLS12
    assert system.verify_mode == ssl.CERT_REQUIRED
    assert not system.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN
    _device, lax = tls.client_tls_context(chain, key, pki.serca.cert_pem, verify_server=False)
    assert (lax.verify_mode, lax.check_hostname, lax.maximum_version) == (
        ssl.CERT_NONE,
        False,
        TLS12,
    )
    with pytest.raises(identity.IdentityError):
        tls.client_tls_context(chain, b"not a key", None, verify_server=True)
