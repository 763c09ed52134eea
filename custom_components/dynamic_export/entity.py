"""Base entities: one device for the site, one per inverter, meter and limiter."""

from __future__ import annotations

from typing import Any, cast

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
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


class SiteEntity(CoordinatorEntity[SiteCoordinator]):
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


class SubentryEntity(CoordinatorEntity[SiteCoordinator]):
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
