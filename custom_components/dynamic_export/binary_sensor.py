"""Binary sensors: each part of the site adds its own, built in its folder."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import SUBENTRY_AMBER, SUBENTRY_CSIP
from .runtime import DynamicExportConfigEntry
from .site_entities import site_binary_sensors
from .subentries.csip.entities import CsipConnectedSensor
from .subentries.devices.entities import connectivity_sensor
from .subentries.limiters.entities import LimitingBinarySensor

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DynamicExportConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the site's binary sensors, then each subentry's."""
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
    async_add_entities(site_binary_sensors(runtime))
    for handle in runtime.inverters.values():
        async_add_entities(
            [connectivity_sensor(coordinator, handle)],
            config_subentry_id=handle.subentry.subentry_id,
        )
    for sub_id, limiter in runtime.limiters.items():
        if limiter.subentry.subentry_type == SUBENTRY_CSIP:
            async_add_entities(
                [CsipConnectedSensor(coordinator, limiter)], config_subentry_id=sub_id
            )
        if limiter.subentry.subentry_type == SUBENTRY_AMBER:
            async_add_entities(
                [LimitingBinarySensor(coordinator, limiter)], config_subentry_id=sub_id
            )
    if runtime.meter is not None:
        async_add_entities(
            [connectivity_sensor(coordinator, runtime.meter)],
            config_subentry_id=runtime.meter.subentry.subentry_id,
        )
