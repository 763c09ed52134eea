"""SolarEdge over Modbus TCP: the inverter flow and a site held at its export limit.

The peer is the simulated SolarEdge inverter (tests/solaredge/peer.py): SunSpec 1 + 103, the
power-control registers with their word order, one Modbus client at a time, a slow commit,
and the command timeout with its fallback.
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
    CONF_FALLBACK_LIMIT,
    CONF_KIND,
    CONF_RATED_POWER,
    CONF_REVERT_TIMEOUT,
    CONF_UNIT_ID,
    KIND_SOLAREDGE,
    SUBENTRY_INVERTER,
)
from custom_components.dynamic_export.core.controller import ControlState

from ....solaredge.peer import (
    F_COMMIT,
    F_DYNAMIC_LIMIT,
    F_RAMP_DOWN,
    F_RAMP_UP,
    MODEL,
    RATING_W,
    SERIAL,
    UNIT,
    SolarEdgePeer,
)
from ...helpers import start_reconfigure, start_subentry_flow, state_of
from ...peers import GRID, Generator, PeerSite, run_until, seconds_over, set_power
from ...sites import added_site, entity_meter_subentry, limiter_subentry, setup_site, site_entry

TITLE = f"{MODEL} {SERIAL[-4:]}"  # the model and a short id


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
    peer = SolarEdgePeer(**kwargs)
    await peer.start()
    peers.append(peer)
    return peer


def _form(peer: SolarEdgePeer, **changes: Any) -> dict[str, Any]:
    return {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: peer.port,
        CONF_UNIT_ID: UNIT,
        CONF_FALLBACK_LIMIT: 0,
        **changes,
    }


def solaredge_subentry(peer: SolarEdgePeer, fallback: float = 0.0) -> ConfigSubentryData:
    """Subentry data of the simulated inverter, as the flow stores it."""
    return ConfigSubentryData(
        data={
            CONF_KIND: KIND_SOLAREDGE,
            CONF_HOST: "127.0.0.1",
            CONF_PORT: peer.port,
            CONF_UNIT_ID: UNIT,
            CONF_FALLBACK_LIMIT: fallback,
            CONF_RATED_POWER: RATING_W,
        },
        subentry_type=SUBENTRY_INVERTER,
        title=TITLE,
        unique_id=SERIAL,
    )


async def test_add_solaredge_reads_identity_and_writes_nothing(
    hass: HomeAssistant, peers: list[SolarEdgePeer]
) -> None:
    peer = await _peer(peers)
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SOLAREDGE)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == KIND_SOLAREDGE
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _form(peer, **{CONF_FALLBACK_LIMIT: 10})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert (sub.title, sub.unique_id) == (TITLE, SERIAL)
    assert sub.data == {
        CONF_KIND: KIND_SOLAREDGE,
        CONF_HOST: "127.0.0.1",
        CONF_PORT: peer.port,
        CONF_UNIT_ID: UNIT,
        CONF_FALLBACK_LIMIT: 10.0,
        CONF_RATED_POWER: RATING_W,
    }
    assert not peer.writes()  # the connection test never commits or limits


@pytest.mark.parametrize(
    ("changes", "errors", "placeholders"),
    [
        ({CONF_PORT: 0}, {CONF_PORT: "port_out_of_range"}, {"port_min": "1"}),
        ({CONF_UNIT_ID: 300}, {CONF_UNIT_ID: "unit_id_out_of_range"}, {"unit_id_max": "255"}),
        (
            {CONF_FALLBACK_LIMIT: 100.5},
            {CONF_FALLBACK_LIMIT: "fallback_limit_out_of_range"},
            {"fallback_limit_min": "0", "fallback_limit_max": "100"},
        ),
        (
            {CONF_FALLBACK_LIMIT: -1},
            {CONF_FALLBACK_LIMIT: "fallback_limit_out_of_range"},
            {"fallback_limit_max": "100"},
        ),
    ],
)
async def test_out_of_range_fields(
    hass: HomeAssistant,
    peers: list[SolarEdgePeer],
    changes: dict[str, Any],
    errors: dict[str, str],
    placeholders: dict[str, str],
) -> None:
    peer = await _peer(peers)
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SOLAREDGE)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _form(peer, **changes)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert placeholders.items() <= result["description_placeholders"].items()
    assert not peer.requests  # nothing was asked of the inverter
    assert not entry.subentries


async def test_connection_test_errors(hass: HomeAssistant, peers: list[SolarEdgePeer]) -> None:
    fronius = await _peer(peers, manufacturer="Fronius")
    old = await _peer(peers)
    for address in range(0xF300, 0xF324):
        old.exceptions[(UNIT, address)] = 2
    entry = added_site(hass)
    cases = [
        ({CONF_PORT: _closed_port()}, "cannot_connect", fronius),
        ({}, "not_solaredge", fronius),
        ({}, "no_power_control", old),
        ({CONF_UNIT_ID: 7}, "unit_not_found", old),  # the fake answers 11 for other units
    ]
    for changes, error, peer in cases:
        result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SOLAREDGE)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], _form(peer, **changes)
        )
        assert result["type"] is FlowResultType.FORM, error
        assert result["errors"] == {"base": error}
    assert not entry.subentries
    assert not fronius.writes()
    assert not old.writes()


async def test_reconfigure_goes_through_the_site_connection(
    hass: HomeAssistant, peers: list[SolarEdgePeer]
) -> None:
    """While the site runs, the test reads through its connection: nobody is knocked off.

    A new fallback is kept; another inverter at the address is refused.
    """
    peer = await _peer(peers, committed=True)
    entry = await setup_site(hass, site_entry([solaredge_subentry(peer)]))
    (sub,) = entry.subentries.values()
    result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub.subentry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == KIND_SOLAREDGE
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _form(peer, **{CONF_FALLBACK_LIMIT: 40})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.subentries[sub.subentry_id].data[CONF_FALLBACK_LIMIT] == 40.0
    assert peer.knocked_off == 0

    other = await _peer(peers, committed=True, serial="7E99")
    result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub.subentry_id)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _form(other))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "different_device"
    assert await hass.config_entries.async_unload(entry.entry_id)


EXPORT_LIMIT = 1500.0
AVAILABLE_W = 4500.0
REVERT_S = 10.0


async def test_solaredge_holds_the_export_limit_and_falls_back_when_unloaded(
    hass: HomeAssistant, peers: list[SolarEdgePeer]
) -> None:
    """A 1500 W export limit through load steps; after unload the fallback (0 %) takes over.

    The inverter has never had power control: the site commits it once at start. The meter
    is a grid power sensor fed by the household model around the inverter.
    """
    peer = await _peer(peers, committed=False, available_w=AVAILABLE_W)
    generator = Generator(AVAILABLE_W, peer.ceiling_w, time_constant_s=0.8)
    peer.output_source = lambda: generator.output_w
    site = PeerSite(load_w=600.0, generators=[generator], tick_s=0.1)
    site.sinks.append(lambda grid_w: set_power(hass, GRID, round(grid_w, 1)))
    site.start()
    try:
        entry = site_entry(
            [
                solaredge_subentry(peer, fallback=0.0),
                entity_meter_subentry(),
                limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
            ],
            **{CONF_REVERT_TIMEOUT: REVERT_S},
        )
        await setup_site(hass, entry)
        assert peer.power_control_committed
        assert len(peer.writes_to(F_COMMIT)) == 1
        start = site.t

        await run_until(site, start + 12.0)
        assert state_of(hass, "sensor.home_control_state") == ControlState.CONTROLLING
        steady = site.window(start + 8.0, start + 12.0)
        assert all(EXPORT_LIMIT - 200 <= s.export_w <= EXPORT_LIMIT + 100 for s in steady), steady
        assert peer.timeout_s == REVERT_S
        assert (peer.float_at(F_RAMP_UP), peer.float_at(F_RAMP_DOWN)) == (-1.0, -1.0)

        site.load_w = 200.0  # the load drops by 400 W: export rises until the limit follows
        await run_until(site, start + 24.0)
        assert seconds_over(site.window(start + 12.0, start + 24.0), EXPORT_LIMIT + 100) <= 4.0
        steady = site.window(start + 18.0, start + 24.0)
        assert all(EXPORT_LIMIT - 200 <= s.export_w <= EXPORT_LIMIT + 100 for s in steady), steady
        # Written only on change, and refreshed at half the command timeout.
        writes = peer.writes_to(F_DYNAMIC_LIMIT)
        assert len(writes) <= 10, writes
        steady_writes = len(writes)

        site.load_w = 1800.0  # and rises by 1.6 kW: generation comes back
        await run_until(site, start + 36.0)
        steady = site.window(start + 30.0, start + 36.0)
        assert all(EXPORT_LIMIT - 200 <= s.export_w <= EXPORT_LIMIT + 100 for s in steady), steady
        assert len(peer.writes_to(F_DYNAMIC_LIMIT)) - steady_writes <= 8
        assert not peer.fallback_active
        assert len(peer.writes_to(F_COMMIT)) == 1
        assert peer.knocked_off == 0

        # Unloaded (Home Assistant stops): no hand-back; the inverter's own timer takes over.
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        unloaded = site.t
        assert peer.edpc_enabled
        await run_until(site, unloaded + 4.0)
        assert not peer.fallback_active
        assert all(s.export_w <= EXPORT_LIMIT + 100 for s in site.window(unloaded, site.t))
        await run_until(site, unloaded + REVERT_S + 5.0)
        assert peer.fallback_active
        # The fallback starts by REVERT_S after the last write (at the latest); the output
        # then falls with the 0.8 s lag: from ~3.2 kW it needs ln(3200/50) x 0.8 = 3.3 s.
        after = site.window(unloaded + REVERT_S + 4.0, site.t)
        assert all(s.generation_w <= 50.0 for s in after), after  # fallback 0 %
    finally:
        await site.stop()
