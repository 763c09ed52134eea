"""Sensors: each part of the site adds its own, built in its folder."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import SUBENTRY_CSIP
from .runtime import DynamicExportConfigEntry
from .site_entities import site_sensors
from .subentries.csip.entities import csip_sensors
from .subentries.devices.entities import inverter_sensors, meter_sensors
from .subentries.devices.extra_entities import add_device_sensors
from .subentries.limiters.entities import limiter_sensors

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DynamicExportConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the site's sensors, then each subentry's."""
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
    async_add_entities(site_sensors(runtime))
    for handle in runtime.inverters.values():
        async_add_entities(
            inverter_sensors(coordinator, handle), config_subentry_id=handle.subentry.subentry_id
        )
    for sub_id, limiter in runtime.limiters.items():
        if limiter.subentry.subentry_type == SUBENTRY_CSIP:
            async_add_entities(csip_sensors(coordinator, limiter), config_subentry_id=sub_id)
        elif sensors := limiter_sensors(coordinator, limiter):
            async_add_entities(sensors, config_subentry_id=sub_id)
    if (meter := runtime.meter) is not None:
        async_add_entities(
            meter_sensors(coordinator, meter), config_subentry_id=meter.subentry.subentry_id
        )
    add_device_sensors(runtime, async_add_entities)
