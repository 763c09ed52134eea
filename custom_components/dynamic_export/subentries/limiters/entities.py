"""Entities of price, tariff, battery and MQTT limiters.

Every limiter shows the controls it asks for right now (a sensor per watt limit it can
set) and its own state: the feed-in price and descriptor for Amber, the active window
and next change for a tariff, the last message for MQTT. Values come from the limiter
at the time of the latest control cycle, so they match what the cycle used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import CURRENCY_DOLLAR, UnitOfEnergy, UnitOfPower

from ...const import SUBENTRY_AMBER, SUBENTRY_MQTT, SUBENTRY_SOC, SUBENTRY_TARIFF
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
