"""Victron GX errors; all are DeviceErrors, so the control cycle handles them."""

from __future__ import annotations

from ..core.errors import DeviceResponseError


class NotVictronGxError(DeviceResponseError):
    """Nothing at unit 100 answers as a GX's system service (no serial at register 800)."""


class EssUnavailableError(DeviceResponseError):
    """The GX runs no ESS control loop it would curtail with (no hub4 service, or mode 3).

    In ESS mode 3 (external control) the GX does not apply the feed-in limit itself.
    """


class GridMeterUnavailableError(DeviceResponseError):
    """No grid meter service (``com.victronenergy.grid``) at the unit id given."""
