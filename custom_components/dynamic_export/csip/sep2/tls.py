"""Mutual TLS for the 2030.5 client.

IEEE 2030.5 mandates TLS 1.2 with ECDHE-ECDSA-AES128-CCM8, so that suite is offered first,
followed by the usual ECDHE AEAD suites for servers that lack it. OpenSSL 3.6 rates CCM8's
64-bit tag below its default security level and silently leaves the suite out, so the
context runs at security level 0: the suites are still only the AEAD ones listed here, TLS
1.2 is still the minimum, and the server is still verified against the configured CA.
Skipping that verification (``verify_server=False``) is for local test servers only.
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from .identity import (
    DeviceIdentity,
    certificate_pem,
    load_certificates,
    load_identity,
    private_key_pem,
)

CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-CCM8",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-CCM",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)
"""TLS 1.2 suites in preference order; OpenSSL silently drops ones it lacks."""

CIPHER_STRING = f"{CIPHERS}:@SECLEVEL=0"
"""What the context is given: level 0 keeps CCM8 on every OpenSSL (3.6 rates it below 1)."""


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def build_ssl_context(
    identity: DeviceIdentity,
    *,
    ca_certificates: Sequence[x509.Certificate] = (),
    verify_server: bool = True,
    check_hostname: bool = True,
    maximum_version: ssl.TLSVersion | None = None,
    temp_dir: str | None = None,
) -> ssl.SSLContext:
    """An SSLContext presenting the device certificate, for aiohttp's ``ssl=``.

    Blocking (writes and reads files, derives a key): the Home Assistant layer runs it in an
    executor. ``ssl`` loads keys only from files, so the key is written encrypted with a
    one-off random password into a private (0700) temporary directory and removed as soon as
    it is loaded; it never touches the disk unencrypted.

    The server is verified against ``ca_certificates`` (e.g. the SERCA chain; an
    intermediate alone is accepted as trust anchor) or, when none are given, the system store.
    ``check_hostname=False`` keeps chain verification but accepts a server certificate without
    the host's name, which 2030.5 server certificates may lack.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if maximum_version is not None:
        context.maximum_version = maximum_version
    context.set_ciphers(CIPHER_STRING)
    if verify_server:
        context.check_hostname = check_hostname
        context.verify_mode = ssl.CERT_REQUIRED
        if ca_certificates:
            pem = b"".join(certificate_pem(c) for c in ca_certificates)
            context.load_verify_locations(cadata=pem.decode("ascii"))
            context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    password = secrets.token_hex(32).encode("ascii")
    with tempfile.TemporaryDirectory(prefix="csip-tls-", dir=temp_dir) as directory:
        cert_path = Path(directory, "cert.pem")
        key_path = Path(directory, "key.pem")
        _write_private(cert_path, identity.certificate_chain_pem())
        _write_private(key_path, private_key_pem(identity.private_key, password))
        context.load_cert_chain(cert_path, key_path, password=password)
    return context


def client_tls_context(
    cert_pem: bytes | str,
    key_pem: bytes | str,
    ca_pem: bytes | str | None,
    *,
    verify_server: bool,
) -> tuple[DeviceIdentity, ssl.SSLContext]:
    """The device identity and the context it talks to the server with (blocking).

    The one way the client's TLS is set up, from the PEM text an installer gives: TLS 1.2
    exactly, as IEEE 2030.5 mandates. ``ca_pem`` verifies the server (e.g. the SERCA);
    without it the system store does. ``verify_server=False`` skips verification, host
    name included (local test servers only). Raises the ``identity.IdentityError``
    subclasses for PEM text that cannot be used.
    """
    identity = load_identity(cert_pem, key_pem)
    context = build_ssl_context(
        identity,
        ca_certificates=load_certificates(ca_pem) if ca_pem else (),
        verify_server=verify_server,
        check_hostname=verify_server,
        maximum_version=ssl.TLSVersion.TLSv1_2,
    )
    return identity, context
