"""CSIP-AUS in Home Assistant: the flow over real mutual TLS, entities, and the utility's
limits driving the simulated site."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigSubentryData
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.dynamic_export.const import (
    CONF_CA_PEM,
    CONF_CERT_PEM,
    CONF_CSR_PEM,
    CONF_DCAP_URL,
    CONF_DEFAULT_EXPORT_LIMIT,
    CONF_DEFAULT_IMPORT_LIMIT,
    CONF_ENABLED,
    CONF_INVERT,
    CONF_KEY_PEM,
    CONF_KIND,
    CONF_LIMIT_ENTITY,
    CONF_LIMIT_UNIT,
    CONF_MAX_AGE,
    CONF_PEN,
    CONF_POWER_ENTITY,
    CONF_RATED_POWER,
    CONF_VERIFY_SERVER,
    DOMAIN,
    KIND_HA_ENTITY,
    LIMIT_UNIT_WATT,
    MAX_LIMIT_W,
    SUBENTRY_CSIP,
    SUBENTRY_INVERTER,
    SUBENTRY_METER,
)
from custom_components.dynamic_export.csip.sep2 import discovery
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from ....csip.server.app import CsipTestServer
from ....csip.server.certs import Credentials, CsipPKI
from ...helpers import start_subentry_flow, wait_for
from ...sites import added_site, setup_site, site_entry, sunspec_site


def _form(server: CsipTestServer, device: Credentials, pki: CsipPKI, **over: Any) -> dict:
    data = {
        CONF_NAME: "SAPN",
        CONF_DCAP_URL: server.url,
        CONF_CA_PEM: pki.ca_path.read_text(),
        CONF_VERIFY_SERVER: True,
        CONF_PEN: 12345,
        CONF_CERT_PEM: device.pem.decode(),
        CONF_KEY_PEM: device.key_pem.decode(),
    }
    data.update(over)
    return data


async def _start(hass: HomeAssistant) -> tuple[Any, dict]:
    entry = added_site(hass)
    return entry, await start_subentry_flow(hass, entry, SUBENTRY_CSIP, "certificate")


async def test_flow_tests_the_connection_and_shows_lfdi(
    hass: HomeAssistant,
    csip_server: CsipTestServer,
    csip_device: Credentials,
    csip_pki: CsipPKI,
) -> None:
    """The DeviceCapability is fetched over mutual TLS; LFDI and SFDI are shown."""
    csip_server.state.register_device(csip_device)
    entry, result = await _start(hass)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _form(csip_server, csip_device, csip_pki)
    )
    assert result["step_id"] == "confirm"
    assert result["description_placeholders"]["lfdi"] == csip_device.lfdi.upper()
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.data[CONF_ENABLED] is True
    assert sub.data[CONF_PEN] == 12345
    assert csip_server.requests_to("*dcap*")


async def test_flow_errors(
    hass: HomeAssistant,
    csip_server: CsipTestServer,
    csip_device: Credentials,
    csip_pki: CsipPKI,
) -> None:
    """Each problem with identity or server has its own error."""
    other = csip_pki.device("other")
    stranger = csip_pki.device("stranger", self_signed=True)
    impostor_ca = csip_pki.new_ca("impostor")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    cases = [
        ({CONF_CERT_PEM: "not a certificate"}, "invalid_pem"),
        ({CONF_KEY_PEM: other.key_pem.decode()}, "key_mismatch"),
        ({CONF_CA_PEM: impostor_ca.path.read_text()}, "server_untrusted"),
        (
            {CONF_CERT_PEM: stranger.pem.decode(), CONF_KEY_PEM: stranger.key_pem.decode()},
            ("tls_failed", "certificate_rejected"),
        ),
        ({CONF_DCAP_URL: csip_server.base_url + "/nothing-here"}, "not_2030_5"),
        ({CONF_DCAP_URL: f"https://127.0.0.1:{closed}/dcap"}, "cannot_connect"),
        ({CONF_DCAP_URL: "http://plain.example/dcap"}, "invalid_url"),
    ]
    _entry, result = await _start(hass)
    for change, expected in cases:
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], _form(csip_server, csip_device, csip_pki, **change)
        )
        assert result["type"] is FlowResultType.FORM, change
        error = next(iter(result["errors"].values()))
        assert error in (expected if isinstance(expected, tuple) else (expected,)), change


async def test_generate_key_and_csr(hass: HomeAssistant, csip_server: CsipTestServer) -> None:
    """Without a certificate the flow makes a key and a CSR; the limiter waits for it."""
    entry = added_site(hass)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CSIP), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"next_step_id": "generate"}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "Energex",
            CONF_DCAP_URL: csip_server.url,
            CONF_VERIFY_SERVER: True,
            CONF_PEN: 0,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.data[CONF_CSR_PEM].startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert "PRIVATE KEY" in sub.data[CONF_KEY_PEM]
    assert sub.data[CONF_CERT_PEM] is None
    assert result["description_placeholders"]["csr"] == sub.data[CONF_CSR_PEM]


async def test_name_and_default_limits_checked(
    hass: HomeAssistant, csip_server: CsipTestServer
) -> None:
    """A blank name and default limits out of range are errors on their fields, before any
    request; the certificate form checks them as the key-and-CSR form does."""
    entry = added_site(hass)
    bad = {
        CONF_NAME: "   ",
        CONF_DCAP_URL: csip_server.url,
        CONF_VERIFY_SERVER: True,
        CONF_PEN: 0,
        CONF_DEFAULT_EXPORT_LIMIT: -5,
        CONF_DEFAULT_IMPORT_LIMIT: 10_000_000,
    }
    expected = {
        CONF_NAME: "name_blank",
        CONF_DEFAULT_EXPORT_LIMIT: "limit_out_of_range",
        CONF_DEFAULT_IMPORT_LIMIT: "limit_out_of_range",
    }
    for step in ("certificate", "generate"):
        result = await start_subentry_flow(hass, entry, SUBENTRY_CSIP, step)
        extra = {CONF_CERT_PEM: "not a certificate", CONF_KEY_PEM: "not a key"}
        form = {**bad, **extra} if step == "certificate" else bad
        result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
        assert result["type"] is FlowResultType.FORM, step
        assert result["errors"] == expected, step
        assert result["description_placeholders"] == {"max_limit": f"{MAX_LIMIT_W:,}"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            **bad,
            CONF_NAME: " Energex ",
            CONF_DEFAULT_EXPORT_LIMIT: 1500,
            CONF_DEFAULT_IMPORT_LIMIT: 0,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.title == "Energex"
    assert sub.data[CONF_DEFAULT_EXPORT_LIMIT] == 1500.0


async def test_utility_limits_drive_the_site(
    hass: HomeAssistant,
    sim: SimulatedSiteServer,
    csip_server: CsipTestServer,
    csip_device: Credentials,
    csip_pki: CsipPKI,
    monkeypatch: pytest.MonkeyPatch,
    hass_client: ClientSessionGenerator,
) -> None:
    """The server's default (1500 W export) and then a 0 W control reach the inverters."""
    monkeypatch.setattr(discovery, "MIN_POLL_S", 1)  # poll every second, not every 5 s
    state = csip_server.state
    state.register_device(csip_device)
    for resource in ("dcap", "edev", "fsa", "derp", "der"):
        state.set_poll_rate(resource, 1)
    data = _form(csip_server, csip_device, csip_pki)
    title = data.pop(CONF_NAME)
    data[CONF_ENABLED] = True
    entry = sunspec_site(
        sim, ConfigSubentryData(data=data, subentry_type=SUBENTRY_CSIP, title=title, unique_id=None)
    )
    await setup_site(hass, entry)

    def export_limit() -> str:
        limit = hass.states.get("sensor.home_export_limit")
        return limit.state if limit else "missing"

    await wait_for(lambda: export_limit() == "1500.0", 15, "the server's default")
    assert hass.states.get("sensor.home_export_limit").attributes["source"] == "SAPN"
    assert hass.states.get("binary_sensor.sapn_connected").state == "on"
    assert hass.states.get("sensor.sapn_lfdi").state == csip_device.lfdi.upper()
    # The steady site (6 kW of sun, 1 kW load) exports 1500 W at most.
    await wait_for(lambda: sim.site.export_w < 1560, 10, "export held at the default")

    state.add_control(
        "1", start=time.time(), duration=600, mrid="AB12CD34", op_mod_exp_lim_w=0, ramp_tms=0
    )
    # rampTms 0: no ramp (the default control's setGradW would take about a minute).
    await wait_for(lambda: export_limit() == "0.0", 15, "the control")
    await wait_for(lambda: sim.site.export_w < 60, 10, "zero export")
    active = hass.states.get("sensor.sapn_active_control")
    assert active.state == "AB12CD34"
    await wait_for(lambda: 2 in state.response_statuses("AB12CD34"), 10, "the started response")

    # Diagnostics never contain the key, the certificate or the identity.
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = str(diagnostics)
    assert "PRIVATE KEY" not in text
    assert csip_device.pem.decode().splitlines()[1] not in text  # the device certificate
    assert csip_device.lfdi.upper() not in text.upper()


async def test_stored_controls_apply_after_restart_with_server_down(
    hass: HomeAssistant,
    sim: SimulatedSiteServer,
    csip_server: CsipTestServer,
    csip_device: Credentials,
    csip_pki: CsipPKI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restart while the utility's server is down keeps applying what it had said."""
    monkeypatch.setattr(discovery, "MIN_POLL_S", 1)
    state = csip_server.state
    state.register_device(csip_device)
    for resource in ("dcap", "edev", "fsa", "derp", "der"):
        state.set_poll_rate(resource, 1)
    state.add_control(
        "1", start=time.time(), duration=600, mrid="CAFE0001", op_mod_exp_lim_w=200, ramp_tms=0
    )
    data = _form(csip_server, csip_device, csip_pki)
    title = data.pop(CONF_NAME)
    data[CONF_ENABLED] = True
    entry = sunspec_site(
        sim, ConfigSubentryData(data=data, subentry_type=SUBENTRY_CSIP, title=title, unique_id=None)
    )
    await setup_site(hass, entry)

    def export_limit() -> str:
        limit = hass.states.get("sensor.home_export_limit")
        return limit.state if limit else "missing"

    await wait_for(lambda: export_limit() == "200.0", 15, "the control")
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await csip_server.stop()

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: export_limit() == "200.0", 10, "the stored control")
    assert hass.states.get("sensor.home_export_limit").attributes["source"] == "SAPN"
    await wait_for(lambda: sim.site.export_w < 260, 10, "export held while the server is down")
    await wait_for(
        lambda: hass.states.get("binary_sensor.sapn_connected").state == "off", 15, "offline"
    )


@pytest.mark.parametrize(
    ("case", "issue"),
    [
        ("disabled", "csip_end_device_disabled"),
        ("pin", "csip_pin_mismatch"),
    ],
)
async def test_repair_issues(
    hass: HomeAssistant,
    csip_server: CsipTestServer,
    csip_pki: CsipPKI,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    issue: str,
) -> None:
    """What only the user can fix becomes a repair issue."""
    monkeypatch.setattr(discovery, "MIN_POLL_S", 1)
    device = csip_pki.device("device")
    state = csip_server.state
    state.register_device(device, enabled=case != "disabled", pin=11111)
    data = _form(csip_server, device, csip_pki)
    title = data.pop(CONF_NAME)
    data.update({CONF_ENABLED: True, "pin": "22222" if case == "pin" else None})
    entry = site_entry(
        [ConfigSubentryData(data=data, subentry_type=SUBENTRY_CSIP, title=title, unique_id=None)]
    )
    await setup_site(hass, entry)
    (sub_id,) = entry.subentries
    registry = ir.async_get(hass)
    await wait_for(
        lambda: registry.async_get_issue(DOMAIN, f"{issue}_{sub_id}") is not None, 15, issue
    )


async def test_entity_inverter_site_advertises_no_connect(
    hass: HomeAssistant,
    csip_server: CsipTestServer,
    csip_device: Credentials,
    csip_pki: CsipPKI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An inverter limited through a number entity cannot disconnect: DERCapability says so."""
    monkeypatch.setattr(discovery, "MIN_POLL_S", 1)
    csip_server.state.register_device(csip_device)
    for resource in ("dcap", "edev", "der"):
        csip_server.state.set_poll_rate(resource, 1)
    assert await async_setup_component(
        hass, "input_number", {"input_number": {"pv_limit": {"min": 0, "max": 4000, "step": 1}}}
    )
    hass.states.async_set("sensor.pv_power", "1000", {"unit_of_measurement": "W"})
    hass.states.async_set("sensor.grid_power", "500", {"unit_of_measurement": "W"})
    data = _form(csip_server, csip_device, csip_pki)
    title = data.pop(CONF_NAME)
    data[CONF_ENABLED] = True
    inverter = {
        CONF_KIND: KIND_HA_ENTITY,
        CONF_POWER_ENTITY: "sensor.pv_power",
        CONF_LIMIT_ENTITY: "input_number.pv_limit",
        CONF_LIMIT_UNIT: LIMIT_UNIT_WATT,
        CONF_RATED_POWER: 4000.0,
    }
    meter = {
        CONF_KIND: KIND_HA_ENTITY,
        CONF_POWER_ENTITY: "sensor.grid_power",
        CONF_INVERT: False,
        CONF_MAX_AGE: 3600.0,
    }
    entry = site_entry(
        [
            ConfigSubentryData(
                data=inverter, subentry_type=SUBENTRY_INVERTER, title="PV", unique_id="pv"
            ),
            ConfigSubentryData(
                data=meter, subentry_type=SUBENTRY_METER, title="Grid", unique_id="g"
            ),
            ConfigSubentryData(data=data, subentry_type=SUBENTRY_CSIP, title=title, unique_id=None),
        ]
    )
    await setup_site(hass, entry)
    end_device = csip_server.state.device_for(csip_device)
    assert end_device is not None
    await wait_for(lambda: end_device.der_capability is not None, 15, "DERCapability")
    cap = end_device.der_capability
    assert cap is not None
    assert cap.value("modesSupported") == "00000000"
    assert cap.value("doeModesSupported") == "07"
    assert cap.value("rtgMaxW/value") == "4000"
