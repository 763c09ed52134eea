"""OpenDTU errors; each says what the user has to do, and all are DeviceErrors."""

from __future__ import annotations

from ..core.errors import CredentialsRejectedError, DeviceResponseError, DeviceUnavailableError


class InvalidPasswordError(CredentialsRejectedError):
    """The DTU refused the admin password (HTTP 401)."""


class NotOpenDtuError(DeviceResponseError):
    """Something answers at the address, but not like OpenDTU."""


class OpenDtuApiError(DeviceResponseError):
    """The DTU rejected a command; ``code`` is OpenDTU's error code (e.g. 5002)."""

    def __init__(self, message: str, code: int | None) -> None:
        """Keep the code for callers that react to specific ones."""
        super().__init__(message)
        self.code = code


class UnknownInverterError(OpenDtuApiError):
    """No inverter with this serial on the DTU (5004/11002, or absent from its list)."""


class LimitTypeUnsupportedError(OpenDtuApiError):
    """The firmware rejects the limit type (5003): its numbering differs from ours."""


class InverterUnreachableError(DeviceUnavailableError):
    """The DTU has no fresh data from the inverter (asleep at night, or out of radio range)."""
