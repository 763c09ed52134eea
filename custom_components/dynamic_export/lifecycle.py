"""Home Assistant's entry points: set up, unload and remove a site, register the actions.

The package's ``__init__`` re-exports them, where Home Assistant looks for them.
"""

from __future__ import annotations

import logging

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN
from .entity import site_device_info
from .reauth import CredentialsWatch
from .runtime import (
    DynamicExportConfigEntry,
    apply_live_settings,
    async_build_runtime,
    structure_of,
)
from .services import async_setup_services
from .site_repairs import SiteRepairs
from .storage import SiteStore

_LOGGER = logging.getLogger(__name__)

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.NUMBER,
    Platform.SENSOR,
    Platform.SWITCH,
]


CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions, so automations can use them whether or not a site is loaded."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: DynamicExportConfigEntry) -> bool:
    """Set up a site: connect its devices, run the first cycle, add entities."""
    runtime = await async_build_runtime(hass, entry)
    entry.runtime_data = runtime
    entry.async_on_unload(runtime.pool.close)
    repairs = SiteRepairs(hass, entry, runtime.loop.names)
    runtime.coordinator.after_cycle.extend((repairs, CredentialsWatch(hass, entry)))
    entry.async_on_unload(repairs.clear)
    try:
        await runtime.coordinator.async_config_entry_first_refresh()
    except BaseException:
        await runtime.pool.close()
        raise
    site_device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, **site_device_info(entry)
    )
    runtime.coordinator.site_device_id = site_device.id
    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    runtime.coordinator.async_start_schedule()
    if structure_of(entry) != runtime.structure:
        # A subentry was added or changed while the site was being built, before the
        # listener above existed: build again rather than leave it out of control.
        _LOGGER.info("%s changed while starting; reloading", entry.title)
        hass.config_entries.async_schedule_reload(entry.entry_id)
    else:
        apply_live_settings(entry)  # a limit or switch moved while starting
    return True


async def async_unload_entry(hass: HomeAssistant, entry: DynamicExportConfigEntry) -> bool:
    """Unload a site: stop control, hand back what would stay limited, then disconnect.

    The schedule stops before the loop closes (a cycle under way finishes first); the
    connections close through the unload callbacks, after this returns.
    """
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.coordinator.async_stop_schedule()
        await entry.runtime_data.loop.async_close()
        await entry.runtime_data.store.async_flush()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: DynamicExportConfigEntry) -> None:
    """Delete the site's stored state when the site is deleted."""
    await SiteStore(hass, entry.entry_id).async_remove()


async def _async_entry_updated(hass: HomeAssistant, entry: DynamicExportConfigEntry) -> None:
    """Apply live changes in place; reload when devices or options changed."""
    if structure_of(entry) != entry.runtime_data.structure:
        await hass.config_entries.async_reload(entry.entry_id)
        return
    apply_live_settings(entry)
    entry.runtime_data.coordinator.async_update_listeners()
