"""Switches: control on/off for the site, and on/off for each limiter."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import LIMITER_SUBENTRIES
from .runtime import DynamicExportConfigEntry
from .site_entities import site_switches
from .subentries.limiters.entities import enabled_switch

PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DynamicExportConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the control switch and one switch per limiter."""
    runtime = entry.runtime_data
    async_add_entities(site_switches(runtime))
    for sub in entry.subentries.values():
        if sub.subentry_type in LIMITER_SUBENTRIES:
            async_add_entities(
                [enabled_switch(runtime.coordinator, sub.subentry_id)],
                config_subentry_id=sub.subentry_id,
            )
