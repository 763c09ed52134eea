"""Sungrow errors; all are DeviceErrors, so the control cycle handles them."""

from __future__ import annotations

from ..core.errors import DeviceResponseError


class NotSungrowError(DeviceResponseError):
    """The unit answers, but not with a Sungrow SG or SH device type code."""


class PowerLimitUnsupportedError(DeviceResponseError):
    """The power limitation registers cannot be read, or hold values outside their range."""
