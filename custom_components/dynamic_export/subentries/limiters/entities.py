"""Entities of the limiters: an on/off switch each, fixed limits, asked limits, status.

Every limiter has a switch that takes it out of the merge; a fixed limiter has a number per
watt limit. The others show the controls they ask for right now (a sensor per watt limit
they can set) and their own state: the feed-in price and descriptor for Amber, the active
window and next change for a tariff, the last message for MQTT. Values come from the limiter
at the time of the latest control cycle, so they match what the cycle used.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.components.number import NumberDeviceClass, NumberEntity, NumberMode
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.components.switch import SwitchEntity
from homeassistant.const import CURRENCY_DOLLAR, EntityCategory, UnitOfEnergy, UnitOfPower
from homeassistant.exceptions import ServiceValidationError

from ...const import (
    CONF_ENABLED,
    DOMAIN,
    MAX_LIMIT_W,
    SUBENTRY_AMBER,
    SUBENTRY_MQTT,
    SUBENTRY_SOC,
    SUBENTRY_TARIFF,
    WATT_LIMIT_KEYS,
)
from ...coordinator import SiteCoordinator
from ...core.controls import WATT_CONTROLS, Controls, ControlType
from ...entity import SubentryEntity
from ...limiters.amber import AmberLimiter
from ...limiters.tariff import TariffLimiter
from .setup import LimiterHandle

ASKED_CONTROLS: dict[str, tuple[ControlType, ...]] = {
    SUBENTRY_AMBER: (ControlType.EXPORT_LIMIT,),
    SUBENTRY_TARIFF: (ControlType.EXPORT_LIMIT,),
    SUBENTRY_SOC: (ControlType.EXPORT_LIMIT,),
    SUBENTRY_MQTT: WATT_CONTROLS,
}
PRICE_DESCRIPTORS = [
    "negative",
    "extremely_low",
    "very_low",
    "low",
    "neutral",
    "high",
    "spike",
]


class LimiterEntity(SubentryEntity):
    """An entity of one limiter subentry."""

    def __init__(self, coordinator: SiteCoordinator, handle: LimiterHandle, key: str) -> None:
        """Attach to the limiter's device."""
        super().__init__(coordinator, handle.subentry, key)
        self.handle = handle

    @property
    def now(self) -> datetime:
        """Wall-clock time of the latest control cycle."""
        return self.snapshot.wall_time


class AskedLimitSensor(LimiterEntity, SensorEntity):
    """The watt limit this limiter asks for now (unknown: it asks for none)."""

    _attr_device_class = SensorDeviceClass.POWER
    _attr_native_unit_of_measurement = UnitOfPower.WATT
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_suggested_display_precision = 0

    def __init__(
        self, coordinator: SiteCoordinator, handle: LimiterHandle, control: ControlType
    ) -> None:
        """Create the sensor for one control."""
        super().__init__(coordinator, handle, f"asked_{control.value}")
        self.control = control

    @property
    def native_value(self) -> float | None:
        """What the limiter contributes to the merge for this control."""
        if not self.handle.limiter.enabled:
            return None
        value = self.handle.limiter.controls(self.now).get(self.control)
        return None if value is None or isinstance(value, bool) else float(value)


@dataclass(frozen=True, kw_only=True)
class StatusSensorDescription(SensorEntityDescription):
    """A value from a limiter's status."""

    value_fn: Callable[[Any, datetime], Any]


def _amber_price(limiter: AmberLimiter, now: datetime) -> float | None:
    price = limiter.status(now).feed_in_price
    return None if price is None else round(price / 100.0, 5)


def _descriptor(limiter: AmberLimiter, now: datetime) -> str | None:
    raw = limiter.status(now).descriptor
    if raw is None:
        return None
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in raw)
    return snake if snake in PRICE_DESCRIPTORS else None


def _window_name(limiter: TariffLimiter, now: datetime) -> str | None:
    status = limiter.status(now)
    if status.active_index is None:
        return None
    return status.active_window or f"Window {status.active_index + 1}"


STATUS_SENSORS: dict[str, tuple[StatusSensorDescription, ...]] = {
    SUBENTRY_AMBER: (
        StatusSensorDescription(
            key="feed_in_price",
            native_unit_of_measurement=f"{CURRENCY_DOLLAR}/{UnitOfEnergy.KILO_WATT_HOUR}",
            suggested_display_precision=3,
            value_fn=_amber_price,
        ),
        StatusSensorDescription(
            key="price_descriptor",
            device_class=SensorDeviceClass.ENUM,
            options=PRICE_DESCRIPTORS,
            value_fn=_descriptor,
        ),
        StatusSensorDescription(
            key="interval_end",
            device_class=SensorDeviceClass.TIMESTAMP,
            value_fn=lambda limiter, now: limiter.status(now).interval_end,
        ),
    ),
    SUBENTRY_TARIFF: (
        StatusSensorDescription(
            key="active_window",
            value_fn=_window_name,
        ),
        StatusSensorDescription(
            key="next_change",
            device_class=SensorDeviceClass.TIMESTAMP,
            value_fn=lambda limiter, now: limiter.next_change(now),
        ),
    ),
    SUBENTRY_MQTT: (
        StatusSensorDescription(
            key="last_message",
            device_class=SensorDeviceClass.TIMESTAMP,
            value_fn=lambda limiter, now: limiter.status(now).received_at,
        ),
    ),
}


class StatusSensor(LimiterEntity, SensorEntity):
    """One value of a limiter's status."""

    entity_description: StatusSensorDescription

    def __init__(
        self,
        coordinator: SiteCoordinator,
        handle: LimiterHandle,
        description: StatusSensorDescription,
    ) -> None:
        """Create the sensor from its description."""
        super().__init__(coordinator, handle, description.key)
        self.entity_description = description

    @property
    def native_value(self) -> Any:
        """The value at the latest cycle."""
        return self.entity_description.value_fn(self.handle.limiter, self.now)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """The limiter's full status, on its first status sensor (for automations, support)."""
        first = STATUS_SENSORS[self.handle.subentry.subentry_type][0]
        if self.entity_description.key != first.key:
            return None
        status = self.handle.limiter.status(self.now)  # type: ignore[attr-defined]
        return {
            item.name: _plain(getattr(status, item.name)) for item in dataclasses.fields(status)
        }


def _plain(value: Any) -> Any:
    """Attribute-friendly values: times as ISO strings, controls as dicts, enums as values."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Controls):
        return {k: v for k, v in value.as_dict().items() if v is not None}
    if isinstance(value, Enum):
        return value.value
    return value


class LimitingBinarySensor(LimiterEntity, BinarySensorEntity):
    """On while the Amber limiter limits export (feed-in price at or above the threshold)."""

    def __init__(self, coordinator: SiteCoordinator, handle: LimiterHandle) -> None:
        """Create the sensor."""
        super().__init__(coordinator, handle, "limiting")

    @property
    def is_on(self) -> bool:
        """True while limiting."""
        limiter = self.handle.limiter
        assert isinstance(limiter, AmberLimiter)
        return limiter.enabled and limiter.status(self.now).limiting


def limiter_sensors(coordinator: SiteCoordinator, handle: LimiterHandle) -> list[SensorEntity]:
    """The sensors of one limiter subentry."""
    kind = handle.subentry.subentry_type
    sensors: list[SensorEntity] = [
        AskedLimitSensor(coordinator, handle, control) for control in ASKED_CONTROLS.get(kind, ())
    ]
    sensors += [StatusSensor(coordinator, handle, d) for d in STATUS_SENSORS.get(kind, ())]
    return sensors


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
        if key.replace("_", " ") in subentry.title.casefold():
            # A limiter named e.g. "Zero export limit" would show "… Export limit" twice:
            # its export limit takes the limiter's name alone.
            self._attr_name = None

    @property
    def native_value(self) -> float | None:
        """The configured limit, or None when not set.

        Whole watts as an int, so its box and history read "1500 W", not "1500.0 W".
        """
        value = self.subentry.data.get(self._key)
        if value is None:
            return None
        watts = float(value)
        return int(watts) if watts.is_integer() else watts

    async def async_set_native_value(self, value: float) -> None:
        """Store a new limit; it applies from the next control cycle."""
        if not math.isfinite(value) or not 0 <= value <= MAX_LIMIT_W:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="invalid_limit",
                translation_placeholders={"value": str(value), "max_limit": f"{MAX_LIMIT_W:,}"},
            )
        entry = self.coordinator.config_entry
        subentry = self.subentry
        self.hass.config_entries.async_update_subentry(
            entry, subentry, data={**subentry.data, self._key: value}
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


def fixed_limit_numbers(coordinator: SiteCoordinator, subentry_id: str) -> list[NumberEntity]:
    """A number per watt limit of one fixed limiter."""
    return [FixedLimitNumber(coordinator, subentry_id, key) for key in WATT_LIMIT_KEYS]


def enabled_switch(coordinator: SiteCoordinator, subentry_id: str) -> SwitchEntity:
    """The switch that turns one limiter on or off."""
    return LimiterEnabledSwitch(coordinator, subentry_id)
