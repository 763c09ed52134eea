"""IEEE 2030.5 resources the client reads, as plain dataclasses.

Parsing from XML and writing our own documents live next to these classes;
the schedule works only with these types, never with XML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag


class EventStatus(IntEnum):
    """EventStatus.currentStatus of a DERControl."""

    SCHEDULED = 0
    ACTIVE = 1
    CANCELLED = 2
    CANCELLED_WITH_RANDOMIZATION = 3
    SUPERSEDED = 4


class ResponseStatus(IntEnum):
    """Response.status values the client sends (IEEE 2030.5 Table 27)."""

    RECEIVED = 1
    STARTED = 2
    COMPLETED = 3
    OPTED_OUT = 4
    OPTED_IN = 5
    CANCELLED = 6
    SUPERSEDED = 7


@dataclass(frozen=True, slots=True)
class ActivePower:
    """A power value as 2030.5 writes it: value × 10^multiplier watts."""

    value: int
    multiplier: int = 0

    @property
    def watts(self) -> float:
        """The value in watts."""
        return float(self.value) * 10.0**self.multiplier

    @classmethod
    def from_watts(cls, watts: float) -> ActivePower:
        """The closest value that fits the wire type (Int16 value, see ``scale_value``)."""
        return cls(*scale_value(watts, signed=True))


@dataclass(frozen=True, slots=True)
class DERControlBase:
    """The controls of a DERControl or DefaultDERControl (only what CSIP-AUS uses).

    ``ramp_tms`` is in hundredths of a second, as on the wire.
    """

    op_mod_connect: bool | None = None
    op_mod_energize: bool | None = None
    op_mod_exp_lim_w: ActivePower | None = None
    op_mod_gen_lim_w: ActivePower | None = None
    op_mod_imp_lim_w: ActivePower | None = None
    op_mod_load_lim_w: ActivePower | None = None
    ramp_tms: int | None = None


@dataclass(frozen=True, slots=True)
class DERControl:
    """One scheduled event of a DER program."""

    mrid: str
    href: str | None
    creation_time: int
    """Unix seconds (server time)."""
    start: int
    """interval.start, Unix seconds (server time)."""
    duration: int
    """interval.duration, seconds."""
    status: EventStatus
    base: DERControlBase
    randomize_start: int = 0
    randomize_duration: int = 0
    response_required: int = 0
    """Bit field: 1 message received, 2 specific response (started/completed...)."""
    reply_to: str | None = None
    description: str | None = None
    program_mrid: str | None = None
    primacy: int | None = None
    """Primacy of the program the control came from (lower wins)."""


@dataclass(frozen=True, slots=True)
class DefaultDERControl:
    """The control a program applies when none of its events is active."""

    mrid: str
    base: DERControlBase
    set_grad_w: int | None = None
    """Ramp rate in hundredths of a percent of rated power per second (0: no limit)."""
    program_mrid: str | None = None
    primacy: int | None = None
    href: str | None = None
    set_soft_grad_w: int | None = None
    """Soft-start ramp rate, hundredths of a percent of rated power per second."""


@dataclass(frozen=True, slots=True)
class DERProgram:
    """A DER program with its default control and its events."""

    mrid: str
    href: str | None
    primacy: int
    description: str | None = None
    default_control: DefaultDERControl | None = None
    controls: tuple[DERControl, ...] = field(default_factory=tuple)
    default_control_href: str | None = None
    control_list_href: str | None = None
    active_control_list_href: str | None = None


# --- wire values ------------------------------------------------------------------------------


def scale_value(amount: float, *, signed: bool) -> tuple[int, int]:
    """Split ``amount`` into (value, power-of-ten multiplier) for a 16-bit wire value.

    Integers that fit keep multiplier 0; larger ones lose their last digits (multiplier > 0);
    fractions keep up to three decimals. Raises ValueError for NaN, infinity, a negative
    unsigned amount or one beyond 10^9 of the 16-bit range.
    """
    if not math.isfinite(amount) or (amount < 0 and not signed):
        raise ValueError(f"cannot encode {amount} as a {'' if signed else 'un'}signed value")
    low, high = (-0x8000, 0x7FFF) if signed else (0, 0xFFFF)
    start = 0 if float(amount).is_integer() else -3
    for multiplier in range(start, 10):
        value = round(amount * 10.0**-multiplier)
        if low <= value <= high:
            return value, multiplier
    raise ValueError(f"{amount} does not fit a {'signed' if signed else 'unsigned'} value")


@dataclass(frozen=True, slots=True)
class ReactivePower:
    """Reactive power as value × 10^multiplier var (Int16 value)."""

    value: int
    multiplier: int = 0

    @classmethod
    def from_var(cls, var: float) -> ReactivePower:
        """The closest value that fits the wire type."""
        return cls(*scale_value(var, signed=True))


@dataclass(frozen=True, slots=True)
class ApparentPower:
    """Apparent power as value × 10^multiplier VA (UInt16 value)."""

    value: int
    multiplier: int = 0

    @classmethod
    def from_va(cls, va: float) -> ApparentPower:
        """The closest value that fits the wire type."""
        return cls(*scale_value(va, signed=False))


@dataclass(frozen=True, slots=True)
class WattHour:
    """Energy as value × 10^multiplier Wh (UInt16 value)."""

    value: int
    multiplier: int = 0

    @classmethod
    def from_wh(cls, wh: float) -> WattHour:
        """The closest value that fits the wire type."""
        return cls(*scale_value(wh, signed=False))


# --- codes (IEEE 2030.5 and CSIP-AUS enumerations the client uses) -----------------------------


class DERType(IntEnum):
    """DERCapability.type."""

    NOT_APPLICABLE = 0
    VIRTUAL_OR_MIXED = 1
    RECIPROCATING_ENGINE = 2
    FUEL_CELL = 3
    PHOTOVOLTAIC = 4
    COMBINED_HEAT_AND_POWER = 5
    OTHER_GENERATION = 6
    OTHER_STORAGE = 80
    ELECTRIC_VEHICLE = 81
    EVSE = 82
    COMBINED_PV_AND_STORAGE = 83
    """Not 82: SunSpec's PV_STOR code is 82 but 2030.5's 82 is EVSE."""


class DERControlType(IntFlag):
    """Bits of DERCapability.modesSupported and DERSettings.modesEnabled."""

    CHARGE = 1 << 0
    DISCHARGE = 1 << 1
    OP_MOD_CONNECT = 1 << 2
    OP_MOD_ENERGIZE = 1 << 3
    OP_MOD_FIXED_PF_ABSORB_W = 1 << 4
    OP_MOD_FIXED_PF_INJECT_W = 1 << 5
    OP_MOD_FIXED_VAR = 1 << 6
    OP_MOD_FIXED_W = 1 << 7
    OP_MOD_FREQ_DROOP = 1 << 8
    OP_MOD_FREQ_WATT = 1 << 9
    OP_MOD_MAX_LIM_W = 1 << 20
    OP_MOD_TARGET_VAR = 1 << 21
    OP_MOD_TARGET_W = 1 << 22
    OP_MOD_VOLT_VAR = 1 << 23
    OP_MOD_VOLT_WATT = 1 << 24
    OP_MOD_WATT_PF = 1 << 25
    OP_MOD_WATT_VAR = 1 << 26


class DOEControlType(IntFlag):
    """Bits of csipaus:doeModesSupported / doeModesEnabled (dynamic operating envelopes)."""

    OP_MOD_EXP_LIM_W = 1 << 0
    OP_MOD_IMP_LIM_W = 1 << 1
    OP_MOD_GEN_LIM_W = 1 << 2
    OP_MOD_LOAD_LIM_W = 1 << 3


class ConnectStatus(IntFlag):
    """DERStatus genConnectStatus / storConnectStatus bits."""

    CONNECTED = 1 << 0
    AVAILABLE = 1 << 1
    OPERATING = 1 << 2
    TEST = 1 << 3
    FAULT = 1 << 4


class OperationalModeStatus(IntEnum):
    """DERStatus operationalModeStatus."""

    NOT_APPLICABLE = 0
    OFF = 1
    OPERATIONAL = 2
    TEST = 3


class RoleFlags(IntFlag):
    """UsagePoint roleFlags."""

    IS_MIRROR = 1 << 0
    IS_PREMISES_AGGREGATION_POINT = 1 << 1
    IS_PEV = 1 << 2
    IS_DER = 1 << 3
    IS_REVENUE_QUALITY = 1 << 4
    IS_DC = 1 << 5
    IS_SUBMETER = 1 << 6


class Uom(IntEnum):
    """ReadingType.uom values the client reports."""

    AMPERE = 5
    VOLT = 29
    HERTZ = 33
    WATT = 38
    VOLT_AMPERE = 61
    VAR = 63
    COS_THETA = 65
    WATT_HOUR = 72


class Kind(IntEnum):
    """ReadingType.kind."""

    NOT_APPLICABLE = 0
    DEMAND = 8
    ENERGY = 12
    POWER = 37


class DataQualifier(IntEnum):
    """ReadingType.dataQualifier."""

    NOT_APPLICABLE = 0
    AVERAGE = 2
    MAXIMUM = 8
    MINIMUM = 9
    NORMAL = 12


class FlowDirection(IntEnum):
    """ReadingType.flowDirection: forward is delivered to the customer (import)."""

    NOT_APPLICABLE = 0
    FORWARD = 1
    REVERSE = 19


class PhaseCode(IntEnum):
    """ReadingType.phase."""

    NOT_APPLICABLE = 0
    C = 32
    CN = 33
    CA = 40
    B = 64
    BN = 65
    BC = 66
    A = 128
    AN = 129
    AB = 132
    ABC = 224


COMMODITY_ELECTRICITY_SECONDARY = 1
"""ReadingType.commodity for a low-voltage (premises side) meter."""
SERVICE_KIND_ELECTRICITY = 0
USAGE_POINT_STATUS_ON = 1


# --- what the client reads --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListPage[T]:
    """One page of a 2030.5 list.

    ``all`` counts the whole list on the server, ``results`` the items in this page; the client
    pages with ``?s=<start>&l=<limit>`` until it has ``all`` items or a page is empty.
    """

    href: str | None
    all: int
    results: int
    items: tuple[T, ...] = ()
    poll_rate: int | None = None
    """Seconds; None when the server did not say (the XSD default is 900)."""


@dataclass(frozen=True, slots=True)
class DeviceCapability:
    """The entry point (dcap): where the other resources live."""

    href: str | None
    poll_rate: int | None = None
    time_href: str | None = None
    end_device_list_href: str | None = None
    mirror_usage_point_list_href: str | None = None
    self_device_href: str | None = None
    der_program_list_href: str | None = None
    response_set_list_href: str | None = None


@dataclass(frozen=True, slots=True)
class Time:
    """Server time: all values in seconds (Unix time or offsets)."""

    href: str | None
    current_time: int
    dst_end_time: int
    dst_offset: int
    dst_start_time: int
    tz_offset: int
    quality: int
    local_time: int | None = None
    poll_rate: int | None = None


@dataclass(frozen=True, slots=True)
class EndDevice:
    """Our device as the server knows it (and as we POST it, where only the identity is used)."""

    href: str | None
    lfdi: str | None
    sfdi: int
    changed_time: int
    enabled: bool | None = None
    """None when the server left it out."""
    device_category: int | None = None
    post_rate: int | None = None
    der_list_href: str | None = None
    fsa_list_href: str | None = None
    registration_href: str | None = None
    connection_point_href: str | None = None
    """csipaus:ConnectionPointLink: where to PUT the NMI (in-band registration)."""
    subscription_list_href: str | None = None
    device_information_href: str | None = None
    device_status_href: str | None = None


@dataclass(frozen=True, slots=True)
class Registration:
    """The registration record of our EndDevice; ``pin`` is checked against the installer's."""

    href: str | None
    date_time_registered: int
    pin: int
    poll_rate: int | None = None


@dataclass(frozen=True, slots=True)
class FunctionSetAssignments:
    """A group of programs assigned to our device."""

    href: str | None
    mrid: str
    description: str | None = None
    der_program_list_href: str | None = None
    time_href: str | None = None


@dataclass(frozen=True, slots=True)
class DER:
    """One DER of our EndDevice: links to where its capability, settings and status go."""

    href: str | None
    der_capability_href: str | None = None
    der_settings_href: str | None = None
    der_status_href: str | None = None
    der_availability_href: str | None = None
    associated_der_program_list_href: str | None = None
    current_der_program_href: str | None = None
    associated_usage_point_href: str | None = None


# --- what the client sends --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DERCapability:
    """Nameplate ratings and supported modes (PUT to DERCapabilityLink)."""

    der_type: int
    modes_supported: int
    """DERControlType bits."""
    doe_modes_supported: int
    """DOEControlType bits; mandatory in CSIP-AUS."""
    rtg_max_w: ActivePower
    rtg_max_va: ApparentPower | None = None
    rtg_max_var: ReactivePower | None = None
    rtg_max_var_neg: ReactivePower | None = None
    rtg_max_charge_rate_w: ActivePower | None = None
    rtg_max_discharge_rate_w: ActivePower | None = None
    rtg_max_wh: WattHour | None = None
    rtg_normal_category: int | None = None
    rtg_abnormal_category: int | None = None


@dataclass(frozen=True, slots=True)
class DERSettings:
    """Settings in force (PUT to DERSettingsLink)."""

    updated_time: int
    set_max_w: ActivePower
    set_grad_w: int
    """Hundredths of a percent of rated power per second; 0 means no limit."""
    modes_enabled: int | None = None
    doe_modes_enabled: int | None = None
    set_max_va: ApparentPower | None = None
    set_max_var: ReactivePower | None = None
    set_max_var_neg: ReactivePower | None = None
    set_max_charge_rate_w: ActivePower | None = None
    set_max_discharge_rate_w: ActivePower | None = None
    set_max_wh: WattHour | None = None
    set_soft_grad_w: int | None = None


@dataclass(frozen=True, slots=True)
class StatusValue:
    """A DERStatus value with the time it last changed."""

    value: int
    date_time: int


@dataclass(frozen=True, slots=True)
class DERStatus:
    """Live status (PUT to DERStatusLink)."""

    reading_time: int
    gen_connect_status: StatusValue | None = None
    """ConnectStatus bits."""
    inverter_status: StatusValue | None = None
    local_control_mode_status: StatusValue | None = None
    operational_mode_status: StatusValue | None = None
    """OperationalModeStatus."""
    state_of_charge_status: StatusValue | None = None
    """Hundredths of a percent."""
    storage_mode_status: StatusValue | None = None
    stor_connect_status: StatusValue | None = None
    alarm_status: int | None = None


@dataclass(frozen=True, slots=True)
class DERAvailability:
    """What the DER could deliver now (PUT to DERAvailabilityLink)."""

    reading_time: int
    availability_duration: int | None = None
    max_charge_duration: int | None = None
    reserve_charge_percent: int | None = None
    reserve_percent: int | None = None
    stat_var_avail: ReactivePower | None = None
    stat_w_avail: ActivePower | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """A (DER control) response POSTed to an event's replyTo."""

    subject: str
    """mRID of the event."""
    end_device_lfdi: str
    status: int | None
    """ResponseStatus."""
    created_date_time: int | None = None


@dataclass(frozen=True, slots=True)
class TimePeriod:
    """A DateTimeInterval: start in Unix seconds, duration in seconds."""

    start: int
    duration: int


@dataclass(frozen=True, slots=True)
class ReadingType:
    """What a mirrored reading measures; value = Reading.value × 10^power_of_ten_multiplier."""

    accumulation_behaviour: int | None = None
    commodity: int | None = None
    data_qualifier: int | None = None
    flow_direction: int | None = None
    interval_length: int | None = None
    kind: int | None = None
    phase: int | None = None
    power_of_ten_multiplier: int | None = None
    uom: int | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One mirrored measurement; ``value`` is already scaled by the ReadingType multiplier."""

    value: int | None = None
    time_period: TimePeriod | None = None
    quality_flags: int | None = None


@dataclass(frozen=True, slots=True)
class MirrorMeterReading:
    """A reading definition (with ReadingType) or a posted value (with Reading)."""

    mrid: str
    description: str | None = None
    reading_type: ReadingType | None = None
    reading: Reading | None = None
    last_update_time: int | None = None
    next_update_time: int | None = None
    href: str | None = None


@dataclass(frozen=True, slots=True)
class MirrorUsagePoint:
    """A usage point the client mirrors telemetry into (site or DER)."""

    mrid: str
    role_flags: int
    device_lfdi: str
    service_category_kind: int = SERVICE_KIND_ELECTRICITY
    status: int = USAGE_POINT_STATUS_ON
    description: str | None = None
    href: str | None = None
    post_rate: int | None = None
    """Seconds between posts the server asks for; None when it did not say."""
    readings: tuple[MirrorMeterReading, ...] = ()
