"""SolarEdge errors; all are DeviceErrors, so the control cycle handles them."""

from __future__ import annotations

from ..core.errors import DeviceResponseError


class NotSolarEdgeError(DeviceResponseError):
    """A SunSpec device answers, but its common model does not name SolarEdge."""


class PowerControlUnsupportedError(DeviceResponseError):
    """The power-control registers cannot be read: firmware older than CPU 3.x, or not Modbus."""


class CommitError(DeviceResponseError):
    """The inverter refused or never finished committing its power-control settings.

    ``register`` is the (0-based) address it names as rejected, when it names one.
    """

    def __init__(self, message: str, register: int | None = None) -> None:
        """Keep the rejected register next to the message."""
        super().__init__(message)
        self.register = register
