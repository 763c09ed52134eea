"""Turn 2030.5 / CSIP-AUS documents from the server into the dataclasses in ``resources``.

Every value is type- and range-checked against its XSD type, so a broken server document
fails here with an XmlContentError naming the element, never later as a wrong limit.
Optional elements that are absent become None; absent mandatory ones are errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .resources import (
    DER,
    ActivePower,
    ApparentPower,
    ConnectionPoint,
    DefaultDERControl,
    DERAvailability,
    DERCapability,
    DERControl,
    DERControlBase,
    DERProgram,
    DERSettings,
    DERStatus,
    DeviceCapability,
    EndDevice,
    ErrorInfo,
    EventStatus,
    FunctionSetAssignments,
    ListPage,
    MirrorMeterReading,
    MirrorUsagePoint,
    ReactivePower,
    Reading,
    ReadingType,
    Registration,
    Response,
    StatusValue,
    Time,
    TimePeriod,
    WattHour,
)
from .xml import CSIPAUS_NS, SEP_NS, Element, XmlContentError, parse_xml

type Body = bytes | str | Element

INT8 = (-0x80, 0x7F)
UINT8 = (0, 0xFF)
INT16 = (-0x8000, 0x7FFF)
UINT16 = (0, 0xFFFF)
INT32 = (-0x8000_0000, 0x7FFF_FFFF)
UINT32 = (0, 0xFFFF_FFFF)
UINT40 = (0, 0xFF_FFFF_FFFF)
INT48 = (-0x8000_0000_0000, 0x8000_0000_0000)
INT64 = (-0x8000_0000_0000_0000, 0x7FFF_FFFF_FFFF_FFFF)
TIME = INT64

_INTEGER = re.compile(r"[+-]?[0-9]+")
_HEX = re.compile(r"[0-9A-Fa-f]*")


# --- values -----------------------------------------------------------------------------------


def _to_int(text: str | None, path: str, bounds: tuple[int, int]) -> int:
    if text is None or not _INTEGER.fullmatch(text.strip()):
        raise XmlContentError(path, f"{text!r} is not an integer")
    value = int(text.strip())
    if not bounds[0] <= value <= bounds[1]:
        raise XmlContentError(path, f"{value} is outside {bounds[0]}..{bounds[1]}")
    return value


def _to_bool(text: str | None, path: str) -> bool:
    match (text or "").strip():
        case "true" | "1":
            return True
        case "false" | "0":
            return False
        case _:
            raise XmlContentError(path, f"{text!r} is not a boolean")


def _to_hex_int(text: str | None, path: str, octets: int) -> int:
    raw = (text or "").strip()
    if not _HEX.fullmatch(raw) or len(raw) > 2 * octets:
        raise XmlContentError(path, f"{text!r} is not hexBinary of at most {octets} octets")
    return int(raw, 16) if raw else 0


def _to_hex_id(text: str | None, path: str, octets: int) -> str:
    raw = (text or "").strip()
    if not raw or not _HEX.fullmatch(raw) or len(raw) > 2 * octets:
        raise XmlContentError(path, f"{text!r} is not a hex identifier of at most {octets} octets")
    return raw


def _child_path(el: Element, name: str, ns: str) -> str:
    child = el.find(name, ns)
    return child.path if child is not None else f"{el.path}/{name}"


def _int(el: Element, name: str, bounds: tuple[int, int], ns: str = SEP_NS) -> int:
    return _to_int(el.require(name, ns).text, _child_path(el, name, ns), bounds)


def _opt_int(el: Element, name: str, bounds: tuple[int, int], ns: str = SEP_NS) -> int | None:
    child = el.find(name, ns)
    return None if child is None else _to_int(child.text, child.path, bounds)


def _opt_bool(el: Element, name: str, ns: str = SEP_NS) -> bool | None:
    child = el.find(name, ns)
    return None if child is None else _to_bool(child.text, child.path)


def _hex(el: Element, name: str, octets: int, ns: str = SEP_NS) -> int:
    return _to_hex_int(el.require(name, ns).text, _child_path(el, name, ns), octets)


def _opt_hex(el: Element, name: str, octets: int, ns: str = SEP_NS) -> int | None:
    child = el.find(name, ns)
    return None if child is None else _to_hex_int(child.text, child.path, octets)


def _mrid(el: Element) -> str:
    return _to_hex_id(el.require("mRID").text, _child_path(el, "mRID", SEP_NS), 16)


def _opt_text(el: Element, name: str, ns: str = SEP_NS) -> str | None:
    return el.text_of(name, ns)


def _text(el: Element, name: str, ns: str = SEP_NS) -> str:
    text = el.require(name, ns).text
    if text is None:
        raise XmlContentError(_child_path(el, name, ns), "is empty")
    return text


def _link(el: Element, name: str, ns: str = SEP_NS) -> str | None:
    """The href of a Link/ListLink child, or None when the link is absent."""
    child = el.find(name, ns)
    if child is None:
        return None
    href = child.attr("href")
    if not href:
        raise XmlContentError(child.path, "link has no href")
    return href


def _attr_int(el: Element, name: str, bounds: tuple[int, int]) -> int | None:
    raw = el.attr(name)
    return None if raw is None else _to_int(raw, f"{el.path}/@{name}", bounds)


def _poll_rate(el: Element) -> int | None:
    return _attr_int(el, "pollRate", UINT32)


def _scaled[T](
    el: Element, name: str, cls: Callable[[int, int], T], bounds: tuple[int, int], ns: str = SEP_NS
) -> T | None:
    child = el.find(name, ns)
    if child is None:
        return None
    return cls(_int(child, "value", bounds), _int(child, "multiplier", INT8))


def _active_power(el: Element, name: str, ns: str = SEP_NS) -> ActivePower | None:
    return _scaled(el, name, ActivePower, INT16, ns)


def _reactive_power(el: Element, name: str) -> ReactivePower | None:
    return _scaled(el, name, ReactivePower, INT16)


def _apparent_power(el: Element, name: str) -> ApparentPower | None:
    return _scaled(el, name, ApparentPower, UINT16)


def _watt_hour(el: Element, name: str) -> WattHour | None:
    return _scaled(el, name, WattHour, UINT16)


def _root(body: Body, *names: str) -> Element:
    """The document's root element, checked to be one of ``names``."""
    if not isinstance(body, Element):
        return parse_xml(body, expected=names)
    qname = f"csipaus:{body.name}" if body.ns == CSIPAUS_NS else body.name
    if body.ns not in (SEP_NS, CSIPAUS_NS) or qname not in names:
        raise XmlContentError(body.path, f"expected element {' or '.join(names)}")
    return body


def _page[T](
    body: Body, list_name: str, item_name: str, item: Callable[[Element], T]
) -> ListPage[T]:
    root = _root(body, list_name)
    return ListPage(
        href=root.attr("href"),
        all=_required_attr_int(root, "all"),
        results=_required_attr_int(root, "results"),
        items=tuple(item(child) for child in root.find_all(item_name)),
        poll_rate=_poll_rate(root),
    )


def _required_attr_int(el: Element, name: str) -> int:
    value = _attr_int(el, name, UINT32)
    if value is None:
        raise XmlContentError(el.path, f"missing mandatory attribute {name}")
    return value


# --- function set discovery -------------------------------------------------------------------


def parse_device_capability(body: Body) -> DeviceCapability:
    """DeviceCapability (dcap): the links the client starts from."""
    el = _root(body, "DeviceCapability")
    return DeviceCapability(
        href=el.attr("href"),
        poll_rate=_poll_rate(el),
        time_href=_link(el, "TimeLink"),
        end_device_list_href=_link(el, "EndDeviceListLink"),
        mirror_usage_point_list_href=_link(el, "MirrorUsagePointListLink"),
        self_device_href=_link(el, "SelfDeviceLink"),
        der_program_list_href=_link(el, "DERProgramListLink"),
        response_set_list_href=_link(el, "ResponseSetListLink"),
    )


def parse_time(body: Body) -> Time:
    """Time: the server's clock and the local time zone rules."""
    el = _root(body, "Time")
    return Time(
        href=el.attr("href"),
        current_time=_int(el, "currentTime", TIME),
        dst_end_time=_int(el, "dstEndTime", TIME),
        dst_offset=_int(el, "dstOffset", INT32),
        dst_start_time=_int(el, "dstStartTime", TIME),
        tz_offset=_int(el, "tzOffset", INT32),
        quality=_int(el, "quality", UINT8),
        local_time=_opt_int(el, "localTime", TIME),
        poll_rate=_poll_rate(el),
    )


def _end_device(el: Element) -> EndDevice:
    lfdi = el.find("lFDI")
    return EndDevice(
        href=el.attr("href"),
        lfdi=None if lfdi is None else _to_hex_id(lfdi.text, lfdi.path, 20),
        sfdi=_int(el, "sFDI", UINT40),
        changed_time=_int(el, "changedTime", TIME),
        enabled=_opt_bool(el, "enabled"),
        device_category=_opt_hex(el, "deviceCategory", 4),
        post_rate=_opt_int(el, "postRate", UINT32),
        der_list_href=_link(el, "DERListLink"),
        fsa_list_href=_link(el, "FunctionSetAssignmentsListLink"),
        registration_href=_link(el, "RegistrationLink"),
        connection_point_href=_link(el, "ConnectionPointLink", CSIPAUS_NS),
        subscription_list_href=_link(el, "SubscriptionListLink"),
        device_information_href=_link(el, "DeviceInformationLink"),
        device_status_href=_link(el, "DeviceStatusLink"),
    )


def parse_end_device(body: Body) -> EndDevice:
    """EndDevice (also what the server returns at the Location of our POST)."""
    return _end_device(_root(body, "EndDevice"))


def parse_end_device_list(body: Body) -> ListPage[EndDevice]:
    """EndDeviceList: the client looks for its own LFDI in it."""
    return _page(body, "EndDeviceList", "EndDevice", _end_device)


def parse_registration(body: Body) -> Registration:
    """Registration: the PIN the installer must confirm."""
    el = _root(body, "Registration")
    return Registration(
        href=el.attr("href"),
        date_time_registered=_int(el, "dateTimeRegistered", TIME),
        pin=_int(el, "pIN", UINT32),
        poll_rate=_poll_rate(el),
    )


def parse_connection_point(body: Body) -> ConnectionPoint:
    """csipaus:ConnectionPoint (what the server holds for our NMI)."""
    el = _root(body, "csipaus:ConnectionPoint")
    return ConnectionPoint(
        connection_point_id=_text(el, "connectionPointId", CSIPAUS_NS), href=el.attr("href")
    )


def _fsa(el: Element) -> FunctionSetAssignments:
    return FunctionSetAssignments(
        href=el.attr("href"),
        mrid=_mrid(el),
        description=_opt_text(el, "description"),
        der_program_list_href=_link(el, "DERProgramListLink"),
        time_href=_link(el, "TimeLink"),
    )


def parse_function_set_assignments_list(body: Body) -> ListPage[FunctionSetAssignments]:
    """FunctionSetAssignmentsList: the groups of programs assigned to our device."""
    return _page(body, "FunctionSetAssignmentsList", "FunctionSetAssignments", _fsa)


def _der(el: Element) -> DER:
    return DER(
        href=el.attr("href"),
        der_capability_href=_link(el, "DERCapabilityLink"),
        der_settings_href=_link(el, "DERSettingsLink"),
        der_status_href=_link(el, "DERStatusLink"),
        der_availability_href=_link(el, "DERAvailabilityLink"),
        associated_der_program_list_href=_link(el, "AssociatedDERProgramListLink"),
        current_der_program_href=_link(el, "CurrentDERProgramLink"),
        associated_usage_point_href=_link(el, "AssociatedUsagePointLink"),
    )


def parse_der(body: Body) -> DER:
    """A single DER."""
    return _der(_root(body, "DER"))


def parse_der_list(body: Body) -> ListPage[DER]:
    """DERList of our EndDevice."""
    return _page(body, "DERList", "DER", _der)


def parse_error(body: Body) -> ErrorInfo:
    """An Error body sent with a failed request."""
    el = _root(body, "Error")
    return ErrorInfo(
        reason_code=_int(el, "reasonCode", UINT16),
        max_retry_duration=_opt_int(el, "maxRetryDuration", UINT16),
    )


# --- programs and controls --------------------------------------------------------------------


def _program(el: Element) -> DERProgram:
    return DERProgram(
        mrid=_mrid(el),
        href=el.attr("href"),
        primacy=_int(el, "primacy", UINT8),
        description=_opt_text(el, "description"),
        default_control_href=_link(el, "DefaultDERControlLink"),
        control_list_href=_link(el, "DERControlListLink"),
        active_control_list_href=_link(el, "ActiveDERControlListLink"),
    )


def parse_der_program(body: Body) -> DERProgram:
    """A DERProgram with its links (default control and control list are fetched separately)."""
    return _program(_root(body, "DERProgram"))


def parse_der_program_list(body: Body) -> ListPage[DERProgram]:
    """DERProgramList of a function set assignment."""
    return _page(body, "DERProgramList", "DERProgram", _program)


def _control_base(el: Element) -> DERControlBase:
    return DERControlBase(
        op_mod_connect=_opt_bool(el, "opModConnect"),
        op_mod_energize=_opt_bool(el, "opModEnergize"),
        op_mod_exp_lim_w=_active_power(el, "opModExpLimW", CSIPAUS_NS),
        op_mod_gen_lim_w=_active_power(el, "opModGenLimW", CSIPAUS_NS),
        op_mod_imp_lim_w=_active_power(el, "opModImpLimW", CSIPAUS_NS),
        op_mod_load_lim_w=_active_power(el, "opModLoadLimW", CSIPAUS_NS),
        ramp_tms=_opt_int(el, "rampTms", UINT16),
    )


def _event_status(el: Element) -> EventStatus:
    status = el.require("EventStatus")
    code = _int(status, "currentStatus", UINT8)
    try:
        return EventStatus(code)
    except ValueError:
        raise XmlContentError(
            _child_path(status, "currentStatus", SEP_NS), f"{code} is not an event status"
        ) from None


def _control(el: Element, program: DERProgram | None) -> DERControl:
    interval = el.require("interval")
    return DERControl(
        mrid=_mrid(el),
        href=el.attr("href"),
        creation_time=_int(el, "creationTime", TIME),
        start=_int(interval, "start", TIME),
        duration=_int(interval, "duration", UINT32),
        status=_event_status(el),
        base=_control_base(el.require("DERControlBase")),
        randomize_start=_opt_int(el, "randomizeStart", INT16) or 0,
        randomize_duration=_opt_int(el, "randomizeDuration", INT16) or 0,
        response_required=_to_hex_int(
            el.attr("responseRequired"), f"{el.path}/@responseRequired", 1
        ),
        reply_to=el.attr("replyTo"),
        description=_opt_text(el, "description"),
        program_mrid=None if program is None else program.mrid,
        primacy=None if program is None else program.primacy,
    )


def parse_der_control(body: Body, *, program: DERProgram | None = None) -> DERControl:
    """A single DERControl; ``program`` fills in its program mRID and primacy."""
    return _control(_root(body, "DERControl"), program)


def parse_der_control_list(
    body: Body, *, program: DERProgram | None = None
) -> ListPage[DERControl]:
    """DERControlList of a program; ``program`` fills in each control's mRID and primacy."""
    return _page(body, "DERControlList", "DERControl", lambda el: _control(el, program))


def parse_default_der_control(
    body: Body, *, program: DERProgram | None = None
) -> DefaultDERControl:
    """DefaultDERControl of a program; ``program`` fills in its mRID and primacy."""
    el = _root(body, "DefaultDERControl")
    return DefaultDERControl(
        mrid=_mrid(el),
        base=_control_base(el.require("DERControlBase")),
        set_grad_w=_opt_int(el, "setGradW", UINT16),
        program_mrid=None if program is None else program.mrid,
        primacy=None if program is None else program.primacy,
        href=el.attr("href"),
        set_soft_grad_w=_opt_int(el, "setSoftGradW", UINT16),
    )


# --- telemetry --------------------------------------------------------------------------------


def _reading_type(el: Element) -> ReadingType:
    return ReadingType(
        accumulation_behaviour=_opt_int(el, "accumulationBehaviour", UINT8),
        commodity=_opt_int(el, "commodity", UINT8),
        data_qualifier=_opt_int(el, "dataQualifier", UINT8),
        flow_direction=_opt_int(el, "flowDirection", UINT8),
        interval_length=_opt_int(el, "intervalLength", UINT32),
        kind=_opt_int(el, "kind", UINT8),
        phase=_opt_int(el, "phase", UINT8),
        power_of_ten_multiplier=_opt_int(el, "powerOfTenMultiplier", INT8),
        uom=_opt_int(el, "uom", UINT8),
    )


def _time_period(el: Element) -> TimePeriod:
    return TimePeriod(start=_int(el, "start", TIME), duration=_int(el, "duration", UINT32))


def _reading(el: Element) -> Reading:
    period = el.find("timePeriod")
    return Reading(
        value=_opt_int(el, "value", INT48),
        time_period=None if period is None else _time_period(period),
        quality_flags=_opt_hex(el, "qualityFlags", 2),
    )


def _mirror_meter_reading(el: Element) -> MirrorMeterReading:
    reading_type = el.find("ReadingType")
    reading = el.find("Reading")
    return MirrorMeterReading(
        mrid=_mrid(el),
        description=_opt_text(el, "description"),
        reading_type=None if reading_type is None else _reading_type(reading_type),
        reading=None if reading is None else _reading(reading),
        last_update_time=_opt_int(el, "lastUpdateTime", TIME),
        next_update_time=_opt_int(el, "nextUpdateTime", TIME),
        href=el.attr("href"),
    )


def parse_mirror_meter_reading(body: Body) -> MirrorMeterReading:
    """A MirrorMeterReading."""
    return _mirror_meter_reading(_root(body, "MirrorMeterReading"))


def parse_mirror_meter_reading_list(body: Body) -> ListPage[MirrorMeterReading]:
    """A MirrorMeterReadingList (what a batch post carries)."""
    return _page(body, "MirrorMeterReadingList", "MirrorMeterReading", _mirror_meter_reading)


def _mirror_usage_point(el: Element) -> MirrorUsagePoint:
    device_lfdi = el.require("deviceLFDI")
    return MirrorUsagePoint(
        mrid=_mrid(el),
        role_flags=_hex(el, "roleFlags", 2),
        device_lfdi=_to_hex_id(device_lfdi.text, device_lfdi.path, 20),
        service_category_kind=_int(el, "serviceCategoryKind", UINT8),
        status=_int(el, "status", UINT8),
        description=_opt_text(el, "description"),
        href=el.attr("href"),
        post_rate=_opt_int(el, "postRate", UINT32),
        readings=tuple(_mirror_meter_reading(m) for m in el.find_all("MirrorMeterReading")),
    )


def parse_mirror_usage_point(body: Body) -> MirrorUsagePoint:
    """A MirrorUsagePoint (GET at the Location of our POST: its href and postRate)."""
    return _mirror_usage_point(_root(body, "MirrorUsagePoint"))


def parse_mirror_usage_point_list(body: Body) -> ListPage[MirrorUsagePoint]:
    """MirrorUsagePointList."""
    return _page(body, "MirrorUsagePointList", "MirrorUsagePoint", _mirror_usage_point)


# --- what the client sends, read back (for the test server and round trips) -------------------


def parse_response(body: Body) -> Response:
    """A DERControlResponse or Response."""
    el = _root(body, "DERControlResponse", "Response")
    lfdi = el.require("endDeviceLFDI")
    subject = el.require("subject")
    return Response(
        subject=_to_hex_id(subject.text, subject.path, 16),
        end_device_lfdi=_to_hex_id(lfdi.text, lfdi.path, 20),
        status=_opt_int(el, "status", UINT8),
        created_date_time=_opt_int(el, "createdDateTime", TIME),
    )


def parse_der_capability(body: Body) -> DERCapability:
    """DERCapability."""
    el = _root(body, "DERCapability")
    rtg_max_w = _active_power(el, "rtgMaxW")
    if rtg_max_w is None:
        raise XmlContentError(el.path, "missing mandatory element rtgMaxW")
    return DERCapability(
        der_type=_int(el, "type", UINT8),
        modes_supported=_hex(el, "modesSupported", 4),
        doe_modes_supported=_hex(el, "doeModesSupported", 1, CSIPAUS_NS),
        rtg_max_w=rtg_max_w,
        rtg_max_va=_apparent_power(el, "rtgMaxVA"),
        rtg_max_var=_reactive_power(el, "rtgMaxVar"),
        rtg_max_var_neg=_reactive_power(el, "rtgMaxVarNeg"),
        rtg_max_charge_rate_w=_active_power(el, "rtgMaxChargeRateW"),
        rtg_max_discharge_rate_w=_active_power(el, "rtgMaxDischargeRateW"),
        rtg_max_wh=_watt_hour(el, "rtgMaxWh"),
        rtg_normal_category=_opt_int(el, "rtgNormalCategory", UINT8),
        rtg_abnormal_category=_opt_int(el, "rtgAbnormalCategory", UINT8),
    )


def parse_der_settings(body: Body) -> DERSettings:
    """DERSettings."""
    el = _root(body, "DERSettings")
    set_max_w = _active_power(el, "setMaxW")
    if set_max_w is None:
        raise XmlContentError(el.path, "missing mandatory element setMaxW")
    return DERSettings(
        updated_time=_int(el, "updatedTime", TIME),
        set_max_w=set_max_w,
        set_grad_w=_int(el, "setGradW", UINT16),
        modes_enabled=_opt_hex(el, "modesEnabled", 4),
        doe_modes_enabled=_opt_hex(el, "doeModesEnabled", 1, CSIPAUS_NS),
        set_max_va=_apparent_power(el, "setMaxVA"),
        set_max_var=_reactive_power(el, "setMaxVar"),
        set_max_var_neg=_reactive_power(el, "setMaxVarNeg"),
        set_max_charge_rate_w=_active_power(el, "setMaxChargeRateW"),
        set_max_discharge_rate_w=_active_power(el, "setMaxDischargeRateW"),
        set_max_wh=_watt_hour(el, "setMaxWh"),
        set_soft_grad_w=_opt_int(el, "setSoftGradW", UINT16),
    )


def _status_value(
    el: Element, name: str, bounds: tuple[int, int] = UINT8, *, bitmap: bool = False
) -> StatusValue | None:
    child = el.find(name)
    if child is None:
        return None
    value = _hex(child, "value", 1) if bitmap else _int(child, "value", bounds)
    return StatusValue(value=value, date_time=_int(child, "dateTime", TIME))


def parse_der_status(body: Body) -> DERStatus:
    """DERStatus."""
    el = _root(body, "DERStatus")
    return DERStatus(
        reading_time=_int(el, "readingTime", TIME),
        gen_connect_status=_status_value(el, "genConnectStatus", bitmap=True),
        inverter_status=_status_value(el, "inverterStatus"),
        local_control_mode_status=_status_value(el, "localControlModeStatus"),
        operational_mode_status=_status_value(el, "operationalModeStatus"),
        state_of_charge_status=_status_value(el, "stateOfChargeStatus", UINT16),
        storage_mode_status=_status_value(el, "storageModeStatus"),
        stor_connect_status=_status_value(el, "storConnectStatus", bitmap=True),
        alarm_status=_opt_hex(el, "alarmStatus", 4),
    )


def parse_der_availability(body: Body) -> DERAvailability:
    """DERAvailability."""
    el = _root(body, "DERAvailability")
    return DERAvailability(
        reading_time=_int(el, "readingTime", TIME),
        availability_duration=_opt_int(el, "availabilityDuration", UINT32),
        max_charge_duration=_opt_int(el, "maxChargeDuration", UINT32),
        reserve_charge_percent=_opt_int(el, "reserveChargePercent", UINT16),
        reserve_percent=_opt_int(el, "reservePercent", UINT16),
        stat_var_avail=_reactive_power(el, "statVarAvail"),
        stat_w_avail=_active_power(el, "statWAvail"),
    )
