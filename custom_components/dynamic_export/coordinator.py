"""The coordinator that runs the site's control cycle on every tick."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from homeassistant.core import HomeAssistant
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .core.cycle import ControlLoop, CycleSnapshot

if TYPE_CHECKING:
    from .runtime import DynamicExportConfigEntry

_LOGGER = logging.getLogger(__name__)


class SiteCoordinator(DataUpdateCoordinator[CycleSnapshot]):
    """Run one control cycle per update; entities show the cycle's snapshot.

    The cycle handles device faults itself (they become entity states and the
    fail-safe), so an update only fails on a bug, which the coordinator logs.
    """

    config_entry: DynamicExportConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: DynamicExportConfigEntry,
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
        self.after_cycle: list[Callable[[CycleSnapshot], Awaitable[None]]] = []
        """Called with each snapshot (limiters that report measurements to a server)."""

    async def _async_update_data(self) -> CycleSnapshot:
        """Run one control cycle, then hand its snapshot to whoever needs it."""
        snapshot = await self.loop.async_run_cycle()
        for hook in self.after_cycle:
            try:
                await hook(snapshot)
            except Exception:
                _LOGGER.exception("Error handing the control cycle to a limiter")
        return snapshot
