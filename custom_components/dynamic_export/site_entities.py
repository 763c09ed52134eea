"""Entities of the site itself: its limits and state, the fail-safe, the override, control."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.components.switch import SwitchEntity
from homeassistant.const import (
    EntityCategory,
    UnitOfPower,
    UnitOfTime,
)
from homeassistant.helpers.typing import StateType

from .compat import BinarySensorDeviceClass
from .const import CONF_CONTROL_ENABLED
from .coordinator import SiteCoordinator
from .core.controller import ControlState, FailSafeReason
from .core.controls import WATT_CONTROLS, ControlType
from .core.cycle import CycleSnapshot
from .entity import SiteEntity, rounded_number
from .limiters.override import Override, OverrideLimiter
from .runtime import SiteRuntime, control_enabled


@dataclass(frozen=True, kw_only=True)
class SiteSensorDescription(SensorEntityDescription):
    """A site sensor read from the cycle snapshot."""

    value_fn: Callable[[CycleSnapshot], StateType]
    attributes_fn: Callable[[CycleSnapshot], Mapping[str, Any]] | None = None
    paced: bool = False
    """A measurement that may wait (see ``PacedEntity``); limits and states never do."""
    slow: bool = False
    """A paced measurement that may wait longer (see ``PacedEntity``)."""


NO_FAIL_SAFE = "none"
"""The fail-safe reason sensor's state while the site is not at its fail-safe level."""


def _limit_sensor(control: ControlType) -> SiteSensorDescription:
    return SiteSensorDescription(
        key=control.value,
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_display_precision=0,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snap: rounded_number(snap.merged.get(control)),
        attributes_fn=lambda snap: {"source": snap.merged.source(control)},
    )


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
        paced=True,
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_display_precision=0,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snap: round(snap.plan.generation_target_w, 1),
        attributes_fn=lambda snap: {"constraint": snap.plan.constraint.value},
    ),
    SiteSensorDescription(
        key="site_load",
        paced=True,
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_display_precision=0,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snap: rounded_number(snap.plan.load_w),
    ),
    SiteSensorDescription(
        key="available_power",
        paced=True,
        slow=True,
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_display_precision=0,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snap: (
            round(snap.available_power.watts, 1) if snap.available_power else None
        ),
        attributes_fn=lambda snap: {
            "method": snap.available_power.method.value if snap.available_power else None
        },
    ),
    SiteSensorDescription(
        key="control_state",
        device_class=SensorDeviceClass.ENUM,
        options=[state.value for state in ControlState],
        value_fn=lambda snap: snap.state.value,
        attributes_fn=_state_attributes,
    ),
    SiteSensorDescription(
        key="fail_safe_reason",
        device_class=SensorDeviceClass.ENUM,
        options=[NO_FAIL_SAFE, *(reason.value for reason in FailSafeReason)],
        value_fn=lambda snap: (
            snap.plan.fail_safe_reason.value if snap.plan.fail_safe_reason else NO_FAIL_SAFE
        ),
    ),
    SiteSensorDescription(
        key="cycle_duration",
        paced=True,
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        suggested_display_precision=1,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda snap: round(snap.duration_s * 1000, 1),
    ),
)


class SiteSensor(SiteEntity, SensorEntity):
    """A sensor of the site controller."""

    entity_description: SiteSensorDescription

    def __init__(self, coordinator: SiteCoordinator, description: SiteSensorDescription) -> None:
        """Create the sensor from its description."""
        super().__init__(coordinator, description.key)
        self.entity_description = description
        self.paced = description.paced
        self.slow = description.slow

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


def site_sensors(runtime: SiteRuntime) -> list[SensorEntity]:
    """The site's sensors: limits, target, load, state, cycle time, and when the override ends."""
    coordinator = runtime.coordinator
    return [
        *(SiteSensor(coordinator, d) for d in SITE_SENSORS),
        OverrideUntilSensor(coordinator, runtime.override),
    ]


def site_binary_sensors(runtime: SiteRuntime) -> list[BinarySensorEntity]:
    """Whether the site is in fail-safe, and whether an override is in force."""
    coordinator = runtime.coordinator
    return [FailSafeBinarySensor(coordinator), OverrideBinarySensor(coordinator, runtime.override)]


def site_switches(runtime: SiteRuntime) -> list[SwitchEntity]:
    """The control switch."""
    return [ControlSwitch(runtime.coordinator)]
