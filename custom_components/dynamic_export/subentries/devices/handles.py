"""What the site keeps of each inverter and of its meter once they are built.

The control loop drives a handle's client; the entities show its name, identity and
device-specific values. Both sides depend on these types, never on each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from homeassistant.config_entries import ConfigSubentry

from ...core.devices import Inverter, SiteMeter


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
    rated_power_w: float | None
    """As read at set-up, else as stored from an earlier read or the flow; None: unknown."""
    extras: Callable[[], Mapping[str, Any]] | None = None
    """Device-specific values for sensors (e.g. temperature), read at each update."""
    extra_keys: tuple[str, ...] = field(default_factory=tuple)
    """Which of ``extras`` get a sensor (see extra_entities)."""


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
