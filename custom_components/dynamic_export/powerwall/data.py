"""Parse the gateway's JSON into typed values, rejecting anything that is not a sane number.

Signs are the gateway's: site +import/−export, battery +discharge/−charge, solar and load +.
A missing or non-numeric grid power is an error, never a zero: a zero would tell the
controller the site is balanced when nothing is known.

Each meter carries ``last_communication_time``, when the gateway last heard from it (RFC 3339
with nanoseconds and an offset). It is the only sign that the gateway's values are frozen,
so it is kept: ``None`` when missing or unusable (no offset, not a time), :data:`NEVER` for
Go's zero time, which the gateway sends for a meter it has not heard from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..core.errors import InvalidDeviceDataError
from ..core.numbers import finite_number
from .errors import NotPowerwallError

MAX_POWER_W = 1_000_000.0  # anything larger is a parse or unit error, not a house
MIN_PHASE_VOLTAGE_V = 50.0  # an unused phase reads a fraction of a volt
PHASES = ("a", "b", "c")
NEVER = datetime.min.replace(tzinfo=UTC)  # Go's zero time, "0001-01-01T00:00:00Z"


@dataclass(frozen=True, slots=True)
class MeterFlow:
    """One meter of /api/meters/aggregates (site, solar, battery or load)."""

    power_w: float
    imported_wh: float | None
    exported_wh: float | None
    frequency_hz: float | None
    voltage_v: float | None
    heard_at: datetime | None = None
    """last_communication_time: None if missing or unusable, NEVER if never heard."""


@dataclass(frozen=True, slots=True)
class Aggregates:
    """The power flows of /api/meters/aggregates; only ``site`` is required."""

    site: MeterFlow
    solar: MeterFlow | None
    battery: MeterFlow | None
    load: MeterFlow | None
    gateway_time: datetime | None = None
    """The gateway's clock when it answered (its HTTP Date), if it sent a usable one."""


@dataclass(frozen=True, slots=True)
class SitePhases:
    """Per-phase values of the site meter (/api/meters/site); None for an unused phase."""

    power_w: tuple[float | None, float | None, float | None]
    voltage_v: tuple[float | None, float | None, float | None]
    meter_type: str | None
    serial_number: str | None

    @property
    def phase_count(self) -> int:
        """Phases with a voltage (or, without voltages, with a power reading)."""
        with_voltage = sum(v is not None for v in self.voltage_v)
        return with_voltage or sum(p is not None for p in self.power_w)


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """Identity from /api/status; ``din`` is the gateway's unique id."""

    din: str
    version: str | None
    device_type: str | None


def _power(obj: dict[str, Any], key: str, where: str) -> float:
    value = finite_number(obj.get(key))
    if value is None:
        raise InvalidDeviceDataError(f"Powerwall {where}: {key}={obj.get(key)!r} is not a number")
    if abs(value) > MAX_POWER_W:
        raise InvalidDeviceDataError(f"Powerwall {where}: {key}={value:g} W is implausible")
    return value


def _positive(value: Any) -> float | None:
    """A measurement the gateway reports as 0 when it has none (frequency, voltage)."""
    number = finite_number(value)
    return number if number is not None and number > 0 else None


def _energy(value: Any) -> float | None:
    number = finite_number(value)
    return number if number is not None and number >= 0 else None


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time with an offset (digits past microseconds are dropped), else None.

    A time without an offset is refused: its zone, and so its age, is a guess.
    """
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.utcoffset() is None:
        return None
    return NEVER if moment.year == 1 else moment


def _object(payload: Any, where: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidDeviceDataError(f"Powerwall {where}: expected an object")
    return payload


def _flow(payload: dict[str, Any], name: str, *, required: bool) -> MeterFlow | None:
    obj = payload.get(name)
    if obj is None and not required:
        return None
    obj = _object(obj, f"aggregates.{name}")
    return MeterFlow(
        power_w=_power(obj, "instant_power", f"aggregates.{name}"),
        imported_wh=_energy(obj.get("energy_imported")),
        exported_wh=_energy(obj.get("energy_exported")),
        frequency_hz=_positive(obj.get("frequency")),
        voltage_v=_positive(obj.get("instant_average_voltage")),
        heard_at=parse_time(obj.get("last_communication_time")),
    )


def parse_aggregates(payload: Any, *, gateway_time: datetime | None = None) -> Aggregates:
    """/api/meters/aggregates; the site object and its instant_power are required."""
    obj = _object(payload, "aggregates")
    site = _flow(obj, "site", required=True)
    assert site is not None
    return Aggregates(
        site=site,
        solar=_flow(obj, "solar", required=False),
        battery=_flow(obj, "battery", required=False),
        load=_flow(obj, "load", required=False),
        gateway_time=gateway_time,
    )


def parse_site_meter(payload: Any) -> SitePhases | None:
    """/api/meters/site: the first meter's Cached_readings (None if there is no meter)."""
    if not isinstance(payload, list):
        raise InvalidDeviceDataError("Powerwall meters/site: expected a list")
    if not payload:
        return None
    meter = _object(payload[0], "meters/site[0]")
    readings = _object(meter.get("Cached_readings"), "meters/site[0].Cached_readings")
    powers = []
    for phase in PHASES:
        key = f"real_power_{phase}"
        powers.append(_power(readings, key, "meters/site") if key in readings else None)
    voltages = []
    for index in range(1, 4):
        volts = finite_number(readings.get(f"v_l{index}n"))
        voltages.append(volts if volts is not None and volts >= MIN_PHASE_VOLTAGE_V else None)
    serial = readings.get("serial_number")
    kind = meter.get("type")
    return SitePhases(
        power_w=(powers[0], powers[1], powers[2]),
        voltage_v=(voltages[0], voltages[1], voltages[2]),
        meter_type=kind if isinstance(kind, str) else None,
        serial_number=serial if isinstance(serial, str) else None,
    )


def parse_soe(payload: Any) -> float:
    """/api/system_status/soe: the battery's state of energy in % (the gateway's raw value).

    The Tesla app shows (raw − 5) / 0.95 because it hides a 5 % reserve; this is the raw one.
    """
    value = finite_number(_object(payload, "soe").get("percentage"))
    if value is None or not 0.0 <= value <= 100.5:
        raise InvalidDeviceDataError(f"Powerwall soe: percentage={value!r} is not 0-100")
    return min(value, 100.0)


def parse_status(payload: Any) -> GatewayStatus:
    """/api/status; without a ``din`` this is not a Powerwall gateway."""
    if not isinstance(payload, dict) or not isinstance(payload.get("din"), str):
        raise NotPowerwallError("the device's /api/status has no gateway id (din)")
    version = payload.get("version")
    device_type = payload.get("device_type")
    return GatewayStatus(
        din=payload["din"],
        version=version if isinstance(version, str) else None,
        device_type=device_type if isinstance(device_type, str) else None,
    )
