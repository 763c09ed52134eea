"""Safe parsing: hostile or malformed bodies fail with the right XmlError; prefixes don't matter."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.csip.sep2 import xml
from custom_components.dynamic_export.csip.sep2.xml import (
    CSIPAUS_NS,
    MAX_BODY_BYTES,
    SEP_NS,
    Node,
    XmlContentError,
    XmlError,
    XmlForbiddenError,
    XmlMalformedError,
    XmlNamespaceError,
    XmlTooLargeError,
    leaf,
    node,
    parse_xml,
    to_xml,
)

CONTROL_BASE_NS2 = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    f'<ns2:DERControlBase xmlns:ns2="{SEP_NS}" xmlns:ns3="{CSIPAUS_NS}">\n'
    "  <ns2:opModConnect>true</ns2:opModConnect>\n"
    "  <ns3:opModExpLimW><ns2:multiplier>3</ns2:multiplier><ns2:value>5</ns2:value>"
    "</ns3:opModExpLimW>\n"
    "</ns2:DERControlBase>"
)
CONTROL_BASE_DEFAULT = (
    f'<DERControlBase xmlns="{SEP_NS}" xmlns:csipaus="{CSIPAUS_NS}">'
    "<opModConnect>true</opModConnect>"
    "<csipaus:opModExpLimW><multiplier>3</multiplier><value>5</value></csipaus:opModExpLimW>"
    "</DERControlBase>"
)
CONTROL_BASE_CSIP_DEFAULT = (
    f'<s:DERControlBase xmlns:s="{SEP_NS}" xmlns="{CSIPAUS_NS}">'
    "<s:opModConnect>true</s:opModConnect>"
    "<opModExpLimW><s:multiplier>3</s:multiplier><s:value>5</s:value></opModExpLimW>"
    "</s:DERControlBase>"
)


@pytest.mark.parametrize(
    "body", [CONTROL_BASE_NS2, CONTROL_BASE_DEFAULT, CONTROL_BASE_CSIP_DEFAULT]
)
def test_prefixes_are_normalised_by_namespace_uri(body: str) -> None:
    for data in (body, body.encode()):
        root = parse_xml(data, expected="DERControlBase")
        assert (root.ns, root.name, root.path) == (SEP_NS, "DERControlBase", "DERControlBase")
        assert root.text_of("opModConnect") == "true"
        limit = root.require("opModExpLimW", CSIPAUS_NS)
        assert limit.path == "DERControlBase/csipaus:opModExpLimW"
        assert (limit.text_of("multiplier"), limit.text_of("value")) == ("3", "5")
        assert root.find("opModExpLimW") is None  # same local name, wrong namespace
        assert root.attrs == {}  # namespace declarations are not attributes


def test_attributes_lists_and_paths() -> None:
    body = (
        f'<EndDeviceList xmlns="{SEP_NS}" xmlns:x="urn:other" all="2" results="2" '
        'href="/edev" x:extra="ignored">'
        '<EndDevice href="/edev/1"><sFDI>1</sFDI></EndDevice>'
        '<EndDevice href="/edev/2"><sFDI>2</sFDI><x:vendor>v</x:vendor></EndDevice>'
        "</EndDeviceList>"
    )
    root = parse_xml(body, expected="EndDeviceList")
    assert root.attrs == {"all": "2", "results": "2", "href": "/edev"}
    devices = root.find_all("EndDevice")
    assert [d.attr("href") for d in devices] == ["/edev/1", "/edev/2"]
    assert [d.path for d in devices] == ["EndDeviceList/EndDevice[1]", "EndDeviceList/EndDevice[2]"]
    assert devices[1].find("vendor") is None
    assert devices[1].find("vendor", "urn:other") is not None
    with pytest.raises(XmlContentError, match=r"EndDeviceList/EndDevice\[1\]: .*changedTime"):
        devices[0].require("changedTime")


def test_whitespace_and_empty_elements() -> None:
    root = parse_xml(f'<Time xmlns="{SEP_NS}">\n  <currentTime>\n 12 \n</currentTime><x/></Time>')
    assert root.text_of("currentTime") == "12"
    assert root.find("x") is not None
    assert root.text_of("x") is None
    assert root.text_of("absent") is None


def test_expected_root() -> None:
    body = f'<Time xmlns="{SEP_NS}"/>'
    assert parse_xml(body, expected=("Time", "DeviceCapability")).name == "Time"
    with pytest.raises(XmlNamespaceError, match="expected DeviceCapability"):
        parse_xml(body, expected="DeviceCapability")
    csip = f'<c:ConnectionPoint xmlns:c="{CSIPAUS_NS}"/>'
    assert parse_xml(csip, expected="csipaus:ConnectionPoint").ns == CSIPAUS_NS
    with pytest.raises(XmlNamespaceError):
        parse_xml(csip, expected="ConnectionPoint")


@pytest.mark.parametrize(
    "body",
    [
        "<Time/>",  # no namespace at all
        '<Time xmlns="urn:ieee:std:2030.5:ns:wrong"/>',
        '<s:Time xmlns:s="http://zigbee.org/sep"/>',  # SEP 2.0 draft namespace
        '<Time xmlns="URN:IEEE:STD:2030.5:NS"/>',  # namespace URIs are case-sensitive
    ],
)
def test_wrong_root_namespace_is_rejected(body: str) -> None:
    with pytest.raises(XmlNamespaceError):
        parse_xml(body)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   \n",
        "not xml",
        f'<Time xmlns="{SEP_NS}">',
        f'<Time xmlns="{SEP_NS}"></Tme>',
        f'<Time xmlns="{SEP_NS}"/><Time xmlns="{SEP_NS}"/>',
        f'<Time xmlns="{SEP_NS}" a="1" a="2"/>',
        '<ns2:Time xmlns:ns3="urn:ieee:std:2030.5:ns"/>',  # unbound prefix
        f'<Time xmlns="{SEP_NS}">&undefined;</Time>',
        b'<?xml version="1.0" encoding="UTF-8"?><Time xmlns="x">\xff\xfe</Time>',
        b'<?xml version="1.0" encoding="no-such"?><Time xmlns="urn:ieee:std:2030.5:ns"/>',
        b'<?xml version="1.0" encoding="EUC-JP"?><Time xmlns="urn:ieee:std:2030.5:ns"/>',
    ],
)
def test_malformed_bodies(body: str | bytes) -> None:
    with pytest.raises(XmlMalformedError):
        parse_xml(body)


XXE_FILE = (
    '<?xml version="1.0"?>\n<!DOCTYPE Time [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    f'<Time xmlns="{SEP_NS}"><currentTime>&xxe;</currentTime></Time>'
)
XXE_URL = (
    '<!DOCTYPE Time [<!ENTITY xxe SYSTEM "http://127.0.0.1:1/evil">]>'
    f'<Time xmlns="{SEP_NS}">&xxe;</Time>'
)
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + f']><Time xmlns="{SEP_NS}">&lol9;</Time>'
)
PARAMETER_ENTITY = (
    '<!DOCTYPE Time [<!ENTITY % remote SYSTEM "http://127.0.0.1:1/x.dtd"> %remote;]>'
    f'<Time xmlns="{SEP_NS}"/>'
)
EXTERNAL_DTD = f'<!DOCTYPE Time SYSTEM "http://127.0.0.1:1/sep.dtd"><Time xmlns="{SEP_NS}"/>'
HARMLESS_DOCTYPE = f'<!DOCTYPE Time><Time xmlns="{SEP_NS}"/>'


@pytest.mark.parametrize(
    "body", [XXE_FILE, XXE_URL, BILLION_LAUGHS, PARAMETER_ENTITY, EXTERNAL_DTD, HARMLESS_DOCTYPE]
)
def test_any_doctype_is_refused(body: str) -> None:
    with pytest.raises(XmlForbiddenError, match="DOCTYPE"):
        parse_xml(body)


def test_doctype_is_refused_in_other_encodings() -> None:
    """A byte scan for "<!DOCTYPE" would miss UTF-16; the parser's own hook does not."""
    body = XXE_FILE.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
    with pytest.raises(XmlForbiddenError):
        parse_xml(body.encode("utf-16"))
    good = f'<?xml version="1.0" encoding="UTF-16"?><Time xmlns="{SEP_NS}"/>'.encode("utf-16")
    assert parse_xml(good).name == "Time"


def test_size_limit_is_checked_before_parsing() -> None:
    padding = "<x/>" * (MAX_BODY_BYTES // 4)
    body = f'<Time xmlns="{SEP_NS}">{padding}</Time>'
    with pytest.raises(XmlTooLargeError, match="exceeds"):
        parse_xml(body)
    # Not even well-formed: the size is checked first, so the error still says "too large".
    with pytest.raises(XmlTooLargeError):
        parse_xml(b"<" * (MAX_BODY_BYTES + 1))
    small = f'<Time xmlns="{SEP_NS}"><x/></Time>'
    assert parse_xml(small, max_bytes=len(small)).name == "Time"
    with pytest.raises(XmlTooLargeError):
        parse_xml(small, max_bytes=len(small) - 1)


def test_deep_nesting_is_refused() -> None:
    depth = xml.MAX_DEPTH + 1
    body = f'<Time xmlns="{SEP_NS}">' + "<a>" * depth + "</a>" * depth + "</Time>"
    with pytest.raises(XmlForbiddenError, match="nesting"):
        parse_xml(body)
    ok = xml.MAX_DEPTH - 1
    assert parse_xml(f'<Time xmlns="{SEP_NS}">' + "<a>" * ok + "</a>" * ok + "</Time>")


def test_errors_share_a_base_class() -> None:
    for error in (
        XmlTooLargeError,
        XmlForbiddenError,
        XmlMalformedError,
        XmlNamespaceError,
        XmlContentError,
    ):
        assert issubclass(error, XmlError)
        assert issubclass(error, ValueError)


def test_comments_and_processing_instructions_are_ignored() -> None:
    body = f'<?pi x?><!-- c --><Time xmlns="{SEP_NS}"><!-- c --><quality>4</quality></Time>'
    assert parse_xml(body).text_of("quality") == "4"


def test_text_next_to_attributes() -> None:
    root = parse_xml(f'<Time xmlns="{SEP_NS}"><a href="/x"> text </a></Time>')
    child = root.require("a")
    assert (child.attr("href"), child.text) == ("/x", "text")


def test_cdata_and_character_references() -> None:
    body = f'<Time xmlns="{SEP_NS}"><a><![CDATA[<x>]]></a><b>&lt;&#65;&amp;</b></Time>'
    root = parse_xml(body)
    assert (root.text_of("a"), root.text_of("b")) == ("<x>", "<A&")


# --- writing ----------------------------------------------------------------------------------


def test_to_xml_declares_csipaus_only_when_used() -> None:
    plain = to_xml(node("Time", leaf("quality", 4)), declaration=False)
    assert plain == f'<Time xmlns="{SEP_NS}"><quality>4</quality></Time>'.encode()
    mixed = to_xml(node("DERControlBase", node("csipaus:opModExpLimW", leaf("value", 1))))
    assert f'xmlns:csipaus="{CSIPAUS_NS}"'.encode() in mixed
    root = parse_xml(mixed)
    assert root.require("opModExpLimW", CSIPAUS_NS).text_of("value") == "1"


def test_node_leaves_out_absent_fields_and_escapes() -> None:
    built = node("EndDevice", leaf("sFDI", None), leaf("lFDI", "A&B"), attrs={"href": '/"x"<'})
    assert built == Node("EndDevice", (Node("lFDI", (), "A&B"),), None, {"href": '/"x"<'})
    body = to_xml(built)
    root = parse_xml(body)
    assert root.attr("href") == '/"x"<'
    assert root.text_of("lFDI") == "A&B"
    assert to_xml(Node("Time"), declaration=False) == f'<Time xmlns="{SEP_NS}"/>'.encode()
