"""Binary sensors: the site's fail-safe state and whether each device answers."""

from __future__ import annotations

from typing import Any

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .compat import BinarySensorDeviceClass
from .const import SUBENTRY_AMBER, SUBENTRY_CSIP
from .coordinator import SiteCoordinator
from .core.controller import ControlState
from .entity import SiteEntity, SubentryEntity
from .limiters.override import Override, OverrideLimiter
from .runtime import DynamicExportConfigEntry
from .subentries.csip.entities import CsipConnectedSensor
from .subentries.devices.handles import InverterHandle, MeterHandle
from .subentries.limiters.entities import LimitingBinarySensor

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DynamicExportConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the fail-safe sensor and a connectivity sensor per device."""
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
    async_add_entities(
        [FailSafeBinarySensor(coordinator), OverrideBinarySensor(coordinator, runtime.override)]
    )
    for handle in runtime.inverters.values():
        async_add_entities(
            [DeviceConnectivity(coordinator, handle)],
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
            [DeviceConnectivity(coordinator, runtime.meter)],
            config_subentry_id=runtime.meter.subentry.subentry_id,
        )


class FailSafeBinarySensor(SiteEntity, BinarySensorEntity):
    """On while the site runs at the fail-safe level (meter data missing or stale)."""

    _attr_device_class = BinarySensorDeviceClass.PROBLEM

    def __init__(self, coordinator: SiteCoordinator) -> None:
        """Create the sensor."""
        super().__init__(coordinator, "fail_safe")

    @property
    def is_on(self) -> bool:
        """True in fail-safe."""
        return self.snapshot.state is ControlState.FAIL_SAFE

    @property
    def extra_state_attributes(self) -> dict[str, str | None]:
        """Why the site is in fail-safe."""
        reason = self.snapshot.plan.fail_safe_reason
        return {"reason": reason.value if reason else None}


class OverrideBinarySensor(SiteEntity, BinarySensorEntity):
    """On while an automation override (action ``set_limits``) is in force."""

    def __init__(self, coordinator: SiteCoordinator, override: OverrideLimiter) -> None:
        """Create the sensor for the site's ``override``."""
        super().__init__(coordinator, "override")
        self._override = override

    @property
    def is_on(self) -> bool:
        """True while an override is active."""
        return self._active() is not None

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """What the override asks for, until when, and who set it."""
        active = self._active()
        if active is None:
            return {}
        asked = {k: v for k, v in active.controls.as_dict().items() if v is not None}
        return {**asked, "until": active.until.isoformat(), "set_by": active.source}

    def _active(self) -> Override | None:
        return self._override.active(self.snapshot.wall_time)


class DeviceConnectivity(SubentryEntity, BinarySensorEntity):
    """Whether an inverter or the meter answered in the last cycle, and the error if not."""

    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, coordinator: SiteCoordinator, handle: InverterHandle | MeterHandle) -> None:
        """Create the sensor for one device subentry."""
        super().__init__(coordinator, handle.subentry, "connectivity", handle)
        self._is_meter = isinstance(handle, MeterHandle)

    @property
    def is_on(self) -> bool:
        """True when the device answered."""
        return self._error is None

    @property
    def extra_state_attributes(self) -> dict[str, str | None]:
        """The last error."""
        return {"error": self._error}

    @property
    def _error(self) -> str | None:
        snap = self.snapshot
        if self._is_meter:
            if snap.meter_error is None and snap.meter is None:
                return "no reading yet"
            return snap.meter_error
        status = snap.inverters.get(self.device_key)
        if status is None:
            return "unknown inverter"
        return status.error
