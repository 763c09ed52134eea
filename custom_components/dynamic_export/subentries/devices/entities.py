"""Entities every inverter and site meter has: output, energy, status, readings, connection.

Values come from the device's reading in the latest control cycle; a device that did not
answer is unavailable. Sensors only some kinds have are in ``extra_entities``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import BinarySensorEntity
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
)
from homeassistant.helpers.typing import StateType

from ...compat import BinarySensorDeviceClass
from ...coordinator import SiteCoordinator
from ...core.available_power import AvailablePower
from ...core.cycle import InverterStatus
from ...core.measurements import InverterReading, MeterReading
from ...entity import SubentryEntity, rounded_number
from .handles import InverterHandle, MeterHandle

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
class InverterSensorDescription(SensorEntityDescription):
    """An inverter sensor read from the inverter's latest reading."""

    value_fn: Callable[[InverterReading], StateType]


INVERTER_SENSORS: tuple[InverterSensorDescription, ...] = (
    InverterSensorDescription(
        key="ac_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_display_precision=0,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda r: round(r.ac_power_w, 1),
    ),
    InverterSensorDescription(
        key="lifetime_energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=2,
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
        suggested_display_precision=1,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda r: (
            round(100.0 * r.limit_w / r.rated_power_w, 2) if r.rated_power_w > 0 else None
        ),
    ),
    InverterSensorDescription(
        key="rated_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_display_precision=0,
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
        suggested_display_precision=0,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda r: rounded_number(r.phase_power_w[index]) if r.phase_power_w else None,
        phases=2 if index < 2 else 3,
    )


METER_SENSORS: tuple[MeterSensorDescription, ...] = (
    MeterSensorDescription(
        key="grid_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_display_precision=0,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda r: round(r.grid_power_w, 1),
    ),
    MeterSensorDescription(
        key="grid_import_energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=2,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda r: r.import_energy_wh,
    ),
    MeterSensorDescription(
        key="grid_export_energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=2,
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
        suggested_display_precision=1,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda r: r.voltage_v,
    ),
    MeterSensorDescription(
        key="grid_frequency",
        device_class=SensorDeviceClass.FREQUENCY,
        native_unit_of_measurement=UnitOfFrequency.HERTZ,
        suggested_display_precision=2,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda r: r.frequency_hz,
    ),
)


class InverterSensor(SubentryEntity, SensorEntity):
    """A sensor of one inverter; unavailable while the inverter does not answer."""

    paced = True  # measurements: see PacedEntity

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


class AvailablePowerSensor(SubentryEntity, SensorEntity):
    """What an inverter could produce now, curtailed or not; ``method`` says how it is known.

    For automations that start a load on solar the site would otherwise curtail (see
    ``core.available_power``).
    """

    paced = True  # a measurement automations act on over minutes: see PacedEntity
    slow = True

    # The site's figure is what automations use; per inverter it is for a closer look.
    _attr_entity_registry_enabled_default = False
    _attr_device_class = SensorDeviceClass.POWER
    _attr_native_unit_of_measurement = UnitOfPower.WATT
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_suggested_display_precision = 0

    def __init__(self, coordinator: SiteCoordinator, handle: InverterHandle) -> None:
        """Create the sensor for one inverter."""
        super().__init__(coordinator, handle.subentry, "available_power", handle)

    @property
    def _estimate(self) -> AvailablePower | None:
        status = self.snapshot.inverters.get(self.device_key)
        return None if status is None else status.available_power

    @property
    def available(self) -> bool:
        """Available while the inverter answers."""
        return super().available and self._estimate is not None

    @property
    def native_value(self) -> float | None:
        """The estimate, in watts."""
        estimate = self._estimate
        return None if estimate is None else round(estimate.watts, 1)

    @property
    def extra_state_attributes(self) -> dict[str, str | None]:
        """How the figure was found (``reported``, ``not_limited``, ``siblings``, ...)."""
        estimate = self._estimate
        return {"method": None if estimate is None else estimate.method.value}


class MeterSensor(SubentryEntity, SensorEntity):
    """A sensor of the site meter; unavailable while the meter does not answer."""

    paced = True  # measurements: see PacedEntity

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


def inverter_sensors(coordinator: SiteCoordinator, handle: InverterHandle) -> list[SensorEntity]:
    """The sensors of one inverter."""
    sensors: list[SensorEntity] = [InverterSensor(coordinator, handle, d) for d in INVERTER_SENSORS]
    sensors.append(AvailablePowerSensor(coordinator, handle))
    return sensors


def meter_sensors(coordinator: SiteCoordinator, handle: MeterHandle) -> list[SensorEntity]:
    """The sensors of the site meter (per-phase power only for the phases it has)."""
    return [MeterSensor(coordinator, handle, d) for d in METER_SENSORS if d.phases <= handle.phases]


def connectivity_sensor(
    coordinator: SiteCoordinator, handle: InverterHandle | MeterHandle
) -> BinarySensorEntity:
    """Whether the device answered in the last cycle."""
    return DeviceConnectivity(coordinator, handle)
