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


class NoMeterError(DeviceResponseError):
    """The inverter has no meter at the position asked for (its SunSpec chain ends before)."""


class NotGridMeterError(DeviceResponseError):
    """The meter is not at the grid connection point (e.g. a consumption meter).

    ``option`` is the meter function the meter's common block names, as read.
    """

    def __init__(self, message: str, option: str | None) -> None:
        """Keep what the meter says it measures next to the message."""
        super().__init__(message)
        self.option = option
