"""A meter wired to a SolarEdge inverter as the site meter, read through the inverter.

The peer is the simulated SolarEdge inverter (tests/solaredge/peer.py) with meter blocks
chained after its own models, as SolarEdge serves them, and one Modbus client at a time: a
second client knocks the first off, which the peer counts.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.dynamic_export.const import (
    CONF_FALLBACK_LIMIT,
    CONF_KIND,
    CONF_METER_NUMBER,
    CONF_REVERT_TIMEOUT,
    CONF_UNIT_ID,
    KIND_SOLAREDGE,
    SUBENTRY_INVERTER,
    SUBENTRY_METER,
)
from custom_components.dynamic_export.core.controller import ControlState
from custom_components.dynamic_export.entity import SPACING_S
from custom_components.dynamic_export.subentries.devices import flow_solaredge_meter

from ....solaredge.peer import (
    F_DYNAMIC_LIMIT,
    METER_MODEL,
    METER_SERIAL,
    UNIT,
    PeerMeter,
    SolarEdgePeer,
)
from ...helpers import start_reconfigure, start_subentry_flow, state_of, wait_for
from ...peers import Generator, PeerSite, run_until, seconds_over
from ...sites import added_site, limiter_subentry, setup_site, site_entry
from .test_solaredge import solaredge_subentry

METER_TITLE = f"{METER_MODEL} {METER_SERIAL[-4:]}"  # the model and a short id
METER_ID = f"solaredge-meter-{METER_SERIAL}"
METER_POWER = f"sensor.se_mtr_3y_400v_a_{METER_SERIAL[-4:].lower()}_grid_power"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def peers(socket_enabled: None) -> AsyncIterator[list[SolarEdgePeer]]:
    """Simulated SolarEdge inverters the test starts; stopped after it."""
    started: list[SolarEdgePeer] = []
    yield started
    for peer in started:
        await peer.stop()


async def _peer(peers: list[SolarEdgePeer], **kwargs: Any) -> SolarEdgePeer:
    kwargs.setdefault("commit_s", 1.0)
    kwargs.setdefault("meters", [PeerMeter(grid_w=-1200.0)])
    peer = SolarEdgePeer(**kwargs)
    await peer.start()
    peers.append(peer)
    return peer


def _form(peer: SolarEdgePeer, **changes: Any) -> dict[str, Any]:
    return {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: peer.port,
        CONF_UNIT_ID: UNIT,
        CONF_METER_NUMBER: 1,
        **changes,
    }


def solaredge_meter_subentry(peer: SolarEdgePeer, number: int = 1) -> ConfigSubentryData:
    """Subentry data of the simulated inverter's meter, as the flow stores it."""
    return ConfigSubentryData(
        data={
            CONF_KIND: KIND_SOLAREDGE,
            CONF_HOST: "127.0.0.1",
            CONF_PORT: peer.port,
            CONF_UNIT_ID: UNIT,
            CONF_METER_NUMBER: number,
        },
        subentry_type=SUBENTRY_METER,
        title=METER_TITLE,
        unique_id=METER_ID,
    )


def _suggested(result: Any) -> dict[str, Any]:
    return {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }


async def test_add_the_meter_reads_it_and_writes_nothing(
    hass: HomeAssistant, peers: list[SolarEdgePeer]
) -> None:
    """The form offers the site's SolarEdge inverter's address; the test only reads."""
    peer = await _peer(peers)
    entry = added_site(hass, [solaredge_subentry(peer)])
    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_SOLAREDGE)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == KIND_SOLAREDGE
    assert _suggested(result) == {CONF_HOST: "127.0.0.1", CONF_PORT: peer.port, CONF_UNIT_ID: 1}
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _form(peer))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    meter = next(s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_METER)
    assert (meter.title, meter.unique_id) == (METER_TITLE, METER_ID)
    assert meter.data == {
        CONF_KIND: KIND_SOLAREDGE,
        CONF_HOST: "127.0.0.1",
        CONF_PORT: peer.port,
        CONF_UNIT_ID: UNIT,
        CONF_METER_NUMBER: 1,
    }
    assert not peer.writes()


async def test_connection_test_errors(hass: HomeAssistant, peers: list[SolarEdgePeer]) -> None:
    """Each refusal is a form error; a consumption meter's says what it is set up as."""
    consumption = await _peer(peers, meters=[PeerMeter(option="Consumption")])
    bare = await _peer(peers, meters=[])
    fronius = await _peer(peers, manufacturer="Fronius")
    entry = added_site(hass)
    cases: list[tuple[SolarEdgePeer, dict[str, Any], dict[str, str]]] = [
        (bare, {CONF_PORT: _closed_port()}, {"base": "cannot_connect"}),
        (consumption, {}, {"base": "not_grid_meter"}),
        (consumption, {CONF_METER_NUMBER: 2}, {"base": "no_solaredge_meter"}),
        (bare, {}, {"base": "no_solaredge_meter"}),
        (fronius, {}, {"base": "not_solaredge"}),
        (bare, {CONF_UNIT_ID: 7}, {"base": "unit_not_found"}),  # the fake answers 11
        (bare, {CONF_METER_NUMBER: 4}, {CONF_METER_NUMBER: "meter_number_out_of_range"}),
        (bare, {CONF_METER_NUMBER: 1.5}, {CONF_METER_NUMBER: "meter_number_out_of_range"}),
    ]
    for peer, changes, errors in cases:
        result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_SOLAREDGE)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], _form(peer, **changes)
        )
        assert result["type"] is FlowResultType.FORM, errors
        assert result["errors"] == errors, changes
        if errors == {"base": "not_grid_meter"}:
            assert result["description_placeholders"]["meter_option"] == "Consumption"
        if CONF_METER_NUMBER in errors:
            assert result["description_placeholders"]["meter_number_max"] == "3"
    assert not entry.subentries
    assert not any(peer.writes() for peer in (consumption, bare, fronius))


async def test_a_second_port_to_the_site_inverter_is_refused(
    hass: HomeAssistant, peers: list[SolarEdgePeer]
) -> None:
    """Another port to the same inverter would be a second client: refused unasked."""
    peer = await _peer(peers)
    elsewhere = await _peer(peers)
    entry = added_site(hass, [solaredge_subentry(peer)])
    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_SOLAREDGE)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _form(elsewhere)
    )
    assert result["errors"] == {CONF_PORT: "solaredge_other_port"}
    assert result["description_placeholders"]["inverter_port"] == str(peer.port)
    assert not elsewhere.requests


async def test_reconfigure_goes_through_the_site_connection(
    hass: HomeAssistant, peers: list[SolarEdgePeer]
) -> None:
    """While the site runs the test reads through its connection: nobody is knocked off.

    Meter 2 of the same inverter measures consumption and is refused; another inverter's
    grid meter (at another host, so not a second port to the site's inverter) is another
    device.
    """
    peer = await _peer(
        peers,
        committed=True,
        meters=[PeerMeter(grid_w=-800.0), PeerMeter(option="Consumption", serial="C2")],
    )
    entry = await setup_site(
        hass, site_entry([solaredge_subentry(peer), solaredge_meter_subentry(peer)])
    )
    meter = next(s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_METER)
    result = await start_reconfigure(hass, entry, SUBENTRY_METER, meter.subentry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == KIND_SOLAREDGE
    assert _suggested(result)[CONF_METER_NUMBER] == 1
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _form(peer, **{CONF_METER_NUMBER: 2})
    )
    assert result["errors"] == {"base": "not_grid_meter"}
    assert (peer.knocked_off, peer.peak_clients) == (0, 1)  # read through the site's client
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _form(peer))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert (peer.knocked_off, peer.peak_clients) == (0, 1)  # (the reload is still to come)
    await hass.async_block_till_done()

    other = await _peer(peers, meters=[PeerMeter(serial="9999")])
    result = await start_reconfigure(hass, entry, SUBENTRY_METER, meter.subentry_id)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _form(other, **{CONF_HOST: "localhost"})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "different_device"
    assert not [w for w in peer.writes() if w.address < 0xF000]  # only power control
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_meter_added_while_the_site_reloads_waits_for_it(
    hass: HomeAssistant, peers: list[SolarEdgePeer]
) -> None:
    """The meter added at once after the inverter: the test waits out the site's reload.

    Adding the inverter reloads the site, whose set-up commits the inverter's settings (3 s
    here). A connection test made meanwhile would be a second client that knocks the site's
    own off; it waits for the site and then reads through the site's connection.
    """
    peer = await _peer(peers, commit_s=3.0)
    entry = await setup_site(hass, site_entry([]))
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SOLAREDGE)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {CONF_HOST: "127.0.0.1", CONF_PORT: peer.port, CONF_UNIT_ID: UNIT, CONF_FALLBACK_LIMIT: 0},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_SOLAREDGE)
    await asyncio.sleep(0.5)  # the reload is under way: the site commits the inverter
    assert entry.setup_lock.locked()
    peer.reset_client_counts()
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _suggested(result) | {CONF_METER_NUMBER: 1}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert peer.knocked_off == 0
    assert peer.peak_clients == 1
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_site_that_stays_busy_is_a_form_error(
    hass: HomeAssistant, peers: list[SolarEdgePeer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site still setting up when the wait runs out: say so, and read nothing."""
    monkeypatch.setattr(flow_solaredge_meter, "SITE_SETTLE_S", 0.5)
    peer = await _peer(peers, committed=True)
    entry = await setup_site(hass, site_entry([solaredge_subentry(peer)]))
    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_SOLAREDGE)
    async with entry.setup_lock:  # as a reload holds it
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], _suggested(result) | {CONF_METER_NUMBER: 1}
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "site_busy"}
    assert peer.knocked_off == 0
    assert await hass.config_entries.async_unload(entry.entry_id)


EXPORT_LIMIT = 1500.0
AVAILABLE_W = 4500.0
REVERT_S = 10.0


async def test_inverter_and_its_meter_hold_the_limit_on_one_connection(
    hass: HomeAssistant, peers: list[SolarEdgePeer]
) -> None:
    """Inverter and meter added through the UI hold a 1500 W export limit through load steps.

    Only one Modbus client is ever connected to the inverter: the connection tests go
    through the running site's connection, and the control loop reads the meter and drives
    the inverter over the same one. Then the meter freezes (the inverter keeps serving its
    last values): once its counters have stood still for 3 steps + 10 Wh of the 1.5 kW it
    shows (about 31 s), the site goes to fail-safe, which caps generation at the export limit.
    """
    grid = PeerMeter()
    peer = await _peer(peers, committed=True, available_w=AVAILABLE_W, meters=[grid])
    generator = Generator(AVAILABLE_W, peer.ceiling_w, time_constant_s=0.8)
    peer.output_source = lambda: generator.output_w
    site = PeerSite(load_w=600.0, generators=[generator], tick_s=0.1)
    grid.source = lambda: site.grid_power_w
    site.start()
    try:
        entry = await setup_site(
            hass,
            site_entry(
                [limiter_subentry("Export limit", export_limit=EXPORT_LIMIT)],
                **{CONF_REVERT_TIMEOUT: REVERT_S},
            ),
        )
        result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SOLAREDGE)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"],
            {
                CONF_HOST: "127.0.0.1",
                CONF_PORT: peer.port,
                CONF_UNIT_ID: UNIT,
                CONF_FALLBACK_LIMIT: 0,
            },
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        peer.reset_client_counts()  # the inverter's test client has gone, the site's is in
        result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_SOLAREDGE)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], _suggested(result) | {CONF_METER_NUMBER: 1}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        # The flows read through the running site's client (the reload is still to come).
        assert (peer.peak_clients, peer.knocked_off) == (1, 0)
        await hass.async_block_till_done()
        await wait_for(
            lambda: state_of(hass, "sensor.home_control_state") == ControlState.CONTROLLING,
            10,
            "control with the SolarEdge meter",
        )
        peer.reset_client_counts()
        start = site.t

        await run_until(site, start + 12.0)
        steady = site.window(start + 8.0, start + 12.0)
        assert all(EXPORT_LIMIT - 200 <= s.export_w <= EXPORT_LIMIT + 100 for s in steady), steady

        site.load_w = 200.0  # the load drops by 400 W: export rises until the limit follows
        await run_until(site, start + 24.0)
        assert seconds_over(site.window(start + 12.0, start + 24.0), EXPORT_LIMIT + 100) <= 4.0
        steady = site.window(start + 18.0, start + 24.0)
        assert all(EXPORT_LIMIT - 200 <= s.export_w <= EXPORT_LIMIT + 100 for s in steady), steady

        site.load_w = 1800.0  # and rises by 1.6 kW: generation comes back
        await run_until(site, start + 36.0)
        steady = site.window(start + 30.0, start + 36.0)
        assert all(EXPORT_LIMIT - 200 <= s.export_w <= EXPORT_LIMIT + 100 for s in steady), steady
        assert state_of(hass, "sensor.home_control_state") == ControlState.CONTROLLING
        # The meter's power sensor is paced: it shows a move of a step within SPACING_S.
        await wait_for(
            lambda: abs(float(state_of(hass, METER_POWER)) + EXPORT_LIMIT) <= 250,
            SPACING_S + 3,
            "the SolarEdge meter's power near the export limit",
        )
        # One client at any time while the site controls: inverter and meter share it.
        assert (peer.peak_clients, peer.knocked_off) == (1, 0)
        assert any(r.address == grid.address for r in peer.requests)  # the meter was read
        assert peer.writes_to(F_DYNAMIC_LIMIT)  # and the inverter driven

        grid.freeze()  # the inverter keeps serving the meter's last values
        frozen_at = site.t
        await wait_for(
            lambda: state_of(hass, "sensor.home_control_state") == ControlState.FAIL_SAFE,
            45,
            "fail-safe on the frozen meter",
        )
        failed_at = site.t
        assert 25.0 <= failed_at - frozen_at <= 40.0, failed_at - frozen_at
        assert state_of(hass, "binary_sensor.home_fail_safe") == "on"
        assert state_of(hass, "sensor.home_fail_safe_reason") == "meter_stale"
        # Fail-safe allows only what the export limit permits with no load at all.
        await run_until(site, failed_at + 6.0)
        after = site.window(failed_at + 4.0, site.t)
        assert all(s.generation_w <= EXPORT_LIMIT + 50 for s in after), after
        assert (peer.peak_clients, peer.knocked_off) == (1, 0)
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await site.stop()
