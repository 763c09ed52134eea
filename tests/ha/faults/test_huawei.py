"""Fault matrix, Huawei SUN2000 behind an SDongle: the simulated inverter misbehaves on 127.0.0.1.

The peer is tests/huawei/peer.py: holding registers at Huawei's addresses, one client at a
time (a new connection drops the one before), slow to answer after connecting, a derating
that persists. Huawei has no fallback of its own for the derating: what keeps the site safe
when we cannot reach it is that the inverter **keeps the last derating written**, restarts
included; so the tests show the limit staying in force while it is silent, and that a
derating it already holds is not written again (users report it in non-volatile memory).

Two tests run the whole integration in Home Assistant (1 s cycles, real time, the SDongle's
pacing of production); the others use the Sungrow module's lock-step harness (the control
loop with the real client, the peer's physics on the loop's fake clock, a house as meter).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from homeassistant.core import HomeAssistant

from custom_components.dynamic_export.core.controller import ControlState
from custom_components.dynamic_export.huawei.inverter import Baseline, HuaweiInverter
from custom_components.dynamic_export.sunspec.connection import (
    DEFAULT_TIMEOUT_S,
    ModbusTcpConnection,
)

from ...core.fakes import FakeClock
from ...huawei.peer import ACTIVE_POWER, UNIT, HuaweiPeer
from ..helpers import state_of, wait_for
from ..peers import GRID, Generator, PeerSite, run_until, set_power
from ..sites import entity_meter_subentry, limiter_subentry, setup_site, site_entry
from ..subentries.devices.test_huawei import TITLE, huawei_subentry
from .matrix import Outcome, covers
from .test_sungrow import BELOW, CYCLE_S, EXPORT_LIMIT, KEY, LOAD_W, SLACK_S, LockStep, logged

NAME = TITLE
SETTLE_S = 1.5
"""The SDongle's wait after connecting (huawei.inverter.SETTLE_AFTER_CONNECT_S)."""

OUTCOMES: dict[str, Outcome] = {
    "timeout": Outcome(
        site_does=(
            "The inverter is unavailable and counted at its rating; nothing can be written to "
            "it, and it keeps the last derating written (no revert timer), so its output "
            "stays limited. A cycle that asks it reconnects (1.5 s SDongle settle) and waits "
            "out the 3 s timeout; it is asked after 1, 2, 4, 8 s, then every 10 s"
        ),
        how_fast="The cycle that times out (3 s); back the first cycle that asks it (≤ 10 s)",
        user_sees=(
            "`binary_sensor.<inverter>_connection` off with '… no response in 3 s', its "
            "sensors unavailable; WARNING '… unavailable: …', INFO '… is back'"
        ),
    ),
    "exception": Outcome(
        site_does=(
            "A refused derating (an error answer, e.g. a write that needs the installer "
            "login): the inverter keeps its previous derating and the write is tried again "
            "every cycle (a refused write changes no flash). An error answer to a read: "
            "unavailable, counted at its rating"
        ),
        how_fast="Next cycle; the limit lands the first cycle the inverter accepts it",
        user_sees=(
            "WARNING '… does not take its limit: … Modbus exception 4 (server device "
            "failure)' or '… unavailable: … Modbus exception 6 (server device busy)'; "
            "INFO '… takes its limit again' / '… is back'"
        ),
    ),
    "disconnect_mid_write": Outcome(
        site_does=(
            "The write counts as failed; the next cycle reconnects (1.5 s settle), reads the "
            "derating back and writes it only if the inverter does not hold it: a write that "
            "took effect before the drop is not repeated. A second Modbus client (another "
            "integration, a logger) drops our connection, as the SDongle serves one: our next "
            "request reconnects and drops it in turn, so two clients take turns and each "
            "turn costs a cycle the 1.5 s settle. Use one client, or a Modbus proxy"
        ),
        how_fast="The next cycle",
        user_sees=(
            "WARNING '… does not take its limit: … writing 1 registers at 40125: connection "
            "lost', then INFO '… takes its limit again'"
        ),
    ),
    "slow_reply": Outcome(
        site_does=(
            "Control goes on while each answer is within the 3 s timeout and the cycle's "
            "three reads (four every 10 s) fit the 5 s device timeout (answers up to ~1.2 s "
            "each); slower is as no answer, and a late answer lands on a closed connection"
        ),
        how_fast="Below: no effect. Above: as no answer",
        user_sees=(
            "Below: nothing (cycles take longer). Above: as no answer, error '… no response "
            "in 3 s' or 'no answer within 5 s'"
        ),
    ),
    "gone_at_start": Outcome(
        site_does=(
            "The site starts; the inverter is counted at the rating the flow stored, and "
            "keeps whatever derating it held. It is set up the first cycle it answers and "
            "limited in that cycle"
        ),
        how_fast="Control at the first cycle after it answers (+ the 1.5 s SDongle settle)",
        user_sees=(
            "WARNING '<inverter> is not ready (cannot connect to …); will keep trying'; "
            "its connection off with 'cannot connect to …', then on"
        ),
    ),
    "back_after_an_hour": Outcome(
        site_does=(
            "Unavailable for the hour (counted at its rating); the inverter keeps our last "
            "derating throughout, restarts included. When it answers it is controlled again; "
            "the controller's ramp restarts from what it left the inverter while it was out, "
            "so the first cycles back lower the derating and raise it again (≤ 2 writes)"
        ),
        how_fast="The first cycle after it answers",
        user_sees="Its connection off for the hour with 'cannot connect to …'; INFO '… is back'",
    ),
    "frozen_data": Outcome(
        site_does=(
            "A dongle serving its last values: caught by the energy yield counter (0.01 kWh) "
            "standing still while the power reading says energy flows, then counted at its "
            "rating like one that does not answer (it keeps its last derating)"
        ),
        how_fast=(
            "Once the power reading adds up to 40 Wh (~70 s at 2 kW, ≥ 10 s); live again "
            "the first cycle it moves"
        ),
        user_sees=(
            "Its sensors unavailable, connection off with '… values look frozen: lifetime "
            "energy unchanged for N s …'; WARNING '… unavailable: …', INFO '… is back'"
        ),
    ),
    "restart_during_control": Outcome(
        site_does=(
            "The inverter keeps our derating while Home Assistant is away (no revert timer: "
            "it stays limited however long). After the restart control resumes without "
            "rewriting a derating it holds; the installer's derating stored before our first "
            "write is what handing back restores, not our own limit still in force. "
            "Huawei has no fallback of its own for the derating: if the load falls while "
            "Home Assistant is away, export rises above the limit and nothing lowers it"
        ),
        how_fast="Limit held throughout; controlled from the first cycle",
        user_sees="INFO 'Handed back to their own settings: …' when the site is unloaded",
    ),
    "clock_jump": Outcome(
        site_does=(
            "Nothing: cycles and the one-minute rewrite hold-off of the persistent derating "
            "run on the monotonic clock"
        ),
        how_fast="No effect (wall clock ±1 h)",
        user_sees="Nothing; nothing is written again",
    ),
}


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.dynamic_export")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
async def make_site(socket_enabled: None, clock: FakeClock) -> AsyncIterator[Callable[..., Any]]:
    """Start a peer on the fake clock and a lock-step site around it; all stopped after."""
    peers: list[HuaweiPeer] = []
    connections: list[ModbusTcpConnection] = []

    async def _make(
        *, baseline: Baseline | None = None, **kwargs: Any
    ) -> tuple[HuaweiPeer, LockStep, HuaweiInverter, list[Baseline | None]]:
        if not peers:
            peers.append(HuaweiPeer(clock=clock))
            await peers[0].start()
        peer = peers[0]
        connection = ModbusTcpConnection("127.0.0.1", peer.port, timeout_s=0.2)
        connections.append(connection)
        stored: list[Baseline | None] = []
        inverter = HuaweiInverter(
            connection, UNIT, clock=clock, baseline=baseline, on_baseline=stored.append
        )
        site = LockStep(peer, inverter, clock, rating_w=peer.p_max_w, name=NAME, **kwargs)
        return peer, site, inverter, stored

    yield _make
    for connection in connections:
        await connection.close()
    for peer in peers:
        await peer.stop()


# --- Home Assistant: no answer, gone at start-up ---------------------------------------------

CONNECTION = "binary_sensor.sun2000_5ktl_m1_2345_connection"
POWER = "sensor.sun2000_5ktl_m1_2345_ac_power"


def _on(hass: HomeAssistant, entity_id: str) -> bool:
    return state_of(hass, entity_id) == "on"


def _error(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return str(state.attributes.get("error") or "")


@pytest.fixture
async def house(
    hass: HomeAssistant, socket_enabled: None
) -> AsyncIterator[tuple[HuaweiPeer, PeerSite]]:
    """A SUN2000 behind a slow SDongle in a house whose grid sensor is the site meter."""
    peer = HuaweiPeer(settle_s=0.3, min_gap_s=0.02)
    await peer.start()
    generator = Generator(4000.0, peer.ceiling_w, time_constant_s=0.8)
    peer.output_source = lambda: generator.output_w
    site = PeerSite(load_w=LOAD_W, generators=[generator], tick_s=0.1)
    site.sinks.append(lambda grid_w: set_power(hass, GRID, round(grid_w, 1)))
    site.start()
    yield peer, site
    await site.stop()
    peer.hang = False
    await peer.stop()


def _house_entry(peer: HuaweiPeer) -> Any:
    return site_entry(
        [
            huawei_subentry(peer),
            entity_meter_subentry(),
            limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
        ]
    )


def _exports(site: PeerSite, since: float) -> list[float]:
    return [s.export_w for s in site.window(since, site.t)]


@covers("timeout")
async def test_silent_inverter_keeps_its_last_derating(
    hass: HomeAssistant,
    house: tuple[HuaweiPeer, PeerSite],
    caplog: pytest.LogCaptureFixture,
) -> None:
    peer, site = house
    await setup_site(hass, _house_entry(peer))
    await run_until(site, site.t + 10.0)
    assert _on(hass, CONNECTION)
    assert state_of(hass, "sensor.home_control_state") == ControlState.CONTROLLING
    held = peer.derating
    assert held < 1000

    peer.hang = True
    started, silent_from = time.monotonic(), site.t
    await wait_for(lambda: not _on(hass, CONNECTION), 10, "connection off")
    assert time.monotonic() - started <= DEFAULT_TIMEOUT_S + CYCLE_S + SLACK_S
    assert f"no response in {DEFAULT_TIMEOUT_S:g} s" in _error(hass, CONNECTION)
    assert state_of(hass, POWER) == "unavailable"
    assert logged(caplog, logging.WARNING, f"{NAME} unavailable:", "no response in 3 s")
    await run_until(site, site.t + 8.0)
    # Its own safe behaviour: the derating persists, so export stays held while it is silent.
    assert peer.derating == held
    assert max(_exports(site, silent_from)) <= EXPORT_LIMIT + 100
    assert state_of(hass, "sensor.home_control_state") == ControlState.CONTROLLING

    peer.hang = False
    started = time.monotonic()
    await wait_for(lambda: _on(hass, CONNECTION), 10, "back")
    # A cycle may be waiting out its timeout, then the reconnect settles for 1.5 s.
    assert time.monotonic() - started <= DEFAULT_TIMEOUT_S + SETTLE_S + CYCLE_S + SLACK_S
    assert logged(caplog, logging.INFO, f"{NAME} is back")
    assert peer.dropped == 0  # the reconnects were paced as the SDongle needs


@covers("gone_at_start")
async def test_inverter_gone_at_start(
    hass: HomeAssistant,
    house: tuple[HuaweiPeer, PeerSite],
    caplog: pytest.LogCaptureFixture,
) -> None:
    peer, site = house
    port = peer.port
    await peer.stop()
    entry = _house_entry(peer)
    await setup_site(hass, entry)
    assert logged(caplog, logging.WARNING, f"{NAME} is not ready", "will keep trying")
    assert not _on(hass, CONNECTION)
    assert "cannot connect to 127.0.0.1" in _error(hass, CONNECTION)
    assert not peer.writes()

    await peer.start(port)  # it comes up at its address
    started = time.monotonic()
    await wait_for(lambda: _on(hass, CONNECTION), 8, "set up")
    assert time.monotonic() - started <= CYCLE_S + SETTLE_S + SLACK_S
    await wait_for(lambda: peer.derating < 1000, 3, "limited")
    await run_until(site, site.t + 8.0)
    assert site.window(site.t - 1.0, site.t)[-1].export_w >= EXPORT_LIMIT - BELOW
    assert max(_exports(site, site.t - 3.0)) <= EXPORT_LIMIT + 100


# --- error answers ---------------------------------------------------------------------------


@covers("exception")
async def test_refused_derating_keeps_the_previous_one(
    make_site: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    peer, site, _, _ = await make_site()
    await site.settle()
    held, flash, tried = peer.derating, peer.flash_writes, len(peer.derating_writes())
    site.meter.load_w = 200.0  # export rises: a lower derating is needed
    peer.refuse_settings = True
    refused = await site.cycles(3)
    assert all("Modbus exception 4" in (s.inverters[KEY].error or "") for s in refused)
    assert peer.derating == held  # the previous limit stays in force
    assert peer.flash_writes == flash
    assert len(peer.derating_writes()) - tried == 3  # tried again every cycle
    assert logged(caplog, logging.WARNING, f"{NAME} does not take its limit", "exception 4")

    peer.refuse_settings = False
    snapshot = await site.cycle()
    assert snapshot.inverters[KEY].available
    assert peer.derating < held
    assert logged(caplog, logging.INFO, f"{NAME} takes its limit again")
    await site.cycles(5)
    assert site.held()


@covers("exception")
async def test_error_answer_to_a_read(
    make_site: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    peer, site, _, _ = await make_site()
    await site.settle()
    writes = len(peer.writes())
    peer.exceptions[(UNIT, ACTIVE_POWER)] = 6
    snapshot = await site.cycle()
    status = snapshot.inverters[KEY]
    assert not status.available
    assert "Modbus exception 6 (server device busy)" in (status.error or "")
    assert snapshot.state is ControlState.CONTROLLING
    assert len(peer.writes()) == writes
    assert logged(caplog, logging.WARNING, f"{NAME} unavailable:", "exception 6")
    peer.exceptions.clear()
    assert (await site.cycle()).inverters[KEY].available
    assert logged(caplog, logging.INFO, f"{NAME} is back")


# --- disconnect mid-write, a second client ---------------------------------------------------


@covers("disconnect_mid_write")
@pytest.mark.parametrize("taken", [True, False], ids=["taken-then-dropped", "dropped-unread"])
async def test_connection_drops_on_the_derating_write(
    make_site: Callable[..., Any], caplog: pytest.LogCaptureFixture, *, taken: bool
) -> None:
    peer, site, _, _ = await make_site()
    await site.settle()
    before = len(peer.derating_writes())
    site.meter.load_w = 200.0  # a lower derating is needed
    if taken:
        peer.drop_after_next_write = 1
    else:
        peer.drop_next_write = 1
    snapshot = await site.cycle()
    assert "connection lost" in (snapshot.write_errors.get(KEY) or snapshot.inverters[KEY].error)
    assert logged(caplog, logging.WARNING, f"{NAME} does not take its limit", "connection lost")
    new = peer.derating if taken else None

    await site.cycles(6)
    assert logged(caplog, logging.INFO, f"{NAME} takes its limit again")
    writes = peer.derating_writes()[before:]
    if taken:  # the inverter held it: not written again
        assert [w.values for w in writes].count((new,)) == 1
    else:  # the dropped request never reached it: sent again after the reconnect
        assert len(writes) >= 1
    assert peer.flash_writes == len({*(w.values for w in peer.derating_writes())})
    assert site.held()


@covers("disconnect_mid_write")
async def test_a_second_client_takes_turns_with_the_site(
    make_site: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The SDongle serves one client: another one connecting drops ours, and ours drops it."""
    peer, site, _, _ = await make_site()
    await site.settle()
    assert peer.connections == 1
    reader, writer = await asyncio.open_connection("127.0.0.1", peer.port)  # e.g. an app
    await asyncio.sleep(0.05)
    assert peer.kicked == 1  # ours

    snapshots = await site.cycles(2)
    assert snapshots[-1].inverters[KEY].available  # reconnected at the next request
    assert peer.kicked == 2  # the other client is dropped in turn
    assert await asyncio.wait_for(reader.read(), 1.0) == b""
    writer.close()
    await site.cycles(3)
    assert site.held()
    lost = [s for s in snapshots if not s.inverters[KEY].available]
    assert len(lost) <= 1
    if lost:
        assert logged(caplog, logging.WARNING, f"{NAME} unavailable:", "connection lost")


# --- slow replies ----------------------------------------------------------------------------


@covers("slow_reply")
async def test_slow_replies(make_site: Callable[..., Any]) -> None:
    """Per answer 0.1 s (the client waits 0.2 s): control goes on. Each answer in time but the
    cycle's reads over the device timeout: as no answer. Each over: as no answer."""
    peer, site, _, _ = await make_site(device_timeout_s=0.5)
    await site.settle()
    peer.reply_delay_s = 0.1
    started = time.monotonic()
    slow = await site.cycles(3)
    assert time.monotonic() - started >= 3 * 3 * 0.1
    assert all(s.inverters[KEY].available for s in slow)
    assert all(s.state is ControlState.CONTROLLING for s in slow)

    peer.reply_delay_s = 0.18  # in time, but 3 reads take 0.54 s
    snapshot = await site.cycle()
    assert "no answer within 0.5 s" in (snapshot.inverters[KEY].error or "")

    peer.reply_delay_s = 0.3
    snapshot = await site.cycle()
    assert "no response in 0.2 s" in (snapshot.inverters[KEY].error or "")
    peer.reply_delay_s = 0.0
    back = await site.cycles(6)
    assert back[0].inverters[KEY].available
    assert site.held()


# --- back after an hour ----------------------------------------------------------------------


@covers("back_after_an_hour")
async def test_back_after_an_hour_still_holding_the_derating(
    make_site: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    peer, site, _, _ = await make_site()
    await site.settle()
    held = peer.derating
    port = peer.port
    await peer.stop()
    gone = await site.cycles(6, dt=300.0)
    peer.restart()  # it restarted meanwhile: the derating persists
    gone += await site.cycles(6, dt=300.0)
    assert all("cannot connect" in (s.inverters[KEY].error or "") for s in gone)
    assert all(s.state is ControlState.CONTROLLING for s in gone)
    assert peer.derating == held
    assert site.held()  # the house did not change: the persistent limit kept it safe

    writes = len(peer.writes())
    await peer.start(port)
    back = await site.cycle()
    assert back.inverters[KEY].available
    assert logged(caplog, logging.INFO, f"{NAME} is back")
    await site.cycles(6)
    assert site.held()
    assert len(peer.writes()) - writes <= 2  # the controller's ramp (see test_sungrow)


# --- frozen data -----------------------------------------------------------------------------


@covers("frozen_data")
async def test_frozen_values_are_caught_by_the_energy_counter(
    make_site: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    peer, site, _, _ = await make_site()
    live = await site.cycles(60)
    assert all(s.inverters[KEY].available for s in live)
    output = peer.output_w
    derating = peer.derating

    peer.frozen = True
    expected = 40.0 / output * 3600  # cycles of 1 s until 3 × 10 Wh + 10 Wh
    frozen = await site.cycles(round(expected) + 20)
    first = next(i for i, s in enumerate(frozen) if not s.inverters[KEY].available)
    assert 30.0 / output * 3600 - 1 <= first + 1 <= expected + 2  # less up to one step
    assert "values look frozen: lifetime energy unchanged" in (
        frozen[first].inverters[KEY].error or ""
    )
    assert all(not s.inverters[KEY].available for s in frozen[first:])
    assert peer.derating == derating  # it keeps the last limit
    assert logged(caplog, logging.WARNING, f"{NAME} unavailable:", "values look frozen")

    peer.frozen = False
    assert (await site.cycle()).inverters[KEY].available
    assert logged(caplog, logging.INFO, f"{NAME} is back")


# --- restart while limiting ------------------------------------------------------------------


@covers("restart_during_control")
async def test_restart_while_limiting(
    make_site: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    peer, first, _, stored = await make_site()
    await first.settle()
    assert stored == [Baseline(1000)]  # the installer's derating, kept before any write
    held = peer.derating
    assert held < 1000

    # Home Assistant stops without handing back (a crash, a power cut): an hour passes.
    for _ in range(60):
        first.clock.advance(60.0)
        assert first.held()
    peer.restart()
    assert peer.derating == held

    writes = len(peer.writes())
    _, second, _, _ = await make_site(baseline=stored[-1])  # from the store
    snapshot = await second.cycle()
    assert snapshot.inverters[KEY].available
    assert snapshot.state is ControlState.CONTROLLING
    await second.cycles(10)
    assert second.held()
    assert len(peer.writes()) == writes  # it held what was needed: nothing rewritten

    await second.loop.async_close()  # the site is unloaded: hand back what was found
    assert peer.derating == 1000
    assert logged(caplog, logging.INFO, "Handed back to their own settings", NAME)


# --- clock jump ------------------------------------------------------------------------------


@covers("clock_jump")
async def test_wall_clock_jumps_change_nothing(make_site: Callable[..., Any]) -> None:
    peer, site, _, _ = await make_site()
    await site.settle()
    writes = len(peer.writes())
    for jump in (timedelta(hours=1), timedelta(hours=-1), timedelta(hours=-1)):
        site.wall_offset += jump
        snapshot = (await site.cycles(5))[-1]
        assert snapshot.inverters[KEY].available
        assert snapshot.state is ControlState.CONTROLLING
    assert len(peer.writes()) == writes
    assert site.held()
