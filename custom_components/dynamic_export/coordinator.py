"""The site's coordinator: runs control cycles on the site's own schedule and shares them.

It does not poll. The control schedule (``core.schedule``) refreshes it at every tick, and
an action that needs a cycle now refreshes it directly; either way each cycle's snapshot
becomes ``data`` and goes to the listeners. How often an entity then writes its state is
the entities' business (``entity.py``), so the control rate is not the recorder's rate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .core.cycle import ControlLoop, CycleSnapshot, SiteDevices
from .core.schedule import ControlSchedule

_LOGGER = logging.getLogger(__name__)

type CycleHook = Callable[[CycleSnapshot, SiteDevices], Awaitable[None]]
"""Called after each cycle with its snapshot and the site's devices as known then."""


class SiteCoordinator(DataUpdateCoordinator[CycleSnapshot]):
    """Run one control cycle per refresh; entities show the cycle's snapshot.

    The cycle handles device faults itself (they become entity states and the
    fail-safe), so a refresh only fails on a bug, which the coordinator logs.
    """

    config_entry: ConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        loop: ControlLoop,
        interval_s: float,
    ) -> None:
        """Create the coordinator for one site and its control schedule (not started)."""
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=f"Dynamic Export {entry.title}",
            update_interval=None,  # the control schedule drives it, not polling
            always_update=True,
        )
        self.loop = loop
        self.after_cycle: list[CycleHook] = []
        """Called after each cycle (limiters that report measurements to a server)."""
        self.site_device_id: str | None = None
        """Device registry id of the site, the parent of every subentry's device."""
        self.schedule = ControlSchedule(self.async_refresh, interval_s, name=entry.title)
        self.schedule_task: asyncio.Task[None] | None = None
        self._cycle_lock = asyncio.Lock()

    def async_start_schedule(self) -> None:
        """Run the control schedule as a background task of the config entry.

        The first tick is one interval after now: set-up has just run the first cycle.
        """
        self.schedule_task = self.config_entry.async_create_background_task(
            self.hass,
            self.schedule.async_run(first_now=False),
            f"Dynamic Export control {self.config_entry.title}",
        )

    async def async_stop_schedule(self) -> None:
        """Stop the schedule; a cycle under way ends first."""
        await self.schedule.async_stop()

    async def _async_update_data(self) -> CycleSnapshot:
        """Run one control cycle, then hand its snapshot to whoever needs it.

        Cycle and hooks run under one lock, so the hooks see every cycle once and in
        order even when an action's refresh meets the schedule's.
        """
        async with self._cycle_lock:
            snapshot = await self.loop.async_run_cycle()
            for hook in self.after_cycle:
                try:
                    await hook(snapshot, self.loop.site_devices())
                except Exception:
                    _LOGGER.exception("Error handing the control cycle to a limiter")
            return snapshot
