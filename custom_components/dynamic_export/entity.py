"""Base entities: one device for the site, one per inverter, meter and limiter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.const import (
    PERCENTAGE,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfFrequency,
    UnitOfPower,
    UnitOfTemperature,
    UnitOfTime,
)
from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN, SUBENTRY_FIXED_LIMITER
from .coordinator import SiteCoordinator
from .core.cycle import CycleSnapshot
from .subentries.devices.handles import InverterHandle, MeterHandle

# Home Assistant 2026.8 links child devices by registry id (``via_device_id``) and
# deprecates ``via_device``; older releases only know ``via_device``.
LINK_BY_DEVICE_ID = "via_device_id" in DeviceInfo.__annotations__


def rounded_number(value: bool | float | None) -> float | None:
    """A power for a sensor state: rounded to 0.1; None when there is none (or a bool)."""
    return None if value is None or isinstance(value, bool) else round(value, 1)


def site_device_info(entry: ConfigEntry) -> DeviceInfo:
    """The site controller's device."""
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="Dynamic Export",
        model="Site controller",
        entry_type=DeviceEntryType.SERVICE,
    )


def subentry_device_info(
    coordinator: SiteCoordinator,
    subentry: ConfigSubentry,
    handle: InverterHandle | MeterHandle | None = None,
) -> DeviceInfo:
    """A device of a subentry (one of its inverters, for a gateway), linked to the site."""
    entry = coordinator.config_entry
    device_key = handle.key if handle is not None else subentry.subentry_id
    info = DeviceInfo(
        identifiers={(DOMAIN, f"{entry.entry_id}_{device_key}")},
        name=handle.name if handle is not None else subentry.title,
    )
    # Written through a plain dict: each end's DeviceInfo types only one of the two keys.
    if LINK_BY_DEVICE_ID:
        cast("dict[str, Any]", info)["via_device_id"] = coordinator.site_device_id
    else:
        cast("dict[str, Any]", info)["via_device"] = (DOMAIN, entry.entry_id)
    if subentry.subentry_type == SUBENTRY_FIXED_LIMITER:
        info["entry_type"] = DeviceEntryType.SERVICE
        info["manufacturer"] = "Dynamic Export"
        info["model"] = "Fixed limiter"
    elif handle is not None and handle.identity is not None:
        info["manufacturer"] = handle.identity.manufacturer
        info["model"] = handle.identity.model
        info["serial_number"] = handle.identity.serial_number
        info["sw_version"] = handle.identity.version
    return info


HEARTBEAT_S = 60.0
"""A paced measurement whose value moves by less than its step still writes this often."""

SPACING_S = 5.0
"""A paced measurement writes at most this often, however far it moves."""

SLOW_SPACING_S = 30.0
"""A slow measurement (``PacedEntity.slow``) writes at most this often, attributes included."""

SLOW_STEP_FACTOR = 2.5
"""… and only when it moved by this many of its unit's steps (500 W for power)."""

STEPS: Mapping[str | None, float] = {
    UnitOfPower.WATT: 200.0,
    UnitOfEnergy.WATT_HOUR: 100.0,
    PERCENTAGE: 4.0,
    UnitOfElectricPotential.VOLT: 2.0,
    UnitOfFrequency.HERTZ: 0.05,
    UnitOfTemperature.CELSIUS: 0.5,
    UnitOfTime.SECONDS: 1.0,
    UnitOfTime.MILLISECONDS: 100.0,
}
"""By unit: how far a paced measurement must move to be written at once."""


class PacedEntity(CoordinatorEntity[SiteCoordinator]):
    """Writes its state when it matters, not at every control cycle.

    The rate policy of every entity of the integration, in one place: the control
    cycle runs every second, the recorder need not hear of every second.

    - Anything discrete (availability, attributes, a state that is not a paced
      measurement: control state, limits, switches, numbers) is written the cycle it
      changes, and only then.
    - A paced measurement (``paced``: a sensor of power, energy, ... with a unit in
      ``STEPS``) is written when it moved by its step since it was last written and
      ``SPACING_S`` has passed since then, or, if it moved less, once ``HEARTBEAT_S``
      has passed. (Its availability and attributes still show at once.)
    - A slow measurement (``slow``: a figure automations act on over minutes) waits longer:
      ``SLOW_SPACING_S``, ``SLOW_STEP_FACTOR`` steps, and its attributes wait with it.
    """

    paced = False
    """True for a measurement that may wait (see the class docstring)."""
    slow = False
    """True for a paced measurement that may wait longer (see the class docstring)."""

    _written: tuple[bool, Any, Any] | None = None
    _written_at = 0.0

    def _shown(self) -> tuple[bool, Any, Any]:
        """What a write would show: availability, state, attributes."""
        value = getattr(self, "native_value", None) if self._step() is not None else self.state
        return (self.available, value, self.extra_state_attributes)

    def _step(self) -> float | None:
        """The step of a paced measurement; None for everything written at each change."""
        if not self.paced:
            return None
        step = STEPS.get(getattr(self, "native_unit_of_measurement", None))
        return step * SLOW_STEP_FACTOR if step is not None and self.slow else step

    def _now(self) -> float:
        """The latest cycle's time (the control loop's monotonic clock)."""
        data = self.coordinator.data
        return data.time if data is not None else 0.0

    def _worth_writing(self) -> bool:
        shown, written = self._shown(), self._written
        if written is None or shown[0] != written[0]:
            return True
        since = self._now() - self._written_at
        spacing = SLOW_SPACING_S if self.slow else SPACING_S
        if shown[2] != written[2]:
            return not self.slow or since >= spacing
        if shown[1] == written[1]:
            return False
        step = self._step()
        if step is None or not _is_number(shown[1]) or not _is_number(written[1]):
            return True
        return since >= HEARTBEAT_S or (since >= spacing and abs(shown[1] - written[1]) >= step)

    async def async_added_to_hass(self) -> None:
        """The state written on adding the entity counts as written."""
        await super().async_added_to_hass()
        self._remember_written()

    @callback
    def _handle_coordinator_update(self) -> None:
        """Write the new cycle's state if the rate policy says it is worth it.

        What is written here (and on adding) is remembered; a write an action makes itself
        (a switch, a number) is not, so the next cycle may write once more: Home Assistant
        records an unchanged state as reported, not as a new state. ``async_write_ha_state``
        is final in newer Home Assistant releases, so it is not overridden.
        """
        if self._worth_writing():
            self._remember_written()
            self.async_write_ha_state()

    def _remember_written(self) -> None:
        self._written = self._shown()
        self._written_at = self._now()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class SiteEntity(PacedEntity):
    """An entity of the site controller itself."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: SiteCoordinator, key: str) -> None:
        """Name the entity by ``key`` (its translation key)."""
        super().__init__(coordinator)
        self._attr_translation_key = key
        self._attr_unique_id = f"{coordinator.config_entry.entry_id}_{key}"
        self._attr_device_info = site_device_info(coordinator.config_entry)

    @property
    def snapshot(self) -> CycleSnapshot:
        """The latest control cycle."""
        return self.coordinator.data


class SubentryEntity(PacedEntity):
    """An entity of an inverter, meter or limiter subentry."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: SiteCoordinator,
        subentry: ConfigSubentry,
        key: str,
        handle: InverterHandle | MeterHandle | None = None,
    ) -> None:
        """Attach the entity to the subentry's device."""
        super().__init__(coordinator)
        self.subentry_id = subentry.subentry_id
        self.device_key = handle.key if handle is not None else subentry.subentry_id
        self._attr_translation_key = key
        self._attr_unique_id = f"{coordinator.config_entry.entry_id}_{self.device_key}_{key}"
        self._attr_device_info = subentry_device_info(coordinator, subentry, handle)

    @property
    def snapshot(self) -> CycleSnapshot:
        """The latest control cycle."""
        return self.coordinator.data

    @property
    def subentry(self) -> ConfigSubentry:
        """The subentry as it is now (its data changes when limits are edited)."""
        return self.coordinator.config_entry.subentries[self.subentry_id]
