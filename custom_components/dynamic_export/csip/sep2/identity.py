"""The device's IEEE 2030.5 identity: certificate, private key, LFDI and SFDI.

The utility knows the device only by its certificate, so everything here is checked when
loaded (PEM parses, key matches certificate, certificate in its validity period) and fails with
an IdentityError subclass whose message an installer can act on.

LFDI is written in upper case, as IEEE 2030.5 prints it and as installers type it into utility
forms; hexBinary is case-insensitive on the wire, so LFDIs are compared with ``same_lfdi``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

type PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

LFDI_HEX_LENGTH = 40
SFDI_BITS = 36
_LFDI_HEAD = re.compile(r"[0-9A-Fa-f]{9}")


class IdentityError(ValueError):
    """The certificate or key cannot be used as the device identity."""


class InvalidPemError(IdentityError):
    """The text is not a PEM certificate or private key we can read."""


class KeyMismatchError(IdentityError):
    """The private key does not belong to the certificate."""


class CertificateExpiredError(IdentityError):
    """The certificate's notAfter has passed."""


class CertificateNotYetValidError(IdentityError):
    """The certificate's notBefore is in the future (or the clock is wrong)."""


# --- LFDI / SFDI (IEEE 2030.5 §6.3.4) ---------------------------------------------------------


def lfdi_from_der(der: bytes) -> str:
    """LFDI: the leftmost 160 bits of the SHA-256 fingerprint of the DER certificate."""
    return hashlib.sha256(der).hexdigest()[:LFDI_HEX_LENGTH].upper()


def lfdi_of(certificate: x509.Certificate) -> str:
    """LFDI of a certificate."""
    return lfdi_from_der(certificate.public_bytes(serialization.Encoding.DER))


def sfdi_check_digit(number: int) -> int:
    """The digit that makes the sum of all decimal digits a multiple of 10."""
    return (10 - sum(int(d) for d in str(number)) % 10) % 10


def sfdi_from_lfdi(lfdi: str) -> int:
    """SFDI: the leftmost 36 bits of the LFDI in decimal, followed by the check digit."""
    if not _LFDI_HEAD.match(lfdi):
        raise ValueError(f"{lfdi!r} is not a hex LFDI")
    number = int(lfdi[: SFDI_BITS // 4], 16)
    return number * 10 + sfdi_check_digit(number)


def sfdi_is_valid(sfdi: int) -> bool:
    """Whether an SFDI's check digit is right (digit sum a multiple of 10)."""
    return sfdi >= 0 and sum(int(d) for d in str(sfdi)) % 10 == 0


def same_lfdi(a: str | None, b: str | None) -> bool:
    """LFDIs compared as hexBinary: case-insensitive, None never matches."""
    return a is not None and b is not None and a.strip().upper() == b.strip().upper()


def format_sfdi(sfdi: int) -> str:
    """SFDI in groups of three digits (``167-261-211-391``), as utility forms show it."""
    digits = str(sfdi)
    first = len(digits) % 3 or 3
    groups = [digits[:first]] + [digits[i : i + 3] for i in range(first, len(digits), 3)]
    return "-".join(groups)


# --- loading ----------------------------------------------------------------------------------


def _as_bytes(pem: bytes | str) -> bytes:
    return pem.encode("ascii", "replace") if isinstance(pem, str) else pem


def load_certificates(pem: bytes | str) -> list[x509.Certificate]:
    """Every certificate in a PEM text (leaf first, then its chain, or a CA bundle)."""
    try:
        certificates = x509.load_pem_x509_certificates(_as_bytes(pem))
    except ValueError as err:
        raise InvalidPemError(f"not a PEM certificate: {err}") from None
    if not certificates:
        raise InvalidPemError("no certificate in the PEM text")
    return certificates


def load_private_key(pem: bytes | str, password: bytes | None = None) -> PrivateKey:
    """An EC or RSA private key from PEM (PKCS#8 or traditional, optionally encrypted)."""
    try:
        key = serialization.load_pem_private_key(_as_bytes(pem), password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise InvalidPemError(f"not a usable PEM private key: {err}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise InvalidPemError(f"unsupported private key type {type(key).__name__}")
    return key


def _public_der(key: PrivateKey | x509.Certificate) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _utcnow(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.UTC)


def days_until_expiry(certificate: x509.Certificate, now: dt.datetime | None = None) -> float:
    """Days until notAfter (negative once expired); ``now`` must be timezone-aware."""
    left = certificate.not_valid_after_utc - _utcnow(now)
    return left.total_seconds() / 86400


def check_validity(certificate: x509.Certificate, now: dt.datetime | None = None) -> None:
    """Raise if the certificate is outside its validity period at ``now``."""
    moment = _utcnow(now)
    if moment < certificate.not_valid_before_utc:
        raise CertificateNotYetValidError(
            f"certificate is not valid before {certificate.not_valid_before_utc.isoformat()}"
            " (check the system clock)"
        )
    if moment > certificate.not_valid_after_utc:
        raise CertificateExpiredError(
            f"certificate expired on {certificate.not_valid_after_utc.isoformat()}"
        )


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """A device certificate with its key; ``chain`` is sent after it (e.g. the MICA)."""

    certificate: x509.Certificate
    private_key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def lfdi(self) -> str:
        """LFDI, upper-case hex."""
        return lfdi_of(self.certificate)

    @property
    def sfdi(self) -> int:
        """SFDI."""
        return sfdi_from_lfdi(self.lfdi)

    def days_left(self, now: dt.datetime | None = None) -> float:
        """Days until the device certificate expires."""
        return days_until_expiry(self.certificate, now)

    def certificate_chain_pem(self) -> bytes:
        """The certificate followed by its chain, PEM."""
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.certificate, *self.chain)
        )


def load_identity(
    cert_pem: bytes | str,
    key_pem: bytes | str,
    *,
    password: bytes | None = None,
    now: dt.datetime | None = None,
    check_dates: bool = True,
) -> DeviceIdentity:
    """Load and check the device identity.

    ``cert_pem`` holds the device certificate first, optionally followed by its chain. Raises
    InvalidPemError, KeyMismatchError, CertificateExpiredError or CertificateNotYetValidError
    (the last two only with ``check_dates``).
    """
    certificate, *chain = load_certificates(cert_pem)
    key = load_private_key(key_pem, password)
    if _public_der(key) != _public_der(certificate):
        raise KeyMismatchError("the private key does not belong to the device certificate")
    if check_dates:
        check_validity(certificate, now)
    return DeviceIdentity(certificate, key, tuple(chain))


# --- enrolment --------------------------------------------------------------------------------


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    """A new EC P-256 (secp256r1) key, the curve IEEE 2030.5 requires."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted when a password is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def generate_csr(key: PrivateKey, subject: x509.Name | str | None = None) -> bytes:
    """A PEM certificate signing request signed with SHA-256.

    The subject is blank by default: 2030.5 device certificates identify the device through
    the certificate itself (LFDI), and the CA fills in what it needs. A string is read as an
    RFC 4514 name such as ``CN=gateway-1,O=Example``.
    """
    if subject is None:
        name = x509.Name([])
    elif isinstance(subject, str):
        try:
            name = x509.Name.from_rfc4514_string(subject)
        except ValueError as err:
            raise IdentityError(f"invalid subject {subject!r}: {err}") from None
    else:
        name = subject
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def certificate_pem(certificate: x509.Certificate) -> bytes:
    """A certificate as PEM."""
    return certificate.public_bytes(serialization.Encoding.PEM)
