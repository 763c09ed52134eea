"""GoodWe errors; all are DeviceErrors, so the control cycle handles them."""

from __future__ import annotations

from ..core.errors import DeviceResponseError


class NotGoodWeEtError(DeviceResponseError):
    """Something answers, but not as a GoodWe inverter of the ET family (ET/EH/BT/BH)."""


class NoGoodWeMeterError(DeviceResponseError):
    """The inverter's own meter does not communicate: its export limit cannot work."""
