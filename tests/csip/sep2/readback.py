"""Read back the documents the client writes, the way a server would.

The client only ever writes these, so their readers live with the tests: the round trips in
``test_serialise`` check that what is written says what was meant. They use the product's
XSD-typed readers, so a value out of range fails here just as in a server document.
"""

from __future__ import annotations

from custom_components.dynamic_export.csip.sep2.der import (
    DERAvailability,
    DERCapability,
    DERSettings,
    DERStatus,
    StatusValue,
)
from custom_components.dynamic_export.csip.sep2.mirror import MirrorMeterReading
from custom_components.dynamic_export.csip.sep2.parse import mirror_meter_reading
from custom_components.dynamic_export.csip.sep2.resources import ListPage, Response
from custom_components.dynamic_export.csip.sep2.units import ApparentPower, ReactivePower, WattHour
from custom_components.dynamic_export.csip.sep2.xml import CSIPAUS_NS, Element, XmlContentError
from custom_components.dynamic_export.csip.sep2.xsd import (
    INT16,
    TIME,
    UINT8,
    UINT16,
    UINT32,
    Body,
    active_power,
    child_path,
    hex_id,
    hex_int,
    integer,
    opt_hex_int,
    opt_integer,
    page,
    root,
    scaled,
)


def _reactive_power(el: Element, name: str) -> ReactivePower | None:
    return scaled(el, name, ReactivePower, INT16)


def _apparent_power(el: Element, name: str) -> ApparentPower | None:
    return scaled(el, name, ApparentPower, UINT16)


def _watt_hour(el: Element, name: str) -> WattHour | None:
    return scaled(el, name, WattHour, UINT16)


def _status_value(
    el: Element, name: str, bounds: tuple[int, int] = UINT8, *, bitmap: bool = False
) -> StatusValue | None:
    child = el.find(name)
    if child is None:
        return None
    value = hex_int(child, "value", 1) if bitmap else integer(child, "value", bounds)
    return StatusValue(value=value, date_time=integer(child, "dateTime", TIME))


def parse_connection_point(body: Body) -> str:
    """The connectionPointId (NMI) of a csipaus:ConnectionPoint."""
    el = root(body, "csipaus:ConnectionPoint")
    text = el.require("connectionPointId", CSIPAUS_NS).text
    if text is None:
        raise XmlContentError(child_path(el, "connectionPointId", CSIPAUS_NS), "is empty")
    return text


def parse_response(body: Body) -> Response:
    """A DERControlResponse or Response."""
    el = root(body, "DERControlResponse", "Response")
    lfdi = el.require("endDeviceLFDI")
    subject = el.require("subject")
    return Response(
        subject=hex_id(subject.text, subject.path, 16),
        end_device_lfdi=hex_id(lfdi.text, lfdi.path, 20),
        status=opt_integer(el, "status", UINT8),
        created_date_time=opt_integer(el, "createdDateTime", TIME),
    )


def parse_der_capability(body: Body) -> DERCapability:
    """DERCapability."""
    el = root(body, "DERCapability")
    rtg_max_w = active_power(el, "rtgMaxW")
    if rtg_max_w is None:
        raise XmlContentError(el.path, "missing mandatory element rtgMaxW")
    return DERCapability(
        der_type=integer(el, "type", UINT8),
        modes_supported=hex_int(el, "modesSupported", 4),
        doe_modes_supported=hex_int(el, "doeModesSupported", 1, CSIPAUS_NS),
        rtg_max_w=rtg_max_w,
        rtg_max_va=_apparent_power(el, "rtgMaxVA"),
        rtg_max_var=_reactive_power(el, "rtgMaxVar"),
        rtg_max_var_neg=_reactive_power(el, "rtgMaxVarNeg"),
        rtg_max_charge_rate_w=active_power(el, "rtgMaxChargeRateW"),
        rtg_max_discharge_rate_w=active_power(el, "rtgMaxDischargeRateW"),
        rtg_max_wh=_watt_hour(el, "rtgMaxWh"),
        rtg_normal_category=opt_integer(el, "rtgNormalCategory", UINT8),
        rtg_abnormal_category=opt_integer(el, "rtgAbnormalCategory", UINT8),
    )


def parse_der_settings(body: Body) -> DERSettings:
    """DERSettings."""
    el = root(body, "DERSettings")
    set_max_w = active_power(el, "setMaxW")
    if set_max_w is None:
        raise XmlContentError(el.path, "missing mandatory element setMaxW")
    return DERSettings(
        updated_time=integer(el, "updatedTime", TIME),
        set_max_w=set_max_w,
        set_grad_w=integer(el, "setGradW", UINT16),
        modes_enabled=opt_hex_int(el, "modesEnabled", 4),
        doe_modes_enabled=opt_hex_int(el, "doeModesEnabled", 1, CSIPAUS_NS),
        set_max_va=_apparent_power(el, "setMaxVA"),
        set_max_var=_reactive_power(el, "setMaxVar"),
        set_max_var_neg=_reactive_power(el, "setMaxVarNeg"),
        set_max_charge_rate_w=active_power(el, "setMaxChargeRateW"),
        set_max_discharge_rate_w=active_power(el, "setMaxDischargeRateW"),
        set_max_wh=_watt_hour(el, "setMaxWh"),
        set_soft_grad_w=opt_integer(el, "setSoftGradW", UINT16),
    )


def parse_der_status(body: Body) -> DERStatus:
    """DERStatus."""
    el = root(body, "DERStatus")
    return DERStatus(
        reading_time=integer(el, "readingTime", TIME),
        gen_connect_status=_status_value(el, "genConnectStatus", bitmap=True),
        inverter_status=_status_value(el, "inverterStatus"),
        local_control_mode_status=_status_value(el, "localControlModeStatus"),
        operational_mode_status=_status_value(el, "operationalModeStatus"),
        state_of_charge_status=_status_value(el, "stateOfChargeStatus", UINT16),
        storage_mode_status=_status_value(el, "storageModeStatus"),
        stor_connect_status=_status_value(el, "storConnectStatus", bitmap=True),
        alarm_status=opt_hex_int(el, "alarmStatus", 4),
    )


def parse_der_availability(body: Body) -> DERAvailability:
    """DERAvailability."""
    el = root(body, "DERAvailability")
    return DERAvailability(
        reading_time=integer(el, "readingTime", TIME),
        availability_duration=opt_integer(el, "availabilityDuration", UINT32),
        max_charge_duration=opt_integer(el, "maxChargeDuration", UINT32),
        reserve_charge_percent=opt_integer(el, "reserveChargePercent", UINT16),
        reserve_percent=opt_integer(el, "reservePercent", UINT16),
        stat_var_avail=_reactive_power(el, "statVarAvail"),
        stat_w_avail=active_power(el, "statWAvail"),
    )


def parse_mirror_meter_reading(body: Body) -> MirrorMeterReading:
    """A MirrorMeterReading."""
    return mirror_meter_reading(root(body, "MirrorMeterReading"))


def parse_mirror_meter_reading_list(body: Body) -> ListPage[MirrorMeterReading]:
    """A MirrorMeterReadingList (what a batch post carries)."""
    return page(body, "MirrorMeterReadingList", "MirrorMeterReading", mirror_meter_reading)
