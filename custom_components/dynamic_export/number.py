"""Numbers: the watt limits of each fixed limiter, changeable from dashboards and automations."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import SUBENTRY_FIXED_LIMITER
from .runtime import DynamicExportConfigEntry
from .subentries.limiters.entities import fixed_limit_numbers

PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DynamicExportConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a number per watt limit of every fixed limiter."""
    coordinator = entry.runtime_data.coordinator
    for sub in entry.subentries.values():
        if sub.subentry_type == SUBENTRY_FIXED_LIMITER:
            async_add_entities(
                fixed_limit_numbers(coordinator, sub.subentry_id),
                config_subentry_id=sub.subentry_id,
            )
