"""Device identity: LFDI/SFDI per IEEE 2030.5, certificate and key checks, key and CSR making."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from custom_components.dynamic_export.csip.sep2 import identity
from custom_components.dynamic_export.csip.sep2.identity import (
    CertificateExpiredError,
    CertificateNotYetValidError,
    IdentityError,
    InvalidPemError,
    KeyMismatchError,
)

from .pki import NOW, issue

# IEEE 2030.5 §6.3.4 worked example: the certificate fingerprint, the LFDI (its first 160
# bits) and the SFDI the standard derives from it.
STANDARD_FINGERPRINT = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5349E2AD745672ED145EE213A"
STANDARD_LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
STANDARD_SFDI = 167261211391


def test_standard_worked_example() -> None:
    assert STANDARD_FINGERPRINT[: identity.LFDI_HEX_LENGTH] == STANDARD_LFDI
    assert identity.sfdi_from_lfdi(STANDARD_LFDI) == STANDARD_SFDI
    assert identity.sfdi_from_lfdi(STANDARD_LFDI.lower()) == STANDARD_SFDI
    assert identity.sfdi_is_valid(STANDARD_SFDI)
    assert not identity.sfdi_is_valid(STANDARD_SFDI + 1)
    assert identity.format_sfdi(STANDARD_SFDI) == "167-261-211-391"


def _independent_sfdi(der: bytes) -> int:
    """First 36 bits of the SHA-256 as an integer, by bit arithmetic rather than hex slicing."""
    number = int.from_bytes(hashlib.sha256(der).digest()[:5], "big") >> 4
    digits = [int(d) for d in str(number)]
    return number * 10 + (-sum(digits)) % 10


def test_lfdi_and_sfdi_of_a_certificate() -> None:
    device = issue("device")
    der = device.cert.public_bytes(serialization.Encoding.DER)
    lfdi = identity.lfdi_of(device.cert)
    assert lfdi == hashlib.sha256(der).hexdigest().upper()[:40]
    assert lfdi == identity.lfdi_from_der(der)
    assert lfdi == lfdi.upper()
    assert len(lfdi) == 40
    assert identity.sfdi_from_lfdi(lfdi) == _independent_sfdi(der)
    assert identity.sfdi_is_valid(identity.sfdi_from_lfdi(lfdi))


@pytest.mark.parametrize(("number", "digit"), [(0, 0), (1, 9), (19, 0), (16726121139, 1)])
def test_check_digit(number: int, digit: int) -> None:
    assert identity.sfdi_check_digit(number) == digit
    assert identity.sfdi_is_valid(number * 10 + digit)


@pytest.mark.parametrize("bad", ["", "3E4F45AB", "XYZ45AB31", "0x3E4F45AB3", "3E_4F45AB3"])
def test_sfdi_of_a_non_lfdi(bad: str) -> None:
    with pytest.raises(ValueError, match="not a hex LFDI"):
        identity.sfdi_from_lfdi(bad)


def test_format_sfdi_short_numbers() -> None:
    assert identity.format_sfdi(12345) == "12-345"
    assert identity.format_sfdi(0) == "0"


def test_same_lfdi_ignores_case() -> None:
    assert identity.same_lfdi(STANDARD_LFDI, STANDARD_LFDI.lower())
    assert identity.same_lfdi(f" {STANDARD_LFDI}\n", STANDARD_LFDI)
    assert not identity.same_lfdi(STANDARD_LFDI, STANDARD_LFDI[:-1] + "6")
    assert not identity.same_lfdi(None, None)
    assert not identity.same_lfdi(STANDARD_LFDI, None)


# --- loading ----------------------------------------------------------------------------------


def test_load_identity_with_chain() -> None:
    mica = issue("MICA", issue("SERCA", ca=True), ca=True)
    device = issue("device", mica, not_after=NOW + dt.timedelta(days=30))
    loaded = identity.load_identity(device.cert_pem + mica.cert_pem, device.key_pem)
    assert loaded.certificate == device.cert
    assert loaded.chain == (mica.cert,)
    assert loaded.lfdi == identity.lfdi_of(device.cert)
    assert loaded.sfdi == identity.sfdi_from_lfdi(loaded.lfdi)
    assert 29.9 < loaded.days_left() <= 30
    assert loaded.certificate_chain_pem() == device.cert_pem + mica.cert_pem
    # str input works the same as bytes
    again = identity.load_identity(device.cert_pem.decode(), device.key_pem.decode())
    assert again.lfdi == loaded.lfdi


def test_rsa_identity_loads() -> None:
    device = issue("device", key=rsa.generate_private_key(65537, 2048))
    assert identity.load_identity(device.cert_pem, device.key_pem).private_key is not None


def test_key_does_not_match_certificate() -> None:
    device = issue("device")
    other = issue("other")
    with pytest.raises(KeyMismatchError, match="does not belong"):
        identity.load_identity(device.cert_pem, other.key_pem)


def test_expired_certificate() -> None:
    expired = issue(
        "device",
        not_before=NOW - dt.timedelta(days=400),
        not_after=NOW - dt.timedelta(days=1),
    )
    with pytest.raises(CertificateExpiredError, match="expired on"):
        identity.load_identity(expired.cert_pem, expired.key_pem)
    loaded = identity.load_identity(expired.cert_pem, expired.key_pem, check_dates=False)
    assert -1.01 < loaded.days_left() < -0.99
    # at a time when it was valid
    then = NOW - dt.timedelta(days=2)
    assert identity.load_identity(expired.cert_pem, expired.key_pem, now=then)


def test_not_yet_valid_certificate() -> None:
    future = issue("device", not_before=NOW + dt.timedelta(days=1))
    with pytest.raises(CertificateNotYetValidError, match="system clock"):
        identity.load_identity(future.cert_pem, future.key_pem)


def test_days_until_expiry_of_a_never_expiring_certificate() -> None:
    device = issue("device")  # notAfter 9999-12-31, as 2030.5 device certificates have
    assert identity.days_until_expiry(device.cert) > 365 * 7000
    at = dt.datetime(9999, 12, 30, 23, 59, 59, tzinfo=dt.UTC)
    assert identity.days_until_expiry(device.cert, at) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "cert_pem",
    [
        b"",
        b"not a certificate",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nMIIB\u00e9\n-----END CERTIFICATE-----\n",
    ],
)
def test_invalid_certificate_pem(cert_pem: bytes | str) -> None:
    device = issue("device")
    with pytest.raises(InvalidPemError, match="certificate"):
        identity.load_identity(cert_pem, device.key_pem)


def test_truncated_certificate_pem() -> None:
    device = issue("device")
    with pytest.raises(InvalidPemError):
        identity.load_identity(device.cert_pem[:120], device.key_pem)


@pytest.mark.parametrize("key_pem", [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAA\n"])
def test_invalid_key_pem(key_pem: bytes) -> None:
    device = issue("device")
    with pytest.raises(InvalidPemError, match="private key"):
        identity.load_identity(device.cert_pem, key_pem)


def test_certificate_given_as_key() -> None:
    device = issue("device")
    with pytest.raises(InvalidPemError):
        identity.load_identity(device.cert_pem, device.cert_pem)


def test_encrypted_key() -> None:
    device = issue("device")
    encrypted = identity.private_key_pem(device.key, b"s3cret")
    assert b"ENCRYPTED" in encrypted
    loaded = identity.load_identity(device.cert_pem, encrypted, password=b"s3cret")
    assert loaded.lfdi == identity.lfdi_of(device.cert)
    with pytest.raises(InvalidPemError):
        identity.load_identity(device.cert_pem, encrypted, password=b"wrong")
    with pytest.raises(InvalidPemError):
        identity.load_identity(device.cert_pem, encrypted)


def test_unsupported_key_type() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidPemError, match="unsupported"):
        identity.load_private_key(pem)


def test_errors_share_a_base_class() -> None:
    for error in (
        InvalidPemError,
        KeyMismatchError,
        CertificateExpiredError,
        CertificateNotYetValidError,
    ):
        assert issubclass(error, IdentityError)


def test_load_ca_bundle() -> None:
    root = issue("SERCA", ca=True)
    mica = issue("MICA", root, ca=True)
    assert identity.load_certificates(root.cert_pem + b"\n" + mica.cert_pem) == [
        root.cert,
        mica.cert,
    ]


# --- enrolment --------------------------------------------------------------------------------


def test_generated_key_is_p256_and_round_trips() -> None:
    key = identity.generate_private_key()
    assert isinstance(key.curve, ec.SECP256R1)
    plain = identity.private_key_pem(key)
    assert plain.startswith(b"-----BEGIN PRIVATE KEY-----")
    public = key.public_key().public_numbers()
    assert identity.load_private_key(plain).public_key().public_numbers() == public


def test_csr_blank_subject() -> None:
    key = identity.generate_private_key()
    csr = x509.load_pem_x509_csr(identity.generate_csr(key))
    assert csr.subject == x509.Name([])
    assert csr.is_signature_valid
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)
    assert csr.public_key() == key.public_key()


def test_csr_configurable_subject() -> None:
    key = identity.generate_private_key()
    csr = x509.load_pem_x509_csr(identity.generate_csr(key, "CN=gateway-1,O=Dynamic Export"))
    assert csr.subject.rfc4514_string() == "CN=gateway-1,O=Dynamic Export"
    name = x509.Name.from_rfc4514_string("CN=x")
    assert x509.load_pem_x509_csr(identity.generate_csr(key, name)).subject == name
    with pytest.raises(IdentityError, match="invalid subject"):
        identity.generate_csr(key, "no equals sign")
