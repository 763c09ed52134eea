"""Switches: control on/off for the site, and on/off for each fixed limiter."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import CONF_CONTROL_ENABLED, CONF_ENABLED, LIMITER_SUBENTRIES
from .coordinator import SiteCoordinator
from .entity import SiteEntity, SubentryEntity
from .runtime import DynamicExportConfigEntry, control_enabled

PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DynamicExportConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the control switch and one switch per fixed limiter."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities([ControlSwitch(coordinator)])
    for sub in entry.subentries.values():
        if sub.subentry_type in LIMITER_SUBENTRIES:
            async_add_entities(
                [LimiterEnabledSwitch(coordinator, sub.subentry_id)],
                config_subentry_id=sub.subentry_id,
            )


class ControlSwitch(SiteEntity, SwitchEntity):
    """Control on: limits are written to the inverters. Off: monitor only.

    The state is the entry's ``control_enabled`` option, so it survives restarts
    and matches the choice made in the config flow.
    """

    def __init__(self, coordinator: SiteCoordinator) -> None:
        """Create the switch."""
        super().__init__(coordinator, "control")

    @property
    def is_on(self) -> bool:
        """True while the site is controlled."""
        return control_enabled(self.coordinator.config_entry)

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Start writing limits."""
        self._set(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Stop writing limits and hand the inverters back."""
        self._set(False)

    def _set(self, enabled: bool) -> None:
        entry = self.coordinator.config_entry
        self.hass.config_entries.async_update_entry(
            entry, options={**entry.options, CONF_CONTROL_ENABLED: enabled}
        )


class LimiterEnabledSwitch(SubentryEntity, SwitchEntity):
    """Turn a fixed limiter on or off without deleting it."""

    _attr_entity_category = EntityCategory.CONFIG

    def __init__(self, coordinator: SiteCoordinator, subentry_id: str) -> None:
        """Create the switch for one limiter subentry."""
        subentry = coordinator.config_entry.subentries[subentry_id]
        super().__init__(coordinator, subentry, "limiter_enabled")

    @property
    def is_on(self) -> bool:
        """True while the limiter takes part in the merge."""
        return bool(self.subentry.data.get(CONF_ENABLED, True))

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Enable the limiter."""
        self._set(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Disable the limiter."""
        self._set(False)

    def _set(self, enabled: bool) -> None:
        entry = self.coordinator.config_entry
        subentry = self.subentry
        self.hass.config_entries.async_update_subentry(
            entry, subentry, data={**subentry.data, CONF_ENABLED: enabled}
        )
