"""Huawei SUN2000 over Modbus TCP: the inverter flow and a site held at its export limit.

The peer is the simulated SUN2000 behind an SDongle (tests/huawei/peer.py): holding registers
at Huawei's addresses, 32-bit values high word first, one client at a time, no answer to
requests sent too soon after connecting or after the previous answer, and a derating that
persists.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.dynamic_export.const import (
    CONF_KIND,
    CONF_RATED_POWER,
    CONF_UNIT_ID,
    DOMAIN,
    KIND_HUAWEI,
    SUBENTRY_INVERTER,
)
from custom_components.dynamic_export.core.controller import ControlState
from custom_components.dynamic_export.subentries.devices.setup import STORE_HUAWEI_BASELINES

from ....huawei.peer import DERATING, MODEL, UNIT, HuaweiPeer, text_words
from ...helpers import start_reconfigure, start_subentry_flow, state_of, wait_for
from ...peers import GRID, Generator, PeerSite, run_until, seconds_over, set_power
from ...sites import added_site, entity_meter_subentry, limiter_subentry, setup_site, site_entry

TITLE = "SUN2000-5KTL-M1 2345"  # the model and the end of the serial number


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def peers(socket_enabled: None) -> AsyncIterator[list[HuaweiPeer]]:
    """Simulated SUN2000s the test starts; stopped after it."""
    started: list[HuaweiPeer] = []
    yield started
    for peer in started:
        await peer.stop()


async def _peer(peers: list[HuaweiPeer], **kwargs: Any) -> HuaweiPeer:
    peer = HuaweiPeer(**kwargs)
    await peer.start()
    peers.append(peer)
    return peer


def _form(peer: HuaweiPeer, **changes: Any) -> dict[str, Any]:
    return {CONF_HOST: "127.0.0.1", CONF_PORT: peer.port, CONF_UNIT_ID: peer.unit, **changes}


def huawei_subentry(peer: HuaweiPeer) -> ConfigSubentryData:
    """Subentry data of the simulated inverter, as the flow stores it."""
    return ConfigSubentryData(
        data={
            CONF_KIND: KIND_HUAWEI,
            CONF_HOST: "127.0.0.1",
            CONF_PORT: peer.port,
            CONF_UNIT_ID: peer.unit,
            CONF_RATED_POWER: peer.p_max_w,
        },
        subentry_type=SUBENTRY_INVERTER,
        title=TITLE,
        unique_id=peer.serial,
    )


async def test_add_huawei_reads_identity_and_writes_nothing(
    hass: HomeAssistant, peers: list[HuaweiPeer]
) -> None:
    peer = await _peer(peers, settle_s=0.3, min_gap_s=0.02)  # a slow SDongle
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_HUAWEI)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == KIND_HUAWEI
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _form(peer))
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    (sub,) = entry.subentries.values()
    assert (sub.title, sub.unique_id) == (TITLE, peer.serial)
    assert sub.data == {
        CONF_KIND: KIND_HUAWEI,
        CONF_HOST: "127.0.0.1",
        CONF_PORT: peer.port,
        CONF_UNIT_ID: UNIT,
        CONF_RATED_POWER: 5500.0,
    }
    assert not peer.writes()
    assert peer.dropped == 0  # the flow paced its requests as the dongle needs


async def test_unit_zero_is_accepted(hass: HomeAssistant, peers: list[HuaweiPeer]) -> None:
    peer = await _peer(peers, unit=0)
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_HUAWEI)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _form(peer))
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")


@pytest.mark.parametrize(
    ("changes", "errors", "placeholders"),
    [
        ({CONF_PORT: 0}, {CONF_PORT: "port_out_of_range"}, {"port_min": "1"}),
        ({CONF_PORT: 70000}, {CONF_PORT: "port_out_of_range"}, {"port_max": "65535"}),
        ({CONF_UNIT_ID: -1}, {CONF_UNIT_ID: "unit_id_out_of_range"}, {"unit_id_min": "0"}),
        ({CONF_UNIT_ID: 248}, {CONF_UNIT_ID: "unit_id_out_of_range"}, {"unit_id_max": "247"}),
        ({CONF_UNIT_ID: 1.5}, {CONF_UNIT_ID: "unit_id_out_of_range"}, {}),
    ],
)
async def test_out_of_range_fields(
    hass: HomeAssistant,
    peers: list[HuaweiPeer],
    changes: dict[str, Any],
    errors: dict[str, str],
    placeholders: dict[str, str],
) -> None:
    peer = await _peer(peers)
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_HUAWEI)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _form(peer, **changes)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert placeholders.items() <= result["description_placeholders"].items()
    assert not peer.requests  # nothing was asked of the inverter
    assert not entry.subentries


async def test_connection_test_errors(hass: HomeAssistant, peers: list[HuaweiPeer]) -> None:
    stranger = await _peer(peers)
    stranger.holding.update(zip(range(MODEL, MODEL + 15), text_words("SG10RT", 15), strict=True))
    old = await _peer(peers)
    old.exceptions[(UNIT, DERATING)] = 2
    entry = added_site(hass)
    cases = [
        ({CONF_PORT: _closed_port()}, "cannot_connect", stranger),
        ({}, "not_huawei", stranger),
        ({}, "no_derating", old),
        ({CONF_UNIT_ID: 7}, "unit_not_found", old),  # the fake answers 11 for other units
    ]
    for changes, error, peer in cases:
        result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_HUAWEI)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], _form(peer, **changes)
        )
        assert result["type"] is FlowResultType.FORM, error
        assert result["errors"] == {"base": error}
    assert not entry.subentries
    assert not stranger.writes()
    assert not old.writes()


async def test_reconfigure_keeps_the_same_inverter(
    hass: HomeAssistant, peers: list[HuaweiPeer]
) -> None:
    """A new address of the same inverter is kept; another inverter there is refused."""
    peer = await _peer(peers)
    entry = await setup_site(hass, site_entry([huawei_subentry(peer)]))
    (sub,) = entry.subentries.values()
    moved = await _peer(peers)  # the same serial behind another port (a new dongle)
    result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub.subentry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == KIND_HUAWEI
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _form(moved))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.subentries[sub.subentry_id].data[CONF_PORT] == moved.port

    other = await _peer(peers, serial="HV2150099999")
    result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub.subentry_id)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _form(other))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "different_device"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_the_check_shares_the_running_sites_connection(
    hass: HomeAssistant, peers: list[HuaweiPeer]
) -> None:
    """The dongle takes one client: a check while the site runs must not knock it off."""
    peer = await _peer(peers)
    entry = await setup_site(hass, site_entry([huawei_subentry(peer)]))
    await wait_for(lambda: len(peer.requests) > 5, 5, "the site reads the inverter")
    (sub,) = entry.subentries.values()
    result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub.subentry_id)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _form(peer))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert peer.kicked == 0
    assert await hass.config_entries.async_unload(entry.entry_id)


EXPORT_LIMIT = 1500.0
AVAILABLE_W = 4500.0


async def test_huawei_holds_the_export_limit_and_is_handed_back_when_unloaded(
    hass: HomeAssistant, peers: list[HuaweiPeer]
) -> None:
    """A 1500 W export limit through load steps, written only on change; unloading the site
    hands the inverter back to the derating the installer had (90 %).

    The inverter sits behind a slow SDongle (pacing). The meter is a grid power sensor fed
    by the household model around the inverter.
    """
    peer = await _peer(peers, derating=900, settle_s=0.3, min_gap_s=0.02)
    generator = Generator(AVAILABLE_W, peer.ceiling_w, time_constant_s=0.8)
    peer.output_source = lambda: generator.output_w
    site = PeerSite(load_w=600.0, generators=[generator], tick_s=0.1)
    site.sinks.append(lambda grid_w: set_power(hass, GRID, round(grid_w, 1)))
    site.start()
    try:
        entry = site_entry(
            [
                huawei_subentry(peer),
                entity_meter_subentry(),
                limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
            ]
        )
        await setup_site(hass, entry)
        start = site.t

        await run_until(site, start + 12.0)
        assert state_of(hass, "sensor.home_control_state") == ControlState.CONTROLLING
        steady = site.window(start + 8.0, start + 12.0)
        assert all(EXPORT_LIMIT - 250 <= s.export_w <= EXPORT_LIMIT + 100 for s in steady), steady
        store = entry.runtime_data.store
        assert store is not None
        assert store.data[STORE_HUAWEI_BASELINES] == {next(iter(entry.subentries)): 900}

        site.load_w = 200.0  # the load drops by 400 W: export rises until the limit follows
        await run_until(site, start + 24.0)
        assert seconds_over(site.window(start + 12.0, start + 24.0), EXPORT_LIMIT + 100) <= 4.0
        steady = site.window(start + 18.0, start + 24.0)
        assert all(EXPORT_LIMIT - 250 <= s.export_w <= EXPORT_LIMIT + 100 for s in steady), steady
        writes = peer.derating_writes()
        assert len(writes) <= 8, writes
        quiet = len(writes)

        await run_until(site, start + 36.0)  # nothing changes: nothing is written
        assert len(peer.derating_writes()) == quiet

        site.load_w = 1800.0  # and rises by 1.6 kW: generation comes back
        await run_until(site, start + 48.0)
        steady = site.window(start + 42.0, start + 48.0)
        assert all(EXPORT_LIMIT - 250 <= s.export_w <= EXPORT_LIMIT + 100 for s in steady), steady
        assert len(peer.derating_writes()) - quiet <= 6
        assert peer.dropped == 0
        assert peer.connections == 1  # one long-lived connection
        assert peer.flash_writes == len(peer.derating_writes())

        # Unloading hands the inverter back: the installer's 90 %, nothing else.
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        assert not store.data[STORE_HUAWEI_BASELINES]
        unloaded = site.t
        await run_until(site, unloaded + 6.0)
        assert peer.derating == 900
        assert site.window(unloaded + 5.0, site.t)[-1].generation_w > 4400  # min(4500, 4950)
    finally:
        await site.stop()


async def test_after_a_restart_the_stored_baseline_is_restored(
    hass: HomeAssistant, peers: list[HuaweiPeer], hass_storage: dict[str, Any]
) -> None:
    """The site stops without handing the inverter back: it keeps our limit (no revert
    timer). The baseline stored before the first write is what the next release restores."""
    peer = await _peer(peers, derating=1000)  # the installer set no derating
    entry = site_entry([huawei_subentry(peer), limiter_subentry("Export limit", export_limit=0.0)])
    await setup_site(hass, entry)  # no meter: fail-safe, the inverter goes to 0 %
    await wait_for(lambda: peer.derating == 0, 8, "curtailed")
    (sub_id,) = [s.subentry_id for s in entry.subentries.values() if s.unique_id == peer.serial]

    # Unloaded while the inverter refuses settings: the hand-back fails, our 0 % stays.
    peer.exceptions[(UNIT, DERATING)] = 4
    assert await hass.config_entries.async_unload(entry.entry_id)
    peer.exceptions.clear()
    assert peer.derating == 0
    peer.restart()  # even a restart keeps it: the setting persists
    assert peer.derating == 0
    stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"]
    assert stored[STORE_HUAWEI_BASELINES] == {sub_id: 1000}

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: len(peer.requests) > 20, 5, "inverter read after the restart")
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert peer.derating == 1000
    stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"]
    assert stored[STORE_HUAWEI_BASELINES] == {}  # handed back: nothing owed any more
