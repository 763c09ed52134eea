"""Victron GX over Modbus TCP: the inverter and meter flows, and a site held at its export limit.

The peer is the simulated GX (tests/victron/peer.py): system, settings and hub4 at unit 100,
the grid meter at unit 30, the feed-in limit in 2722 (W) and 2706 (100 W), and PV that the
ESS loop holds at load + maximum feed-in.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigSubentryData
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.dynamic_export.const import (
    CONF_KIND,
    CONF_OWN_FEED_IN,
    CONF_RATED_POWER,
    CONF_UNIT_ID,
    KIND_VICTRON_GX,
    SUBENTRY_INVERTER,
    SUBENTRY_METER,
)
from custom_components.dynamic_export.core.controller import ControlState
from custom_components.dynamic_export.entity import SPACING_S

from ....victron.peer import GRID_UNIT, GX_SERIAL, METER_SERIAL, SYSTEM_UNIT, GxPeer, words_of
from ...helpers import start_reconfigure, start_subentry_flow, state_of, wait_for
from ...peers import Generator, PeerSite, run_until, seconds_over
from ...sites import (
    added_site,
    entity_inverter_subentry,
    limiter_subentry,
    setup_site,
    site_entry,
)

GX_TITLE = f"Victron GX {GX_SERIAL[-4:]}"  # the model and a short id
METER_TITLE = f"Victron grid meter {METER_SERIAL[-4:]}"
PV_RATING_W = 5000.0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def peers(socket_enabled: None) -> AsyncIterator[list[GxPeer]]:
    """Simulated GXs the test starts; stopped after it."""
    started: list[GxPeer] = []
    yield started
    for peer in started:
        await peer.stop()


async def _peer(peers: list[GxPeer], **kwargs: Any) -> GxPeer:
    peer = GxPeer(**kwargs)
    await peer.start()
    peers.append(peer)
    return peer


def _gx_form(peer: GxPeer, **changes: Any) -> dict[str, Any]:
    return {CONF_HOST: "127.0.0.1", CONF_PORT: peer.port, CONF_RATED_POWER: PV_RATING_W, **changes}


def _meter_form(peer: GxPeer, **changes: Any) -> dict[str, Any]:
    return {CONF_HOST: "127.0.0.1", CONF_PORT: peer.port, CONF_UNIT_ID: GRID_UNIT, **changes}


def gx_subentry(peer: GxPeer, own: int = -1) -> ConfigSubentryData:
    """Subentry data of the simulated GX as the inverter, as the flow stores it."""
    return ConfigSubentryData(
        data={
            CONF_KIND: KIND_VICTRON_GX,
            CONF_HOST: "127.0.0.1",
            CONF_PORT: peer.port,
            CONF_RATED_POWER: PV_RATING_W,
            CONF_OWN_FEED_IN: own,
        },
        subentry_type=SUBENTRY_INVERTER,
        title=GX_TITLE,
        unique_id=f"victron-gx-{GX_SERIAL}",
    )


def gx_meter_subentry(peer: GxPeer) -> ConfigSubentryData:
    """Subentry data of the simulated GX's grid meter, as the flow stores it."""
    return ConfigSubentryData(
        data={
            CONF_KIND: KIND_VICTRON_GX,
            CONF_HOST: "127.0.0.1",
            CONF_PORT: peer.port,
            CONF_UNIT_ID: GRID_UNIT,
        },
        subentry_type=SUBENTRY_METER,
        title=METER_TITLE,
        unique_id=f"victron-grid-{METER_SERIAL}",
    )


async def test_add_gx_and_its_meter_reads_and_writes_nothing(
    hass: HomeAssistant, peers: list[GxPeer]
) -> None:
    peer = await _peer(peers, max_feed_in_w=4000)
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_VICTRON_GX)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == KIND_VICTRON_GX
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _gx_form(peer))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_VICTRON_GX)
    assert result["step_id"] == KIND_VICTRON_GX
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _meter_form(peer)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    gx, meter = entry.subentries.values()
    assert (gx.title, gx.unique_id) == (GX_TITLE, f"victron-gx-{GX_SERIAL}")
    assert gx.data == {
        CONF_KIND: KIND_VICTRON_GX,
        CONF_HOST: "127.0.0.1",
        CONF_PORT: peer.port,
        CONF_RATED_POWER: PV_RATING_W,
        CONF_OWN_FEED_IN: 4000,  # the GX's own setting, kept as a ceiling and for release
    }
    assert (meter.title, meter.data[CONF_UNIT_ID]) == (METER_TITLE, GRID_UNIT)
    assert not peer.writes()  # the connection tests only read


async def test_a_gx_site_takes_no_other_inverter(hass: HomeAssistant, peers: list[GxPeer]) -> None:
    """The GX drives its PV itself: the site must not drive any inverter beside it."""
    peer = await _peer(peers)
    entry = added_site(hass, [gx_subentry(peer)])
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_INVERTER), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "site_has_victron_gx"
    assert not peer.requests


async def test_a_gx_is_not_added_beside_other_inverters(
    hass: HomeAssistant, peers: list[GxPeer]
) -> None:
    peer = await _peer(peers)
    entry = added_site(
        hass, [entity_inverter_subentry("PV", "sensor.pv", "number.pv_limit", "watt", 3000.0)]
    )
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_VICTRON_GX)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "victron_gx_not_alone"
    assert not peer.requests


@pytest.mark.parametrize(
    ("changes", "errors", "placeholders"),
    [
        ({CONF_PORT: 0}, {CONF_PORT: "port_out_of_range"}, {"port_min": "1"}),
        ({CONF_PORT: 70000}, {CONF_PORT: "port_out_of_range"}, {"port_max": "65535"}),
        (
            {CONF_RATED_POWER: 0},
            {CONF_RATED_POWER: "rated_power_out_of_range"},
            {"rated_power_min": "1", "rated_power_max": "100000"},
        ),
    ],
)
async def test_out_of_range_fields(
    hass: HomeAssistant,
    peers: list[GxPeer],
    changes: dict[str, Any],
    errors: dict[str, str],
    placeholders: dict[str, str],
) -> None:
    peer = await _peer(peers)
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_VICTRON_GX)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _gx_form(peer, **changes)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert placeholders.items() <= result["description_placeholders"].items()
    assert not peer.requests  # nothing was asked of the GX
    assert not entry.subentries


async def test_meter_unit_id_out_of_range(hass: HomeAssistant, peers: list[GxPeer]) -> None:
    peer = await _peer(peers)
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_VICTRON_GX)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _meter_form(peer, **{CONF_UNIT_ID: 256})
    )
    assert result["errors"] == {CONF_UNIT_ID: "unit_id_out_of_range"}
    assert not peer.requests


async def test_connection_test_errors(hass: HomeAssistant, peers: list[GxPeer]) -> None:
    gx = await _peer(peers)
    no_ess = await _peer(peers, ess_running=False)
    external = await _peer(peers, ess_mode=3)
    not_gx = await _peer(peers)
    not_gx.exceptions[(SYSTEM_UNIT, 800)] = 10  # no system service at unit 100
    entry = added_site(hass)
    cases = [
        (SUBENTRY_INVERTER, _gx_form(gx, **{CONF_PORT: _closed_port()}), "cannot_connect"),
        (SUBENTRY_INVERTER, _gx_form(not_gx), "not_victron_gx"),
        (SUBENTRY_INVERTER, _gx_form(no_ess), "no_ess"),
        (SUBENTRY_INVERTER, _gx_form(external), "no_ess"),
        (SUBENTRY_METER, _meter_form(gx, **{CONF_UNIT_ID: SYSTEM_UNIT}), "no_grid_meter"),
        (SUBENTRY_METER, _meter_form(gx, **{CONF_UNIT_ID: 31}), "no_grid_meter"),
    ]
    for subentry_type, form, error in cases:
        result = await start_subentry_flow(hass, entry, subentry_type, KIND_VICTRON_GX)
        result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
        assert result["type"] is FlowResultType.FORM, error
        assert result["errors"] == {"base": error}, error
    assert not entry.subentries
    assert not any(peer.writes() for peer in (gx, no_ess, external, not_gx))


async def test_reconfigure_keeps_the_own_setting_and_the_device(
    hass: HomeAssistant, peers: list[GxPeer]
) -> None:
    """A new rating is kept; the own setting found at adding stays; another GX is refused."""
    peer = await _peer(peers, max_feed_in_w=2500)  # e.g. our own cap, left in force
    entry = await setup_site(hass, site_entry([gx_subentry(peer, own=4000)]))
    (sub,) = entry.subentries.values()
    result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub.subentry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == KIND_VICTRON_GX
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _gx_form(peer, **{CONF_RATED_POWER: 6000})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    data = entry.subentries[sub.subentry_id].data
    assert (data[CONF_RATED_POWER], data[CONF_OWN_FEED_IN]) == (6000.0, 4000)

    other = await _peer(peers)
    other.system.update(zip(range(800, 806), words_of("aa0000000001", 6), strict=True))
    result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub.subentry_id)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _gx_form(other)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "different_device"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_meter_reconfigure_finds_the_same_meter(
    hass: HomeAssistant, peers: list[GxPeer]
) -> None:
    peer = await _peer(peers)
    entry = added_site(hass, [gx_meter_subentry(peer)])
    (sub,) = entry.subentries.values()
    result = await start_reconfigure(hass, entry, SUBENTRY_METER, sub.subentry_id)
    assert result["step_id"] == KIND_VICTRON_GX
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _meter_form(peer, **{CONF_UNIT_ID: 31})
    )
    assert result["errors"] == {"base": "no_grid_meter"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _meter_form(peer)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert not peer.writes()


EXPORT_LIMIT = 1500.0
AVAILABLE_W = 4500.0
OWN_FEED_IN = 2000


async def test_gx_holds_the_export_limit_through_load_steps(
    hass: HomeAssistant, peers: list[GxPeer]
) -> None:
    """A 1500 W export limit through load steps, with the GX's grid meter as site meter.

    The cap is written once and then only when it moved; unloading writes the GX's own
    setting (2000 W) back, which the GX then holds by itself.
    """
    peer = await _peer(peers, available_w=AVAILABLE_W, max_feed_in_w=OWN_FEED_IN)
    site = PeerSite(load_w=600.0, tick_s=0.1)
    generator = Generator(AVAILABLE_W, peer.ceiling_w, time_constant_s=0.8)
    site.generators.append(generator)
    peer.output_source = lambda: generator.output_w
    peer.load_source = lambda: site.load_w
    site.start()
    try:
        entry = site_entry(
            [
                gx_subentry(peer, own=OWN_FEED_IN),
                gx_meter_subentry(peer),
                limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
            ]
        )
        await setup_site(hass, entry)
        start = site.t

        await run_until(site, start + 10.0)
        assert state_of(hass, "sensor.home_control_state") == ControlState.CONTROLLING
        steady = site.window(start + 6.0, start + 10.0)
        assert all(EXPORT_LIMIT - 200 <= s.export_w <= EXPORT_LIMIT + 100 for s in steady), steady
        assert 1300 <= peer.max_feed_in_w <= EXPORT_LIMIT

        site.load_w = 200.0  # the load drops by 400 W: the GX's own loop holds the cap
        await run_until(site, start + 20.0)
        assert seconds_over(site.window(start + 10.0, start + 20.0), EXPORT_LIMIT + 100) <= 3.0
        steady = site.window(start + 14.0, start + 20.0)
        assert all(EXPORT_LIMIT - 200 <= s.export_w <= EXPORT_LIMIT + 100 for s in steady), steady

        site.load_w = 1800.0  # and rises by 1.6 kW: generation comes back
        await run_until(site, start + 30.0)
        steady = site.window(start + 24.0, start + 30.0)
        assert all(EXPORT_LIMIT - 200 <= s.export_w <= EXPORT_LIMIT + 100 for s in steady), steady
        # Under an export limit the cap is the limit less the margin, whatever the load:
        # a persistent setting written a handful of times in 30 s, not every cycle.
        writes = peer.feed_in_writes()
        assert 1 <= len(writes) <= 6, writes
        # The meter's power sensor is paced: it shows a move of a step within SPACING_S.
        meter_power = f"sensor.victron_grid_meter_{METER_SERIAL[-4:].lower()}_grid_power"
        await wait_for(
            lambda: abs(float(state_of(hass, meter_power)) + EXPORT_LIMIT) <= 250,
            SPACING_S + 3,
            "the grid meter's power near the export limit",
        )

        # Unloaded: the GX's own setting is written back and the GX holds it by itself.
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        unloaded = site.t
        assert peer.max_feed_in_w == OWN_FEED_IN
        await run_until(site, unloaded + 6.0)
        after = site.window(unloaded + 4.0, site.t)
        assert all(s.export_w <= OWN_FEED_IN + 50 for s in after), after
        assert all(s.export_w >= OWN_FEED_IN - 200 for s in after), after
    finally:
        await site.stop()
