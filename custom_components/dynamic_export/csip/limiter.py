"""The CSIP-AUS limiter: the core Limiter protocol over a :class:`~.client.CsipClient`.

How the Home Assistant layer drives it:

* ``hass`` runs :meth:`CsipLimiter.async_run` as a background task of the config entry and
  calls :meth:`CsipLimiter.async_stop` on unload: all network work (polls, Responses, DER
  reports, telemetry) happens there, so a slow or dead server never delays a control cycle.
* Every control cycle it calls :meth:`CsipLimiter.async_tick` with the site's measurements
  (present export, generation, voltages, ratings, whether control is on). That feeds the
  ramps and telemetry, moves the schedule on and wakes the background task when a Response
  or report is due. It does no network I/O.
* The control loop then asks :meth:`CsipLimiter.controls` (no I/O), as for any limiter.
* It saves :meth:`CsipLimiter.to_dict` when ``on_change`` fires (and on unload) and passes
  the saved data to :meth:`CsipLimiter.restore` before starting the task.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..core.controls import Controls
from .client import CsipClient
from .status import CsipStatus
from .telemetry import SiteMeasurements


class CsipLimiter:
    """Limits from a CSIP-AUS utility server."""

    def __init__(self, source: str, client: CsipClient, *, enabled: bool = True) -> None:
        """``source`` labels the limiter in the merge; ``enabled`` is the user's switch."""
        self._source = source
        self.client = client
        self._enabled = enabled
        client.set_limiter_enabled(enabled)

    @property
    def source(self) -> str:
        """Stable label of the limiter."""
        return self._source

    @property
    def enabled(self) -> bool:
        """False when the user switched the limiter off."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        """Switching off asks for nothing and opts out of running events."""
        self._enabled = bool(value)
        self.client.set_limiter_enabled(self._enabled)

    def controls(self, now: datetime) -> Controls:
        """The controls in force at ``now`` (UTC), ramped; nothing while disabled."""
        if not self._enabled:
            return Controls()
        return self.client.controls(now)

    async def async_tick(self, now: datetime, measurements: SiteMeasurements) -> None:
        """Feed one control cycle's measurements (no network I/O)."""
        self.client.tick(now, measurements)

    async def async_run(self) -> None:
        """The background task: polls and sends until :meth:`async_stop`."""
        await self.client.async_run()

    async def async_stop(self) -> None:
        """Stop the background task."""
        await self.client.async_stop()

    def status(self, now: datetime | None = None) -> CsipStatus:
        """State for entities and repair issues."""
        return self.client.status(now)

    def to_dict(self) -> dict[str, Any]:
        """State to save (controls, responses, unsent readings, usage points)."""
        return self.client.to_dict()

    def restore(self, data: dict[str, Any]) -> bool:
        """Take back saved state; False when it was not usable."""
        return self.client.restore(data)
