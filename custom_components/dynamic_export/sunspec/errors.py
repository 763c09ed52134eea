"""SunSpec-specific device errors; both are DeviceErrors so the control cycle handles them."""

from __future__ import annotations

from ..core.errors import DeviceError, DeviceResponseError


class NotSunSpecError(DeviceError):
    """No 'SunS' marker at any of the standard base addresses."""


class UnsupportedDeviceError(DeviceError):
    """The device speaks SunSpec but lacks a model we need (e.g. no controls model 123)."""


class ModbusExceptionError(DeviceResponseError):
    """The device answered with a Modbus exception; ``code`` tells discovery what it means."""

    def __init__(self, message: str, code: int) -> None:
        """Keep the exception code next to the message."""
        super().__init__(message)
        self.code = code
