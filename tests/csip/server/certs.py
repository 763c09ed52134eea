"""A throw-away CSIP-AUS style PKI, generated at test time with ``cryptography``.

Layout (all keys EC P-256, signatures ECDSA-SHA256, as IEEE 2030.5 requires)::

    SERCA (self-signed root)
    ├── server certificate (SAN: IP 127.0.0.1, DNS localhost)
    └── MICA (manufacturer intermediate CA)
        └── device certificates (notAfter 9999-12-31, HardwareModuleName SAN)

plus self-signed device certificates, expired ones, and devices issued by a foreign CA the
server does not trust. Device certificate files hold the leaf followed by the MICA, so a
client that loads them presents the chain the server needs to verify the leaf.

The LFDI and SFDI are computed here independently of the client's code (IEEE 2030.5 §6.3.4):
LFDI = the first 160 bits of SHA-256 over the certificate's DER, SFDI = its first 36 bits
in decimal with a check digit appended.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# IEEE 2030.5 certificate policy OIDs (id-sep = 1.3.6.1.4.1.40732).
POLICY_DEV_GENERIC = "1.3.6.1.4.1.40732.1.1"
POLICY_TEST = "1.3.6.1.4.1.40732.2.1"
POLICY_SELF_SIGNED = "1.3.6.1.4.1.40732.2.2"
HARDWARE_MODULE_NAME = "1.3.6.1.5.5.7.8.4"
TEST_PEN = 99999  # a private enterprise number no one owns

SEP_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-CCM8",
        "ECDHE-ECDSA-AES128-CCM",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES128-SHA256",
    ]
)

_FOREVER = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


def lfdi_of(cert_der: bytes) -> str:
    """The LFDI of a DER certificate: 40 upper-case hex digits."""
    return hashlib.sha256(cert_der).hexdigest()[:40].upper()


def sfdi_of(lfdi: str) -> int:
    """The SFDI for an LFDI: its first 36 bits as a decimal number plus a check digit."""
    number = int(lfdi[:9], 16)
    return number * 10 + check_digit(number)


def check_digit(number: int) -> int:
    """The 2030.5 check digit: the digit that makes the digit sum a multiple of ten."""
    return (10 - sum(int(d) for d in str(number)) % 10) % 10


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dynamic Export Test PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([arcs[0] * 40 + arcs[1]])
    for arc in arcs[2:]:
        rest = arc >> 7
        chunk = [arc & 0x7F]
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body.extend(reversed(chunk))
    return _der(0x06, bytes(body))


def hardware_module_name(hw_type: str, serial: bytes) -> x509.OtherName:
    """SAN otherName HardwareModuleName ::= SEQUENCE { hwType OID, hwSerialNum OCTET STRING }."""
    value = _der(0x30, _der_oid(hw_type) + _der(0x04, serial))
    return x509.OtherName(x509.ObjectIdentifier(HARDWARE_MODULE_NAME), value)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(slots=True)
class CertificateAuthority:
    """A CA certificate and key; ``path`` is its PEM certificate on disk."""

    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    path: Path
    chain: tuple[x509.Certificate, ...] = ()  # its issuers up to, not including, the root

    @property
    def pem(self) -> bytes:
        """The CA certificate in PEM."""
        return _pem(self.cert)


@dataclass(slots=True)
class Credentials:
    """An end-entity certificate with its key, as files and objects.

    ``cert_path`` holds the leaf then any intermediates; ``leaf_path`` only the leaf.
    """

    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    cert_path: Path
    leaf_path: Path
    key_path: Path

    @property
    def der(self) -> bytes:
        """The leaf certificate's DER encoding."""
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        """The leaf followed by its intermediates, in PEM."""
        return _pem(self.cert) + b"".join(_pem(c) for c in self.chain)

    @property
    def key_pem(self) -> bytes:
        """The private key in unencrypted PKCS#8 PEM."""
        return _key_pem(self.key)

    @property
    def lfdi(self) -> str:
        """The LFDI (upper-case hex)."""
        return lfdi_of(self.der)

    @property
    def sfdi(self) -> int:
        """The SFDI."""
        return sfdi_of(self.lfdi)


class CsipPKI:
    """SERCA, MICA, a server certificate and a factory of device certificates in ``directory``."""

    def __init__(self, directory: Path, *, pen: int = TEST_PEN) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pen = pen
        self.serca = self.new_ca("SERCA")
        self.mica = self.new_ca("MICA", issuer=self.serca)
        self.server = self.issue_server()

    @property
    def ca_path(self) -> Path:
        """The SERCA certificate: what a client trusts to verify the server."""
        return self.serca.path

    # -- authorities ---------------------------------------------------------------------

    def new_ca(
        self, name: str, *, issuer: CertificateAuthority | None = None
    ) -> CertificateAuthority:
        """A new CA (self-signed root when ``issuer`` is ``None``); untrusted unless it is
        the SERCA or MICA, or chains to them."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name)
        issuer_name = issuer.cert.subject if issuer else subject
        signing_key = issuer.key if issuer else key
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(days=1))
            .not_valid_after(_FOREVER)
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0),
                critical=True,
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        cert = builder.sign(signing_key, hashes.SHA256())
        path = self.directory / f"{name.lower()}.pem"
        path.write_bytes(_pem(cert))
        chain: tuple[x509.Certificate, ...] = ()
        if issuer is not None and self._root_cert(issuer) is None:
            chain = (issuer.cert, *issuer.chain)
        return CertificateAuthority(name, key, cert, path, chain)

    @staticmethod
    def _root_cert(ca: CertificateAuthority) -> x509.Certificate | None:
        return ca.cert if ca.cert.issuer == ca.cert.subject else None

    # -- end entities --------------------------------------------------------------------

    def issue_server(
        self,
        name: str = "server",
        *,
        hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
        expired: bool = False,
        issuer: CertificateAuthority | None = None,
    ) -> Credentials:
        """A TLS server certificate for ``hosts`` (IP addresses or DNS names)."""
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        return self._issue(
            name,
            issuer or self.serca,
            extensions=[
                (x509.SubjectAlternativeName(sans), False),
                (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            ],
            expired=expired,
            not_after=_now() + dt.timedelta(days=365),
            common_name=hosts[0] if hosts else name,
        )

    def device(
        self,
        name: str = "device",
        *,
        expired: bool = False,
        not_yet_valid: bool = False,
        self_signed: bool = False,
        issuer: CertificateAuthority | None = None,
    ) -> Credentials:
        """A device certificate and key (EC P-256).

        By default it is issued by the MICA and never expires, as CSIP-AUS device
        certificates are. ``self_signed`` makes a self-signed one (trusted by a server
        only after ``allow_certificate``); ``issuer`` may be a foreign CA from ``new_ca``.
        """
        serial = uuid.uuid4().bytes
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (
                x509.SubjectAlternativeName(
                    [hardware_module_name(f"1.3.6.1.4.1.{self.pen}.1", serial)]
                ),
                True,
            ),
            (
                x509.CertificatePolicies(
                    [
                        x509.PolicyInformation(x509.ObjectIdentifier(oid), None)
                        for oid in (
                            (POLICY_SELF_SIGNED,)
                            if self_signed
                            else (POLICY_DEV_GENERIC, POLICY_TEST)
                        )
                    ]
                ),
                True,
            ),
        ]
        return self._issue(
            name,
            None if self_signed else issuer or self.mica,
            extensions=extensions,
            expired=expired,
            not_yet_valid=not_yet_valid,
            not_after=_FOREVER,
            # IEEE 2030.5 device certificates carry an empty subject.
            common_name=None,
        )

    def _issue(
        self,
        name: str,
        issuer: CertificateAuthority | None,
        *,
        extensions: list[tuple[x509.ExtensionType, bool]],
        not_after: dt.datetime,
        expired: bool = False,
        not_yet_valid: bool = False,
        common_name: str | None,
    ) -> Credentials:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(common_name) if common_name else x509.Name([])
        if issuer is None and not common_name:
            subject = _name(f"self-signed {name}")  # a self-signed cert needs a name to match
        not_before = _now() - dt.timedelta(days=1)
        if expired:
            not_before, not_after = _now() - dt.timedelta(days=30), _now() - dt.timedelta(days=1)
        if not_yet_valid:
            not_before = _now() + dt.timedelta(days=30)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.cert.subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        if issuer is None:
            # A self-signed certificate is its own trust anchor: OpenSSL only accepts one as
            # an issuer (of itself) when it may sign certificates.
            builder = builder.add_extension(
                x509.BasicConstraints(ca=True, path_length=0), critical=True
            ).add_extension(_key_usage(cert_sign=True), critical=True)
        else:
            builder = (
                builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                .add_extension(_key_usage(cert_sign=False), critical=True)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                    False,
                )
            )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical)
        cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
        chain: tuple[x509.Certificate, ...] = ()
        if issuer is not None and self._root_cert(issuer) is None:
            chain = (issuer.cert, *issuer.chain)
        leaf_path = self.directory / f"{name}.leaf.pem"
        cert_path = self.directory / f"{name}.pem"
        key_path = self.directory / f"{name}.key"
        leaf_path.write_bytes(_pem(cert))
        cert_path.write_bytes(_pem(cert) + b"".join(_pem(c) for c in chain))
        key_path.write_bytes(_key_pem(key))
        return Credentials(name, key, cert, chain, cert_path, leaf_path, key_path)

    # -- TLS contexts --------------------------------------------------------------------

    def client_ssl_context(
        self, device: Credentials | None, *, verify_server: bool = True
    ) -> ssl.SSLContext:
        """A client context presenting ``device`` (or no certificate) and trusting the SERCA."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_path))
        if not verify_server:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if device is not None:
            context.load_cert_chain(device.cert_path, device.key_path)
        return context


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=True,
        key_cert_sign=cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def server_ssl_context(
    credentials: Credentials,
    trusted: list[bytes],
    *,
    require_client_cert: bool = True,
    maximum_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """The server side: TLS 1.2+, ECDHE-ECDSA suites, client certificates verified against
    the ``trusted`` PEM certificates (required, or optional so the app can answer 403)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if maximum_version is not None:
        context.maximum_version = maximum_version
    context.set_ciphers(f"{SEP_CIPHERS}:@SECLEVEL=0")  # CCM8 on OpenSSL 3.6 too
    context.set_ecdh_curve("prime256v1")
    context.load_cert_chain(credentials.cert_path, credentials.key_path)
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    for pem in trusted:
        context.load_verify_locations(cadata=pem.decode())
    return context
