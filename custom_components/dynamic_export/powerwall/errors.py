"""Powerwall errors; each says what the user has to do, and all are DeviceErrors."""

from __future__ import annotations

from ..core.errors import CredentialsRejectedError, DeviceResponseError, DeviceUnavailableError


class InvalidPasswordError(CredentialsRejectedError):
    """The gateway refused the customer password."""


class LoginThrottledError(DeviceResponseError):
    """Too many failed logins: the gateway refuses logins for a while."""


class NotPowerwallError(DeviceResponseError):
    """Something answers at the address, but not like a Powerwall gateway."""


class GatewayStoppedError(DeviceUnavailableError):
    """The gateway's system is stopped (it answers 502): it has no meter data."""


class SiteMeterSilentError(DeviceUnavailableError):
    """The gateway answers but has never heard from its site meter: its grid power is no reading."""


class CertificateChangedError(DeviceUnavailableError):
    """The gateway shows a certificate other than the one pinned at set-up.

    The gateway's certificate is self-signed, so pinning its fingerprint is what stops another
    machine on the network from posing as it. A new certificate (after a gateway replacement
    or reset) must be accepted by the user; ``seen`` is the new fingerprint to offer.
    """

    def __init__(self, message: str, *, pinned: str, seen: str) -> None:
        """Keep both fingerprints for the repair flow."""
        super().__init__(message)
        self.pinned = pinned
        self.seen = seen
