"""Sensors: the site's limits and state, inverter output, meter readings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
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
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfFrequency,
    UnitOfPower,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .const import SUBENTRY_CSIP
from .coordinator import SiteCoordinator
from .core.controller import ControlState
from .core.controls import WATT_CONTROLS, ControlType
from .core.cycle import CycleSnapshot, InverterStatus
from .core.measurements import InverterReading, MeterReading
from .entity import SiteEntity, SubentryEntity
from .limiters.override import OverrideLimiter
from .runtime import DynamicExportConfigEntry
from .subentries.csip.entities import csip_sensors
from .subentries.devices.extra_entities import add_device_sensors
from .subentries.devices.handles import InverterHandle, MeterHandle
from .subentries.limiters.entities import limiter_sensors

PARALLEL_UPDATES = 0

INVERTER_STATUSES = [
    "off",
    "sleeping",
    "starting",
    "mppt",
    "throttled",
    "shutting_down",
    "fault",
    "standby",
]


@dataclass(frozen=True, kw_only=True)
class SiteSensorDescription(SensorEntityDescription):
    """A site sensor read from the cycle snapshot."""

    value_fn: Callable[[CycleSnapshot], StateType]
    attributes_fn: Callable[[CycleSnapshot], Mapping[str, Any]] | None = None


def _limit_sensor(control: ControlType) -> SiteSensorDescription:
    return SiteSensorDescription(
        key=control.value,
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snap: _number(snap.merged.get(control)),
        attributes_fn=lambda snap: {"source": snap.merged.source(control)},
    )


def _number(value: bool | float | None) -> float | None:
    return None if value is None or isinstance(value, bool) else round(value, 1)


def _state_attributes(snap: CycleSnapshot) -> dict[str, Any]:
    plan = snap.plan
    return {
        "reason": plan.fail_safe_reason.value if plan.fail_safe_reason else None,
        "constraint": plan.constraint.value,
        "not_enforced": {c.value: why for c, why in plan.unenforced.items()},
        "connect": snap.merged.connect,
        "energize": snap.merged.energize,
        "limiter_errors": snap.limiter_errors,
    }


SITE_SENSORS: tuple[SiteSensorDescription, ...] = (
    *(_limit_sensor(control) for control in WATT_CONTROLS),
    SiteSensorDescription(
        key="generation_target",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snap: round(snap.plan.generation_target_w, 1),
        attributes_fn=lambda snap: {"constraint": snap.plan.constraint.value},
    ),
    SiteSensorDescription(
        key="site_load",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snap: _number(snap.plan.load_w),
    ),
    SiteSensorDescription(
        key="control_state",
        device_class=SensorDeviceClass.ENUM,
        options=[state.value for state in ControlState],
        value_fn=lambda snap: snap.state.value,
        attributes_fn=_state_attributes,
    ),
    SiteSensorDescription(
        key="cycle_duration",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda snap: round(snap.duration_s * 1000, 1),
    ),
)


@dataclass(frozen=True, kw_only=True)
class InverterSensorDescription(SensorEntityDescription):
    """An inverter sensor read from the inverter's latest reading."""

    value_fn: Callable[[InverterReading], StateType]


INVERTER_SENSORS: tuple[InverterSensorDescription, ...] = (
    InverterSensorDescription(
        key="ac_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda r: round(r.ac_power_w, 1),
    ),
    InverterSensorDescription(
        key="lifetime_energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda r: r.lifetime_energy_wh,
    ),
    InverterSensorDescription(
        key="inverter_status",
        device_class=SensorDeviceClass.ENUM,
        options=INVERTER_STATUSES,
        value_fn=lambda r: r.status if r.status in INVERTER_STATUSES else None,
    ),
    InverterSensorDescription(
        key="power_limit",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda r: (
            round(100.0 * r.limit_w / r.rated_power_w, 2) if r.rated_power_w > 0 else None
        ),
    ),
    InverterSensorDescription(
        key="rated_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda r: r.rated_power_w,
    ),
)


@dataclass(frozen=True, kw_only=True)
class MeterSensorDescription(SensorEntityDescription):
    """A meter sensor read from the latest meter reading."""

    value_fn: Callable[[MeterReading], StateType]
    phases: int = 1
    """Created only for meters with at least this many phases."""


def _phase_sensor(index: int, name: str) -> MeterSensorDescription:
    return MeterSensorDescription(
        key=f"grid_power_{name}",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda r: _number(r.phase_power_w[index]) if r.phase_power_w else None,
        phases=2 if index < 2 else 3,
    )


METER_SENSORS: tuple[MeterSensorDescription, ...] = (
    MeterSensorDescription(
        key="grid_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda r: round(r.grid_power_w, 1),
    ),
    MeterSensorDescription(
        key="grid_import_energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda r: r.import_energy_wh,
    ),
    MeterSensorDescription(
        key="grid_export_energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda r: r.export_energy_wh,
    ),
    _phase_sensor(0, "a"),
    _phase_sensor(1, "b"),
    _phase_sensor(2, "c"),
    MeterSensorDescription(
        key="grid_voltage",
        device_class=SensorDeviceClass.VOLTAGE,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda r: r.voltage_v,
    ),
    MeterSensorDescription(
        key="grid_frequency",
        device_class=SensorDeviceClass.FREQUENCY,
        native_unit_of_measurement=UnitOfFrequency.HERTZ,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda r: r.frequency_hz,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DynamicExportConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the site's sensors, then each device subentry's."""
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
    async_add_entities(SiteSensor(coordinator, d) for d in SITE_SENSORS)
    async_add_entities([OverrideUntilSensor(coordinator, runtime.override)])
    for handle in runtime.inverters.values():
        async_add_entities(
            (InverterSensor(coordinator, handle, d) for d in INVERTER_SENSORS),
            config_subentry_id=handle.subentry.subentry_id,
        )
    for sub_id, limiter in runtime.limiters.items():
        if limiter.subentry.subentry_type == SUBENTRY_CSIP:
            async_add_entities(csip_sensors(coordinator, limiter), config_subentry_id=sub_id)
        elif sensors := limiter_sensors(coordinator, limiter):
            async_add_entities(sensors, config_subentry_id=sub_id)
    if (meter := runtime.meter) is not None:
        phases = meter.phases
        async_add_entities(
            (MeterSensor(coordinator, meter, d) for d in METER_SENSORS if d.phases <= phases),
            config_subentry_id=meter.subentry.subentry_id,
        )
    add_device_sensors(runtime, async_add_entities)


class SiteSensor(SiteEntity, SensorEntity):
    """A sensor of the site controller."""

    entity_description: SiteSensorDescription

    def __init__(self, coordinator: SiteCoordinator, description: SiteSensorDescription) -> None:
        """Create the sensor from its description."""
        super().__init__(coordinator, description.key)
        self.entity_description = description

    @property
    def native_value(self) -> StateType:
        """Value from the latest cycle."""
        return self.entity_description.value_fn(self.snapshot)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Where the value came from."""
        if self.entity_description.attributes_fn is None:
            return None
        return self.entity_description.attributes_fn(self.snapshot)


class OverrideUntilSensor(SiteEntity, SensorEntity):
    """When the automation override ends (unknown while there is none)."""

    _attr_device_class = SensorDeviceClass.TIMESTAMP

    def __init__(self, coordinator: SiteCoordinator, override: OverrideLimiter) -> None:
        """Create the sensor for the site's ``override``."""
        super().__init__(coordinator, "override_until")
        self._override = override

    @property
    def native_value(self) -> datetime | None:
        """The end of the active override."""
        active = self._override.active(self.snapshot.wall_time)
        return None if active is None else active.until


class InverterSensor(SubentryEntity, SensorEntity):
    """A sensor of one inverter; unavailable while the inverter does not answer."""

    entity_description: InverterSensorDescription

    def __init__(
        self,
        coordinator: SiteCoordinator,
        handle: InverterHandle,
        description: InverterSensorDescription,
    ) -> None:
        """Create the sensor from its description."""
        super().__init__(coordinator, handle.subentry, description.key, handle)
        self.entity_description = description

    @property
    def _status(self) -> InverterStatus | None:
        return self.snapshot.inverters.get(self.device_key)

    @property
    def available(self) -> bool:
        """Available while the inverter answers."""
        status = self._status
        return super().available and status is not None and status.available

    @property
    def native_value(self) -> StateType:
        """Value from the inverter's latest reading."""
        status = self._status
        if status is None or status.reading is None:
            return None
        return self.entity_description.value_fn(status.reading)


class MeterSensor(SubentryEntity, SensorEntity):
    """A sensor of the site meter; unavailable while the meter does not answer."""

    entity_description: MeterSensorDescription

    def __init__(
        self,
        coordinator: SiteCoordinator,
        handle: MeterHandle,
        description: MeterSensorDescription,
    ) -> None:
        """Create the sensor from its description."""
        super().__init__(coordinator, handle.subentry, description.key, handle)
        self.entity_description = description

    @property
    def available(self) -> bool:
        """Available while the meter answers."""
        snap = self.snapshot
        return super().available and snap.meter is not None and snap.meter_error is None

    @property
    def native_value(self) -> StateType:
        """Value from the latest meter reading."""
        meter = self.snapshot.meter
        return None if meter is None else self.entity_description.value_fn(meter)
