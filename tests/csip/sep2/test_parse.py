"""Parsing server documents into resources: realistic CSIP-AUS samples and broken ones.

The samples are written by hand after sep.xsd / csipaus-core.xsd, with the prefix styles
servers use (default namespace, ``ns2:``/``ns3:``, ``csipaus:``), and are themselves checked
against the schema so they stay realistic.
"""

from __future__ import annotations

from typing import Any

import pytest

from custom_components.dynamic_export.csip.sep2 import parse
from custom_components.dynamic_export.csip.sep2.codes import EventStatus
from custom_components.dynamic_export.csip.sep2.resources import DERControlBase, DERProgram
from custom_components.dynamic_export.csip.sep2.units import ActivePower
from custom_components.dynamic_export.csip.sep2.xml import (
    XmlContentError,
    XmlError,
    XmlNamespaceError,
    parse_xml,
)

from ..schemas import assert_valid
from . import readback

SEP = 'xmlns="urn:ieee:std:2030.5:ns"'
CSIP = 'xmlns:csipaus="https://csipaus.org/ns"'
NS2 = 'xmlns:ns2="urn:ieee:std:2030.5:ns" xmlns:ns3="https://csipaus.org/ns"'
LFDI = "3e4f45ab31edfe5b67e343e5e4562e31984e23e5"

DCAP = f"""<?xml version="1.0" encoding="UTF-8"?>
<DeviceCapability {SEP} {CSIP} href="/api/v2/dcap" pollRate="300">
  <DERProgramListLink href="/api/v2/derp" all="0"/>
  <TimeLink href="/api/v2/tm"/>
  <EndDeviceListLink href="/api/v2/edev" all="1"/>
  <MirrorUsagePointListLink href="/api/v2/mup" all="0"/>
</DeviceCapability>"""

TIME = f"""<Time {SEP} href="/api/v2/tm" pollRate="900">
  <currentTime>1760000000</currentTime>
  <dstEndTime>1775404800</dstEndTime>
  <dstOffset>3600</dstOffset>
  <dstStartTime>1759593600</dstStartTime>
  <localTime>1760037800</localTime>
  <quality>7</quality>
  <tzOffset>34200</tzOffset>
</Time>"""

EDEV_LIST = f"""<ns2:EndDeviceList {NS2} href="/api/v2/edev" all="2" results="2" subscribable="0"
    pollRate="300">
  <ns2:EndDevice href="/api/v2/edev/3" subscribable="0">
    <ns2:DERListLink href="/api/v2/edev/3/der" all="1"/>
    <ns2:DeviceStatusLink href="/api/v2/edev/3/ds"/>
    <ns2:lFDI>{LFDI}</ns2:lFDI>
    <ns2:sFDI>167261211391</ns2:sFDI>
    <ns2:changedTime>1759990000</ns2:changedTime>
    <ns2:enabled>1</ns2:enabled>
    <ns2:FunctionSetAssignmentsListLink href="/api/v2/edev/3/fsa" all="2"/>
    <ns2:postRate>60</ns2:postRate>
    <ns2:RegistrationLink href="/api/v2/edev/3/rg"/>
    <ns2:SubscriptionListLink href="/api/v2/edev/3/sub" all="0"/>
    <ns3:ConnectionPointLink href="/api/v2/edev/3/cp"/>
  </ns2:EndDevice>
  <ns2:EndDevice href="/api/v2/edev/4">
    <ns2:sFDI>1234567890</ns2:sFDI>
    <ns2:changedTime>1759990001</ns2:changedTime>
  </ns2:EndDevice>
</ns2:EndDeviceList>"""

REGISTRATION = f"""<Registration {SEP} href="/api/v2/edev/3/rg" pollRate="86400">
  <dateTimeRegistered>1759990000</dateTimeRegistered>
  <pIN>111115</pIN>
</Registration>"""

FSA_LIST = f"""<FunctionSetAssignmentsList {SEP} href="/api/v2/edev/3/fsa" all="2" results="2"
    pollRate="300">
  <FunctionSetAssignments href="/api/v2/edev/3/fsa/1">
    <DERProgramListLink href="/api/v2/edev/3/fsa/1/derp" all="1"/>
    <TimeLink href="/api/v2/tm"/>
    <mRID>A1000000000000000000000000000001</mRID>
    <description>DNSP network</description>
  </FunctionSetAssignments>
  <FunctionSetAssignments href="/api/v2/edev/3/fsa/2">
    <DERProgramListLink href="/api/v2/edev/3/fsa/2/derp" all="1"/>
    <mRID>a1000000000000000000000000000002</mRID>
  </FunctionSetAssignments>
</FunctionSetAssignmentsList>"""

DERP_LIST = f"""<DERProgramList {SEP} href="/api/v2/edev/3/fsa/1/derp" all="1" results="1"
    pollRate="300">
  <DERProgram href="/api/v2/edev/3/fsa/1/derp/1">
    <mRID>B1000000000000000000000000000001</mRID>
    <description>Dynamic exports</description>
    <ActiveDERControlListLink href="/api/v2/edev/3/fsa/1/derp/1/actderc" all="1"/>
    <DefaultDERControlLink href="/api/v2/edev/3/fsa/1/derp/1/dderc"/>
    <DERControlListLink href="/api/v2/edev/3/fsa/1/derp/1/derc" all="4"/>
    <primacy>1</primacy>
  </DERProgram>
</DERProgramList>"""

DERC_LIST = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<ns2:DERControlList {NS2} href="/api/v2/edev/3/fsa/1/derp/1/derc" all="4" results="4"
    subscribable="1">
  <ns2:DERControl href="/api/v2/edev/3/fsa/1/derp/1/derc/1" replyTo="/api/v2/rsp"
      responseRequired="03">
    <ns2:mRID>C1000000000000000000000000000001</ns2:mRID>
    <ns2:description>Export limit 1.5 kW</ns2:description>
    <ns2:creationTime>1759999000</ns2:creationTime>
    <ns2:EventStatus>
      <ns2:currentStatus>1</ns2:currentStatus>
      <ns2:dateTime>1760000000</ns2:dateTime>
      <ns2:potentiallySuperseded>false</ns2:potentiallySuperseded>
    </ns2:EventStatus>
    <ns2:interval><ns2:duration>1800</ns2:duration><ns2:start>1759999800</ns2:start></ns2:interval>
    <ns2:DERControlBase>
      <ns3:opModExpLimW><ns2:multiplier>2</ns2:multiplier><ns2:value>15</ns2:value></ns3:opModExpLimW>
    </ns2:DERControlBase>
  </ns2:DERControl>
  <ns2:DERControl replyTo="/api/v2/rsp" responseRequired="01">
    <ns2:mRID>C1000000000000000000000000000002</ns2:mRID>
    <ns2:creationTime>1759999100</ns2:creationTime>
    <ns2:EventStatus>
      <ns2:currentStatus>0</ns2:currentStatus>
      <ns2:dateTime>1759999100</ns2:dateTime>
      <ns2:potentiallySuperseded>1</ns2:potentiallySuperseded>
      <ns2:potentiallySupersededTime>1759999100</ns2:potentiallySupersededTime>
      <ns2:reason>network outage</ns2:reason>
    </ns2:EventStatus>
    <ns2:interval><ns2:duration>600</ns2:duration><ns2:start>1760003600</ns2:start></ns2:interval>
    <ns2:randomizeDuration>30</ns2:randomizeDuration>
    <ns2:randomizeStart>-60</ns2:randomizeStart>
    <ns2:DERControlBase>
      <ns2:opModConnect>0</ns2:opModConnect>
      <ns2:opModEnergize>false</ns2:opModEnergize>
    </ns2:DERControlBase>
  </ns2:DERControl>
  <ns2:DERControl>
    <ns2:mRID>C1000000000000000000000000000003</ns2:mRID>
    <ns2:creationTime>1759999200</ns2:creationTime>
    <ns2:EventStatus>
      <ns2:currentStatus>2</ns2:currentStatus>
      <ns2:dateTime>1759999300</ns2:dateTime>
      <ns2:potentiallySuperseded>0</ns2:potentiallySuperseded>
    </ns2:EventStatus>
    <ns2:interval><ns2:duration>300</ns2:duration><ns2:start>1760007200</ns2:start></ns2:interval>
    <ns2:DERControlBase>
      <ns3:opModExpLimW><ns2:multiplier>0</ns2:multiplier><ns2:value>0</ns2:value></ns3:opModExpLimW>
    </ns2:DERControlBase>
  </ns2:DERControl>
  <ns2:DERControl replyTo="/api/v2/rsp" responseRequired="00">
    <ns2:mRID>C1000000000000000000000000000004</ns2:mRID>
    <ns2:creationTime>1759999300</ns2:creationTime>
    <ns2:EventStatus>
      <ns2:currentStatus>4</ns2:currentStatus>
      <ns2:dateTime>1759999300</ns2:dateTime>
      <ns2:potentiallySuperseded>true</ns2:potentiallySuperseded>
    </ns2:EventStatus>
    <ns2:interval><ns2:duration>3600</ns2:duration><ns2:start>1760010800</ns2:start></ns2:interval>
    <ns2:DERControlBase>
      <ns2:opModConnect>true</ns2:opModConnect>
      <ns2:opModEnergize>1</ns2:opModEnergize>
      <ns2:rampTms>500</ns2:rampTms>
      <ns3:opModImpLimW><ns2:multiplier>3</ns2:multiplier><ns2:value>10</ns2:value></ns3:opModImpLimW>
      <ns3:opModExpLimW><ns2:multiplier>0</ns2:multiplier><ns2:value>5000</ns2:value></ns3:opModExpLimW>
      <ns3:opModGenLimW><ns2:multiplier>1</ns2:multiplier><ns2:value>800</ns2:value></ns3:opModGenLimW>
      <ns3:opModLoadLimW><ns2:multiplier>-1</ns2:multiplier><ns2:value>-32768</ns2:value></ns3:opModLoadLimW>
    </ns2:DERControlBase>
  </ns2:DERControl>
</ns2:DERControlList>"""

DDERC = f"""<DefaultDERControl {SEP} {CSIP} href="/api/v2/edev/3/fsa/1/derp/1/dderc">
  <mRID>D1000000000000000000000000000001</mRID>
  <description>Fallback</description>
  <DERControlBase>
    <opModConnect>true</opModConnect>
    <opModEnergize>true</opModEnergize>
    <csipaus:opModImpLimW><multiplier>0</multiplier><value>10000</value></csipaus:opModImpLimW>
    <csipaus:opModExpLimW><multiplier>3</multiplier><value>1</value></csipaus:opModExpLimW>
  </DERControlBase>
  <setGradW>27</setGradW>
  <setSoftGradW>100</setSoftGradW>
</DefaultDERControl>"""

DER_LIST = f"""<DERList {SEP} href="/api/v2/edev/3/der" all="1" results="1" pollRate="60">
  <DER href="/api/v2/edev/3/der/1">
    <AssociatedDERProgramListLink href="/api/v2/edev/3/der/1/derp" all="1"/>
    <AssociatedUsagePointLink href="/api/v2/mup/2"/>
    <CurrentDERProgramLink href="/api/v2/edev/3/fsa/1/derp/1"/>
    <DERAvailabilityLink href="/api/v2/edev/3/der/1/dera"/>
    <DERCapabilityLink href="/api/v2/edev/3/der/1/dercap"/>
    <DERSettingsLink href="/api/v2/edev/3/der/1/derg"/>
    <DERStatusLink href="/api/v2/edev/3/der/1/ders"/>
  </DER>
</DERList>"""

MUP_LIST = f"""<MirrorUsagePointList {SEP} href="/api/v2/mup" all="1" results="1" pollRate="900">
  <MirrorUsagePoint href="/api/v2/mup/2">
    <mRID>E100000000000000000000000000A001</mRID>
    <description>Site measurement</description>
    <roleFlags>03</roleFlags>
    <serviceCategoryKind>0</serviceCategoryKind>
    <status>1</status>
    <deviceLFDI>{LFDI}</deviceLFDI>
    <MirrorMeterReading href="/api/v2/mup/2/1">
      <mRID>F100000000000000000000000000A001</mRID>
      <description>Site Avg Real Power (W)</description>
      <ReadingType>
        <commodity>1</commodity><dataQualifier>2</dataQualifier><flowDirection>1</flowDirection>
        <kind>37</kind><phase>0</phase><powerOfTenMultiplier>0</powerOfTenMultiplier>
        <uom>38</uom>
      </ReadingType>
    </MirrorMeterReading>
    <postRate>60</postRate>
  </MirrorUsagePoint>
</MirrorUsagePointList>"""

SAMPLES = [DCAP, TIME, EDEV_LIST, REGISTRATION, FSA_LIST, DERP_LIST, DERC_LIST, DDERC]
SAMPLES += [DER_LIST, MUP_LIST]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.split()[0].lstrip("<?xml"))
def test_samples_are_schema_valid(sample: str) -> None:
    assert_valid(sample.encode())


def test_device_capability() -> None:
    dcap = parse.parse_device_capability(DCAP)
    assert dcap.href == "/api/v2/dcap"
    assert dcap.poll_rate == 300
    assert dcap.time_href == "/api/v2/tm"
    assert dcap.end_device_list_href == "/api/v2/edev"
    assert dcap.mirror_usage_point_list_href == "/api/v2/mup"
    assert dcap.der_program_list_href == "/api/v2/derp"
    assert dcap.self_device_href is None


def test_time() -> None:
    time = parse.parse_time(TIME.encode())
    assert (time.current_time, time.tz_offset, time.dst_offset) == (1760000000, 34200, 3600)
    assert (time.dst_start_time, time.dst_end_time) == (1759593600, 1775404800)
    assert (time.local_time, time.quality, time.poll_rate) == (1760037800, 7, 900)


def test_end_device_list_with_prefixes() -> None:
    page = parse.parse_end_device_list(EDEV_LIST)
    assert (page.all, page.results, page.href, page.poll_rate) == (2, 2, "/api/v2/edev", 300)
    ours, other = page.items
    assert ours.lfdi == LFDI
    assert ours.sfdi == 167261211391
    assert ours.enabled is True
    assert ours.changed_time == 1759990000
    assert ours.post_rate == 60
    assert ours.der_list_href == "/api/v2/edev/3/der"
    assert ours.fsa_list_href == "/api/v2/edev/3/fsa"
    assert ours.registration_href == "/api/v2/edev/3/rg"
    assert ours.connection_point_href == "/api/v2/edev/3/cp"
    assert ours.subscription_list_href == "/api/v2/edev/3/sub"
    assert ours.device_status_href == "/api/v2/edev/3/ds"
    assert (other.lfdi, other.enabled, other.connection_point_href) == (None, None, None)


def test_end_device_single_and_empty_list() -> None:
    body = f'<EndDevice {SEP} href="/edev/9"><sFDI>5</sFDI><changedTime>0</changedTime></EndDevice>'
    assert parse.parse_end_device(body).href == "/edev/9"
    empty = parse.parse_end_device_list(f'<EndDeviceList {SEP} all="0" results="0"/>')
    assert (empty.all, empty.results, empty.items, empty.poll_rate) == (0, 0, (), None)


def test_registration() -> None:
    registration = parse.parse_registration(REGISTRATION)
    assert (registration.pin, registration.date_time_registered) == (111115, 1759990000)
    assert registration.poll_rate == 86400


def test_function_set_assignments() -> None:
    page = parse.parse_function_set_assignments_list(FSA_LIST)
    assert [f.mrid for f in page.items] == [
        "A1000000000000000000000000000001",
        "a1000000000000000000000000000002",
    ]
    assert page.items[0].der_program_list_href == "/api/v2/edev/3/fsa/1/derp"
    assert page.items[0].description == "DNSP network"
    assert page.items[1].time_href is None


def test_der_programs() -> None:
    page = parse.parse_der_program_list(DERP_LIST)
    (program,) = page.items
    assert program.mrid == "B1000000000000000000000000000001"
    assert program.primacy == 1
    assert program.description == "Dynamic exports"
    assert program.default_control_href == "/api/v2/edev/3/fsa/1/derp/1/dderc"
    assert program.control_list_href == "/api/v2/edev/3/fsa/1/derp/1/derc"
    assert program.active_control_list_href == "/api/v2/edev/3/fsa/1/derp/1/actderc"
    assert (program.default_control, program.controls) == (None, ())


def test_der_controls() -> None:
    program = DERProgram(mrid="B1", href=None, primacy=7)
    page = parse.parse_der_control_list(DERC_LIST.encode(), program=program)
    assert (page.all, page.results, page.poll_rate) == (4, 4, None)
    limit, connect, cancelled, superseded = page.items

    assert limit.mrid == "C1000000000000000000000000000001"
    assert limit.href == "/api/v2/edev/3/fsa/1/derp/1/derc/1"
    assert (limit.creation_time, limit.start, limit.duration) == (1759999000, 1759999800, 1800)
    assert limit.status is EventStatus.ACTIVE
    assert (limit.response_required, limit.reply_to) == (3, "/api/v2/rsp")
    assert limit.description == "Export limit 1.5 kW"
    assert limit.base == DERControlBase(op_mod_exp_lim_w=ActivePower(15, 2))
    assert limit.base.op_mod_exp_lim_w is not None
    assert limit.base.op_mod_exp_lim_w.watts == 1500
    assert (limit.program_mrid, limit.primacy) == ("B1", 7)
    assert (limit.randomize_start, limit.randomize_duration) == (0, 0)

    assert connect.status is EventStatus.SCHEDULED
    assert (connect.randomize_start, connect.randomize_duration) == (-60, 30)
    assert connect.base == DERControlBase(op_mod_connect=False, op_mod_energize=False)
    assert (connect.href, connect.response_required) == (None, 1)

    assert cancelled.status is EventStatus.CANCELLED
    assert (cancelled.response_required, cancelled.reply_to) == (0, None)
    assert cancelled.base.op_mod_exp_lim_w == ActivePower(0, 0)

    assert superseded.status is EventStatus.SUPERSEDED
    assert superseded.base == DERControlBase(
        op_mod_connect=True,
        op_mod_energize=True,
        op_mod_exp_lim_w=ActivePower(5000, 0),
        op_mod_gen_lim_w=ActivePower(800, 1),
        op_mod_imp_lim_w=ActivePower(10, 3),
        op_mod_load_lim_w=ActivePower(-32768, -1),
        ramp_tms=500,
    )


def test_der_control_without_program() -> None:
    control = parse.parse_der_control_list(DERC_LIST).items[0]
    assert (control.program_mrid, control.primacy) == (None, None)


def test_default_der_control() -> None:
    program = DERProgram(mrid="B1", href=None, primacy=2)
    default = parse.parse_default_der_control(DDERC, program=program)
    assert default.mrid == "D1000000000000000000000000000001"
    assert default.href == "/api/v2/edev/3/fsa/1/derp/1/dderc"
    assert (default.set_grad_w, default.set_soft_grad_w) == (27, 100)
    assert (default.program_mrid, default.primacy) == ("B1", 2)
    assert default.base == DERControlBase(
        op_mod_connect=True,
        op_mod_energize=True,
        op_mod_exp_lim_w=ActivePower(1, 3),
        op_mod_imp_lim_w=ActivePower(10000, 0),
    )
    bare = parse.parse_default_der_control(
        f"<DefaultDERControl {SEP}><mRID>D2</mRID><DERControlBase/></DefaultDERControl>"
    )
    assert (bare.base, bare.set_grad_w, bare.primacy) == (DERControlBase(), None, None)


def test_der_list() -> None:
    page = parse.parse_der_list(DER_LIST)
    (der,) = page.items
    assert page.poll_rate == 60
    assert der.href == "/api/v2/edev/3/der/1"
    assert der.der_capability_href == "/api/v2/edev/3/der/1/dercap"
    assert der.der_settings_href == "/api/v2/edev/3/der/1/derg"
    assert der.der_status_href == "/api/v2/edev/3/der/1/ders"
    assert der.der_availability_href == "/api/v2/edev/3/der/1/dera"
    assert der.associated_usage_point_href == "/api/v2/mup/2"
    assert der.current_der_program_href == "/api/v2/edev/3/fsa/1/derp/1"
    assert der.associated_der_program_list_href == "/api/v2/edev/3/der/1/derp"


def test_mirror_usage_points() -> None:
    page = parse.parse_mirror_usage_point_list(MUP_LIST)
    (mup,) = page.items
    assert (mup.href, mup.post_rate, mup.role_flags, mup.status) == ("/api/v2/mup/2", 60, 3, 1)
    assert (mup.device_lfdi, mup.service_category_kind) == (LFDI, 0)
    (reading,) = mup.readings
    assert reading.href == "/api/v2/mup/2/1"
    assert reading.reading_type is not None
    assert (reading.reading_type.uom, reading.reading_type.kind) == (38, 37)


# --- broken documents -------------------------------------------------------------------------


def _control(inner: str, attrs: str = "") -> str:
    return f"<DERControlList {SEP} {CSIP} all='1' results='1'><DERControl {attrs}>{inner}"


CONTROL_OK = (
    "<mRID>C1</mRID><creationTime>1</creationTime>"
    "<EventStatus><currentStatus>1</currentStatus></EventStatus>"
    "<interval><duration>60</duration><start>100</start></interval>"
    "<DERControlBase>{base}</DERControlBase></DERControl></DERControlList>"
)


def _short(value: str) -> str:
    return value if len(value) < 50 else "-"


def _with(old: str, new: str, base: str = "") -> str:
    return _control(CONTROL_OK.format(base=base).replace(old, new))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (_with("<mRID>C1</mRID>", ""), r"DERControl: missing mandatory element mRID"),
        (_with("<start>100</start>", ""), r"DERControl/interval: missing mandatory element start"),
        (_with("<interval>", "<x>").replace("</interval>", "</x>"), "element interval"),
        (_with("<DERControlBase></DERControlBase>", ""), "element DERControlBase"),
        (_with("<currentStatus>1", "<currentStatus>9"), "currentStatus: 9 is not an event"),
        (_with("<start>100", "<start>1_00"), r"interval/start: '1_00' is not an integer"),
        (_with("<start>100", "<start>1e3"), "is not an integer"),
        (_with("<start>100", "<start>"), "is not an integer"),
        (_with("<mRID>C1", "<mRID>XYZ"), "mRID: 'XYZ' is not a hex identifier"),
        (_with("<duration>60", "<duration>-1"), r"duration: -1 is outside 0\.\."),
        (
            _with("", "", base="<opModConnect>yes</opModConnect>"),
            "DERControlBase/opModConnect: 'yes' is not a boolean",
        ),
        (
            _with("", "", base="<opModConnect>True</opModConnect>"),
            "'True' is not a boolean",
        ),
        (
            _with(
                "",
                "",
                base="<csipaus:opModExpLimW><multiplier>0</multiplier><value>40000</value>"
                "</csipaus:opModExpLimW>",
            ),
            r"csipaus:opModExpLimW/value: 40000 is outside -32768\.\.32767",
        ),
        (
            _with("", "", base="<csipaus:opModGenLimW><value>1</value></csipaus:opModGenLimW>"),
            "csipaus:opModGenLimW: missing mandatory element multiplier",
        ),
        (
            _control(CONTROL_OK.format(base=""), "responseRequired='zz'"),
            "@responseRequired: 'zz' is not hexBinary",
        ),
        (
            _control(CONTROL_OK.format(base=""), "responseRequired='0101'"),
            "at most 1 octets",
        ),
    ],
    ids=_short,
)
def test_broken_controls_name_the_element(body: str, match: str) -> None:
    with pytest.raises(XmlContentError, match=match):
        parse.parse_der_control_list(body)


def test_opmod_limits_in_the_wrong_namespace_are_not_limits() -> None:
    """opModExpLimW is a csipaus element: an unprefixed one in the 2030.5 namespace is ignored."""
    base = "<opModExpLimW><multiplier>0</multiplier><value>1</value></opModExpLimW>"
    (control,) = parse.parse_der_control_list(_with("", "", base=base)).items
    assert control.base.op_mod_exp_lim_w is None


def test_signed_and_padded_integers() -> None:
    (control,) = parse.parse_der_control_list(_with("<start>100", "<start> +100 ")).items
    assert control.start == 100


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (f"<EndDeviceList {SEP} results='0'/>", "missing mandatory attribute all"),
        (f"<EndDeviceList {SEP} all='x' results='0'/>", r"EndDeviceList/@all: 'x'"),
        (f"<EndDeviceList {SEP} all='-1' results='0'/>", "outside"),
        (f"<DeviceCapability {SEP}><TimeLink/></DeviceCapability>", "TimeLink: link has no href"),
        (f"<DeviceCapability {SEP} pollRate='soon'/>", "@pollRate"),
        (f"<Registration {SEP}><pIN>1</pIN></Registration>", "dateTimeRegistered"),
        (
            f"<EndDeviceList {SEP} all='1' results='1'><EndDevice><sFDI>1</sFDI></EndDevice>"
            "</EndDeviceList>",
            r"EndDeviceList/EndDevice: missing mandatory element changedTime",
        ),
        (
            f"<EndDeviceList {SEP} all='1' results='1'><EndDevice><lFDI>zz</lFDI><sFDI>1</sFDI>"
            "<changedTime>1</changedTime></EndDevice></EndDeviceList>",
            "lFDI: 'zz'",
        ),
        (f"<Time {SEP}><currentTime>1</currentTime></Time>", "dstEndTime"),
    ],
    ids=_short,
)
def test_broken_documents(body: str, match: str) -> None:
    parser = {
        "EndDeviceList": parse.parse_end_device_list,
        "DeviceCapability": parse.parse_device_capability,
        "Registration": parse.parse_registration,
        "Time": parse.parse_time,
    }[body[1:].split(maxsplit=1)[0]]
    with pytest.raises(XmlContentError, match=match):
        parser(body)


def test_wrong_document_type() -> None:
    with pytest.raises(XmlNamespaceError, match="expected Time"):
        parse.parse_time(DCAP)
    with pytest.raises(XmlContentError, match="expected element Time"):
        parse.parse_time(parse_xml(DCAP))
    with pytest.raises(XmlError):
        parse.parse_der_control_list("<DERControlList all='0' results='0'/>")  # no namespace


def test_parse_errors_are_xml_errors_and_value_errors() -> None:
    """The client can catch one base class for any bad server body."""
    with pytest.raises(XmlError):
        parse.parse_registration(f"<Registration {SEP}/>")
    with pytest.raises(ValueError, match="Registration"):
        parse.parse_registration(f"<Registration {SEP}/>")


def test_single_der() -> None:
    der = parse.parse_der(parse_xml(DER_LIST).find_all("DER")[0])
    assert der.der_status_href == "/api/v2/edev/3/der/1/ders"


@pytest.mark.parametrize(
    ("parser", "body", "match"),
    [
        (
            readback.parse_der_capability,
            f"<DERCapability {SEP} {CSIP}><modesSupported>0C</modesSupported><type>4</type>"
            "<csipaus:doeModesSupported>01</csipaus:doeModesSupported></DERCapability>",
            "rtgMaxW",
        ),
        (
            readback.parse_der_settings,
            f"<DERSettings {SEP}><setGradW>0</setGradW><updatedTime>1</updatedTime></DERSettings>",
            "setMaxW",
        ),
        (
            readback.parse_connection_point,
            '<c:ConnectionPoint xmlns:c="https://csipaus.org/ns"><c:connectionPointId/>'
            "</c:ConnectionPoint>",
            "csipaus:connectionPointId: is empty",
        ),
    ],
    ids=["rtgMaxW", "setMaxW", "connectionPointId"],
)
def test_missing_mandatory_values_in_client_documents(parser: Any, body: str, match: str) -> None:
    with pytest.raises(XmlContentError, match=match):
        parser(body)
