"""Build the site's devices (inverters and the meter) from their subentries.

Each device kind (a ``kind`` in the subentry's data, SunSpec over TCP when absent) has
a builder that returns handles: the client the control loop drives, and what the
entities show about it. A subentry may hold several inverters (an OpenDTU with its
Hoymiles inverters), so every inverter has its own ``key``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant

from .const import CONF_INVERT, CONF_KIND, CONF_UNIT_ID, KIND_SUNSPEC_TCP
from .core.devices import Inverter, SiteMeter
from .core.errors import DeviceError
from .sunspec.connection import ConnectionPool
from .sunspec.device import SunSpecDevice
from .sunspec.inverter import SunSpecInverter
from .sunspec.meter import SunSpecMeter

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a device and which one it is, for the device registry."""

    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None
    version: str | None = None


@dataclass(slots=True)
class InverterHandle:
    """One inverter: the client the loop drives and what its entities show."""

    key: str
    subentry: ConfigSubentry
    name: str
    client: Inverter
    identity: Identity | None
    rated_power_w: float
    extras: Callable[[], Mapping[str, Any]] | None = None
    """Device-specific values for sensors (e.g. temperature), read at each update."""


@dataclass(slots=True)
class MeterHandle:
    """The site meter: its client and what its entities show."""

    subentry: ConfigSubentry
    name: str
    client: SiteMeter
    identity: Identity | None
    phases: int = 1
    extras: Callable[[], Mapping[str, Any]] | None = None
    extra_keys: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """The meter's device key (its subentry)."""
        return self.subentry.subentry_id


@dataclass(slots=True)
class DeviceContext:
    """What builders share within one site: connection pools and settings."""

    hass: HomeAssistant
    pool: ConnectionPool
    revert_timeout_s: float


class _SetsUp[InfoT](Protocol):
    async def async_setup(self) -> InfoT: ...


async def async_try_setup[InfoT](client: _SetsUp[InfoT], name: str) -> InfoT | None:
    """Read a device's identity; a device that is down now is set up on a later cycle."""
    try:
        return await client.async_setup()
    except DeviceError as err:
        _LOGGER.warning("%s is not ready (%s); will keep trying", name, err)
        return None


async def async_build_inverters(ctx: DeviceContext, sub: ConfigSubentry) -> list[InverterHandle]:
    """The inverters of one inverter subentry."""
    kind = sub.data.get(CONF_KIND, KIND_SUNSPEC_TCP)
    if kind == KIND_SUNSPEC_TCP:
        device = SunSpecDevice(
            ctx.pool.get(sub.data[CONF_HOST], sub.data[CONF_PORT]), sub.data[CONF_UNIT_ID]
        )
        client = SunSpecInverter(device, revert_timeout_s=ctx.revert_timeout_s)
        info = await async_try_setup(client, sub.title)
        identity = (
            Identity(info.manufacturer, info.model, info.serial_number, info.version)
            if info
            else None
        )
        rating = info.rated_power_w if info else 0.0
        return [InverterHandle(sub.subentry_id, sub, sub.title, client, identity, rating)]
    _LOGGER.error("%s: unknown inverter kind %r", sub.title, kind)
    return []


async def async_build_meter(ctx: DeviceContext, sub: ConfigSubentry) -> MeterHandle | None:
    """The site meter of a meter subentry."""
    kind = sub.data.get(CONF_KIND, KIND_SUNSPEC_TCP)
    if kind == KIND_SUNSPEC_TCP:
        device = SunSpecDevice(
            ctx.pool.get(sub.data[CONF_HOST], sub.data[CONF_PORT]), sub.data[CONF_UNIT_ID]
        )
        client = SunSpecMeter(device, invert=bool(sub.data.get(CONF_INVERT, False)))
        info = await async_try_setup(client, sub.title)
        identity = (
            Identity(info.manufacturer, info.model, info.serial_number, info.version)
            if info
            else None
        )
        return MeterHandle(sub, sub.title, client, identity, info.phases if info else 1)
    _LOGGER.error("%s: unknown meter kind %r", sub.title, kind)
    return None
