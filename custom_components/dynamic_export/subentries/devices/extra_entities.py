"""Sensors that only some kinds of device have.

A device handle lists its ``extra_keys`` and reads their values through ``extras()`` at each
update: the Powerwall's solar, battery and load power and battery charge; an OpenDTU
inverter's temperature and how its limit commands are acknowledged over radio. The values
come from the device's last successful read in the latest control cycle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    UnitOfPower,
    UnitOfTemperature,
    UnitOfTime,
)
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from ...const import CONF_KIND, DOMAIN, KIND_OPENDTU
from ...coordinator import SiteCoordinator
from ...entity import SubentryEntity
from ...runtime import SiteRuntime
from .handles import InverterHandle, MeterHandle

LIMIT_ACK_STATES = ["ok", "failure", "pending", "unknown"]


@dataclass(frozen=True, kw_only=True)
class DeviceSensorDescription(SensorEntityDescription):
    """A sensor of one of a handle's ``extras``; the key is the extra's key."""

    precision: int | None = 1


def _power(key: str) -> DeviceSensorDescription:
    return DeviceSensorDescription(
        key=key,
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_display_precision=0,
        state_class=SensorStateClass.MEASUREMENT,
    )


DEVICE_SENSORS: dict[str, DeviceSensorDescription] = {
    description.key: description
    for description in (
        _power("solar_power"),
        _power("battery_power"),
        _power("load_power"),
        DeviceSensorDescription(
            key="battery_charge",
            device_class=SensorDeviceClass.BATTERY,
            native_unit_of_measurement=PERCENTAGE,
            suggested_display_precision=0,
            state_class=SensorStateClass.MEASUREMENT,
        ),
        DeviceSensorDescription(
            key="inverter_temperature",
            device_class=SensorDeviceClass.TEMPERATURE,
            native_unit_of_measurement=UnitOfTemperature.CELSIUS,
            suggested_display_precision=1,
            state_class=SensorStateClass.MEASUREMENT,
        ),
        DeviceSensorDescription(
            key="limit_ack",
            device_class=SensorDeviceClass.ENUM,
            options=LIMIT_ACK_STATES,
            entity_category=EntityCategory.DIAGNOSTIC,
            precision=None,
        ),
        DeviceSensorDescription(
            key="limit_response_time",
            device_class=SensorDeviceClass.DURATION,
            native_unit_of_measurement=UnitOfTime.SECONDS,
            suggested_display_precision=2,
            state_class=SensorStateClass.MEASUREMENT,
            entity_category=EntityCategory.DIAGNOSTIC,
            precision=2,
        ),
    )
}


def add_device_sensors(
    runtime: SiteRuntime, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add the device-specific sensors of every inverter and the meter.

    Devices of inverters no longer chosen in a gateway's subentry are removed first.
    """
    remove_stale_devices(runtime)
    handles: Iterable[InverterHandle | MeterHandle] = [
        *runtime.inverters.values(),
        *([runtime.meter] if runtime.meter else []),
    ]
    for handle in handles:
        sensors = [
            DeviceSensor(runtime.coordinator, handle, DEVICE_SENSORS[key])
            for key in handle.extra_keys
            if key in DEVICE_SENSORS
        ]
        if sensors:
            async_add_entities(sensors, config_subentry_id=handle.subentry.subentry_id)


class DeviceSensor(SubentryEntity, SensorEntity):
    """One device-specific value; unavailable while the device does not answer."""

    paced = True  # measurements (the enum has no unit, so it is written at each change)
    entity_description: DeviceSensorDescription

    def __init__(
        self,
        coordinator: SiteCoordinator,
        handle: InverterHandle | MeterHandle,
        description: DeviceSensorDescription,
    ) -> None:
        """Create the sensor on the handle's device."""
        super().__init__(coordinator, handle.subentry, description.key, handle)
        self.entity_description = description
        self._handle = handle

    @property
    def available(self) -> bool:
        """Available while the device answered in the latest cycle."""
        if not super().available:
            return False
        snap = self.snapshot
        if isinstance(self._handle, MeterHandle):
            return snap.meter is not None and snap.meter_error is None
        status = snap.inverters.get(self.device_key)
        return status is not None and status.available

    @property
    def native_value(self) -> StateType:
        """The value from the device's last read."""
        extras = self._handle.extras
        value = extras().get(self.entity_description.key) if extras else None
        precision = self.entity_description.precision
        if isinstance(value, float) and precision is not None:
            return round(value, precision)
        return value if isinstance(value, str | int | float) else None

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """For the acknowledgement state: how the last limit command ended (or timed out)."""
        if self.entity_description.key != "limit_ack" or self._handle.extras is None:
            return None
        return {"last_outcome": self._handle.extras().get("limit_outcome")}


def remove_stale_devices(runtime: SiteRuntime) -> None:
    """Remove the devices (and entities) of inverters taken out of an OpenDTU subentry.

    A removed subentry takes its devices with it; an inverter unticked in a DTU's subentry
    only disappears from the next load, so its device is removed here.
    """
    entry = runtime.coordinator.config_entry
    prefixes = tuple(
        f"{entry.entry_id}_{sub.subentry_id}_"
        for sub in entry.subentries.values()
        if sub.data.get(CONF_KIND) == KIND_OPENDTU
    )
    if not prefixes:
        return
    wanted = {f"{entry.entry_id}_{key}" for key in runtime.inverters}
    registry = dr.async_get(runtime.coordinator.hass)
    for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        if any(
            domain == DOMAIN and name.startswith(prefixes) and name not in wanted
            for domain, name in device.identifiers
        ):
            registry.async_remove_device(device.id)
