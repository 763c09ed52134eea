"""Hoymiles inverters behind OpenDTU: flow, entities and control through the 3 s radio lag."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_REAUTH, ConfigSubentryData
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PASSWORD, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.dynamic_export.const import (
    CONF_INVERTERS,
    CONF_RATED_POWER,
    CONF_SERIAL,
    DOMAIN,
    KIND_OPENDTU,
    SUBENTRY_INVERTER,
)
from custom_components.dynamic_export.core.controller import ControlState

from ....opendtu.dtu import HM_SERIAL, HMS_SERIAL, PASSWORD
from ...helpers import site_device, start_reconfigure, start_subentry_flow, state_of, wait_for
from ...peers import DtuPeer, PeerSite, SiteGateway, dtu_peer, run_until, seconds_over
from ...sites import (
    DTU_HOSTNAME,
    added_site,
    dtu_subentry,
    limiter_subentry,
    powerwall_subentry,
    setup_site,
    site_entry,
)


@pytest.fixture
async def dtu(socket_enabled: None) -> AsyncIterator[DtuPeer]:
    dtu = dtu_peer()
    await dtu.start()
    yield dtu
    await dtu.stop()
    # Whatever a test did, nothing may ever ask for a persistent (EEPROM) limit.
    assert set(dtu.posted_types()) <= {0, 1}, dtu.posted_types()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _login(dtu: DtuPeer, **changes: Any) -> dict[str, Any]:
    return {CONF_HOST: "127.0.0.1", CONF_PORT: dtu.port, CONF_PASSWORD: PASSWORD, **changes}


async def test_add_dtu_with_chosen_inverters(hass: HomeAssistant, dtu: DtuPeer) -> None:
    """The DTU lists its inverters; the chosen ones go into one subentry for the DTU."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_OPENDTU)
    assert result["step_id"] == "opendtu"
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _login(dtu))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "opendtu_inverters"
    assert result["description_placeholders"] == {"dtu": DTU_HOSTNAME}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_INVERTERS: [HMS_SERIAL]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.unique_id == f"opendtu_{DTU_HOSTNAME}"
    assert sub.title == f"OpenDTU {DTU_HOSTNAME}"
    assert sub.data[CONF_INVERTERS] == [
        # The max power the DTU reported is kept for a start at which the DTU is down.
        {CONF_SERIAL: HMS_SERIAL, CONF_NAME: "Roof HMS-2000", CONF_RATED_POWER: 2000.0}
    ]

    # The same DTU again: one subentry per DTU, so its other inverter is added by reconfiguring.
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_OPENDTU)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _login(dtu))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "dtu_already_configured"


async def test_inverters_of_another_subentry_are_not_offered(
    hass: HomeAssistant, dtu: DtuPeer
) -> None:
    """A DTU reached under another name: inverters another subentry controls are left out."""
    other = dtu_subentry(dtu, (HMS_SERIAL,))
    other = ConfigSubentryData(**{**other, "unique_id": "opendtu_old-name"})  # type: ignore[typeddict-item]
    entry = added_site(hass, [other])
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_OPENDTU)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _login(dtu))
    assert result["step_id"] == "opendtu_inverters"
    schema = result["data_schema"].schema
    (field,) = schema
    assert field.default() == [HM_SERIAL]
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_INVERTERS: [HM_SERIAL]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY

    # The same DTU once more, under its own name: refused, reconfigure it instead.
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_OPENDTU)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _login(dtu))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "dtu_already_configured"

    # Under yet another name, with every inverter taken: nothing to offer.
    for index, sub in enumerate(list(entry.subentries.values())):
        hass.config_entries.async_update_subentry(entry, sub, unique_id=f"opendtu_old-{index}")
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_OPENDTU)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _login(dtu))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_rating_is_asked_when_the_dtu_does_not_know_it(
    hass: HomeAssistant, dtu: DtuPeer
) -> None:
    """An inverter the DTU has not talked to yet has no max power: the user gives it."""
    dtu.inverters[HMS_SERIAL].max_power = 0
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_OPENDTU)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _login(dtu))
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_INVERTERS: []}
    )
    assert result["errors"] == {CONF_INVERTERS: "no_inverter_chosen"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_INVERTERS: [HM_SERIAL, HMS_SERIAL]}
    )
    assert result["step_id"] == "opendtu_ratings"
    assert HMS_SERIAL in result["description_placeholders"]["inverters"]
    for wrong in (0, 10_000_000):  # a translated error on the field, not a schema failure
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {HMS_SERIAL: wrong}
        )
        assert result["step_id"] == "opendtu_ratings"
        assert result["errors"] == {HMS_SERIAL: "rated_power_out_of_range"}
        assert result["description_placeholders"]["rated_power_max"] == "100000"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {HMS_SERIAL: 2000}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    ratings = {inv[CONF_SERIAL]: inv[CONF_RATED_POWER] for inv in sub.data[CONF_INVERTERS]}
    assert ratings == {HM_SERIAL: 800.0, HMS_SERIAL: 2000.0}  # read, and given by the user


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("wrong_password", "invalid_auth"),
        ("closed_port", "cannot_connect"),
        ("timeout", "cannot_connect"),
        ("not_opendtu", "not_opendtu"),
        ("malformed_json", "invalid_response"),
        ("missing_fields", "invalid_response"),
    ],
)
async def test_dtu_flow_errors(hass: HomeAssistant, dtu: DtuPeer, setup: str, error: str) -> None:
    """Each way a DTU can fail the check is its own form error."""
    entry = added_site(hass)
    login = _login(dtu)
    if setup == "wrong_password":
        login[CONF_PASSWORD] = "wrong"
    elif setup == "closed_port":
        login[CONF_PORT] = _closed_port()
    elif setup == "timeout":
        dtu.delay_s = 1.0
    elif setup == "not_opendtu":
        dtu.overrides[("GET", "/api/system/status")] = (200, json.dumps({"name": "router"}))
    elif setup == "malformed_json":
        dtu.overrides[("GET", "/api/livedata/status")] = (200, "{inverters: [")
    elif setup == "missing_fields":
        entry_json = dtu.inverters[HM_SERIAL].common()
        del entry_json["reachable"]
        body = json.dumps({"inverters": [entry_json]})
        dtu.overrides[("GET", "/api/livedata/status")] = (200, body)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_OPENDTU)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], login)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}


async def test_dtu_without_a_host_name_is_named_by_address(
    hass: HomeAssistant, dtu: DtuPeer
) -> None:
    """Firmware that reports no host name: the address names the DTU."""
    dtu.overrides[("GET", "/api/system/status")] = (200, json.dumps({"git_hash": "v24.2.12"}))
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_OPENDTU)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _login(dtu))
    assert result["description_placeholders"] == {"dtu": f"127.0.0.1:{dtu.port}"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_INVERTERS: [HM_SERIAL]}
    )
    (sub,) = entry.subentries.values()
    assert sub.title == f"OpenDTU 127.0.0.1:{dtu.port}"
    assert sub.unique_id == f"opendtu_127.0.0.1:{dtu.port}"
    assert sub.data["version"] == "v24.2.12"


async def test_dtu_without_inverters(hass: HomeAssistant, dtu: DtuPeer) -> None:
    """A DTU with no inverters has nothing to add."""
    dtu.inverters.clear()
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_OPENDTU)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _login(dtu))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_inverters"


async def test_reconfigure_dtu_selection(hass: HomeAssistant, dtu: DtuPeer) -> None:
    """Reconfigure changes the address or the chosen inverters; a vanished serial is flagged."""
    entry = added_site(hass, [dtu_subentry(dtu, **{f"s{HMS_SERIAL}": 1900.0})])
    (sub_id,) = entry.subentries
    gone = dtu.inverters.pop(HM_SERIAL)
    dtu.inverters[HMS_SERIAL].max_power = 0  # unknown again: the stored rating is offered
    result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub_id)
    assert result["step_id"] == "opendtu"
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _login(dtu))
    assert result["step_id"] == "opendtu_inverters"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_INVERTERS: [HM_SERIAL, HMS_SERIAL]}
    )
    assert result["errors"] == {CONF_INVERTERS: "unknown_serial"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_INVERTERS: [HMS_SERIAL]}
    )
    assert result["step_id"] == "opendtu_ratings"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {HMS_SERIAL: 1900}
    )
    assert result["reason"] == "reconfigure_successful"
    sub = entry.subentries[sub_id]
    assert [inv[CONF_SERIAL] for inv in sub.data[CONF_INVERTERS]] == [HMS_SERIAL]
    assert sub.unique_id == f"opendtu_{DTU_HOSTNAME}"

    # The inverter is back: it can be chosen again (max power known, no rating asked).
    dtu.inverters[HM_SERIAL] = gone
    dtu.inverters[HMS_SERIAL].max_power = 2000
    result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub_id)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _login(dtu))
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_INVERTERS: [HM_SERIAL, HMS_SERIAL]}
    )
    assert result["reason"] == "reconfigure_successful"
    assert len(entry.subentries[sub_id].data[CONF_INVERTERS]) == 2


EXPORT_LIMIT = 800.0
AVAILABLE = {HM_SERIAL: 750.0, HMS_SERIAL: 1800.0}


async def test_dtu_inverters_hold_the_export_limit(
    hass: HomeAssistant, dtu: DtuPeer, tmp_path: Path
) -> None:
    """Output follows each acknowledged limit ~3 s late; export settles without oscillating.

    The meter is a Powerwall gateway reporting this small site's grid power. Load 400 W and
    2.55 kW of sun: unlimited, the site would export 2.15 kW against an 800 W limit.
    """
    site = PeerSite(load_w=400.0)
    dtu.attach(site, AVAILABLE)
    gateway = SiteGateway(tmp_path)
    gateway.follow(site)
    await gateway.start()
    for inverter in dtu.inverters.values():
        inverter.ac_power = AVAILABLE[inverter.serial]
    site.start()
    try:
        entry = site_entry(
            [
                dtu_subentry(dtu),
                powerwall_subentry(gateway),  # type: ignore[arg-type]
                limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
            ]
        )
        await setup_site(hass, entry)
        await run_until(site, 14.0)
        # First cut: the limits take effect once the radio acknowledges them.
        assert seconds_over(site.window(0, 14), EXPORT_LIMIT + 100) <= 10.0
        steady = site.window(10, 14)
        assert all(s.export_w <= EXPORT_LIMIT + 100 for s in steady), steady
        assert min(s.export_w for s in steady) >= EXPORT_LIMIT - 250  # not over-curtailed

        site.load_w = 100.0  # the load drops by 300 W
        await run_until(site, 28.0)
        assert seconds_over(site.window(14, 28), EXPORT_LIMIT + 100) <= 10.0
        steady = site.window(24, 28)
        assert all(EXPORT_LIMIT - 250 <= s.export_w <= EXPORT_LIMIT + 100 for s in steady)
        assert max(s.export_w for s in steady) - min(s.export_w for s in steady) < 150

        site.load_w = 900.0  # and rises by 800 W: generation comes back
        # A rise takes up to two acknowledgements (~3 s each): one command is in flight at
        # a time, and a busy machine may start the second a cycle late.
        await run_until(site, 40.0)
        sent = len(dtu.commands)
        await run_until(site, 44.0)
        steady = site.window(40, 44)
        assert all(EXPORT_LIMIT - 250 <= s.export_w <= EXPORT_LIMIT + 100 for s in steady)
        assert max(s.export_w for s in steady) - min(s.export_w for s in steady) < 150
        # Without oscillation: once settled, (almost) nothing more is sent over the radio.
        assert len(dtu.commands) - sent <= 2, dtu.commands[sent:]

        # One device per inverter, with the DTU-specific sensors.
        hm, hms = "sensor.garage_hm_800", "sensor.roof_hms_2000"
        assert float(state_of(hass, f"{hms}_temperature")) == 48.0
        assert state_of(hass, f"{hm}_limit_acknowledgement") in {"ok", "pending"}
        ack = hass.states.get(f"{hm}_limit_acknowledgement")
        assert ack.attributes["last_outcome"] in {"Ok", None}
        response = float(state_of(hass, f"{hms}_limit_response_time"))
        assert 2.5 <= response <= 5.0
        assert float(state_of(hass, f"{hms}_rated_power")) == 2000
        assert state_of(hass, "binary_sensor.garage_hm_800_connection") == "on"
        assert state_of(hass, "sensor.home_control_state") == ControlState.CONTROLLING
        (sub_id,) = [
            s.subentry_id for s in entry.subentries.values() if s.subentry_type == "inverter"
        ]
        device = site_device(hass, entry.entry_id, f"{sub_id}_{HMS_SERIAL}")
        assert device is not None
        assert (device.manufacturer, device.serial_number) == ("Hoymiles", HMS_SERIAL)
    finally:
        await site.stop()
        await gateway.stop()


async def test_dtu_faults_keep_the_loop_running(hass: HomeAssistant, dtu: DtuPeer) -> None:
    """An unknown serial, a timeout or malformed JSON make an inverter unavailable only."""
    entry = site_entry(
        [dtu_subentry(dtu, (HM_SERIAL, HMS_SERIAL, "116400000001"), s116400000001=1500.0)]
    )
    await setup_site(hass, entry)
    coordinator = entry.runtime_data.coordinator
    await wait_for(
        lambda: hass.states.get("binary_sensor.garage_hm_800_connection").state == "on",
        5,
        "known inverter answers",
    )
    unknown = hass.states.get("binary_sensor.116400000001_connection")
    assert unknown.state == "off"
    assert "no inverter 116400000001" in unknown.attributes["error"]
    assert hass.states.get("sensor.116400000001_ac_power").state == "unavailable"

    for fault in ("malformed", "timeout", "missing"):
        if fault == "malformed":
            dtu.overrides[("GET", "/api/livedata/status")] = (200, "{oops")
        elif fault == "missing":
            full = dtu.inverters[HM_SERIAL].full()
            del full["AC"]
            body = json.dumps({"inverters": [full]})
            dtu.overrides[("GET", "/api/livedata/status")] = (200, body)
        else:
            dtu.delay_s = 3.5  # beyond the client's 3 s timeout
        await wait_for(
            lambda: hass.states.get("binary_sensor.garage_hm_800_connection").state == "off",
            10,
            f"inverter down ({fault})",
        )
        assert hass.states.get("sensor.garage_hm_800_ac_power").state == "unavailable"
        assert hass.states.get("sensor.garage_hm_800_temperature").state == "unavailable"
        assert coordinator.last_update_success
        dtu.overrides.clear()
        dtu.delay_s = 0.0
        await wait_for(
            lambda: hass.states.get("binary_sensor.garage_hm_800_connection").state == "on",
            10,
            f"inverter back ({fault})",
        )


async def test_unticked_inverter_loses_its_device(hass: HomeAssistant, dtu: DtuPeer) -> None:
    """Reconfiguring the DTU without an inverter removes that inverter's device and entities."""
    entry = site_entry([dtu_subentry(dtu)])
    await setup_site(hass, entry)
    (sub_id,) = entry.subentries
    assert site_device(hass, entry.entry_id, f"{sub_id}_{HM_SERIAL}") is not None
    result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub_id)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _login(dtu))
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_INVERTERS: [HMS_SERIAL]}
    )
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert site_device(hass, entry.entry_id, f"{sub_id}_{HM_SERIAL}") is None
    assert hass.states.get("sensor.garage_hm_800_ac_power") is None
    assert site_device(hass, entry.entry_id, f"{sub_id}_{HMS_SERIAL}") is not None
    assert hass.states.get("sensor.roof_hms_2000_ac_power") is not None


async def test_dtu_down_at_start_up_is_asked_once(
    hass: HomeAssistant, dtu: DtuPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """A DTU that does not answer delays start-up by one attempt, not one per inverter."""
    down = dtu_subentry(dtu)
    down["data"] = {**down["data"], CONF_PORT: _closed_port()}  # type: ignore[index]
    entry = site_entry([down])
    await setup_site(hass, entry)
    assert caplog.text.count("is not ready") == 1
    assert len(entry.runtime_data.inverters) == 2
    assert hass.states.get("binary_sensor.garage_hm_800_connection").state == "off"
    assert hass.states.get("binary_sensor.roof_hms_2000_connection").state == "off"


async def test_release_after_a_restart_restores_the_original_limit(
    hass: HomeAssistant, dtu: DtuPeer, hass_storage: dict[str, Any]
) -> None:
    """A restart while curtailed: the DTU shows our limit, yet release restores the owner's."""
    dtu.inverters[HM_SERIAL].limit_relative = 80.0  # the owner's persistent limit
    entry = site_entry(
        [dtu_subentry(dtu, (HM_SERIAL,)), limiter_subentry("Export limit", export_limit=0.0)]
    )
    await setup_site(hass, entry)  # no meter: fail-safe, the inverter goes to its minimum
    await wait_for(lambda: dtu.inverters[HM_SERIAL].limit_relative < 10, 8, "curtailed")

    # Unloaded while the DTU refuses limits: the hand-back fails, our limit stays in force.
    dtu.overrides[("POST", "/api/limit/config")] = (500, "")
    assert await hass.config_entries.async_unload(entry.entry_id)
    dtu.overrides.clear()
    assert dtu.inverters[HM_SERIAL].limit_relative < 10
    (sub_id,) = [s.subentry_id for s in entry.subentries.values() if s.title.startswith("OpenDTU")]
    stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"]
    assert stored["opendtu_baselines"] == {f"{sub_id}_{HM_SERIAL}": 80.0}

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(
        lambda: hass.states.get("sensor.garage_hm_800_ac_power").state != "unavailable",
        5,
        "inverter read after the restart",
    )
    assert await hass.config_entries.async_unload(entry.entry_id)
    last = dtu.commands[-1]
    assert (last["serial"], last["limit_type"], last["limit_value"]) == (HM_SERIAL, 1, 80.0)
    stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"]
    assert stored["opendtu_baselines"] == {}  # handed back: nothing owed any more


async def test_dtu_port_out_of_range_is_an_error_on_its_field(hass: HomeAssistant) -> None:
    """A port outside 1–65535 is refused beside the field before anything is asked."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_OPENDTU)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: 0, CONF_PASSWORD: "x"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_PORT: "port_out_of_range"}
    assert result["description_placeholders"]["port_max"] == "65535"


async def test_changed_password_asks_for_the_new_one(hass: HomeAssistant, dtu: DtuPeer) -> None:
    """The DTU's password changed: re-authentication asks for it; control never stops."""
    dtu.allow_readonly = False
    entry = await setup_site(
        hass, site_entry([dtu_subentry(dtu), limiter_subentry("Zero", export_limit=0.0)])
    )
    (sub,) = (s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_INVERTER)
    dtu.password = "Changed-on-the-DTU-9"

    def reauth_flows() -> list[Any]:
        return list(entry.async_get_active_flows(hass, {SOURCE_REAUTH}))

    await wait_for(lambda: bool(reauth_flows()), within_s=5, what="re-authentication")
    (flow,) = reauth_flows()
    assert flow["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_PASSWORD: "still-wrong"}
    )
    assert result["errors"] == {CONF_PASSWORD: "invalid_auth"}
    assert (
        result["description_placeholders"].items() >= {"device": sub.title, "site": "Home"}.items()
    )
    assert entry.runtime_data.coordinator.last_update_success  # the site kept cycling
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_PASSWORD: "Changed-on-the-DTU-9"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.subentries[sub.subentry_id].data[CONF_PASSWORD] == "Changed-on-the-DTU-9"
    await hass.async_block_till_done()  # the reload the new password brings
    await wait_for(
        lambda: (
            entry.runtime_data.coordinator.data is not None
            and not entry.runtime_data.coordinator.data.credentials_rejected
            and all(s.available for s in entry.runtime_data.coordinator.data.inverters.values())
        ),
        within_s=5,
        what="the DTU to answer again",
    )
    assert not reauth_flows()
    assert await hass.config_entries.async_unload(entry.entry_id)
