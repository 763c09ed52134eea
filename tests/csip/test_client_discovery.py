"""Discovery and registration against the test server over mutual TLS."""

from __future__ import annotations

from datetime import timedelta

import pytest

from custom_components.dynamic_export.core.controls import Controls, ControlType
from custom_components.dynamic_export.csip.selection import Source
from custom_components.dynamic_export.csip.status import CommsState, RegistrationState

from .client_harness import Harness, make_harness
from .server.certs import Credentials, CsipPKI
from .server.fixtures import ServerFactory
from .server.state import CsipState, default_tree
from .server.xml import XmlStyle

SERVER_DEFAULT = Controls(
    connect=True, energize=True, export_limit=1500.0, generation_limit=10000.0
)


@pytest.fixture
def h(harness: Harness) -> Harness:
    """Discovery starts with a device the server does not know yet."""
    return harness


async def test_out_of_band_registration(h: Harness) -> None:
    """A device registered on a portal is found in the EndDeviceList; the default applies."""
    h.registered()
    client = h.client()
    controls = await h.run(client)
    assert client.comms is CommsState.OK
    assert client.registration is RegistrationState.REGISTERED
    assert controls == SERVER_DEFAULT
    paths = [r.path for r in h.server.requests]
    for expected in ("/dcap", "/tm", "/edev", "/edev/1/der", "/edev/1/fsa", "/derp"):
        assert expected in paths
    assert "/derp/1/dderc" in paths
    assert "/derp/1/derc" in paths
    assert not h.server.requests_to("/edev", "POST"), "no in-band registration"
    assert not h.server.requests_to("/edev/1/cp", "PUT"), "no NMI configured"
    next_at = await client.run_due()
    assert next_at > h.clock(), "nothing is due right after a full pass"
    status = client.status()
    assert status.connected
    assert status.last_success is not None
    assert status.server_defaults == SERVER_DEFAULT
    assert status.lfdi == h.device.lfdi
    assert status.sfdi == h.device.sfdi
    h.assert_documents_valid()


async def test_in_band_registration_with_nmi(h: Harness) -> None:
    """An unknown device POSTs its EndDevice, follows Location and PUTs its NMI."""
    client = h.client(nmi="4102345678")
    controls = await h.run(client)
    assert client.registration is RegistrationState.REGISTERED_IN_BAND
    assert client.comms is CommsState.OK
    device = h.state.device_for(h.device)
    assert device is not None
    assert device.in_band
    assert device.posted is not None
    assert device.posted.value("lFDI").upper() == h.device.lfdi
    assert device.nmi == "4102345678"
    assert controls == SERVER_DEFAULT
    # The next EndDevice poll finds it in the list: no second POST, no second NMI PUT.
    await h.step(client, 301)
    assert len(h.server.requests_to("/edev", "POST")) == 1
    assert len(device.connection_point_puts) == 1
    h.assert_documents_valid()


async def test_registration_refused(h: Harness) -> None:
    """A server that refuses in-band registration leaves a clear state and the fixed default."""
    h.state.allow_in_band_registration = False
    client = h.client(fixed_default=Controls(export_limit=0.0))
    controls = await h.run(client)
    assert client.comms is CommsState.NOT_REGISTERED
    assert client.registration is RegistrationState.NOT_REGISTERED
    assert controls == Controls(export_limit=0.0)
    assert not h.server.requests_to("/derp*")
    # Registered later on the portal: found at the next poll (not a POST a minute).
    assert (await client.run_due()) == h.clock() + timedelta(seconds=300)
    h.registered()
    controls = await h.step(client, 300)
    assert client.comms is CommsState.OK
    # The export limit rises from the fixed 0 W at the default gradient (28 = 0.28 %/s).
    assert controls.export_limit == 0.0
    status = client.status()
    assert status.contributions[ControlType.EXPORT_LIMIT].target == 1500.0
    assert status.contributions[ControlType.EXPORT_LIMIT].source is Source.DEFAULT
    controls = await h.step(client, 10)
    assert controls.export_limit == pytest.approx(10 * 0.0028 * 5000)


async def test_pin_checked(h: Harness) -> None:
    """The PIN the installer typed must be the server's; five digits without the check
    digit are accepted."""
    h.registered(pin=111115)
    client = h.client(pin=111115)
    assert await h.run(client) == SERVER_DEFAULT
    assert client.registration is RegistrationState.REGISTERED
    assert h.server.requests_to("/edev/1/rg", "GET")
    short = h.client(pin=11111)
    await h.run(short)
    assert short.registration is RegistrationState.REGISTERED


async def test_pin_mismatch(h: Harness) -> None:
    """A wrong PIN is an error state: no control from this server, only the fixed default."""
    h.registered(pin=222220)
    client = h.client(pin=111115, fixed_default=Controls(export_limit=5000.0))
    controls = await h.run(client)
    assert client.comms is CommsState.REGISTRATION_PIN_MISMATCH
    assert client.status().pin_mismatch
    assert controls == Controls(export_limit=5000.0)
    assert not h.server.requests_to("/derp*"), "nothing read from a server we cannot trust"
    assert not h.server.requests_to("/mup*")
    assert (await client.run_due()) > h.clock()
    # The utility corrects the PIN: at the next Registration poll control resumes.
    h.state.set_pin(111115, h.device)
    controls = await h.step(client, 301)
    assert client.comms is CommsState.OK
    assert controls == SERVER_DEFAULT


async def test_end_device_disabled(h: Harness) -> None:
    """A disabled EndDevice is shown and flagged; nothing further is polled."""
    h.registered(enabled=False)
    client = h.client()
    await h.run(client)
    assert client.comms is CommsState.END_DEVICE_DISABLED
    assert client.status().end_device_disabled
    assert not h.server.requests_to("/edev/1/fsa")
    h.state.set_device_enabled(h.device, True)
    await h.step(client, 301)
    assert client.comms is CommsState.OK


async def test_end_device_list_paged(h: Harness) -> None:
    """Our EndDevice is found on a later page of a long list (s/l paging)."""
    h.state.edev_list_shows_all = True
    h.state.max_page_limit = 5
    for index in range(12):
        h.state.register_device(f"{index:040X}")
    h.registered()
    client = h.client()
    await h.run(client)
    assert client.registration is RegistrationState.REGISTERED
    starts = [r.query.get("s") for r in h.server.requests_to("/edev", "GET")]
    assert starts == ["0", "5", "10"]


async def test_server_certificate_untrusted(h: Harness) -> None:
    """A server whose certificate does not chain to the configured CA is refused."""
    h.registered()
    impostor = h.pki.new_ca("impostor")
    client = h.client(ca_pem=impostor.path.read_bytes())
    await h.run(client)
    assert client.comms is CommsState.SERVER_CERTIFICATE_UNTRUSTED
    assert client.status().server_certificate_untrusted
    assert not h.server.requests


async def test_device_certificate_rejected(h: Harness) -> None:
    """A device certificate the server does not trust is told apart from a network fault."""
    stranger = h.pki.device("stranger", self_signed=True)
    client = h.client(device=stranger, fixed_default=Controls(export_limit=0.0))
    controls = await h.run(client)
    assert controls == Controls(export_limit=0.0)
    assert h.server.tls_failures
    assert client.status().errors["connection"]
    if client.comms is not CommsState.CERTIFICATE_REJECTED:
        # This server closes the handshake without an alert: one failure could be the
        # network, repeated ones are taken as a refusal.
        assert client.comms is CommsState.UNREACHABLE
        await h.step(client, 61)
        await h.step(client, 61)
    assert client.comms is CommsState.CERTIFICATE_REJECTED
    assert client.status().certificate_rejected


async def test_unreachable_then_back(h: Harness) -> None:
    """A stopped server leaves the client running; it reconnects after the back-off."""
    h.registered()
    client = h.client()
    await h.server.stop()
    await h.run(client)
    assert client.comms is CommsState.UNREACHABLE
    assert not client.status().connected
    await h.server.start()
    await h.step(client, 10)
    assert client.comms is CommsState.UNREACHABLE, "still backing off"
    await h.step(client, 60)
    assert client.comms is CommsState.OK


async def test_server_dialects(
    csip_server_factory: ServerFactory, csip_pki: CsipPKI, csip_device: Credentials
) -> None:
    """A path prefix, 1/0 booleans and per-element CSIP-AUS namespaces are all understood."""
    state = default_tree(CsipState(prefix="/api/v2"))
    state.boolean_digits = True
    state.xml_style = XmlStyle(csip_prefix=None)
    state.control_xml_style = XmlStyle(sep_prefix="sep", csip_prefix=None)
    async with make_harness(csip_server_factory, csip_pki, csip_device, state=state) as h:
        h.registered()
        control = h.state.add_control(
            "1", duration=300, op_mod_exp_lim_w=800, op_mod_energize=False
        )
        client = h.client(nmi="4102345678")
        controls = await h.run(client)
        assert client.comms is CommsState.OK, client.status().errors
        assert controls.export_limit == 800.0
        assert controls.energize is False
        assert controls.connect is True
        assert h.state.response_statuses(control.mrid) == [1, 2]
        assert h.state.device_for(h.device).nmi == "4102345678"
        assert all(r.path.startswith("/api/v2/") for r in h.server.requests)


async def test_empty_function_set_assignments_list_honours_its_poll_rate(h: Harness) -> None:
    """A server that assigns nothing yet is asked again at the list's pollRate, not every pass."""
    h.registered()
    h.state.remove_fsa("1")
    h.state.poll_rates["fsa"] = 60
    client = h.client()
    await h.run(client)
    assert len(h.server.requests_to("/edev/1/fsa", "GET")) == 1
    for _ in range(59):  # a control cycle (and a pass) every second, short of the pollRate
        await h.step(client, 1)
    assert len(h.server.requests_to("/edev/1/fsa", "GET")) == 1
    for _ in range(600):  # ten more minutes: once a minute
        await h.step(client, 1)
    assert len(h.server.requests_to("/edev/1/fsa", "GET")) == 11
