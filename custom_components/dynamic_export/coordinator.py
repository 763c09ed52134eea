"""The coordinator that runs the site's control cycle on every tick."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .core.cycle import ControlLoop, CycleSnapshot, SiteDevices

_LOGGER = logging.getLogger(__name__)

type CycleHook = Callable[[CycleSnapshot, SiteDevices], Awaitable[None]]
"""Called after each cycle with its snapshot and the site's devices as known then."""


class SiteCoordinator(DataUpdateCoordinator[CycleSnapshot]):
    """Run one control cycle per update; entities show the cycle's snapshot.

    The cycle handles device faults itself (they become entity states and the
    fail-safe), so an update only fails on a bug, which the coordinator logs.
    """

    config_entry: ConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        loop: ControlLoop,
        interval_s: float,
    ) -> None:
        """Create the coordinator for one site."""
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=f"Dynamic Export {entry.title}",
            update_interval=timedelta(seconds=interval_s),
            always_update=True,
        )
        self.loop = loop
        self.after_cycle: list[CycleHook] = []
        """Called after each cycle (limiters that report measurements to a server)."""
        self.site_device_id: str | None = None
        """Device registry id of the site, the parent of every subentry's device."""

    async def _async_update_data(self) -> CycleSnapshot:
        """Run one control cycle, then hand its snapshot to whoever needs it."""
        snapshot = await self.loop.async_run_cycle()
        for hook in self.after_cycle:
            try:
                await hook(snapshot, self.loop.site_devices())
            except Exception:
                _LOGGER.exception("Error handing the control cycle to a limiter")
        return snapshot
