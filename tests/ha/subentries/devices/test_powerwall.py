"""Tesla Powerwall 2 as the site meter: flow, entities, certificate repair, end-to-end control."""

from __future__ import annotations

import json
import socket
from types import MappingProxyType
from typing import Any

import pytest
from homeassistant.config_entries import (
    SOURCE_DHCP,
    SOURCE_REAUTH,
    ConfigSubentry,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.service_info.dhcp import DhcpServiceInfo
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.dynamic_export.const import (
    CONF_FINGERPRINT,
    CONF_KIND,
    CONF_PHASES,
    DOMAIN,
    KIND_POWERWALL,
    SUBENTRY_METER,
)
from custom_components.dynamic_export.core.controller import ControlState, FailSafeReason
from custom_components.dynamic_export.core.measurements import MeterReading
from custom_components.dynamic_export.powerwall.errors import CertificateChangedError
from custom_components.dynamic_export.sim.server import SimulatedSiteServer
from custom_components.dynamic_export.subentries.devices import flow_discovery
from custom_components.dynamic_export.subentries.devices.setup import (
    PowerwallSiteMeter,
    powerwall_issue_id,
)

from ....powerwall.gateway import DIN, PASSWORD
from ...helpers import (
    LOAD_STEPS,
    check_load_steps,
    record,
    site_device,
    start_reconfigure,
    start_subentry_flow,
    wait_for,
)
from ...peers import SiteGateway
from ...sites import (
    added_site,
    inverter_subentry,
    limiter_subentry,
    meter_subentry,
    powerwall_subentry,
    setup_site,
    site_entry,
)

EXPORT_LIMIT = 1500.0
TOLERANCE = 50.0
# The inverters need ~3.3 s (1 s lag) and a cycle starts up to 1 s after the drop; the rest is
# slack for a loaded test machine (this runs in real time).
COMPLY_S = 6.0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _user_input(gateway: SiteGateway, **changes: Any) -> dict[str, Any]:
    return {CONF_HOST: "127.0.0.1", CONF_PORT: gateway.port, CONF_PASSWORD: PASSWORD, **changes}


async def test_add_powerwall_pins_its_certificate(
    hass: HomeAssistant, gateway: SiteGateway
) -> None:
    """The gateway is logged into and read; its DIN is the unique id, its certificate pinned."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_POWERWALL)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "powerwall"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _user_input(gateway, **{CONF_HOST: " 127.0.0.1 "})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.unique_id == DIN
    assert sub.title == "Tesla Powerwall"
    assert sub.data[CONF_FINGERPRINT] == gateway.fingerprint
    assert sub.data[CONF_HOST] == "127.0.0.1"
    assert sub.data[CONF_PHASES] == 3
    assert sub.data[CONF_KIND] == KIND_POWERWALL


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("wrong_password", "invalid_auth"),
        ("closed_port", "cannot_connect"),
        ("timeout", "cannot_connect"),
        ("stopped", "gateway_stopped"),
        ("no_login", "not_powerwall"),
        ("no_din", "not_powerwall"),
        ("locked", "login_throttled"),
        ("malformed_json", "invalid_response"),
        ("missing_site", "invalid_response"),
    ],
)
async def test_powerwall_flow_errors(
    hass: HomeAssistant, gateway: SiteGateway, setup: str, error: str
) -> None:
    """Each way a gateway can fail the check is its own form error, and nothing is saved."""
    entry = added_site(hass)
    user_input = _user_input(gateway)
    if setup == "wrong_password":
        user_input[CONF_PASSWORD] = "wrong"
    elif setup == "closed_port":
        user_input[CONF_PORT] = _closed_port()
    elif setup == "timeout":
        gateway.delay_s = 1.0
    elif setup == "stopped":
        gateway.stopped = True
    elif setup == "no_login":
        gateway.overrides["/api/login/Basic"] = (404, b"")
    elif setup == "no_din":
        gateway.overrides["/api/status"] = (200, json.dumps({"version": "1"}).encode())
    elif setup == "locked":
        gateway.failed_logins = gateway.lock_after
    elif setup == "malformed_json":
        gateway.overrides["/api/meters/aggregates"] = (200, b"{not json")
    elif setup == "missing_site":
        body = {"solar": gateway.aggregates["solar"]}
        gateway.overrides["/api/meters/aggregates"] = (200, json.dumps(body).encode())
    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_POWERWALL)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    assert not entry.subentries


async def test_reconfigure_and_accept_a_new_certificate(
    hass: HomeAssistant, gateway: SiteGateway
) -> None:
    """Reconfigure checks the pinned certificate; a new one is shown and must be accepted."""
    entry = added_site(hass, [powerwall_subentry(gateway)])
    (sub_id,) = entry.subentries
    result = await start_reconfigure(hass, entry, SUBENTRY_METER, sub_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "powerwall"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _user_input(gateway)
    )
    assert result["reason"] == "reconfigure_successful"

    old = gateway.fingerprint
    new = await gateway.replace_certificate()
    result = await start_reconfigure(hass, entry, SUBENTRY_METER, sub_id)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _user_input(gateway)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "powerwall_certificate"
    assert result["description_placeholders"] == {"pinned": old, "seen": new}
    assert entry.subentries[sub_id].data[CONF_FINGERPRINT] == old  # nothing changed yet

    # The gateway is stopped while the user decides, then changes again: both are shown.
    gateway.stopped = True
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], {})
    assert result["errors"] == {"base": "gateway_stopped"}
    gateway.stopped = False
    newer = await gateway.replace_certificate()
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], {})
    assert result["errors"] == {"base": "certificate_changed_again"}
    assert result["description_placeholders"]["seen"] == newer
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], {})
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[sub_id].data[CONF_FINGERPRINT] == newer


async def test_reconfigure_to_another_gateway_is_refused(
    hass: HomeAssistant, gateway: SiteGateway
) -> None:
    """A gateway with another DIN at the address is a different device."""
    entry = added_site(hass, [powerwall_subentry(gateway)])
    (sub_id,) = entry.subentries
    other = {"din": "1232100-00-E--TG9999999999ZZ", "version": "24.36.2"}
    gateway.overrides["/api/status"] = (200, json.dumps(other).encode())
    result = await start_reconfigure(hass, entry, SUBENTRY_METER, sub_id)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _user_input(gateway)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "different_device"


@pytest.mark.parametrize("scenario_data", [LOAD_STEPS])
async def test_powerwall_meter_holds_the_export_limit(
    hass: HomeAssistant,
    sim: SimulatedSiteServer,
    gateway: SiteGateway,
    scenario_data: dict[str, Any],
) -> None:
    """The gateway reports the simulated site's grid power; the SunSpec inverters follow."""
    gateway.follow_sim(sim)
    entry = site_entry(
        [
            inverter_subentry(sim, 1),
            inverter_subentry(sim, 2),
            powerwall_subentry(gateway),
            limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
        ]
    )
    await setup_site(hass, entry)
    samples = await record(sim, until_t=24.0)
    check_load_steps(samples, EXPORT_LIMIT, tolerance=TOLERANCE, comply_s=COMPLY_S)

    # The meter's own and the gateway's extra sensors, on the gateway's device.
    grid = float(hass.states.get("sensor.tesla_powerwall_grid_power").state)
    assert abs(grid - sim.site.meter.reported_power_w) < 600
    assert float(hass.states.get("sensor.tesla_powerwall_solar_power").state) > 3000
    assert float(hass.states.get("sensor.tesla_powerwall_battery_power").state) == -1500
    assert float(hass.states.get("sensor.tesla_powerwall_home_load").state) > 0
    charge = hass.states.get("sensor.tesla_powerwall_battery_charge")
    assert float(charge.state) == 67.2
    assert charge.attributes["unit_of_measurement"] == "%"
    assert float(hass.states.get("sensor.tesla_powerwall_grid_power_phase_c").state) == -500
    assert hass.states.get("binary_sensor.tesla_powerwall_connection").state == "on"
    device = site_device(hass, entry.entry_id, next(iter(_meters(entry))))
    assert device is not None
    assert (device.manufacturer, device.serial_number) == ("Tesla", DIN)


def _meters(entry: Any) -> list[str]:
    return [s.subentry_id for s in entry.subentries.values() if s.subentry_type == SUBENTRY_METER]


async def test_changed_certificate_raises_a_repair_until_accepted(
    hass: HomeAssistant, sim: SimulatedSiteServer, gateway: SiteGateway
) -> None:
    """A new certificate is refused: fail-safe and a repair issue with the new fingerprint."""
    gateway.follow_sim(sim)
    entry = site_entry(
        [
            inverter_subentry(sim, 1),
            powerwall_subentry(gateway),
            limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
        ],
        meter_max_age=2.0,
    )
    await setup_site(hass, entry)
    (meter_id,) = _meters(entry)
    await wait_for(
        lambda: hass.states.get("sensor.home_control_state").state == ControlState.CONTROLLING,
        5,
        "control",
    )
    new = await gateway.replace_certificate()
    issues = ir.async_get(hass)
    await wait_for(
        lambda: issues.async_get_issue(DOMAIN, powerwall_issue_id(meter_id)) is not None,
        5,
        "repair issue",
    )
    issue = issues.async_get_issue(DOMAIN, powerwall_issue_id(meter_id))
    assert issue.translation_key == "powerwall_certificate"
    assert issue.translation_placeholders["seen"] == new
    assert issue.severity is ir.IssueSeverity.ERROR
    await wait_for(
        lambda: hass.states.get("sensor.home_control_state").state == ControlState.FAIL_SAFE,
        5,
        "fail-safe",
    )
    connection = hass.states.get("binary_sensor.tesla_powerwall_connection")
    assert connection.state == "off"
    assert "certificate changed" in connection.attributes["error"]
    assert hass.states.get("sensor.tesla_powerwall_solar_power").state == "unavailable"

    result = await start_reconfigure(hass, entry, SUBENTRY_METER, meter_id)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _user_input(gateway)
    )
    assert result["step_id"] == "powerwall_certificate"
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], {})
    assert result["reason"] == "reconfigure_successful"
    assert issues.async_get_issue(DOMAIN, powerwall_issue_id(meter_id)) is None
    await hass.async_block_till_done()
    await wait_for(
        lambda: hass.states.get("sensor.home_control_state").state == ControlState.CONTROLLING,
        10,
        "control again with the accepted certificate",
    )


async def test_bad_gateway_answers_keep_the_loop_running(
    hass: HomeAssistant, sim: SimulatedSiteServer, gateway: SiteGateway
) -> None:
    """Malformed JSON, a missing field or a stopped gateway: meter unavailable, loop runs."""
    gateway.follow_sim(sim)
    entry = site_entry([inverter_subentry(sim, 1), powerwall_subentry(gateway)], meter_max_age=2.0)
    await setup_site(hass, entry)
    coordinator = entry.runtime_data.coordinator
    for fault in ("malformed", "missing", "stopped", "timeout"):
        if fault == "malformed":
            gateway.overrides["/api/meters/aggregates"] = (200, b"[1, 2")
        elif fault == "missing":
            body = json.dumps({"site": {"frequency": 50}}).encode()
            gateway.overrides["/api/meters/aggregates"] = (200, body)
        elif fault == "stopped":
            gateway.stopped = True
        else:
            gateway.delay_s = 3.0  # beyond the client's 2 s timeout
        await wait_for(
            lambda: hass.states.get("binary_sensor.tesla_powerwall_connection").state == "off",
            8,
            f"meter down ({fault})",
        )
        assert hass.states.get("sensor.tesla_powerwall_grid_power").state == "unavailable"
        assert coordinator.last_update_success
        gateway.overrides.clear()
        gateway.stopped = False
        gateway.delay_s = 0.0
        await wait_for(
            lambda: hass.states.get("binary_sensor.tesla_powerwall_connection").state == "on",
            8,
            f"meter back ({fault})",
        )


async def test_frozen_gateway_data_goes_fail_safe(
    hass: HomeAssistant, sim: SimulatedSiteServer, gateway: SiteGateway
) -> None:
    """The gateway answers but its meter data stops updating: stale, fail-safe, then back."""
    gateway.follow_sim(sim)
    entry = site_entry(
        [
            inverter_subentry(sim, 1),
            powerwall_subentry(gateway),
            limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
        ],
        meter_max_age=2.0,
    )
    await setup_site(hass, entry)
    state = "sensor.home_control_state"
    await wait_for(lambda: hass.states.get(state).state == ControlState.CONTROLLING, 5, "control")
    gateway.freeze()
    await wait_for(lambda: hass.states.get(state).state == ControlState.FAIL_SAFE, 5, "fail-safe")
    assert hass.states.get(state).attributes["reason"] == FailSafeReason.METER_STALE
    gateway.thaw()
    await wait_for(lambda: hass.states.get(state).state == ControlState.CONTROLLING, 5, "back")


async def test_certificate_issue_clears_when_the_pinned_one_is_back(hass: HomeAssistant) -> None:
    """If the pinned certificate comes back (an impostor left), the repair goes by itself."""

    class FlakyMeter:
        def __init__(self) -> None:
            self.changed = True

        async def async_read(self) -> MeterReading:
            if self.changed:
                raise CertificateChangedError("changed", pinned="AA", seen="BB")
            return MeterReading(timestamp=0.0, grid_power_w=100.0)

    sub = ConfigSubentry(
        data=MappingProxyType({}), subentry_type=SUBENTRY_METER, title="PW", unique_id=DIN
    )
    inner = FlakyMeter()
    meter = PowerwallSiteMeter(hass, inner, sub)  # type: ignore[arg-type]
    issues = ir.async_get(hass)
    for _ in range(2):  # raised once, not again for the same certificate
        with pytest.raises(CertificateChangedError):
            await meter.async_read()
    assert issues.async_get_issue(DOMAIN, powerwall_issue_id(sub.subentry_id)) is not None
    inner.changed = False
    assert (await meter.async_read()).grid_power_w == 100.0
    assert issues.async_get_issue(DOMAIN, powerwall_issue_id(sub.subentry_id)) is None


async def test_diagnostics_hide_the_gateway_password(
    hass: HomeAssistant,
    sim: SimulatedSiteServer,
    gateway: SiteGateway,
    hass_client: ClientSessionGenerator,
) -> None:
    """The password, address and DIN stored in the meter's subentry are redacted."""
    gateway.follow_sim(sim)
    entry = await setup_site(hass, site_entry([powerwall_subentry(gateway)]))
    text = str(await get_diagnostics_for_config_entry(hass, hass_client, entry))
    assert PASSWORD not in text
    assert DIN not in text
    assert "127.0.0.1" not in text


async def test_gateway_port_out_of_range_is_an_error_on_its_field(hass: HomeAssistant) -> None:
    """A port outside 1–65535 is refused beside the field before the gateway is asked."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_POWERWALL)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: 65536, CONF_PASSWORD: "x"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_PORT: "port_out_of_range"}
    assert result["description_placeholders"]["port_min"] == "1"


async def test_changed_password_asks_for_the_new_one(
    hass: HomeAssistant, sim: SimulatedSiteServer, gateway: SiteGateway
) -> None:
    """The customer password changed on the gateway: re-authentication asks for it."""
    gateway.follow_sim(sim)
    entry = await setup_site(
        hass,
        site_entry(
            [
                inverter_subentry(sim, 1),
                powerwall_subentry(gateway),
                limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
            ]
        ),
    )
    (meter_id,) = _meters(entry)
    gateway.password = "New-customer-pw"
    gateway.expire_tokens()  # the next read must log in again

    def reauth_flows() -> list[Any]:
        return list(entry.async_get_active_flows(hass, {SOURCE_REAUTH}))

    await wait_for(lambda: bool(reauth_flows()), 5, "re-authentication")
    (flow,) = reauth_flows()
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_PASSWORD: "New-customer-pw"}
    )
    assert result["reason"] == "reauth_successful"
    assert entry.subentries[meter_id].data[CONF_PASSWORD] == "New-customer-pw"
    await hass.async_block_till_done()
    await wait_for(
        lambda: hass.states.get("sensor.home_control_state").state == ControlState.CONTROLLING,
        8,
        "control with the meter back",
    )
    assert await hass.config_entries.async_unload(entry.entry_id)


def _dhcp(
    mac: str = "a8b1d4c0ffee", ip: str = "127.0.0.1", hostname: str = "1118431-01-e--tg1212345"
) -> DhcpServiceInfo:
    """What Home Assistant's DHCP watcher reports for a Tesla gateway."""
    return DhcpServiceInfo(ip=ip, hostname=hostname, macaddress=mac)


async def test_discovered_gateway_becomes_the_meter_of_the_site_picked(
    hass: HomeAssistant, gateway: SiteGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DHCP finds the gateway: the user picks a site without a meter and gives the password."""
    monkeypatch.setattr(flow_discovery, "DEFAULT_POWERWALL_PORT", gateway.port)
    entry = added_site(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_DHCP}, data=_dhcp()
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "powerwall_discovered"
    # The same gateway announcing itself again is not offered twice.
    again = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_DHCP}, data=_dhcp()
    )
    assert again["reason"] == "already_in_progress"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"site": entry.entry_id, CONF_PASSWORD: "wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    assert not entry.subentries
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"site": entry.entry_id, CONF_PASSWORD: PASSWORD}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "powerwall_added"
    (sub,) = entry.subentries.values()
    assert (sub.subentry_type, sub.unique_id, sub.title) == (SUBENTRY_METER, DIN, "Tesla Powerwall")
    assert sub.data[CONF_FINGERPRINT] == gateway.fingerprint
    assert sub.data[CONF_PORT] == gateway.port
    # Now the site has its meter (and this gateway): a new announcement is not offered.
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_DHCP}, data=_dhcp("a8b1d4c0ffef")
    )
    assert result["reason"] == "powerwall_already_configured"
    # The gateway moves to another address: the meter follows it.
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_DHCP},
        data=_dhcp("a8b1d4c0ffee", ip="127.0.0.2", hostname=DIN.lower()),
    )
    assert result["reason"] == "powerwall_already_configured"
    assert entry.subentries[sub.subentry_id].data[CONF_HOST] == "127.0.0.2"


async def test_discovered_gateway_without_a_site_to_take_it_is_not_offered(
    hass: HomeAssistant, sim: SimulatedSiteServer
) -> None:
    added_site(hass, [meter_subentry(sim)])
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_DHCP}, data=_dhcp()
    )
    assert result["reason"] == "no_site_without_meter"
