"""IEEE 2030.5 and CSIP-AUS enumerations the client uses, with their wire values."""

from __future__ import annotations

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


class InverterStatus(IntEnum):
    """DERStatus inverterStatus: the same states as SunSpec's ``St`` (1-8)."""

    NOT_APPLICABLE = 0
    OFF = 1
    SLEEPING = 2
    STARTING = 3
    MPPT = 4
    THROTTLED = 5
    """Forced power reduction / derating."""
    SHUTTING_DOWN = 6
    FAULT = 7
    STANDBY = 8
    TEST = 9
    MANUFACTURER = 10


class LocalControlModeStatus(IntEnum):
    """DERStatus localControlModeStatus: who is in charge of the DER's output."""

    LOCAL = 0
    REMOTE = 1


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
"""UsagePoint.serviceCategoryKind for electricity."""
USAGE_POINT_STATUS_ON = 1
"""UsagePoint.status: on."""
