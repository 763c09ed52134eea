"""Numbers: the watt limits of each fixed limiter, changeable from dashboards and automations."""

from __future__ import annotations

import math

from homeassistant.components.number import NumberDeviceClass, NumberEntity, NumberMode
from homeassistant.const import UnitOfPower
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN, MAX_LIMIT_W, SUBENTRY_FIXED_LIMITER, WATT_LIMIT_KEYS
from .coordinator import SiteCoordinator
from .entity import SubentryEntity
from .runtime import DynamicExportConfigEntry

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
                (FixedLimitNumber(coordinator, sub.subentry_id, key) for key in WATT_LIMIT_KEYS),
                config_subentry_id=sub.subentry_id,
            )


class FixedLimitNumber(SubentryEntity, NumberEntity):
    """One watt limit of a fixed limiter; unknown while the limit is not set.

    The value lives in the limiter's subentry, so it survives restarts and the
    reconfigure form shows it; changing it takes effect on the next cycle
    without reloading the site.
    """

    _attr_device_class = NumberDeviceClass.POWER
    _attr_native_unit_of_measurement = UnitOfPower.WATT
    _attr_native_min_value = 0
    _attr_native_max_value = MAX_LIMIT_W
    _attr_native_step = 1
    _attr_mode = NumberMode.BOX

    def __init__(self, coordinator: SiteCoordinator, subentry_id: str, key: str) -> None:
        """Create the number for ``key`` of one limiter."""
        subentry = coordinator.config_entry.subentries[subentry_id]
        super().__init__(coordinator, subentry, f"fixed_{key}")
        self._key = key

    @property
    def native_value(self) -> float | None:
        """The configured limit, or None when not set."""
        value = self.subentry.data.get(self._key)
        return None if value is None else float(value)

    async def async_set_native_value(self, value: float) -> None:
        """Store a new limit; it applies from the next control cycle."""
        if not math.isfinite(value) or not 0 <= value <= MAX_LIMIT_W:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="invalid_limit",
                translation_placeholders={"value": str(value)},
            )
        entry = self.coordinator.config_entry
        subentry = self.subentry
        self.hass.config_entries.async_update_subentry(
            entry, subentry, data={**subentry.data, self._key: value}
        )
