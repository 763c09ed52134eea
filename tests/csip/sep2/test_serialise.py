"""Every document the client writes validates against the CSIP-AUS 1.2 XSDs and reads back."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.csip.sep2 import parse, serialise
from custom_components.dynamic_export.csip.sep2.codes import (
    ConnectStatus,
    DataQualifier,
    DERControlType,
    DERType,
    DOEControlType,
    FlowDirection,
    Kind,
    OperationalModeStatus,
    PhaseCode,
    ResponseStatus,
    RoleFlags,
    Uom,
)
from custom_components.dynamic_export.csip.sep2.der import (
    DERAvailability,
    DERCapability,
    DERSettings,
    DERStatus,
    StatusValue,
)
from custom_components.dynamic_export.csip.sep2.mirror import (
    MirrorMeterReading,
    MirrorUsagePoint,
    Reading,
    ReadingType,
    TimePeriod,
)
from custom_components.dynamic_export.csip.sep2.resources import EndDevice, Response
from custom_components.dynamic_export.csip.sep2.units import (
    ActivePower,
    ApparentPower,
    ReactivePower,
    WattHour,
    scale_value,
)
from custom_components.dynamic_export.csip.sep2.xml import CSIPAUS_NS, SEP_NS, parse_xml

from ..schemas import assert_valid, schema_errors
from . import readback

LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
SFDI = 167261211391
NOW = 1_760_000_000
MRID = "0123456789ABCDEF0123456789ABCDEF"
CONNECT_ENERGIZE = DERControlType.OP_MOD_CONNECT | DERControlType.OP_MOD_ENERGIZE
ALL_DOE = (
    DOEControlType.OP_MOD_EXP_LIM_W
    | DOEControlType.OP_MOD_IMP_LIM_W
    | DOEControlType.OP_MOD_GEN_LIM_W
    | DOEControlType.OP_MOD_LOAD_LIM_W
)


def _mmr(suffix: str, **kwargs: object) -> MirrorMeterReading:
    return MirrorMeterReading(mrid=MRID[:-2] + suffix, **kwargs)  # type: ignore[arg-type]


SITE_POWER_TYPE = ReadingType(
    commodity=1,
    data_qualifier=DataQualifier.AVERAGE,
    flow_direction=FlowDirection.FORWARD,
    interval_length=300,
    kind=Kind.POWER,
    phase=PhaseCode.NOT_APPLICABLE,
    power_of_ten_multiplier=0,
    uom=Uom.WATT,
)
FREQUENCY_TYPE = ReadingType(
    commodity=1,
    data_qualifier=DataQualifier.MINIMUM,
    kind=Kind.POWER,
    power_of_ten_multiplier=-2,
    uom=Uom.HERTZ,
    accumulation_behaviour=12,
)


def test_end_device_minimal_and_full() -> None:
    device = EndDevice(href=None, lfdi=LFDI, sfdi=SFDI, changed_time=NOW, enabled=True)
    body = serialise.end_device_xml(device)
    assert_valid(body)
    assert b"<lFDI>3E4F45AB31EDFE5B67E343E5E4562E31984E23E5</lFDI>" in body
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?><EndDevice xmlns="')
    back = parse.parse_end_device(body)
    assert (back.lfdi, back.sfdi, back.changed_time, back.enabled) == (LFDI, SFDI, NOW, True)
    full = EndDevice(None, LFDI, SFDI, NOW, enabled=False, device_category=0x4000, post_rate=60)
    assert_valid(serialise.end_device_xml(full))
    assert_valid(serialise.end_device_xml(EndDevice(None, None, SFDI, NOW)))


def test_connection_point_uses_csipaus_namespace() -> None:
    body = serialise.connection_point_xml("4407000123")
    assert_valid(body)
    root = parse_xml(body)
    assert (root.ns, root.name) == (CSIPAUS_NS, "ConnectionPoint")
    assert root.require("connectionPointId", CSIPAUS_NS).text == "4407000123"
    assert readback.parse_connection_point(body) == "4407000123"
    with pytest.raises(ValueError, match="longer than 32"):
        serialise.connection_point_xml("1" * 33)
    with pytest.raises(ValueError, match="empty"):
        serialise.connection_point_xml("")


@pytest.mark.parametrize("der_type", [DERType.PHOTOVOLTAIC, DERType.COMBINED_PV_AND_STORAGE])
def test_der_capability(der_type: DERType) -> None:
    cap = DERCapability(
        der_type=der_type,
        modes_supported=CONNECT_ENERGIZE,
        doe_modes_supported=ALL_DOE,
        rtg_max_w=ActivePower.from_watts(10_000),
        rtg_max_va=ApparentPower.from_va(10_000),
        rtg_max_var=ReactivePower.from_var(6_000),
        rtg_max_var_neg=ReactivePower.from_var(-6_000),
        rtg_max_charge_rate_w=ActivePower.from_watts(5_000),
        rtg_max_discharge_rate_w=ActivePower.from_watts(5_000),
        rtg_max_wh=WattHour.from_wh(13_500),
        rtg_normal_category=2,
        rtg_abnormal_category=3,
    )
    body = serialise.der_capability_xml(cap)
    assert_valid(body)
    assert b"<modesSupported>0000000C</modesSupported>" in body
    assert b"<csipaus:doeModesSupported>0F</csipaus:doeModesSupported>" in body
    assert f"<type>{int(der_type)}</type>".encode() in body
    assert readback.parse_der_capability(body) == cap
    minimal = DERCapability(DERType.PHOTOVOLTAIC, CONNECT_ENERGIZE, 0x05, ActivePower(5000))
    assert_valid(serialise.der_capability_xml(minimal))


def test_der_settings() -> None:
    settings = DERSettings(
        updated_time=NOW,
        set_max_w=ActivePower.from_watts(9_990),
        set_grad_w=27,
        modes_enabled=CONNECT_ENERGIZE,
        doe_modes_enabled=DOEControlType.OP_MOD_EXP_LIM_W | DOEControlType.OP_MOD_GEN_LIM_W,
        set_max_va=ApparentPower.from_va(10_000),
        set_max_var=ReactivePower.from_var(4_400),
        set_max_var_neg=ReactivePower.from_var(-4_400),
        set_max_charge_rate_w=ActivePower.from_watts(5_000),
        set_max_discharge_rate_w=ActivePower.from_watts(5_000),
        set_max_wh=WattHour.from_wh(13_500),
        set_soft_grad_w=100,
    )
    body = serialise.der_settings_xml(settings)
    assert_valid(body)
    assert b"<csipaus:doeModesEnabled>05</csipaus:doeModesEnabled>" in body
    assert readback.parse_der_settings(body) == settings
    assert_valid(serialise.der_settings_xml(DERSettings(NOW, ActivePower(5000), 0)))


def test_der_status() -> None:
    connected = ConnectStatus.CONNECTED | ConnectStatus.AVAILABLE | ConnectStatus.OPERATING
    status = DERStatus(
        reading_time=NOW,
        gen_connect_status=StatusValue(connected, NOW - 60),
        inverter_status=StatusValue(4, NOW - 60),
        local_control_mode_status=StatusValue(0, NOW - 60),
        operational_mode_status=StatusValue(OperationalModeStatus.OPERATIONAL, NOW - 60),
        state_of_charge_status=StatusValue(5_550, NOW),
        storage_mode_status=StatusValue(1, NOW),
        stor_connect_status=StatusValue(ConnectStatus.CONNECTED, NOW),
        alarm_status=0,
    )
    body = serialise.der_status_xml(status)
    assert_valid(body)
    assert b"<genConnectStatus><dateTime>" in body
    assert b"<value>07</value></genConnectStatus>" in body
    assert readback.parse_der_status(body) == status
    assert_valid(serialise.der_status_xml(DERStatus(reading_time=NOW)))


def test_der_availability() -> None:
    avail = DERAvailability(
        reading_time=NOW,
        availability_duration=3600,
        max_charge_duration=1800,
        reserve_charge_percent=1000,
        reserve_percent=2000,
        stat_var_avail=ReactivePower.from_var(3000),
        stat_w_avail=ActivePower.from_watts(4321),
    )
    body = serialise.der_availability_xml(avail)
    assert_valid(body)
    assert readback.parse_der_availability(body) == avail
    assert_valid(serialise.der_availability_xml(DERAvailability(reading_time=NOW)))


@pytest.mark.parametrize("root", ["DERControlResponse", "Response"])
@pytest.mark.parametrize("status", list(ResponseStatus))
def test_response(root: str, status: ResponseStatus) -> None:
    response = Response(MRID.lower(), LFDI, status, created_date_time=NOW)
    body = serialise.response_xml(response, root=root)
    assert_valid(body)
    assert f"<subject>{MRID.lower()}</subject>".encode() in body  # the server's mRID, verbatim
    assert readback.parse_response(body) == response


def test_response_rejects_bad_root_and_ids() -> None:
    with pytest.raises(ValueError, match="not a response"):
        serialise.response_xml(Response(MRID, LFDI, 1), root="EndDevice")
    with pytest.raises(ValueError, match="subject"):
        serialise.response_xml(Response("not-hex", LFDI, 1))
    with pytest.raises(ValueError, match="endDeviceLFDI"):
        serialise.response_xml(Response(MRID, LFDI + "00", 1))


def test_mirror_usage_point_with_definitions() -> None:
    mup = MirrorUsagePoint(
        mrid=MRID,
        role_flags=RoleFlags.IS_MIRROR | RoleFlags.IS_PREMISES_AGGREGATION_POINT,
        device_lfdi=LFDI,
        description="Site measurement",
        post_rate=300,
        readings=(
            _mmr("01", description="Site Avg Real Power (W)", reading_type=SITE_POWER_TYPE),
            _mmr("02", description="Site Min Frequency (Hz)", reading_type=FREQUENCY_TYPE),
        ),
    )
    body = serialise.mirror_usage_point_xml(mup)
    assert_valid(body)
    assert b"<roleFlags>0003</roleFlags>" in body
    assert parse.parse_mirror_usage_point(body) == mup
    der = MirrorUsagePoint(
        MRID, RoleFlags.IS_MIRROR | RoleFlags.IS_DER | RoleFlags.IS_SUBMETER, LFDI
    )
    assert_valid(serialise.mirror_usage_point_xml(der))


def test_mirror_meter_readings() -> None:
    value = _mmr(
        "02",
        description="Site Min Frequency (Hz)",
        last_update_time=NOW,
        next_update_time=NOW + 300,
        reading=Reading(value=4_998, time_period=TimePeriod(NOW - 300, 300), quality_flags=0),
        reading_type=FREQUENCY_TYPE,
    )
    body = serialise.mirror_meter_reading_xml(value)
    assert_valid(body)
    assert b"<timePeriod><duration>300</duration><start>" in body
    assert readback.parse_mirror_meter_reading(body) == value
    batch = [value, _mmr("01", reading=Reading(value=-3_200))]
    listing = serialise.mirror_meter_reading_list_xml(batch)
    assert_valid(listing)
    page = readback.parse_mirror_meter_reading_list(listing)
    assert (page.all, page.results, page.items) == (2, 2, tuple(batch))
    assert_valid(serialise.mirror_meter_reading_list_xml([]))


def test_values_are_range_checked() -> None:
    with pytest.raises(ValueError, match="value=40000"):
        serialise.der_capability_xml(DERCapability(DERType.PHOTOVOLTAIC, 0, 0, ActivePower(40_000)))
    with pytest.raises(ValueError, match="modesSupported"):
        serialise.der_capability_xml(
            DERCapability(DERType.PHOTOVOLTAIC, 1 << 32, 0, ActivePower(1))
        )
    with pytest.raises(ValueError, match="description"):
        serialise.mirror_usage_point_xml(MirrorUsagePoint(MRID, 3, LFDI, description="x" * 33))
    with pytest.raises(ValueError, match="value=10001"):
        serialise.der_status_xml(DERStatus(NOW, state_of_charge_status=StatusValue(10_001, NOW)))
    # A reading's value is an Int48: 2**47 - 1 is the largest.
    serialise.mirror_meter_reading_xml(_mmr("03", reading=Reading(value=2**47 - 1)))
    with pytest.raises(ValueError, match=f"value={2**47}"):
        serialise.mirror_meter_reading_xml(_mmr("03", reading=Reading(value=2**47)))


def test_text_is_escaped() -> None:
    body = serialise.connection_point_xml("<&>\"'")
    assert_valid(body)
    assert readback.parse_connection_point(body) == "<&>\"'"


def test_the_validator_catches_wrong_order_and_missing_elements() -> None:
    """Guards the guard: a schema that accepted anything would make the tests above moot."""
    wrong_order = (
        f'<DERSettings xmlns="{SEP_NS}"><updatedTime>1</updatedTime><setGradW>0</setGradW>'
        "<setMaxW><multiplier>0</multiplier><value>1</value></setMaxW></DERSettings>"
    ).encode()
    assert schema_errors(wrong_order)
    no_doe = (
        f'<DERCapability xmlns="{SEP_NS}"><modesSupported>0C</modesSupported>'
        "<rtgMaxW><multiplier>0</multiplier><value>1</value></rtgMaxW><type>4</type>"
        "</DERCapability>"
    ).encode()
    assert any("doeModesSupported" in e for e in schema_errors(no_doe))


@pytest.mark.parametrize(
    ("amount", "signed", "expected"),
    [
        (0, True, (0, 0)),
        (10_000, True, (10_000, 0)),
        (32_767, True, (32_767, 0)),
        (32_768, True, (3_277, 1)),
        (-32_768, True, (-32_768, 0)),
        (50_000, True, (5_000, 1)),
        (50_000, False, (50_000, 0)),
        (123_456_789, True, (12_346, 4)),
        (1234.5, True, (12_345, -1)),
        (49.95, False, (49_950, -3)),
        (0.5, True, (500, -3)),
    ],
)
def test_scale_value(amount: float, signed: bool, expected: tuple[int, int]) -> None:
    assert scale_value(amount, signed=signed) == expected


@pytest.mark.parametrize(
    ("amount", "signed"), [(float("nan"), True), (float("inf"), True), (-1, False), (1e15, True)]
)
def test_scale_value_refuses(amount: float, signed: bool) -> None:
    with pytest.raises(ValueError, match=r"cannot encode|does not fit"):
        scale_value(amount, signed=signed)


def test_scaled_classes_round_trip_their_amount() -> None:
    assert ActivePower.from_watts(-4_200.0).watts == -4_200
    assert ApparentPower.from_va(65_535) == ApparentPower(65_535, 0)
    assert ReactivePower.from_var(-100_000) == ReactivePower(-10_000, 1)
    assert WattHour.from_wh(13_500) == WattHour(13_500, 0)
