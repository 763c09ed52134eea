"""Huawei errors; all are DeviceErrors, so the control cycle handles them."""

from __future__ import annotations

from ..core.errors import DeviceResponseError


class NotHuaweiError(DeviceResponseError):
    """The unit answers, but its model name is not a Huawei SUN2000."""


class DeratingUnsupportedError(DeviceResponseError):
    """The active power derating register cannot be read, or holds a value out of range."""
