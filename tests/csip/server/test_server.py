"""The CSIP-AUS test server itself, over real mutual TLS on 127.0.0.1 with aiohttp clients."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .app import WRONG_NAMESPACE, CsipTestServer
from .certs import (
    HARDWARE_MODULE_NAME,
    Credentials,
    CsipPKI,
    check_digit,
    lfdi_of,
    sfdi_of,
)
from .fixtures import (  # noqa: F401
    ServerFactory,
    csip_device,
    csip_pki,
    csip_server,
    csip_server_factory,
)
from .state import ActivePower, CsipState, EventStatus, default_tree
from .xml import CSIP_NS, SEP_NS, SEP_XML, XmlElement, XmlError, XmlStyle, parse

LFDI_EXAMPLE = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"  # IEEE 2030.5's worked example


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes

    @property
    def doc(self) -> XmlElement:
        return parse(self.body)


class Client:
    """A minimal device-side HTTP client; new connections per request (no pooling)."""

    def __init__(self, server: CsipTestServer, context: ssl.SSLContext) -> None:
        self.server = server
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, force_close=True),
            timeout=aiohttp.ClientTimeout(total=10),
        )

    async def request(
        self, method: str, href: str, body: bytes | None = None, **kwargs: Any
    ) -> Answer:
        headers = {"Accept": SEP_XML}
        if body is not None:
            headers["Content-Type"] = kwargs.pop("content_type", SEP_XML)
        url = href if href.startswith("https://") else self.server.base_url + href
        async with self.session.request(
            method, url, data=body, headers=headers, **kwargs
        ) as response:
            return Answer(response.status, response.headers, await response.read())

    async def get(self, href: str, **kwargs: Any) -> Answer:
        return await self.request("GET", href, **kwargs)

    async def close(self) -> None:
        await self.session.close()


MakeClient = Callable[..., Client]


@pytest.fixture
async def make_client(csip_server: CsipTestServer) -> AsyncIterator[MakeClient]:  # noqa: F811
    clients: list[Client] = []

    def _make(
        device: Credentials | None, *, server: CsipTestServer | None = None, **kw: Any
    ) -> Client:
        target = server or csip_server
        client = Client(target, target.pki.client_ssl_context(device, **kw))
        clients.append(client)
        return client

    yield _make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(
    csip_server: CsipTestServer,  # noqa: F811
    csip_device: Credentials,  # noqa: F811
    make_client: MakeClient,
) -> Client:
    """A client whose device is registered out of band."""
    csip_server.state.register_device(csip_device)
    return make_client(csip_device)


def xml_body(text: str) -> bytes:
    return text.encode()


def links(doc: XmlElement) -> dict[str, str]:
    return {c.name: c.attrs["href"] for c in doc.children if c.name.endswith("Link")}


async def refused(call: Awaitable[Any]) -> BaseException:
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)) as info:
        await call
    return info.value


# ---------------------------------------------------------------------------------------------
# PKI


def test_lfdi_and_sfdi_follow_the_standard_example() -> None:
    assert sfdi_of(LFDI_EXAMPLE) == 167261211391
    assert check_digit(16726121139) == 1
    der = b"any bytes"
    assert lfdi_of(der) == hashlib.sha256(der).hexdigest()[:40].upper()


def test_device_certificate_profile(csip_pki: CsipPKI) -> None:  # noqa: F811
    device = csip_pki.device("d1")
    cert = device.cert
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.not_valid_after_utc.year == 9999
    assert cert.issuer == csip_pki.mica.cert.subject
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    (other,) = san.get_values_for_type(x509.OtherName)
    assert other.type_id.dotted_string == HARDWARE_MODULE_NAME
    # The file holds the leaf then the MICA; the LFDI is over the leaf only.
    pem = device.cert_path.read_bytes()
    assert pem.count(b"BEGIN CERTIFICATE") == 2
    first = x509.load_pem_x509_certificate(pem)
    assert device.lfdi == lfdi_of(first.public_bytes(serialization.Encoding.DER))
    assert device.sfdi == sfdi_of(device.lfdi)
    assert csip_pki.device("expired", expired=True).cert.not_valid_after_utc.year < 9999
    self_signed = csip_pki.device("self", self_signed=True).cert
    assert self_signed.issuer == self_signed.subject
    server = csip_pki.server.cert
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


# ---------------------------------------------------------------------------------------------
# TLS and identity


async def test_mutual_tls_identifies_the_client_by_lfdi(
    client: Client,
    csip_server: CsipTestServer,  # noqa: F811
    csip_device: Credentials,  # noqa: F811
) -> None:
    answer = await client.get("/dcap")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == SEP_XML
    record = csip_server.requests[-1]
    assert record.lfdi == csip_device.lfdi
    assert record.tls_version in {"TLSv1.2", "TLSv1.3"}
    assert csip_server.url == f"https://127.0.0.1:{csip_server.port}/dcap"
    # The client verified the server certificate (hostname 127.0.0.1 against the SAN).
    assert csip_server.port > 0


async def test_tls12_negotiates_an_ecdhe_ecdsa_suite(
    csip_server_factory: ServerFactory,  # noqa: F811
    csip_pki: CsipPKI,  # noqa: F811
    csip_device: Credentials,  # noqa: F811
    make_client: MakeClient,
) -> None:
    server = await csip_server_factory(maximum_tls_version=ssl.TLSVersion.TLSv1_2)
    answer = await make_client(csip_device, server=server).get("/dcap")
    assert answer.status == 200
    record = server.requests[-1]
    assert record.tls_version == "TLSv1.2"
    assert record.cipher is not None
    assert record.cipher.startswith("ECDHE-ECDSA-")
    # A client offering only IEEE 2030.5's mandatory suite gets it.
    context = csip_pki.client_ssl_context(csip_device)
    context.set_ciphers("ECDHE-ECDSA-AES128-CCM8:@SECLEVEL=0")
    ccm8 = Client(server, context)
    try:
        assert (await ccm8.get("/dcap")).status == 200
    finally:
        await ccm8.close()
    assert server.requests[-1].cipher == "ECDHE-ECDSA-AES128-CCM8"


async def test_a_client_without_certificate_is_refused(
    csip_server: CsipTestServer,  # noqa: F811
    make_client: MakeClient,
) -> None:
    await refused(make_client(None).get("/dcap"))
    assert csip_server.requests == []
    assert csip_server.tls_failures[-1].reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"


async def test_without_required_certificate_the_app_answers_403(
    csip_server_factory: ServerFactory,  # noqa: F811
    make_client: MakeClient,
) -> None:
    server = await csip_server_factory(require_client_cert=False)
    answer = await make_client(None, server=server).get("/dcap")
    assert answer.status == 403
    assert server.requests[-1].lfdi is None


async def test_untrusted_expired_and_self_signed_certificates(
    csip_server: CsipTestServer,  # noqa: F811
    csip_pki: CsipPKI,  # noqa: F811
    make_client: MakeClient,
) -> None:
    foreign = csip_pki.new_ca("Foreign MICA", issuer=csip_pki.new_ca("Foreign root"))
    await refused(make_client(csip_pki.device("foreign", issuer=foreign)).get("/dcap"))
    await refused(make_client(csip_pki.device("old", expired=True)).get("/dcap"))
    assert csip_server.tls_failures[-1].message == "certificate has expired"
    self_signed = csip_pki.device("self", self_signed=True)
    await refused(make_client(self_signed).get("/dcap"))
    csip_server.allow_certificate(self_signed)  # while running
    answer = await make_client(self_signed).get("/dcap")
    assert answer.status == 200
    assert csip_server.requests[-1].lfdi == self_signed.lfdi


async def test_unregistered_lfdi_sees_discovery_but_nothing_protected(
    csip_server: CsipTestServer,  # noqa: F811
    csip_pki: CsipPKI,  # noqa: F811
    csip_device: Credentials,  # noqa: F811
    make_client: MakeClient,
) -> None:
    stranger = make_client(csip_pki.device("stranger"))
    csip_server.state.register_device(csip_device)
    assert (await stranger.get("/dcap")).status == 200
    listing = await stranger.get("/edev?s=0&l=10")
    assert listing.doc.attrs["all"] == "0"  # the other device is not shown
    for href in ("/edev/1", "/edev/1/fsa", "/derp", "/derp/1/derc", "/mup"):
        assert (await stranger.get(href)).status == 403, href
    csip_server.state.allow_unregistered_discovery = False
    assert (await stranger.get("/dcap")).status == 403
    # Registered, the stranger still may not read someone else's EndDevice.
    csip_server.state.register_device(csip_pki.device("other-owner").lfdi)
    stranger_device = csip_server.state.register_device(stranger_lfdi := _lfdi(csip_server))
    assert stranger_device.lfdi == stranger_lfdi
    assert (await stranger.get("/edev/1")).status == 403
    assert (await stranger.get(f"/edev/{stranger_device.id}")).status == 200


def _lfdi(server: CsipTestServer) -> str:
    lfdi = server.requests[-1].lfdi
    assert lfdi is not None
    return lfdi


# ---------------------------------------------------------------------------------------------
# The resource tree


async def test_registration_links_can_be_left_out(
    client: Client,
    csip_server: CsipTestServer,  # noqa: F811
) -> None:
    """A server may publish EndDevices without a RegistrationLink (reference ALL-05)."""
    csip_server.state.registration_links = False
    edev = (await client.get("/edev/1")).doc
    assert "RegistrationLink" not in links(edev)
    assert "FunctionSetAssignmentsListLink" in links(edev)


async def test_every_link_from_dcap_is_reachable(client: Client) -> None:
    dcap = (await client.get("/dcap")).doc
    assert (dcap.ns, dcap.name) == (SEP_NS, "DeviceCapability")
    assert dcap.attrs["pollRate"] == "300"
    found = links(dcap)
    tm = (await client.get(found["TimeLink"])).doc
    assert tm.value("quality") == "4"
    edev_list = (await client.get(found["EndDeviceListLink"] + "?s=0&l=10")).doc
    assert (edev_list.attrs["all"], edev_list.attrs["results"]) == ("1", "1")
    edev = edev_list.child("EndDevice")
    assert edev is not None
    assert edev.value("enabled") == "true"
    edev_links = links(edev)
    cp = edev.child("ConnectionPointLink", CSIP_NS)
    assert cp is not None
    assert edev_links["ConnectionPointLink"] == cp.attrs["href"]
    assert (await client.get(edev.attrs["href"])).status == 200
    assert (await client.get(edev_links["RegistrationLink"])).doc.value("pIN") == "111115"
    der_list = (await client.get(edev_links["DERListLink"] + "?l=10")).doc
    der = der_list.child("DER")
    assert der is not None
    assert set(links(der)) == {
        "DERAvailabilityLink",
        "DERCapabilityLink",
        "DERSettingsLink",
        "DERStatusLink",
    }
    assert (await client.get(der.attrs["href"])).status == 200
    fsa_list = (await client.get(edev_links["FunctionSetAssignmentsListLink"] + "?l=10")).doc
    fsa = fsa_list.child("FunctionSetAssignments")
    assert fsa is not None
    assert (await client.get(fsa.attrs["href"])).status == 200
    derp_href = links(fsa)["DERProgramListLink"]
    assert derp_href == "/derp"
    programs = (await client.get(derp_href + "?s=0&l=10")).doc
    assert programs.attrs["all"] == "2"
    primacies = [p.value("primacy") for p in programs.iter_named("DERProgram")]
    assert primacies == ["1", "2"]
    statuses = {}
    for program in programs.iter_named("DERProgram"):
        program_links = links(program)
        assert (await client.get(program.attrs["href"])).status == 200
        assert (await client.get(program_links["DERControlListLink"])).status == 200
        answer = await client.get(program_links["DefaultDERControlLink"])
        statuses[program.value("primacy")] = answer.status
        if answer.status == 200:
            default = answer.doc
            assert default.value("setGradW") == "28"
            limit = default.find("DERControlBase/opModExpLimW")
            assert limit is not None
            assert limit.ns == CSIP_NS
            assert (limit.value("value"), limit.value("multiplier")) == ("1500", "0")
            assert b"<ns2:opModExpLimW>" in answer.body
    assert statuses == {"1": 200, "2": 404}


async def test_paging_a_25_item_control_list(client: Client, csip_server: CsipTestServer) -> None:  # noqa: F811
    controls = csip_server.state.add_controls("1", 25, start=2_000_000_000, op_mod_exp_lim_w=5000)
    seen: list[str] = []
    start = 0
    while True:
        page = (await client.get(f"/derp/1/derc?s={start}&l=10")).doc
        assert page.attrs["all"] == "25"
        results = int(page.attrs["results"])
        assert results == len(list(page.iter_named("DERControl")))
        if results == 0:
            break
        seen.extend(c.value("mRID") or "" for c in page.iter_named("DERControl"))
        start += results
    assert seen == [c.mrid for c in controls]  # start-time order, every item once
    assert [int(p) for p in ("10", "10", "5")] == [
        int((await client.get(f"/derp/1/derc?s={s}&l=10")).doc.attrs["results"])
        for s in (0, 10, 20)
    ]
    # Without l the standard's default of one item applies; a server cap limits big pages.
    assert (await client.get("/derp/1/derc")).doc.attrs["results"] == "1"
    csip_server.state.max_page_limit = 7
    capped = (await client.get("/derp/1/derc?s=0&l=100")).doc
    assert (capped.attrs["all"], capped.attrs["results"]) == ("25", "7")
    assert (await client.get("/derp/1/derc?s=x")).status == 400


async def test_control_fields_and_changes(client: Client, csip_server: CsipTestServer) -> None:  # noqa: F811
    state = csip_server.state
    control = state.add_control(
        "2",
        start=1_900_000_000,
        duration=600,
        mrid="A1" * 16,
        creation_time=1_899_999_000,
        randomize_start=30,
        randomize_duration=-15,
        response_required=0x01,
        op_mod_connect=True,
        op_mod_energize=False,
        op_mod_exp_lim_w=ActivePower(15, 2),
        op_mod_gen_lim_w=50_000,
        op_mod_imp_lim_w=2.5,
        op_mod_load_lim_w=0,
        ramp_tms=500,
    )
    doc = (await client.get("/derp/2/derc?l=5")).doc.child("DERControl")
    assert doc is not None
    assert doc.attrs["replyTo"] == "/rsps/1/rsp"
    assert doc.attrs["responseRequired"] == "01"
    assert doc.value("mRID") == control.mrid
    assert doc.value("creationTime") == "1899999000"
    assert doc.value("interval/start") == "1900000000"
    assert doc.value("interval/duration") == "600"
    assert doc.value("randomizeStart") == "30"
    assert doc.value("randomizeDuration") == "-15"
    assert doc.value("EventStatus/currentStatus") == "0"
    base = doc.child("DERControlBase")
    assert base is not None
    assert (base.value("opModConnect"), base.value("opModEnergize")) == ("true", "false")
    assert base.value("rampTms") == "500"
    powers = {
        c.name: (int(c.value("value") or 0), int(c.value("multiplier") or 0))
        for c in base.children
        if c.ns == CSIP_NS
    }
    assert powers == {
        "opModImpLimW": (25, -1),
        "opModExpLimW": (15, 2),
        "opModGenLimW": (5000, 1),
        "opModLoadLimW": (0, 0),
    }
    assert (await client.get(doc.attrs["href"])).doc.value("mRID") == control.mrid

    state.cancel_control(control.mrid, randomized=True)
    one = (await client.get(doc.attrs["href"])).doc
    assert one.value("EventStatus/currentStatus") == str(EventStatus.CANCELLED_WITH_RANDOMIZATION)
    state.supersede_control(control.mrid)
    assert (await client.get(doc.attrs["href"])).doc.value("EventStatus/currentStatus") == "4"
    state.remove_control(control.mrid)
    assert (await client.get(doc.attrs["href"])).status == 404
    assert (await client.get("/derp/2/derc?l=5")).doc.attrs["all"] == "0"


async def test_program_and_default_control_changes(
    client: Client,
    csip_server: CsipTestServer,  # noqa: F811
) -> None:
    state = csip_server.state
    state.add_program(0, program_id="urgent")
    programs = (await client.get("/derp?l=10")).doc
    assert [p.value("primacy") for p in programs.iter_named("DERProgram")] == ["0", "1", "2"]
    state.remove_program("urgent")
    assert (await client.get("/derp?l=10")).doc.attrs["all"] == "2"
    assert (await client.get("/derp/urgent")).status == 404

    state.remove_default_control("1", absent="204")
    assert (await client.get("/derp/1/dderc")).status == 204
    state.remove_default_control("1", absent="empty")
    empty = await client.get("/derp/1/dderc")
    assert (empty.status, empty.body) == (200, b"")
    state.remove_default_control("1", absent="no_link")
    program = (await client.get("/derp/1")).doc
    assert "DefaultDERControlLink" not in links(program)
    state.set_default_control("1", op_mod_exp_lim_w=0, set_grad_w=0)
    default = (await client.get("/derp/1/dderc")).doc
    assert default.value("setGradW") == "0"
    assert default.value("DERControlBase/opModExpLimW/value") == "0"

    fsa = state.add_fsa(program_ids=["2"])
    fsas = (await client.get("/edev/1/fsa?l=10")).doc
    hrefs = [links(f)["DERProgramListLink"] for f in fsas.iter_named("FunctionSetAssignments")]
    assert hrefs == ["/derp", f"/fsa/{fsa.id}/derp"]
    second = (await client.get(f"/fsa/{fsa.id}/derp?l=10")).doc
    assert [p.value("primacy") for p in second.iter_named("DERProgram")] == ["2"]


async def test_time_rates_pin_and_enabled(client: Client, csip_server: CsipTestServer) -> None:  # noqa: F811
    state = csip_server.state
    before = int((await client.get("/tm")).doc.value("currentTime") or 0)
    state.clock_offset = 3600
    drifted = (await client.get("/tm")).doc
    assert int(drifted.value("currentTime") or 0) - before >= 3600
    assert int(drifted.value("localTime") or 0) - int(drifted.value("currentTime") or 0) == 36000
    state.set_poll_rate("dcap", 60)
    state.set_poll_rate("tm", None)
    assert (await client.get("/dcap")).doc.attrs["pollRate"] == "60"
    assert "pollRate" not in (await client.get("/tm")).doc.attrs
    state.set_pin(123455, csip_server.requests[-1].lfdi)
    assert (await client.get("/edev/1/rg")).doc.value("pIN") == "123455"
    state.set_device_enabled(csip_server.requests[-1].lfdi or "", enabled=False)
    state.boolean_digits = True
    assert (await client.get("/edev/1")).doc.value("enabled") == "0"


@pytest.mark.parametrize(
    "style",
    [
        XmlStyle(csip_prefix="ns2"),
        XmlStyle(csip_prefix=None),
        XmlStyle(sep_prefix="sep", csip_prefix="csipaus", declaration=False),
    ],
)
async def test_namespace_styles_carry_the_same_content(
    client: Client,
    csip_server: CsipTestServer,  # noqa: F811
    style: XmlStyle,
) -> None:
    csip_server.state.xml_style = csip_server.state.control_xml_style = style
    default = (await client.get("/derp/1/dderc")).doc
    limit = default.find("DERControlBase/opModExpLimW")
    assert limit is not None
    assert (limit.ns, limit.value("value")) == (CSIP_NS, "1500")
    value = limit.child("value")
    assert value is not None
    assert value.ns == SEP_NS
    edev = (await client.get("/edev/1")).doc
    assert edev.child("ConnectionPointLink", CSIP_NS) is not None


async def test_prefixed_layout(
    csip_server_factory: ServerFactory,  # noqa: F811
    csip_device: Credentials,  # noqa: F811
    make_client: MakeClient,
) -> None:
    server = await csip_server_factory(default_tree(CsipState(prefix="/api/v2/")))
    server.state.register_device(csip_device)
    assert server.url.endswith("/api/v2/dcap")
    client = make_client(csip_device, server=server)
    dcap = (await client.get(server.url)).doc
    assert links(dcap)["EndDeviceListLink"] == "/api/v2/edev"
    assert (await client.get("/dcap")).status == 404
    control = server.state.add_control("1")
    listing = (await client.get("/api/v2/derp/1/derc?l=1")).doc.child("DERControl")
    assert listing is not None
    assert listing.attrs["replyTo"] == "/api/v2/rsps/1/rsp"
    response = _response(csip_device.lfdi, control.mrid, 1)
    answer = await client.request("POST", listing.attrs["replyTo"], response)
    assert answer.status == 201
    assert answer.headers["Location"] == "/api/v2/rsps/1/rsp/1"
    assert server.state.response_statuses(control.mrid) == [1]
    assert len(server.requests_to("/rsps/*", "POST")) == 1


# ---------------------------------------------------------------------------------------------
# What clients send


def _edev(lfdi: str, sfdi: int) -> bytes:
    return xml_body(
        f'<EndDevice xmlns="{SEP_NS}"><lFDI>{lfdi}</lFDI><sFDI>{sfdi}</sFDI>'
        "<changedTime>1700000000</changedTime><enabled>1</enabled></EndDevice>"
    )


def _response(lfdi: str, mrid: str, status: int) -> bytes:
    return xml_body(
        f'<DERControlResponse xmlns="{SEP_NS}"><createdDateTime>1700000000</createdDateTime>'
        f"<endDeviceLFDI>{lfdi}</endDeviceLFDI><status>{status}</status>"
        f"<subject>{mrid}</subject></DERControlResponse>"
    )


async def test_in_band_registration(
    csip_server: CsipTestServer,  # noqa: F811
    csip_device: Credentials,  # noqa: F811
    csip_pki: CsipPKI,  # noqa: F811
    make_client: MakeClient,
) -> None:
    client = make_client(csip_device)
    assert (await client.get("/edev?l=10")).doc.attrs["all"] == "0"
    wrong = await client.request("POST", "/edev", _edev("00" * 20, csip_device.sfdi))
    assert wrong.status == 400
    answer = await client.request("POST", "/edev", _edev(csip_device.lfdi, csip_device.sfdi))
    assert answer.status == 201
    location = answer.headers["Location"]
    edev = (await client.get(location)).doc
    assert edev.value("lFDI") == csip_device.lfdi
    assert edev.value("sFDI") == str(csip_device.sfdi)
    device = csip_server.state.device_for(csip_device)
    assert device is not None
    assert device.in_band
    assert device.posted is not None
    assert device.posted.value("changedTime") == "1700000000"
    again = await client.request("POST", "/edev", _edev(csip_device.lfdi, csip_device.sfdi))
    assert again.headers["Location"] == location  # idempotent
    csip_server.state.allow_in_band_registration = False
    other = make_client(csip_pki.device("other"))
    assert (await other.request("POST", "/edev", _edev("AA" * 20, 1))).status == 403


async def test_put_bodies_are_checked_and_stored(
    client: Client,
    csip_server: CsipTestServer,  # noqa: F811
) -> None:
    cp = (
        f'<csipaus:ConnectionPoint xmlns:csipaus="{CSIP_NS}">'
        "<csipaus:connectionPointId>4102345678</csipaus:connectionPointId>"
        "</csipaus:ConnectionPoint>"
    )
    assert (await client.request("PUT", "/edev/1/cp", xml_body(cp))).status == 204
    device = csip_server.state.devices[1]
    assert device.nmi == "4102345678"
    assert (await client.get("/edev/1/cp")).doc.value("connectionPointId") == "4102345678"
    cap = (
        f'<DERCapability xmlns="{SEP_NS}" xmlns:ns2="{CSIP_NS}">'
        "<modesSupported>0000000C</modesSupported>"
        "<rtgMaxW><multiplier>4</multiplier><value>1</value></rtgMaxW><type>4</type>"
        "<ns2:doeModesSupported>05</ns2:doeModesSupported></DERCapability>"
    )
    assert (await client.request("PUT", "/edev/1/der/1/dercap", xml_body(cap))).status == 204
    assert device.der_capability is not None
    assert device.der_capability.value("doeModesSupported") == "05"
    assert (await client.get("/edev/1/der/1/dercap")).body == xml_body(cap)
    assert (await client.get("/edev/1/der/1/ders")).status == 404
    status = (
        f'<DERStatus xmlns="{SEP_NS}"><genConnectStatus><dateTime>1</dateTime><value>07</value>'
        "</genConnectStatus><readingTime>1</readingTime></DERStatus>"
    )
    assert (await client.request("PUT", "/edev/1/der/1/ders", xml_body(status))).status == 204
    assert [kind for _, kind, _ in device.der_puts] == ["dercap", "ders"]

    # Out of schema order, the wrong root, the wrong type, the wrong content type.
    unordered = (
        cap.replace("<type>4</type>", "")
        .replace("</ns2:doe", "</ns2:doe")
        .replace("<modesSupported>", "<type>4</type><modesSupported>")
    )
    bad = await client.request("PUT", "/edev/1/der/1/dercap", xml_body(unordered))
    assert bad.status == 400
    assert "schema order" in bad.body.decode()
    assert (await client.request("PUT", "/edev/1/der/1/derg", xml_body(cap))).status == 400
    no_ns = cp.replace(f' xmlns:csipaus="{CSIP_NS}"', f' xmlns:csipaus="{SEP_NS}"')
    assert (await client.request("PUT", "/edev/1/cp", xml_body(no_ns))).status == 400
    plain = await client.request("PUT", "/edev/1/cp", xml_body(cp), content_type="text/xml")
    assert plain.status == 415
    assert csip_server.requests[-1].errors
    assert device.der_capability.raw == xml_body(cap)  # rejected bodies are not stored
    assert (await client.request("DELETE", "/edev/1/cp")).status == 405

    # Enumerated values outside IEEE 2030.5's enumerations are refused, as the reference
    # server's enumerated types refuse them.
    for bad_value in (
        status.replace(
            "<readingTime>",
            "<inverterStatus><dateTime>1</dateTime><value>11</value></inverterStatus><readingTime>",
        ),
        status.replace(
            "<readingTime>",
            "<localControlModeStatus><dateTime>1</dateTime><value>2</value>"
            "</localControlModeStatus><readingTime>",
        ),
        status.replace(
            "<readingTime>",
            "<operationalModeStatus><dateTime>1</dateTime><value>4</value>"
            "</operationalModeStatus><readingTime>",
        ),
    ):
        refused = await client.request("PUT", "/edev/1/der/1/ders", xml_body(bad_value))
        assert refused.status == 400, bad_value
        assert "is not a" in refused.body.decode()
    ok = status.replace(
        "<readingTime>",
        "<inverterStatus><dateTime>1</dateTime><value>10</value>"
        "</inverterStatus><localControlModeStatus><dateTime>1</dateTime><value>1</value>"
        "</localControlModeStatus><readingTime>",
    )
    assert (await client.request("PUT", "/edev/1/der/1/ders", xml_body(ok))).status == 204
    evse = cap.replace("<type>4</type>", "<type>7</type>")
    assert (await client.request("PUT", "/edev/1/der/1/dercap", xml_body(evse))).status == 400


async def test_responses_are_stored_in_order(client: Client, csip_server: CsipTestServer) -> None:  # noqa: F811
    lfdi = _lfdi_of_client(csip_server)
    control = csip_server.state.add_control("1")
    for status in (1, 2, 3):
        answer = await client.request("POST", "/rsps/1/rsp", _response(lfdi, control.mrid, status))
        assert answer.status == 201
        assert answer.headers["Location"].startswith("/rsps/1/rsp/")
    assert csip_server.state.response_statuses(control.mrid) == [1, 2, 3]
    record = csip_server.state.responses[0]
    assert (record.kind, record.lfdi, record.created) == ("DERControlResponse", lfdi, 1700000000)
    foreign = await client.request("POST", "/rsps/1/rsp", _response("11" * 20, control.mrid, 1))
    assert foreign.status == 400
    assert len(csip_server.state.responses) == 3


async def test_responses_name_a_control_with_a_response_type(
    client: Client,
    csip_server: CsipTestServer,  # noqa: F811
) -> None:
    """As the reference server: a status outside ResponseType, or a subject that is none of
    its DERControls, is refused; a deleted control can still be answered."""
    lfdi = _lfdi_of_client(csip_server)
    control = csip_server.state.add_control("1")
    for status in (0, 16, 251):
        bad = await client.request("POST", "/rsps/1/rsp", _response(lfdi, control.mrid, status))
        assert bad.status == 400, status
    unknown = await client.request("POST", "/rsps/1/rsp", _response(lfdi, "AB" * 16, 1))
    assert unknown.status == 400
    csip_server.state.remove_control(control.mrid)
    late = await client.request("POST", "/rsps/1/rsp", _response(lfdi, control.mrid, 3))
    assert late.status == 201
    assert csip_server.state.response_statuses(control.mrid) == [3]


def _lfdi_of_client(server: CsipTestServer) -> str:
    (device,) = server.state.devices.values()
    return device.lfdi


def _mup(
    lfdi: str,
    mrid: str,
    readings: tuple[str, ...] = ("AB12",),
    *,
    uom: int = 38,
    kind: int = 37,
    role_flags: str = "03",
) -> bytes:
    definitions = "".join(
        f"<MirrorMeterReading><mRID>{reading}</mRID><ReadingType><dataQualifier>2"
        f"</dataQualifier><kind>{kind}</kind><uom>{uom}</uom></ReadingType></MirrorMeterReading>"
        for reading in readings
    )
    return xml_body(
        f'<MirrorUsagePoint xmlns="{SEP_NS}"><mRID>{mrid}</mRID>'
        f"<description>Site measurement</description><roleFlags>{role_flags}</roleFlags>"
        f"<serviceCategoryKind>0</serviceCategoryKind><status>1</status><deviceLFDI>{lfdi}"
        f"</deviceLFDI>{definitions}</MirrorUsagePoint>"
    )


def _reading(mrid: str, value: int, *, start: int = 1700000040, duration: int = 300) -> bytes:
    return xml_body(
        f'<MirrorMeterReading xmlns="{SEP_NS}"><mRID>{mrid}</mRID>'
        "<lastUpdateTime>1700000000</lastUpdateTime><nextUpdateTime>1700000300</nextUpdateTime>"
        f"<Reading><timePeriod><duration>{duration}</duration><start>{start}</start></timePeriod>"
        f"<value>{value}</value></Reading></MirrorMeterReading>"
    )


async def test_mirror_usage_points(client: Client, csip_server: CsipTestServer) -> None:  # noqa: F811
    lfdi = _lfdi_of_client(csip_server)
    mrid = "C0FFEE" + "00" * 13
    created = await client.request("POST", "/mup", _mup(lfdi, mrid))
    assert created.status == 201
    location = created.headers["Location"]
    mup = (await client.get(location)).doc
    assert (mup.value("postRate"), mup.value("mRID"), mup.value("roleFlags")) == (
        "300",
        mrid,
        "03",
    )
    listing = (await client.get("/mup?s=0&l=10")).doc
    assert (listing.attrs["all"], listing.attrs["pollRate"]) == ("1", "300")
    assert (await client.request("POST", "/mup", _mup(lfdi, mrid))).headers["Location"] == location
    assert (await client.request("POST", location, _reading("AB12", -1234))).status == 204
    undefined = await client.request("POST", location, _reading("CD34", 56))
    assert undefined.status == 400, "a reading its usage point never defined"
    assert (await client.request("POST", "/mup", _mup(lfdi, mrid, ("AB12", "CD34")))).status == 201
    assert (await client.request("POST", location, _reading("CD34", 56))).status == 204
    stored = csip_server.state.mup_by_mrid(mrid)
    assert stored is not None
    assert [r.value("Reading/value") for r in stored.readings()] == ["-1234", "56"]
    csip_server.state.set_post_rate(60)
    assert (await client.get(location)).doc.value("postRate") == "60"

    csip_server.state.delete_mup(mrid)  # the server lost it
    assert (await client.request("POST", location, _reading("AB12", 1))).status == 404
    recreated = await client.request("POST", "/mup", _mup(lfdi, mrid))
    assert recreated.status == 201
    assert recreated.headers["Location"] != location
    assert (await client.request("POST", "/mup", _mup("22" * 20, mrid))).status == 400


async def test_mirror_usage_point_checks(client: Client, csip_server: CsipTestServer) -> None:  # noqa: F811
    """What the reference server and runner check: PEN in decimal, reading types, periods."""
    lfdi = _lfdi_of_client(csip_server)
    csip_server.state.pen = 62223
    hex_pen = "AB" * 12 + "0000F30F"
    decimal = "AB" * 12 + "00062223"
    reading = "CD" * 12 + "00062223"
    rejected = await client.request("POST", "/mup", _mup(lfdi, hex_pen, (reading,)))
    assert rejected.status == 400
    assert b"PEN 62223" in rejected.body
    wrong_reading = await client.request("POST", "/mup", _mup(lfdi, decimal, ("CD" * 16,)))
    assert wrong_reading.status == 400
    for bad in (
        _mup(lfdi, decimal, (reading,), uom=61),  # VA is not a CSIP-AUS telemetry reading
        _mup(lfdi, decimal, (reading,), kind=12),  # energy
        _mup(lfdi, decimal, (reading,), role_flags="01"),  # neither site nor DER
    ):
        assert (await client.request("POST", "/mup", bad)).status == 400
    created = await client.request("POST", "/mup", _mup(lfdi, decimal, (reading,)))
    assert created.status == 201
    location = created.headers["Location"]
    for start, duration in ((1700000041, 300), (1700000040, 0), (1700000040, 90)):
        late = await client.request(
            "POST", location, _reading(reading, 1, start=start, duration=duration)
        )
        assert late.status == 400, (start, duration)
    assert (
        await client.request("POST", location, _reading("EF" * 12 + "00062224", 1))
    ).status == 400
    assert (await client.request("POST", location, _reading(reading, 1))).status == 204


# ---------------------------------------------------------------------------------------------
# Fault injection and outages


async def test_status_faults_and_their_count(client: Client, csip_server: CsipTestServer) -> None:  # noqa: F811
    fault = csip_server.inject("/edev/*", "status", status=500, times=2)
    csip_server.inject("/tm", "status", status=401, method="GET")
    assert (await client.get("/edev/1")).status == 500
    assert (await client.get("/edev/1/fsa")).status == 500
    assert (await client.get("/edev/1")).status == 200
    assert fault.hits == 2
    assert (await client.get("/tm")).status == 401
    assert csip_server.requests_to("/tm")[-1].fault == "status"
    csip_server.clear_faults()
    assert (await client.get("/tm")).status == 200
    csip_server.inject("/derp/1", "status", status=404)
    assert (await client.get("/derp/1")).status == 404


async def test_body_faults(client: Client, csip_server: CsipTestServer) -> None:  # noqa: F811
    csip_server.inject("/dcap", "malformed", times=1)
    with pytest.raises(XmlError):
        parse((await client.get("/dcap")).body)

    csip_server.inject("/dcap", "xxe", times=1)
    xxe = (await client.get("/dcap")).body
    assert b"<!ENTITY xxe SYSTEM" in xxe
    assert b"&xxe;" in xxe
    with pytest.raises(XmlError, match="DTDForbidden"):
        parse(xxe)

    csip_server.inject("/dcap", "billion_laughs", times=1)
    laughs = (await client.get("/dcap")).body
    assert b"&lol9;" in laughs
    with pytest.raises(XmlError):
        parse(laughs)

    csip_server.inject("/derp/1/dderc", "wrong_namespace", times=1)
    assert (await client.get("/derp/1/dderc")).doc.ns == WRONG_NAMESPACE

    csip_server.inject("/dcap", "wrong_content_type", times=1)
    assert (await client.get("/dcap")).headers["Content-Type"].startswith("text/html")

    csip_server.inject("/dcap", "empty", times=1)
    assert (await client.get("/dcap")).body == b""

    csip_server.inject("/dcap", "huge", size=3_000_000, times=1)
    huge = await client.get("/dcap")
    assert int(huge.headers["Content-Length"]) == len(huge.body) == 3_000_000
    csip_server.inject("/dcap", "huge", size=1_000_000, chunked=True, times=1)
    chunked = await client.get("/dcap")
    assert "Content-Length" not in chunked.headers
    assert len(chunked.body) >= 1_000_000
    assert (await client.get("/dcap")).status == 200


async def test_delay_and_dropped_connections(client: Client, csip_server: CsipTestServer) -> None:  # noqa: F811
    csip_server.inject("/tm", "delay", delay=0.4, times=1)
    with pytest.raises(TimeoutError):
        await client.get("/tm", timeout=aiohttp.ClientTimeout(total=0.1))
    await asyncio.sleep(0.4)  # let the delayed handler finish
    loop = asyncio.get_running_loop()
    csip_server.inject("/tm", "delay", delay=0.2, times=1)
    began = loop.time()
    assert (await client.get("/tm")).status == 200
    assert loop.time() - began >= 0.2
    # aiohttp retries an idempotent request once after a disconnect, so drop them all.
    dropping = csip_server.inject("/tm", "drop")
    await refused(client.get("/tm"))
    assert dropping.hits >= 1
    csip_server.clear_faults()
    assert (await client.get("/tm")).status == 200


async def test_server_down_and_up_on_the_same_port(
    client: Client,
    csip_server: CsipTestServer,  # noqa: F811
) -> None:
    port = csip_server.port
    assert (await client.get("/dcap")).status == 200
    await csip_server.stop()
    assert not csip_server.running
    await refused(client.get("/dcap"))
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    csip_server.state.add_control("1")  # state survives the outage
    await csip_server.start()
    assert csip_server.port == port
    assert (await client.get("/dcap")).status == 200
    assert (await client.get("/derp/1/derc?l=5")).doc.attrs["all"] == "1"


async def test_hanging_request_and_write_dropped_after_it_was_stored(
    client: Client,
    csip_server: CsipTestServer,  # noqa: F811
) -> None:
    hanging = csip_server.inject("/tm", "hang")
    pending = asyncio.ensure_future(client.get("/tm"))
    await asyncio.sleep(0.3)
    assert not pending.done(), "a hanging request gets no answer"
    assert hanging.hits >= 1
    csip_server.clear_faults()
    # Released unanswered (aiohttp may then repeat the idempotent GET, which is answered).
    with contextlib.suppress(aiohttp.ClientError):
        await asyncio.wait_for(pending, 5)
    assert hanging.hits == 1
    assert (await client.get("/tm")).status == 200

    lfdi = _lfdi_of_client(csip_server)
    control = csip_server.state.add_control("1")
    csip_server.inject("/rsps/*", "drop_after", method="POST", times=1)
    await refused(client.request("POST", "/rsps/1/rsp", _response(lfdi, control.mrid, 1)))
    assert csip_server.state.response_statuses(control.mrid) == [1], "stored, not answered"
    answer = await client.request("POST", "/rsps/1/rsp", _response(lfdi, control.mrid, 2))
    assert answer.status == 201


async def test_stalled_time(client: Client, csip_server: CsipTestServer) -> None:  # noqa: F811
    stalled = csip_server.state.stall_time()
    await asyncio.sleep(1.1)
    assert int((await client.get("/tm")).doc.value("currentTime") or 0) == stalled
    csip_server.state.time_stalled_at = None
    assert int((await client.get("/tm")).doc.value("currentTime") or 0) > stalled
