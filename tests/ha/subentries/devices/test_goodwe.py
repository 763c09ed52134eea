"""GoodWe over UDP 8899: the inverter flow and a site held at its export limit.

The peer is the simulated GoodWe ET inverter (tests/goodwe_inverter/peer.py) answering the
Modbus-over-UDP protocol the goodwe library speaks, so the library runs unmocked: device info,
running data and the meter block, the export switch and limit in W that persist, and an
inverter that holds export at its own meter to the limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.dynamic_export.const import (
    CONF_KIND,
    CONF_RATED_POWER,
    DOMAIN,
    KIND_GOODWE,
    SUBENTRY_INVERTER,
)
from custom_components.dynamic_export.core.controller import ControlState
from custom_components.dynamic_export.subentries.devices.setup import (
    GOODWE_TIMEOUT_S,
    STORE_GOODWE_BASELINES,
)

from ....goodwe_inverter.peer import (
    DEVICE_INFO,
    EXPORT_LIMIT,
    EXPORT_SWITCH,
    SERIAL,
    GoodWeEtPeer,
)
from ...helpers import start_reconfigure, start_subentry_flow, state_of, wait_for
from ...peers import GRID, Generator, PeerSite, run_until, seconds_over, set_power
from ...sites import added_site, entity_meter_subentry, limiter_subentry, setup_site, site_entry

TITLE = "GW5K-ET 0001"  # the model and the end of the serial number
INVERTER = "gw5k_et_0001"


@pytest.fixture
async def peers(socket_enabled: None) -> AsyncIterator[list[GoodWeEtPeer]]:
    """Simulated GoodWe inverters the test starts; stopped after it."""
    started: list[GoodWeEtPeer] = []
    yield started
    for peer in started:
        await peer.stop()
    # goodwe 0.3 leaves a retry timer behind each request (it only closes the socket):
    # wait it out, or Home Assistant's test plugin reports it as lingering.
    await asyncio.sleep(GOODWE_TIMEOUT_S + 0.1)


async def _peer(peers: list[GoodWeEtPeer], **kwargs: Any) -> GoodWeEtPeer:
    peer = GoodWeEtPeer(**kwargs)
    await peer.start()
    peers.append(peer)
    return peer


def goodwe_subentry(peer: GoodWeEtPeer) -> ConfigSubentryData:
    """Subentry data of the simulated inverter, as the flow stores it."""
    return ConfigSubentryData(
        data={CONF_KIND: KIND_GOODWE, CONF_HOST: peer.host, CONF_RATED_POWER: peer.rating_w},
        subentry_type=SUBENTRY_INVERTER,
        title=TITLE,
        unique_id=peer.serial,
    )


async def test_add_goodwe_reads_identity_and_writes_nothing(
    hass: HomeAssistant, peers: list[GoodWeEtPeer]
) -> None:
    peer = await _peer(peers, export_switch=1, export_limit_w=3000)
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_GOODWE)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == KIND_GOODWE
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_HOST: f" {peer.host} "}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    (sub,) = entry.subentries.values()
    assert (sub.title, sub.unique_id) == (TITLE, SERIAL)
    assert sub.data == {CONF_KIND: KIND_GOODWE, CONF_HOST: peer.host, CONF_RATED_POWER: 5000.0}
    assert not peer.limit_writes()

    # A second GoodWe (this one again, or another) is refused before it is asked for.
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_GOODWE)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "site_has_goodwe"
    assert len(entry.subentries) == 1


async def test_connection_test_errors(hass: HomeAssistant, peers: list[GoodWeEtPeer]) -> None:
    no_meter = await _peer(peers, meter_ok=False)
    stranger = await _peer(peers)
    stranger.exceptions[DEVICE_INFO] = 2  # no ET device info: another GoodWe family
    gone = await _peer(peers)
    await gone.stop()
    entry = added_site(hass)
    cases = [
        (gone, "goodwe_unreachable"),
        (no_meter, "no_goodwe_meter"),
        (stranger, "not_goodwe_et"),
    ]
    for peer, error in cases:
        result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_GOODWE)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_HOST: peer.host}
        )
        assert result["type"] is FlowResultType.FORM, error
        assert result["errors"] == {"base": error}
    assert not entry.subentries
    assert not no_meter.limit_writes()
    assert not stranger.limit_writes()


async def test_reconfigure_keeps_the_same_inverter(
    hass: HomeAssistant, peers: list[GoodWeEtPeer]
) -> None:
    """A new address of the same inverter is kept; another inverter there is refused."""
    peer = await _peer(peers)
    entry = added_site(hass, [goodwe_subentry(peer)])
    (sub,) = entry.subentries.values()
    moved = await _peer(peers)  # the same serial at another address (a new dongle)
    result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub.subentry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == KIND_GOODWE
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_HOST: moved.host}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[sub.subentry_id].data[CONF_HOST] == moved.host

    other = await _peer(peers, serial="95000ETU00000002")
    result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub.subentry_id)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_HOST: other.host}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "different_device"


EXPORT_LIMIT_W = 1500.0
AVAILABLE_W = 4500.0
OWN_LIMIT_W = 4000  # the installer's export limit, on: a ceiling, and handed back


async def test_goodwe_holds_the_export_limit_and_is_handed_back_when_unloaded(
    hass: HomeAssistant, peers: list[GoodWeEtPeer], hass_storage: dict[str, Any]
) -> None:
    """A 1500 W export limit through load steps, written only on change; unloading the site
    hands the inverter back to the export limit the installer had (on, 4000 W).

    The inverter holds export at its own meter to the limit it holds; the site's meter is a
    grid power sensor fed by the household model around it.
    """
    peer = await _peer(peers, export_switch=1, export_limit_w=OWN_LIMIT_W)
    site = PeerSite(load_w=600.0, tick_s=0.1)
    generator = Generator(AVAILABLE_W, peer.ceiling_w, time_constant_s=0.8)
    site.generators.append(generator)
    peer.output_source = lambda: generator.output_w
    peer.load_source = lambda: site.load_w
    site.sinks.append(lambda grid_w: set_power(hass, GRID, round(grid_w, 1)))
    site.start()
    try:
        entry = site_entry(
            [
                goodwe_subentry(peer),
                entity_meter_subentry(),
                limiter_subentry("Export limit", export_limit=EXPORT_LIMIT_W),
            ]
        )
        await setup_site(hass, entry)
        start = site.t
        (sub_id,) = [s.subentry_id for s in entry.subentries.values() if s.unique_id == SERIAL]

        await run_until(site, start + 12.0)
        assert state_of(hass, "sensor.home_control_state") == ControlState.CONTROLLING
        steady = site.window(start + 8.0, start + 12.0)
        assert all(EXPORT_LIMIT_W - 250 <= s.export_w <= EXPORT_LIMIT_W + 100 for s in steady)
        assert float(state_of(hass, f"sensor.{INVERTER}_ac_power")) > 1500
        assert float(state_of(hass, f"sensor.{INVERTER}_rated_power")) == 5000
        stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"][STORE_GOODWE_BASELINES]
        assert stored == {sub_id: {"enabled": 1, "limit_w": OWN_LIMIT_W}}
        assert all(r.address == EXPORT_LIMIT for r in peer.limit_writes())  # switch was on

        site.load_w = 200.0  # the load drops by 400 W: the inverter's own meter holds export
        await run_until(site, start + 24.0)
        assert seconds_over(site.window(start + 12.0, start + 24.0), EXPORT_LIMIT_W + 100) <= 2.0
        steady = site.window(start + 18.0, start + 24.0)
        assert all(EXPORT_LIMIT_W - 250 <= s.export_w <= EXPORT_LIMIT_W + 100 for s in steady)
        writes = peer.limit_writes()
        assert len(writes) <= 6, writes
        quiet = len(writes)

        await run_until(site, start + 36.0)  # nothing changes: nothing is written
        assert len(peer.limit_writes()) == quiet

        site.load_w = 1800.0  # and rises by 1.6 kW: generation follows at once
        await run_until(site, start + 48.0)
        steady = site.window(start + 42.0, start + 48.0)
        assert all(EXPORT_LIMIT_W - 250 <= s.export_w <= EXPORT_LIMIT_W + 100 for s in steady)
        assert len(peer.limit_writes()) - quiet <= 4
        assert peer.flash_writes == len(peer.limit_writes())  # every write changed the value
        assert peer.export_limit_w <= OWN_LIMIT_W

        # Unloading hands the inverter back: the installer's 4000 W, nothing else.
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        assert (peer.export_switch, peer.export_limit_w) == (1, OWN_LIMIT_W)
        stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"][STORE_GOODWE_BASELINES]
        assert stored == {}
        unloaded = site.t
        await run_until(site, unloaded + 4.0)
        assert site.samples[-1].generation_w > 4000  # min(4500, 1800 + 4000): free again
    finally:
        await site.stop()


async def test_after_a_restart_the_stored_baseline_is_restored(
    hass: HomeAssistant, peers: list[GoodWeEtPeer], hass_storage: dict[str, Any]
) -> None:
    """The site stops without handing back (the inverter refuses then): it keeps our limit,
    which it stores. The baseline stored before the first write is what the next release
    restores, even though the inverter then reads our own limit."""
    peer = await _peer(peers, export_switch=0, export_limit_w=0)  # the installer set none
    entry = site_entry([goodwe_subentry(peer), limiter_subentry("Zero", export_limit=0.0)])
    await setup_site(hass, entry)  # no meter: fail-safe, the export limit goes to 0 W
    await wait_for(lambda: peer.export_switch == 1, 8, "export limited")
    assert peer.export_limit_w == 0
    (sub_id,) = [s.subentry_id for s in entry.subentries.values() if s.unique_id == SERIAL]

    peer.exceptions[EXPORT_SWITCH] = 4  # unloaded while the inverter refuses settings
    assert await hass.config_entries.async_unload(entry.entry_id)
    peer.exceptions.clear()
    assert (peer.export_switch, peer.export_limit_w) == (1, 0)
    stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"]
    assert stored[STORE_GOODWE_BASELINES] == {sub_id: {"enabled": 0, "limit_w": 0}}

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: len(peer.requests) > 12, 5, "inverter read after the restart")
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert (peer.export_switch, peer.export_limit_w) == (0, 0)
    stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"]
    assert stored[STORE_GOODWE_BASELINES] == {}  # handed back: nothing owed any more
