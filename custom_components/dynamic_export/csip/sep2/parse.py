"""Turn the 2030.5 / CSIP-AUS documents the client reads into the dataclasses in ``resources``.

Every value goes through the XSD-typed readers of ``xsd``, so a broken server document fails
here with an XmlContentError naming the element, never later as a wrong limit.
"""

from __future__ import annotations

from .codes import EventStatus
from .mirror import MirrorMeterReading, MirrorUsagePoint, Reading, ReadingType, TimePeriod
from .resources import (
    DER,
    DefaultDERControl,
    DERControl,
    DERControlBase,
    DERProgram,
    DeviceCapability,
    EndDevice,
    FunctionSetAssignments,
    ListPage,
    Registration,
    Time,
)
from .xml import CSIPAUS_NS, Element, XmlContentError
from .xsd import (
    INT8,
    INT16,
    INT32,
    INT48,
    TIME,
    UINT8,
    UINT16,
    UINT32,
    UINT40,
    Body,
    active_power,
    child_path,
    hex_id,
    hex_int,
    hex_value,
    integer,
    link,
    mrid,
    opt_boolean,
    opt_hex_int,
    opt_integer,
    page,
    poll_rate_of,
    root,
)

# --- function set discovery -------------------------------------------------------------------


def parse_device_capability(body: Body) -> DeviceCapability:
    """DeviceCapability (dcap): the links the client starts from."""
    el = root(body, "DeviceCapability")
    return DeviceCapability(
        href=el.attr("href"),
        poll_rate=poll_rate_of(el),
        time_href=link(el, "TimeLink"),
        end_device_list_href=link(el, "EndDeviceListLink"),
        mirror_usage_point_list_href=link(el, "MirrorUsagePointListLink"),
        self_device_href=link(el, "SelfDeviceLink"),
        der_program_list_href=link(el, "DERProgramListLink"),
        response_set_list_href=link(el, "ResponseSetListLink"),
    )


def parse_time(body: Body) -> Time:
    """Time: the server's clock and the local time zone rules."""
    el = root(body, "Time")
    return Time(
        href=el.attr("href"),
        current_time=integer(el, "currentTime", TIME),
        dst_end_time=integer(el, "dstEndTime", TIME),
        dst_offset=integer(el, "dstOffset", INT32),
        dst_start_time=integer(el, "dstStartTime", TIME),
        tz_offset=integer(el, "tzOffset", INT32),
        quality=integer(el, "quality", UINT8),
        local_time=opt_integer(el, "localTime", TIME),
        poll_rate=poll_rate_of(el),
    )


def _end_device(el: Element) -> EndDevice:
    lfdi = el.find("lFDI")
    return EndDevice(
        href=el.attr("href"),
        lfdi=None if lfdi is None else hex_id(lfdi.text, lfdi.path, 20),
        sfdi=integer(el, "sFDI", UINT40),
        changed_time=integer(el, "changedTime", TIME),
        enabled=opt_boolean(el, "enabled"),
        device_category=opt_hex_int(el, "deviceCategory", 4),
        post_rate=opt_integer(el, "postRate", UINT32),
        der_list_href=link(el, "DERListLink"),
        fsa_list_href=link(el, "FunctionSetAssignmentsListLink"),
        registration_href=link(el, "RegistrationLink"),
        connection_point_href=link(el, "ConnectionPointLink", CSIPAUS_NS),
        subscription_list_href=link(el, "SubscriptionListLink"),
        device_information_href=link(el, "DeviceInformationLink"),
        device_status_href=link(el, "DeviceStatusLink"),
    )


def parse_end_device(body: Body) -> EndDevice:
    """EndDevice (also what the server returns at the Location of our POST)."""
    return _end_device(root(body, "EndDevice"))


def parse_end_device_list(body: Body) -> ListPage[EndDevice]:
    """EndDeviceList: the client looks for its own LFDI in it."""
    return page(body, "EndDeviceList", "EndDevice", _end_device)


def parse_registration(body: Body) -> Registration:
    """Registration: the PIN the installer must confirm."""
    el = root(body, "Registration")
    return Registration(
        href=el.attr("href"),
        date_time_registered=integer(el, "dateTimeRegistered", TIME),
        pin=integer(el, "pIN", UINT32),
        poll_rate=poll_rate_of(el),
    )


def _fsa(el: Element) -> FunctionSetAssignments:
    return FunctionSetAssignments(
        href=el.attr("href"),
        mrid=mrid(el),
        description=el.text_of("description"),
        der_program_list_href=link(el, "DERProgramListLink"),
        time_href=link(el, "TimeLink"),
    )


def parse_function_set_assignments_list(body: Body) -> ListPage[FunctionSetAssignments]:
    """FunctionSetAssignmentsList: the groups of programs assigned to our device."""
    return page(body, "FunctionSetAssignmentsList", "FunctionSetAssignments", _fsa)


def _der(el: Element) -> DER:
    return DER(
        href=el.attr("href"),
        der_capability_href=link(el, "DERCapabilityLink"),
        der_settings_href=link(el, "DERSettingsLink"),
        der_status_href=link(el, "DERStatusLink"),
        der_availability_href=link(el, "DERAvailabilityLink"),
        associated_der_program_list_href=link(el, "AssociatedDERProgramListLink"),
        current_der_program_href=link(el, "CurrentDERProgramLink"),
        associated_usage_point_href=link(el, "AssociatedUsagePointLink"),
    )


def parse_der(body: Body) -> DER:
    """A single DER."""
    return _der(root(body, "DER"))


def parse_der_list(body: Body) -> ListPage[DER]:
    """DERList of our EndDevice."""
    return page(body, "DERList", "DER", _der)


# --- programs and controls --------------------------------------------------------------------


def _program(el: Element) -> DERProgram:
    return DERProgram(
        mrid=mrid(el),
        href=el.attr("href"),
        primacy=integer(el, "primacy", UINT8),
        description=el.text_of("description"),
        default_control_href=link(el, "DefaultDERControlLink"),
        control_list_href=link(el, "DERControlListLink"),
        active_control_list_href=link(el, "ActiveDERControlListLink"),
    )


def parse_der_program_list(body: Body) -> ListPage[DERProgram]:
    """DERProgramList of a function set assignment."""
    return page(body, "DERProgramList", "DERProgram", _program)


def _control_base(el: Element) -> DERControlBase:
    return DERControlBase(
        op_mod_connect=opt_boolean(el, "opModConnect"),
        op_mod_energize=opt_boolean(el, "opModEnergize"),
        op_mod_exp_lim_w=active_power(el, "opModExpLimW", CSIPAUS_NS),
        op_mod_gen_lim_w=active_power(el, "opModGenLimW", CSIPAUS_NS),
        op_mod_imp_lim_w=active_power(el, "opModImpLimW", CSIPAUS_NS),
        op_mod_load_lim_w=active_power(el, "opModLoadLimW", CSIPAUS_NS),
        ramp_tms=opt_integer(el, "rampTms", UINT16),
    )


def _event_status(el: Element) -> EventStatus:
    status = el.require("EventStatus")
    code = integer(status, "currentStatus", UINT8)
    try:
        return EventStatus(code)
    except ValueError:
        raise XmlContentError(
            child_path(status, "currentStatus"), f"{code} is not an event status"
        ) from None


def _control(el: Element, program: DERProgram | None) -> DERControl:
    interval = el.require("interval")
    return DERControl(
        mrid=mrid(el),
        href=el.attr("href"),
        creation_time=integer(el, "creationTime", TIME),
        start=integer(interval, "start", TIME),
        duration=integer(interval, "duration", UINT32),
        status=_event_status(el),
        base=_control_base(el.require("DERControlBase")),
        randomize_start=opt_integer(el, "randomizeStart", INT16) or 0,
        randomize_duration=opt_integer(el, "randomizeDuration", INT16) or 0,
        response_required=hex_value(el.attr("responseRequired"), f"{el.path}/@responseRequired", 1),
        reply_to=el.attr("replyTo"),
        description=el.text_of("description"),
        program_mrid=None if program is None else program.mrid,
        primacy=None if program is None else program.primacy,
    )


def parse_der_control_list(
    body: Body, *, program: DERProgram | None = None
) -> ListPage[DERControl]:
    """DERControlList of a program; ``program`` fills in each control's mRID and primacy."""
    return page(body, "DERControlList", "DERControl", lambda el: _control(el, program))


def parse_default_der_control(
    body: Body, *, program: DERProgram | None = None
) -> DefaultDERControl:
    """DefaultDERControl of a program; ``program`` fills in its mRID and primacy."""
    el = root(body, "DefaultDERControl")
    return DefaultDERControl(
        mrid=mrid(el),
        base=_control_base(el.require("DERControlBase")),
        set_grad_w=opt_integer(el, "setGradW", UINT16),
        program_mrid=None if program is None else program.mrid,
        primacy=None if program is None else program.primacy,
        href=el.attr("href"),
        set_soft_grad_w=opt_integer(el, "setSoftGradW", UINT16),
    )


# --- telemetry --------------------------------------------------------------------------------


def _reading_type(el: Element) -> ReadingType:
    return ReadingType(
        accumulation_behaviour=opt_integer(el, "accumulationBehaviour", UINT8),
        commodity=opt_integer(el, "commodity", UINT8),
        data_qualifier=opt_integer(el, "dataQualifier", UINT8),
        flow_direction=opt_integer(el, "flowDirection", UINT8),
        interval_length=opt_integer(el, "intervalLength", UINT32),
        kind=opt_integer(el, "kind", UINT8),
        phase=opt_integer(el, "phase", UINT8),
        power_of_ten_multiplier=opt_integer(el, "powerOfTenMultiplier", INT8),
        uom=opt_integer(el, "uom", UINT8),
    )


def _time_period(el: Element) -> TimePeriod:
    return TimePeriod(start=integer(el, "start", TIME), duration=integer(el, "duration", UINT32))


def _reading(el: Element) -> Reading:
    period = el.find("timePeriod")
    return Reading(
        value=opt_integer(el, "value", INT48),
        time_period=None if period is None else _time_period(period),
        quality_flags=opt_hex_int(el, "qualityFlags", 2),
    )


def mirror_meter_reading(el: Element) -> MirrorMeterReading:
    """One MirrorMeterReading element (of a usage point or a reading list)."""
    reading_type = el.find("ReadingType")
    reading = el.find("Reading")
    return MirrorMeterReading(
        mrid=mrid(el),
        description=el.text_of("description"),
        reading_type=None if reading_type is None else _reading_type(reading_type),
        reading=None if reading is None else _reading(reading),
        last_update_time=opt_integer(el, "lastUpdateTime", TIME),
        next_update_time=opt_integer(el, "nextUpdateTime", TIME),
        href=el.attr("href"),
    )


def _mirror_usage_point(el: Element) -> MirrorUsagePoint:
    device_lfdi = el.require("deviceLFDI")
    return MirrorUsagePoint(
        mrid=mrid(el),
        role_flags=hex_int(el, "roleFlags", 2),
        device_lfdi=hex_id(device_lfdi.text, device_lfdi.path, 20),
        service_category_kind=integer(el, "serviceCategoryKind", UINT8),
        status=integer(el, "status", UINT8),
        description=el.text_of("description"),
        href=el.attr("href"),
        post_rate=opt_integer(el, "postRate", UINT32),
        readings=tuple(mirror_meter_reading(m) for m in el.find_all("MirrorMeterReading")),
    )


def parse_mirror_usage_point(body: Body) -> MirrorUsagePoint:
    """A MirrorUsagePoint (GET at the Location of our POST: its href and postRate)."""
    return _mirror_usage_point(root(body, "MirrorUsagePoint"))


def parse_mirror_usage_point_list(body: Body) -> ListPage[MirrorUsagePoint]:
    """MirrorUsagePointList."""
    return page(body, "MirrorUsagePointList", "MirrorUsagePoint", _mirror_usage_point)
