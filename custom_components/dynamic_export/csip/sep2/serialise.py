"""Write the documents the client sends, in the XSD's element order.

The 2030.5 schemas are sequences, so element order is part of validity; each writer follows
sep.xsd (CSIP-AUS 1.2 as redefined by csipaus-core.xsd, whose extension elements come after
the base type's). Values are range-checked here: an out-of-range value is a bug on our side
and must not reach the server as an invalid document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .der import DERAvailability, DERCapability, DERSettings, DERStatus, StatusValue
from .mirror import MirrorMeterReading, MirrorUsagePoint, Reading, ReadingType, TimePeriod
from .resources import EndDevice, Response
from .units import ActivePower, ApparentPower, ReactivePower, WattHour
from .xml import Node, leaf, node, to_xml
from .xsd import INT8, INT16, INT48, TIME, UINT8, UINT16, UINT32, UINT40

_HEX = re.compile(r"[0-9A-Fa-f]+")

_PERCENT = (0, 10000)
"""Hundredths of a percent."""


def _int(name: str, value: int | None, bounds: tuple[int, int]) -> Node | None:
    if value is None:
        return None
    if not bounds[0] <= int(value) <= bounds[1]:
        raise ValueError(f"{name}={value} is outside {bounds[0]}..{bounds[1]}")
    return leaf(name, int(value))


def _hex(name: str, value: int | None, octets: int) -> Node | None:
    """A bitmap as hexBinary of its full width, upper case (e.g. "0000000C")."""
    if value is None:
        return None
    if not 0 <= int(value) < 1 << (8 * octets):
        raise ValueError(f"{name}={value} does not fit {octets} octet(s)")
    return leaf(name, f"{int(value):0{2 * octets}X}")


def _hex_id(name: str, value: str, octets: int) -> Node:
    """An identifier (mRID, LFDI) of at most ``octets``, written as given.

    Case is kept: hexBinary is case-insensitive, but a response's subject echoes the server's
    mRID exactly, in case a server compares them as strings.
    """
    if not _HEX.fullmatch(value) or len(value) > 2 * octets or len(value) % 2:
        raise ValueError(f"{name}={value!r} is not hex of whole octets, at most {octets}")
    return Node(name, (), value)


def _string(name: str, value: str | None, max_length: int) -> Node | None:
    if value is not None and len(value) > max_length:
        raise ValueError(f"{name} is longer than {max_length} characters: {value!r}")
    return leaf(name, value)


def _bool(name: str, value: bool | None) -> Node | None:
    return None if value is None else leaf(name, "true" if value else "false")


def _scaled(
    name: str, value: ActivePower | ReactivePower | ApparentPower | WattHour | None
) -> Node | None:
    if value is None:
        return None
    signed = isinstance(value, ActivePower | ReactivePower)
    return node(
        name,
        _int("multiplier", value.multiplier, INT8),
        _int("value", value.value, INT16 if signed else UINT16),
    )


def _period(name: str, period: TimePeriod | None) -> Node | None:
    if period is None:
        return None
    return node(name, _int("duration", period.duration, UINT32), _int("start", period.start, TIME))


def _status(
    name: str, status: StatusValue | None, bounds: tuple[int, int] = UINT8, *, bitmap: bool = False
) -> Node | None:
    if status is None:
        return None
    value = _hex("value", status.value, 1) if bitmap else _int("value", status.value, bounds)
    return node(name, _int("dateTime", status.date_time, TIME), value)


# --- registration -----------------------------------------------------------------------------


def end_device_xml(device: EndDevice) -> bytes:
    """EndDevice to POST to the EndDeviceList: our identity and changedTime, nothing else."""
    lfdi = None if device.lfdi is None else _hex_id("lFDI", device.lfdi, 20)
    return to_xml(
        node(
            "EndDevice",
            _hex("deviceCategory", device.device_category, 4),
            lfdi,
            _int("sFDI", device.sfdi, UINT40),
            _int("changedTime", device.changed_time, TIME),
            _bool("enabled", device.enabled),
            _int("postRate", device.post_rate, UINT32),
        )
    )


def connection_point_xml(connection_point_id: str) -> bytes:
    """csipaus:ConnectionPoint to PUT at the EndDevice's ConnectionPointLink (the NMI)."""
    if not connection_point_id:
        raise ValueError("connectionPointId is empty")
    return to_xml(
        node(
            "csipaus:ConnectionPoint",
            _string("csipaus:connectionPointId", connection_point_id, 32),
        )
    )


# --- DER information --------------------------------------------------------------------------


def der_capability_xml(cap: DERCapability) -> bytes:
    """DERCapability: nameplate ratings and supported modes."""
    return to_xml(
        node(
            "DERCapability",
            _hex("modesSupported", cap.modes_supported, 4),
            _int("rtgAbnormalCategory", cap.rtg_abnormal_category, UINT8),
            _scaled("rtgMaxChargeRateW", cap.rtg_max_charge_rate_w),
            _scaled("rtgMaxDischargeRateW", cap.rtg_max_discharge_rate_w),
            _scaled("rtgMaxVA", cap.rtg_max_va),
            _scaled("rtgMaxVar", cap.rtg_max_var),
            _scaled("rtgMaxVarNeg", cap.rtg_max_var_neg),
            _scaled("rtgMaxW", cap.rtg_max_w),
            _scaled("rtgMaxWh", cap.rtg_max_wh),
            _int("rtgNormalCategory", cap.rtg_normal_category, UINT8),
            _int("type", cap.der_type, UINT8),
            _hex("csipaus:doeModesSupported", cap.doe_modes_supported, 1),
        )
    )


def der_settings_xml(settings: DERSettings) -> bytes:
    """DERSettings: the settings in force, including the ramp rate (setGradW)."""
    return to_xml(
        node(
            "DERSettings",
            _hex("modesEnabled", settings.modes_enabled, 4),
            _int("setGradW", settings.set_grad_w, UINT16),
            _scaled("setMaxChargeRateW", settings.set_max_charge_rate_w),
            _scaled("setMaxDischargeRateW", settings.set_max_discharge_rate_w),
            _scaled("setMaxVA", settings.set_max_va),
            _scaled("setMaxVar", settings.set_max_var),
            _scaled("setMaxVarNeg", settings.set_max_var_neg),
            _scaled("setMaxW", settings.set_max_w),
            _scaled("setMaxWh", settings.set_max_wh),
            _int("setSoftGradW", settings.set_soft_grad_w, UINT16),
            _int("updatedTime", settings.updated_time, TIME),
            _hex("csipaus:doeModesEnabled", settings.doe_modes_enabled, 1),
        )
    )


def der_status_xml(status: DERStatus) -> bytes:
    """DERStatus: connection and operating state, each with the time it changed."""
    return to_xml(
        node(
            "DERStatus",
            _hex("alarmStatus", status.alarm_status, 4),
            _status("genConnectStatus", status.gen_connect_status, bitmap=True),
            _status("inverterStatus", status.inverter_status),
            _status("localControlModeStatus", status.local_control_mode_status),
            _status("operationalModeStatus", status.operational_mode_status),
            _int("readingTime", status.reading_time, TIME),
            _status("stateOfChargeStatus", status.state_of_charge_status, _PERCENT),
            _status("storageModeStatus", status.storage_mode_status),
            _status("storConnectStatus", status.stor_connect_status, bitmap=True),
        )
    )


def der_availability_xml(avail: DERAvailability) -> bytes:
    """DERAvailability: what the DER could deliver now."""
    return to_xml(
        node(
            "DERAvailability",
            _int("availabilityDuration", avail.availability_duration, UINT32),
            _int("maxChargeDuration", avail.max_charge_duration, UINT32),
            _int("readingTime", avail.reading_time, TIME),
            _int("reserveChargePercent", avail.reserve_charge_percent, _PERCENT),
            _int("reservePercent", avail.reserve_percent, _PERCENT),
            _scaled("statVarAvail", avail.stat_var_avail),
            _scaled("statWAvail", avail.stat_w_avail),
        )
    )


# --- responses --------------------------------------------------------------------------------


def response_xml(response: Response, *, root: str = "DERControlResponse") -> bytes:
    """A response to an event, POSTed to its replyTo (``root="Response"`` for other events)."""
    if root not in ("DERControlResponse", "Response"):
        raise ValueError(f"{root!r} is not a response element")
    return to_xml(
        node(
            root,
            _int("createdDateTime", response.created_date_time, TIME),
            _hex_id("endDeviceLFDI", response.end_device_lfdi, 20),
            _int("status", response.status, UINT8),
            _hex_id("subject", response.subject, 16),
        )
    )


# --- telemetry --------------------------------------------------------------------------------


def _reading_type(rt: ReadingType | None) -> Node | None:
    if rt is None:
        return None
    return node(
        "ReadingType",
        _int("accumulationBehaviour", rt.accumulation_behaviour, UINT8),
        _int("commodity", rt.commodity, UINT8),
        _int("dataQualifier", rt.data_qualifier, UINT8),
        _int("flowDirection", rt.flow_direction, UINT8),
        _int("intervalLength", rt.interval_length, UINT32),
        _int("kind", rt.kind, UINT8),
        _int("phase", rt.phase, UINT8),
        _int("powerOfTenMultiplier", rt.power_of_ten_multiplier, INT8),
        _int("uom", rt.uom, UINT8),
    )


def _reading(reading: Reading | None) -> Node | None:
    if reading is None:
        return None
    return node(
        "Reading",
        _hex("qualityFlags", reading.quality_flags, 2),
        _period("timePeriod", reading.time_period),
        _int("value", reading.value, INT48),
    )


def _mirror_meter_reading(mmr: MirrorMeterReading) -> Node:
    return node(
        "MirrorMeterReading",
        _hex_id("mRID", mmr.mrid, 16),
        _string("description", mmr.description, 32),
        _int("lastUpdateTime", mmr.last_update_time, TIME),
        _int("nextUpdateTime", mmr.next_update_time, TIME),
        _reading(mmr.reading),
        _reading_type(mmr.reading_type),
    )


def mirror_meter_reading_xml(mmr: MirrorMeterReading) -> bytes:
    """One MirrorMeterReading: a definition (ReadingType) and/or a value (Reading)."""
    return to_xml(_mirror_meter_reading(mmr))


def mirror_meter_reading_list_xml(mmrs: Sequence[MirrorMeterReading]) -> bytes:
    """Several MirrorMeterReadings in one post."""
    count = str(len(mmrs))
    return to_xml(
        node(
            "MirrorMeterReadingList",
            *(_mirror_meter_reading(m) for m in mmrs),
            attrs={"all": count, "results": count},
        )
    )


def mirror_usage_point_xml(mup: MirrorUsagePoint) -> bytes:
    """MirrorUsagePoint to POST, with every reading definition it will carry."""
    return to_xml(
        node(
            "MirrorUsagePoint",
            _hex_id("mRID", mup.mrid, 16),
            _string("description", mup.description, 32),
            _hex("roleFlags", mup.role_flags, 2),
            _int("serviceCategoryKind", mup.service_category_kind, UINT8),
            _int("status", mup.status, UINT8),
            _hex_id("deviceLFDI", mup.device_lfdi, 20),
            *(_mirror_meter_reading(m) for m in mup.readings),
            _int("postRate", mup.post_rate, UINT32),
        )
    )
