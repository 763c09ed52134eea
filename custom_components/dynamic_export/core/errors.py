"""Errors raised by device clients; the control cycle turns them into device states."""

from __future__ import annotations


class DeviceError(Exception):
    """A device could not be read or written. The message is shown to the user."""


class DeviceUnavailableError(DeviceError):
    """The device did not answer: connection refused, timeout, disconnect."""


class DeviceResponseError(DeviceError):
    """The device answered with an error (for example a Modbus exception response)."""


class CredentialsRejectedError(DeviceResponseError):
    """The device refused our password or token: only a person can give a new one."""


class InvalidDeviceDataError(DeviceError):
    """The device answered with values that make no sense (negative rating, bad scale factor)."""
