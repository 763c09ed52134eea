"""Entities of a CSIP-AUS limiter: connection, registration, identity and controls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
)
from homeassistant.const import EntityCategory

from ...compat import BinarySensorDeviceClass
from ...coordinator import SiteCoordinator
from ...core.controls import WATT_CONTROLS, Controls
from ...csip.limiter import CsipLimiter
from ...csip.status import ActiveControl, CommsState, CsipStatus, RegistrationState
from ..limiters.entities import AskedLimitSensor, LimiterEntity
from ..limiters.setup import LimiterHandle


def _control_attributes(control: ActiveControl | None) -> dict[str, Any]:
    if control is None:
        return {}
    asked = {k: v for k, v in control.controls.as_dict().items() if v is not None}
    return {
        **asked,
        "mrid": control.mrid,
        "program": control.program_mrid,
        "start": control.start.isoformat() if control.start else None,
        "end": control.end.isoformat() if control.end else None,
        "bridged": control.bridged,
    }


def _defaults(controls: Controls) -> dict[str, Any]:
    return {k: v for k, v in controls.as_dict().items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class CsipSensorDescription(SensorEntityDescription):
    """A value of the CSIP client's status."""

    value_fn: Callable[[CsipStatus], Any]
    attributes_fn: Callable[[CsipStatus], dict[str, Any]] | None = None


CSIP_SENSORS: tuple[CsipSensorDescription, ...] = (
    CsipSensorDescription(
        key="csip_comms",
        device_class=SensorDeviceClass.ENUM,
        options=[state.value for state in CommsState],
        value_fn=lambda status: status.comms.value,
        attributes_fn=lambda status: {"last_error": status.last_error, "errors": status.errors},
    ),
    CsipSensorDescription(
        key="csip_registration",
        device_class=SensorDeviceClass.ENUM,
        options=[state.value for state in RegistrationState],
        value_fn=lambda status: status.registration.value,
    ),
    CsipSensorDescription(
        key="csip_active_control",
        value_fn=lambda status: status.active_control.mrid if status.active_control else None,
        attributes_fn=lambda status: {
            **_control_attributes(status.active_control),
            "default": _defaults(status.server_defaults),
            "fixed_default": _defaults(status.fixed_default),
            "applied": _defaults(status.applied),
            "opted_out": status.opted_out,
        },
    ),
    CsipSensorDescription(
        key="csip_next_control",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda status: status.next_control.start if status.next_control else None,
        attributes_fn=lambda status: _control_attributes(status.next_control),
    ),
    CsipSensorDescription(
        key="csip_last_poll",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda status: status.last_success,
    ),
    CsipSensorDescription(
        key="csip_lfdi",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda status: status.lfdi,
    ),
    CsipSensorDescription(
        key="csip_sfdi",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda status: str(status.sfdi),
    ),
)


class CsipSensor(LimiterEntity, SensorEntity):
    """One value of the CSIP-AUS client's state."""

    entity_description: CsipSensorDescription

    def __init__(
        self,
        coordinator: SiteCoordinator,
        handle: LimiterHandle,
        description: CsipSensorDescription,
    ) -> None:
        """Create the sensor from its description."""
        super().__init__(coordinator, handle, description.key)
        self.entity_description = description

    @property
    def _status(self) -> CsipStatus:
        limiter = self.handle.limiter
        assert isinstance(limiter, CsipLimiter)
        return limiter.status(self.now)

    @property
    def native_value(self) -> Any:
        """The value at the latest cycle."""
        return self.entity_description.value_fn(self._status)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Details (the control's values and times, errors)."""
        if self.entity_description.attributes_fn is None:
            return None
        return self.entity_description.attributes_fn(self._status)


class CsipConnectedSensor(LimiterEntity, BinarySensorEntity):
    """On while the utility server answers."""

    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY

    def __init__(self, coordinator: SiteCoordinator, handle: LimiterHandle) -> None:
        """Create the sensor."""
        super().__init__(coordinator, handle, "csip_connected")

    @property
    def is_on(self) -> bool:
        """True while connected."""
        limiter = self.handle.limiter
        assert isinstance(limiter, CsipLimiter)
        return limiter.status(self.now).connected


def csip_sensors(coordinator: SiteCoordinator, handle: LimiterHandle) -> list[SensorEntity]:
    """The sensors of a CSIP-AUS limiter (status and what it asks for)."""
    sensors: list[SensorEntity] = [CsipSensor(coordinator, handle, d) for d in CSIP_SENSORS]
    sensors += [AskedLimitSensor(coordinator, handle, control) for control in WATT_CONTROLS]
    return sensors
