"""Parse OpenDTU's JSON into typed values.

Channel values are ``{"v": value, "u": unit, "d": decimals}`` under ``AC``/``DC``/``INV`` and a
0-based channel number; they are only present in ``/api/livedata/status?inv=<serial>``.
A missing value is None, never 0: the controller must not mistake "unknown" for "idle".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import InvalidDeviceDataError
from ..core.numbers import finite_number
from .errors import NotOpenDtuError, UnknownInverterError

LIMIT_STATUSES = frozenset({"Ok", "Failure", "Pending", "Unknown"})
KWH = 1000.0


@dataclass(frozen=True, slots=True)
class InverterSummary:
    """The common fields every livedata inverter entry has."""

    serial: str
    name: str
    reachable: bool
    producing: bool
    poll_enabled: bool
    limit_relative_pct: float | None
    limit_absolute_w: float | None  # None while the DTU does not know the max power
    data_age_s: float | None


@dataclass(frozen=True, slots=True)
class InverterLiveData:
    """One inverter's channel values (``?inv=<serial>``)."""

    summary: InverterSummary
    ac_power_w: float | None
    ac_voltage_v: float | None
    ac_frequency_hz: float | None
    dc_power_w: float | None
    temperature_c: float | None
    yield_day_wh: float | None
    yield_total_wh: float | None
    efficiency_pct: float | None


@dataclass(frozen=True, slots=True)
class LimitStatus:
    """One inverter's entry in /api/limit/status."""

    limit_relative_pct: float | None
    max_power_w: float | None  # None while unknown (the DTU reports 0)
    set_status: str  # Ok, Failure, Pending or Unknown


@dataclass(frozen=True, slots=True)
class SystemStatus:
    """Identity from /api/system/status."""

    version: str
    hostname: str | None
    pioenv: str | None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidDeviceDataError(f"OpenDTU {where}: expected an object")
    return value


def _bool(entry: dict[str, Any], key: str, where: str) -> bool:
    value = entry.get(key)
    if not isinstance(value, bool):
        raise InvalidDeviceDataError(f"OpenDTU {where}: {key}={value!r} is not true/false")
    return value


def _channel(entry: dict[str, Any], kind: str, field: str) -> float | None:
    """``entry[kind]["0"][field]["v"]``, or None when any level is missing."""
    channels = entry.get(kind)
    channel = channels.get("0") if isinstance(channels, dict) else None
    value = channel.get(field) if isinstance(channel, dict) else None
    return finite_number(value.get("v")) if isinstance(value, dict) else None


def _summary(entry: Any) -> InverterSummary:
    obj = _object(entry, "inverter entry")
    serial = obj.get("serial")
    if not isinstance(serial, str) or not serial:
        raise InvalidDeviceDataError(f"OpenDTU inverter entry: serial={serial!r}")
    where = f"inverter {serial}"
    name = obj.get("name")
    absolute = finite_number(obj.get("limit_absolute"))
    age_ms = finite_number(obj.get("data_age_ms"))
    return InverterSummary(
        serial=serial,
        name=name if isinstance(name, str) and name else serial,
        reachable=_bool(obj, "reachable", where),
        producing=_bool(obj, "producing", where),
        poll_enabled=obj.get("poll_enabled") is not False,
        limit_relative_pct=finite_number(obj.get("limit_relative")),
        limit_absolute_w=absolute if absolute is not None and absolute >= 0 else None,
        data_age_s=age_ms / 1000.0 if age_ms is not None else finite_number(obj.get("data_age")),
    )


def _inverters(payload: Any) -> list[Any]:
    inverters = _object(payload, "livedata").get("inverters")
    if not isinstance(inverters, list):
        raise InvalidDeviceDataError("OpenDTU livedata: no inverters list")
    return inverters


def parse_inverter_list(payload: Any) -> list[InverterSummary]:
    """/api/livedata/status without ``?inv=``: every inverter's common fields."""
    return [_summary(entry) for entry in _inverters(payload)]


def parse_livedata(payload: Any, serial: str) -> InverterLiveData:
    """/api/livedata/status?inv=<serial>; an empty list means the DTU has no such inverter."""
    inverters = _inverters(payload)
    entry = next((e for e in inverters if isinstance(e, dict) and e.get("serial") == serial), None)
    if entry is None:
        raise UnknownInverterError(f"OpenDTU has no inverter {serial}", None)
    total = _channel(entry, "INV", "YieldTotal")
    return InverterLiveData(
        summary=_summary(entry),
        ac_power_w=_channel(entry, "AC", "Power"),
        ac_voltage_v=_channel(entry, "AC", "Voltage"),
        ac_frequency_hz=_channel(entry, "AC", "Frequency"),
        dc_power_w=_channel(entry, "INV", "Power DC"),
        temperature_c=_channel(entry, "INV", "Temperature"),
        yield_day_wh=_channel(entry, "INV", "YieldDay"),
        yield_total_wh=total * KWH if total is not None else None,
        efficiency_pct=_channel(entry, "INV", "Efficiency"),
    )


def parse_limit_status(payload: Any) -> dict[str, LimitStatus]:
    """/api/limit/status: serial -> limit, max power and the last command's state."""
    statuses: dict[str, LimitStatus] = {}
    for serial, entry in _object(payload, "limit status").items():
        obj = _object(entry, f"limit status of {serial}")
        state = obj.get("limit_set_status")
        if state not in LIMIT_STATUSES:
            raise InvalidDeviceDataError(
                f"OpenDTU limit status of {serial}: limit_set_status={state!r}"
            )
        max_power = finite_number(obj.get("max_power"))
        statuses[serial] = LimitStatus(
            limit_relative_pct=finite_number(obj.get("limit_relative")),
            max_power_w=max_power if max_power is not None and max_power > 0 else None,
            set_status=state,
        )
    return statuses


def parse_system_status(payload: Any) -> SystemStatus:
    """/api/system/status; OpenDTU always reports its ``git_hash`` (the version)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("git_hash"), str):
        raise NotOpenDtuError("no OpenDTU version (git_hash) in /api/system/status")
    hostname = payload.get("hostname")
    pioenv = payload.get("pioenv")
    return SystemStatus(
        version=payload["git_hash"],
        hostname=hostname if isinstance(hostname, str) else None,
        pioenv=pioenv if isinstance(pioenv, str) else None,
    )
