"""Fault matrix, GoodWe ET: the simulated inverter (tests/goodwe_inverter/peer.py) on UDP 8899.

What is special about GoodWe: the site's control is the inverter's own export limit, held at
its own meter and kept in non-volatile memory with no revert timer. Whatever happens to the
link or to Home Assistant, the last export limit written stays in force, so export stays
within it; the site counts an inverter it cannot read at its rating. The link is UDP through
the ``goodwe`` library (1 s per try, one retry): a lost datagram is asked again, there is no
connection to drop. Frozen running data is told by the inverter's own clock in it.

The Home Assistant tests run the household model of tests/ha/subentries/devices/test_goodwe.py
around the peer (a load, the inverter's output with a lag, a grid power sensor as the site
meter) in real time. Faults that need exact timing or an hour run the plain-Python control
loop with the real GoodWe client against the peer in lock-step on a fake clock that the
inverter's own clock follows (:class:`LockStep`); the UDP time-outs stay real (short ones).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant

from custom_components.dynamic_export.const import DOMAIN
from custom_components.dynamic_export.core.controller import (
    Constraint,
    Controller,
    ControllerSettings,
    ControlState,
)
from custom_components.dynamic_export.core.controls import Controls, ControlType
from custom_components.dynamic_export.core.cycle import ControlLoop, CycleSnapshot
from custom_components.dynamic_export.core.measurements import MeterReading
from custom_components.dynamic_export.core.write_policy import WritePolicy
from custom_components.dynamic_export.goodwe_inverter.client import GoodWeEtClient
from custom_components.dynamic_export.goodwe_inverter.inverter import (
    FROZEN_AFTER_S,
    GoodWeInverter,
)
from custom_components.dynamic_export.limiters.fixed import FixedLimiter
from custom_components.dynamic_export.subentries.devices.setup import (
    GOODWE_TIMEOUT_S,
    STORE_GOODWE_BASELINES,
)

from ...core.fakes import FakeClock
from ...goodwe_inverter.peer import (
    EXPORT_LIMIT as LIMIT_REGISTER,
)
from ...goodwe_inverter.peer import (
    TOTAL_INVERTER_POWER,
    GoodWeEtPeer,
)
from ..helpers import wait_for
from ..peers import GRID, Generator, PeerSite, run_until, set_power
from ..sites import (
    entity_meter_subentry,
    limiter_subentry,
    setup_site,
    site_entry,
    unload_sites,
)
from ..subentries.devices.test_goodwe import INVERTER, TITLE, goodwe_subentry
from .matrix import Outcome, covers

OUTCOMES: dict[str, Outcome] = {
    "timeout": Outcome(
        site_does=(
            "Counted at its rating; nothing is written to it. Its own export limit, kept in "
            "its memory and held at its own meter, keeps export within the last limit "
            "written. A lost datagram is asked again by the library within the cycle (1 s "
            "per try, one retry) and changes nothing"
        ),
        how_fast=(
            "Unavailable at the cycle whose read fails: ≤ 2 s of tries + 1 cycle (measured "
            "3.0 s); back the first cycle it answers (measured 1.0 s)"
        ),
        user_sees=(
            "`binary_sensor.<inverter>_connection` off, error 'GoodWe at <host>: reading the "
            "runtime data: No valid response received even after 1 retries'; its sensors "
            "unavailable; WARNING '<inverter> unavailable: …', INFO '<inverter> is back'"
        ),
    ),
    "exception": Outcome(
        site_does=(
            "A refused read (e.g. exception 6, busy): counted at its rating, as for no "
            "answer. A refused export limit: asked again every cycle; meanwhile the inverter "
            "keeps the limit it holds"
        ),
        how_fast=(
            "Read: the next cycle (measured 0.1 s). Limit: the first cycle after the "
            "inverter accepts (measured 0.5 s)"
        ),
        user_sees=(
            "Connection off with '… reading the runtime data refused (SLAVE DEVICE BUSY)' or "
            "'… writing grid_export_limit = N refused (SLAVE DEVICE FAILURE)'; WARNING '… "
            "unavailable: …' or '… does not take its limit: …', INFO '… takes its limit again'"
        ),
    ),
    "disconnect_mid_write": Outcome(
        site_does=(
            "UDP has no connection: a write's datagram or its answer is lost. One loss: the "
            "library's retry writes the same value (one flash write). Every try lost: the "
            "write counts as failed; the next cycle reads the limit the inverter holds and "
            "writes only if it differs (taken: nothing more; lost: written again)"
        ),
        how_fast="One loss: within the cycle. Every try lost: the next cycle",
        user_sees=(
            "WARNING '<inverter> does not take its limit: GoodWe at <host>: writing "
            "grid_export_limit = N: No valid response …', unavailable for that cycle; then "
            "INFO '… takes its limit again'"
        ),
    ),
    "slow_reply": Outcome(
        site_does=(
            "Answers within the library's 1 s per try: control goes on, each read waits for "
            "two answers. Later: asked again, then as no answer (goodwe 0.4 never takes a "
            "late answer, each try has its own socket; goodwe 0.3 takes the first try's "
            "answer during the retry, so up to 2 s works there)"
        ),
        how_fast="Below 1 s: no effect. Above: as no answer",
        user_sees="Below: nothing (cycles take longer). Above: as no answer",
    ),
    "gone_at_start": Outcome(
        site_does=(
            "The site starts; the inverter is counted at the rating stored when it was added, "
            "and only its own export limit (the installer's, or ours from before) holds it "
            "until it answers; set up and controlled at the first cycle it answers"
        ),
        how_fast="Control at the first cycle after it answers (measured 1.1 s)",
        user_sees=(
            "WARNING '<inverter> is not ready (…); will keep trying'; connection off; control "
            "state controlling (the site's meter answers)"
        ),
    ),
    "back_after_an_hour": Outcome(
        site_does=(
            "Unavailable for the hour while its export limit (kept through its restart) holds "
            "export within the last limit. When it answers, control resumes where it was: "
            "the limit it holds is still right, so nothing is written"
        ),
        how_fast="The first cycle it answers",
        user_sees=(
            "Connection off for the hour, WARNING '… unavailable: …' once; INFO '… is back'"
        ),
    ),
    "frozen_data": Outcome(
        site_does=(
            "The running data's timestamp (the inverter's clock) standing still ≥ 10 s after "
            "it was seen to move fails the read: counted at its rating, nothing written on "
            "those values. Values frozen under a clock that still ticks: caught by the total "
            "PV energy (0.1 kWh) standing still while the PV power says the panels give. A "
            "timestamp or counter never seen moving is not judged. The meter block has no "
            "timestamp: frozen meter values behind live running data go unnoticed"
        ),
        how_fast=(
            "Timestamp: the first cycle 10 s after it last moved. Energy: once the PV power "
            "adds up to 310 Wh (measured 9 min at 2 kW). Live again the first cycle it moves"
        ),
        user_sees=(
            "Connection off with '… values look frozen: the running data's timestamp has "
            "stood at HH:MM:SS for 10 s' or '… PV energy unchanged for N s …'; WARNING '… "
            "unavailable: …', INFO '… is back'"
        ),
    ),
    "restart_during_control": Outcome(
        site_does=(
            "The inverter keeps our last export limit (in its memory, no revert timer) while "
            "Home Assistant is away, so export stays within it. Handing back later restores "
            "the installer's setting stored before our first write, not our own limit the "
            "inverter then holds"
        ),
        how_fast="Limit held throughout; control from the first cycle (≤ 1 flash write)",
        user_sees=(
            "Control state controlling from the first cycle; WARNING '… could not be handed "
            "back: …' if the inverter is unreachable when the site unloads (the store keeps "
            "what to restore)"
        ),
    ),
    "clock_jump": Outcome(
        site_does=(
            "Nothing: the loop runs on the monotonic clock, and any change of the inverter's "
            "own timestamp (its clock set, daylight saving) counts as live"
        ),
        how_fast="No effect (tested: both clocks ±1 h)",
        user_sees="Nothing",
    ),
}

EXPORT_LIMIT = 1500.0
OWN_LIMIT_W = 4000  # the installer's export limit (on): what handing back restores
AVAILABLE_W = 4500.0
LOAD_W = 600.0
CYCLE_S = 1.0
SLACK_S = 1.0
"""Real-time tests: the coordinator's whole-second grid and a loaded test machine."""
TRIES_S = 2 * GOODWE_TIMEOUT_S
"""A request the inverter never answers fails after its try and the library's one retry."""
CONNECTION = f"binary_sensor.{INVERTER}_connection"
AC_POWER = f"sensor.{INVERTER}_ac_power"


# --- helpers ---------------------------------------------------------------------------------


def _state(hass: HomeAssistant, entity_id: str) -> Any:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state


def _control_state(hass: HomeAssistant) -> str:
    return str(_state(hass, "sensor.home_control_state").state)


def _on(hass: HomeAssistant) -> bool:
    return bool(_state(hass, CONNECTION).state == "on")


def _error(hass: HomeAssistant) -> str:
    return str(_state(hass, CONNECTION).attributes.get("error") or "")


async def _time(condition: Callable[[], bool], within_s: float, what: str) -> float:
    """Seconds until ``condition`` holds (fails after ``within_s``)."""
    started = time.monotonic()
    await wait_for(condition, within_s, what)
    return time.monotonic() - started


def _logged(caplog: pytest.LogCaptureFixture, level: int, *parts: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == level and all(p in r.getMessage() for p in parts)
    ]


def _settings(peer: GoodWeEtPeer) -> tuple[int, int]:
    return peer.export_switch, peer.export_limit_w


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.dynamic_export")


@pytest.fixture
async def peer(socket_enabled: None) -> AsyncIterator[GoodWeEtPeer]:
    """The inverter with the installer's export limit on (4000 W)."""
    peer = GoodWeEtPeer(export_switch=1, export_limit_w=OWN_LIMIT_W)
    await peer.start()
    yield peer
    await peer.stop()
    # goodwe 0.3 leaves a retry timer behind each request: wait it out (lingering timers).
    await asyncio.sleep(GOODWE_TIMEOUT_S + 0.1)


# --- lock-step core harness ------------------------------------------------------------------

WALL_START = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
INVERTER_START = datetime(2026, 6, 1, 12, 0)  # its clock: local time, naive
TEST_TIMEOUT_S = 0.3


class PeerMeter:
    """The site's grid meter around the peer: its load less its output, read now."""

    def __init__(self, peer: GoodWeEtPeer, clock: FakeClock) -> None:
        self.peer = peer
        self.clock = clock

    async def async_read(self) -> MeterReading:
        return MeterReading(
            timestamp=self.clock(), grid_power_w=self.peer.load_now() - self.peer.output_w()
        )


class LockStep:
    """The real GoodWe client and control loop against the peer, on a fake clock.

    The inverter produces min(available, its ceiling) at once, so the loop sees its writes
    take effect; the inverter's clock (its running data's timestamp) moves with the fake
    clock, shifted by ``inverter_offset``.
    """

    def __init__(self, peer: GoodWeEtPeer, *, export_limit: float = EXPORT_LIMIT) -> None:
        self.peer = peer
        self.clock = FakeClock(start=1000.0)
        self.wall_offset = timedelta(0)
        self.inverter_offset = timedelta(0)
        peer.clock = lambda: (
            INVERTER_START + timedelta(seconds=self.clock.now - 1000.0) + self.inverter_offset
        )
        self.inverter = GoodWeInverter(
            GoodWeEtClient(peer.host, timeout_s=TEST_TIMEOUT_S, retries=1), clock=self.clock
        )
        self.limiter = FixedLimiter("Limits", Controls(export_limit=export_limit))
        self.loop = ControlLoop(
            meter=PeerMeter(peer, self.clock),
            inverters={"goodwe": self.inverter},
            ratings={},
            limiters=[self.limiter],
            controller=Controller(ControllerSettings()),
            write_policy=WritePolicy(),
            clock=self.clock,
            wall_clock=self.wall,
            names={"goodwe": "GoodWe", "meter": "Meter"},
        )

    def wall(self) -> datetime:
        return WALL_START + timedelta(seconds=self.clock.now - 1000.0) + self.wall_offset

    @property
    def export_w(self) -> float:
        return self.peer.output_w() - self.peer.load_now()

    async def cycle(self, dt: float = CYCLE_S) -> CycleSnapshot:
        self.clock.advance(dt)
        return await self.loop.async_run_cycle()

    async def cycles(self, count: int, dt: float = CYCLE_S) -> list[CycleSnapshot]:
        return [await self.cycle(dt) for _ in range(count)]

    async def controlling(self) -> None:
        """Run until the export limit is held (the inverter's own limit below 1500 W)."""
        await self.cycles(5)
        assert _settings(self.peer)[0] == 1
        assert EXPORT_LIMIT - 250 <= self.peer.export_limit_w <= EXPORT_LIMIT
        assert EXPORT_LIMIT - 250 <= self.export_w <= EXPORT_LIMIT


def _status(snapshot: CycleSnapshot) -> Any:
    return snapshot.inverters["goodwe"]


# --- Home Assistant: the household around the peer -------------------------------------------


@pytest.fixture
async def household(hass: HomeAssistant, peer: GoodWeEtPeer) -> AsyncIterator[PeerSite]:
    """A 600 W load, the inverter's output (4.5 kW of sun, a 0.8 s lag) and the grid sensor."""
    site = PeerSite(load_w=LOAD_W, tick_s=0.1)
    generator = Generator(AVAILABLE_W, peer.ceiling_w, time_constant_s=0.8)
    site.generators.append(generator)
    peer.output_source = lambda: generator.output_w
    peer.load_source = lambda: site.load_w
    site.sinks.append(lambda grid_w: set_power(hass, GRID, round(grid_w, 1)))
    site.start()
    yield site
    await unload_sites(hass)  # while the peer still answers; its retry timers end with it
    await site.stop()


def _site(peer: GoodWeEtPeer) -> Any:
    return site_entry(
        [
            goodwe_subentry(peer),
            entity_meter_subentry(),
            limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
        ]
    )


def _exported(site: PeerSite) -> float:
    return site.samples[-1].export_w


async def _controlling(hass: HomeAssistant, site: PeerSite) -> None:
    """Wait until the inverter's own export limit holds the site's 1500 W."""
    await wait_for(
        lambda: (
            _control_state(hass) == ControlState.CONTROLLING
            and _on(hass)
            and EXPORT_LIMIT - 250 <= _exported(site) <= EXPORT_LIMIT + 100
        ),
        15,
        "export held at the limit",
    )


def _max_export(site: PeerSite, since: float) -> float:
    return max(s.export_w for s in site.window(since, site.t + 1))


@covers("timeout")
async def test_inverter_that_stops_answering(
    hass: HomeAssistant,
    peer: GoodWeEtPeer,
    household: PeerSite,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = await setup_site(hass, _site(peer))
    await _controlling(hass, household)
    coordinator = entry.runtime_data.coordinator
    errors: list[str | None] = []
    coordinator.async_add_listener(
        lambda: errors.extend(s.error for s in coordinator.data.inverters.values())
    )

    # A lost datagram now and then: the library asks again within the cycle.
    for _ in range(3):
        peer.drop = 1
        await wait_for(lambda: peer.drop == 0, 3, "an answer lost")
        await asyncio.sleep(GOODWE_TIMEOUT_S + CYCLE_S)  # not the retry's answer too
    await asyncio.sleep(CYCLE_S)
    assert errors
    assert not any(errors), errors

    # Off the network: unavailable after the library's two tries.
    held = _settings(peer)
    peer.silent = True
    silent_from = household.t
    took = await _time(lambda: not _on(hass), TRIES_S + CYCLE_S + SLACK_S, "unavailable")
    assert took <= TRIES_S + CYCLE_S + SLACK_S
    assert "No valid response received even after 1 retries" in _error(hass)
    assert _state(hass, AC_POWER).state == "unavailable"
    assert _logged(
        caplog, logging.WARNING, f"{TITLE} unavailable: GoodWe at {peer.host}: reading the runtime"
    )
    assert _control_state(hass) == ControlState.CONTROLLING  # the site's meter answers
    # Its export limit is its own, at its own meter: export stays held without us.
    await run_until(household, silent_from + 6.0)
    assert _settings(peer) == held
    assert _max_export(household, silent_from) <= EXPORT_LIMIT + 100
    assert entry.runtime_data.coordinator.last_update_success

    peer.silent = False
    took = await _time(lambda: _on(hass), TRIES_S + CYCLE_S + SLACK_S, "back")
    assert _logged(caplog, logging.INFO, f"{TITLE} is back")
    await _controlling(hass, household)


@covers("exception")
async def test_inverter_error_answers(
    hass: HomeAssistant,
    peer: GoodWeEtPeer,
    household: PeerSite,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await setup_site(hass, _site(peer))
    await _controlling(hass, household)

    # A lower limit refused: asked again every cycle; the inverter keeps the one it holds.
    held = _settings(peer)
    peer.write_exceptions[LIMIT_REGISTER] = 4
    await hass.services.async_call(
        "number", "set_value", {ATTR_ENTITY_ID: "number.export_limit", "value": 800}, blocking=True
    )
    await wait_for(lambda: "refused (SLAVE DEVICE FAILURE)" in _error(hass), 3, "the refusal")
    assert "writing grid_export_limit" in _error(hass)
    refused = len(peer.limit_writes())
    await asyncio.sleep(2.5 * CYCLE_S)
    assert len(peer.limit_writes()) >= refused + 2  # asked again every cycle
    assert _settings(peer) == held
    assert _logged(caplog, logging.WARNING, f"{TITLE} does not take its limit:", "FAILURE")
    peer.write_exceptions.clear()
    took = await _time(lambda: peer.export_limit_w <= 800, CYCLE_S + SLACK_S, "limit taken")
    assert took <= CYCLE_S + SLACK_S
    assert _logged(caplog, logging.INFO, f"{TITLE} takes its limit again")
    await wait_for(lambda: _exported(household) <= 800 + 100, 5, "export at the new limit")
    await hass.services.async_call(
        "number",
        "set_value",
        {ATTR_ENTITY_ID: "number.export_limit", "value": EXPORT_LIMIT},
        blocking=True,
    )
    await _controlling(hass, household)

    # The running data refused (busy): unavailable at the next cycle.
    peer.exceptions[TOTAL_INVERTER_POWER] = 6
    took = await _time(lambda: not _on(hass), CYCLE_S + SLACK_S, "unavailable")
    assert took <= CYCLE_S + SLACK_S
    assert "reading the runtime data refused (SLAVE DEVICE BUSY)" in _error(hass)
    assert _logged(caplog, logging.WARNING, f"{TITLE} unavailable:", "SLAVE DEVICE BUSY")
    peer.exceptions.clear()
    await _time(lambda: _on(hass), CYCLE_S + SLACK_S, "back")
    await _controlling(hass, household)


@covers("gone_at_start")
async def test_inverter_gone_at_start(
    hass: HomeAssistant,
    peer: GoodWeEtPeer,
    household: PeerSite,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Silent when the site starts: counted at the rating the flow stored; its own export
    limit (the installer's 4000 W) is all that holds it until it answers."""
    peer.silent = True
    entry = await setup_site(hass, _site(peer))
    assert _logged(caplog, logging.WARNING, f"{TITLE} is not ready", "will keep trying")
    assert not _on(hass)
    assert "No valid response" in _error(hass)
    (key,) = entry.runtime_data.loop.inverters
    assert entry.runtime_data.loop.ratings[key] == 5000.0
    assert _settings(peer) == (1, OWN_LIMIT_W)

    peer.silent = False
    took = await _time(lambda: _on(hass), TRIES_S + CYCLE_S + SLACK_S, "set up")
    assert took <= TRIES_S + CYCLE_S + SLACK_S
    await _controlling(hass, household)
    assert peer.export_limit_w <= EXPORT_LIMIT


@covers("restart_during_control")
async def test_restart_while_limiting(
    hass: HomeAssistant,
    peer: GoodWeEtPeer,
    household: PeerSite,
    hass_storage: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Home Assistant stops (it does not unload on stop): the inverter keeps our export
    limit, persistent, and export stays within it; after the restart control resumes at
    the first cycle, and handing back later restores the installer's own limit."""
    entry = await setup_site(hass, _site(peer))
    await _controlling(hass, household)
    held = _settings(peer)
    coordinator = entry.runtime_data.coordinator

    await coordinator.async_stop_schedule()  # Home Assistant stops: no more cycles
    stopped_at = household.t
    asked = len(peer.requests)
    await run_until(household, stopped_at + 5.0)
    assert len(peer.requests) == asked  # nobody talks to it
    assert _settings(peer) == held
    assert _max_export(household, stopped_at) <= EXPORT_LIMIT + 100

    # The process ends without handing back: here, an unload the inverter does not hear.
    peer.silent = True
    assert await hass.config_entries.async_unload(entry.entry_id)
    peer.silent = False
    assert _logged(caplog, logging.WARNING, f"{TITLE} could not be handed back")
    assert _settings(peer) == held
    (sub_id,) = [s.subentry_id for s in entry.subentries.values() if s.title == TITLE]
    stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"][STORE_GOODWE_BASELINES]
    assert stored == {sub_id: {"enabled": 1, "limit_w": OWN_LIMIT_W}}

    back_at = household.t
    flash = peer.flash_writes
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert _control_state(hass) == ControlState.CONTROLLING  # from the first cycle
    await run_until(household, back_at + 5.0)
    assert _max_export(household, back_at) <= EXPORT_LIMIT + 100
    assert peer.flash_writes - flash <= 2

    assert await hass.config_entries.async_unload(entry.entry_id)
    assert _settings(peer) == (1, OWN_LIMIT_W)  # the installer's, not our own left in force
    stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"][STORE_GOODWE_BASELINES]
    assert stored == {}


# --- disconnect mid-write (UDP: the write's datagram or its answer is lost) ------------------


@covers("disconnect_mid_write")
async def test_lost_write_answers_and_lost_writes(
    peer: GoodWeEtPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """UDP has no connection to drop: the nearest is a write whose datagram or answer is
    lost. One loss is asked again by the library (the same value: one flash write). When
    every try is lost the write fails; the next cycle reads what the inverter holds and
    writes only what differs."""
    site = LockStep(peer)
    await site.controlling()

    # The answer to the next write is lost once: the library's retry lands it.
    peer.drop_write_answers = 1
    site.limiter.set_limit(ControlType.EXPORT_LIMIT, 1000.0)
    flash = peer.flash_writes
    snapshot = await site.cycle()
    assert snapshot.writes == 1
    assert not snapshot.write_errors
    assert peer.drop_write_answers == 0
    assert peer.flash_writes == flash + 1  # written twice, changed once
    assert 750 <= peer.export_limit_w <= 1000

    # Taken, but every answer lost: the write fails, the inverter holds the new limit.
    peer.drop_write_answers = 2
    site.limiter.set_limit(ControlType.EXPORT_LIMIT, 500.0)
    flash = peer.flash_writes
    failed = await site.cycle()
    assert "writing grid_export_limit" in failed.write_errors["goodwe"]
    assert "No valid response" in failed.write_errors["goodwe"]
    assert not _status(failed).available  # shown unavailable for that cycle
    taken = peer.export_limit_w
    assert 250 <= taken <= 500
    assert _logged(caplog, logging.WARNING, "GoodWe does not take its limit:", "grid_export_limit")
    writes = len(peer.limit_writes())
    again = await site.cycle()
    assert _status(again).available
    assert not again.write_errors
    assert len(peer.limit_writes()) == writes  # it holds the value: nothing written again
    assert peer.flash_writes == flash + 1
    assert _logged(caplog, logging.INFO, "GoodWe takes its limit again")

    # Lost on the way, every try: never taken; the next cycle writes it again.
    peer.lose_writes = 2
    site.limiter.set_limit(ControlType.EXPORT_LIMIT, 0.0)
    lost = await site.cycle()
    assert "writing grid_export_limit" in lost.write_errors["goodwe"]
    assert peer.export_limit_w == taken
    again = await site.cycle()
    assert not again.write_errors
    assert _settings(peer) == (1, 0)
    await site.cycles(2)
    assert site.export_w <= 0.0 + 1


# --- slow replies ----------------------------------------------------------------------------


@covers("slow_reply")
async def test_slow_replies(peer: GoodWeEtPeer) -> None:
    """Below the library's time-out (0.3 s here, 1 s in Home Assistant) control goes on;
    above it the request is asked again and fails as a lost one (goodwe 0.4 opens a new
    socket per try, so a late answer is never taken; 0.3 takes the first try's answer
    during the retry, so up to two time-outs work there)."""
    site = LockStep(peer)
    await site.controlling()
    peer.reply_delay_s = 0.2
    started = time.monotonic()
    slow = await site.cycles(3)
    assert all(_status(s).available for s in slow)
    assert all(s.state is ControlState.CONTROLLING for s in slow)
    assert time.monotonic() - started >= 3 * 2 * 0.2  # two requests per read, each late
    assert EXPORT_LIMIT - 250 <= site.export_w <= EXPORT_LIMIT

    peer.reply_delay_s = 2.5 * TEST_TIMEOUT_S  # later than both tries
    held = _settings(peer)
    late = await site.cycles(3)
    assert all(not _status(s).available for s in late)
    assert "No valid response" in (_status(late[-1]).error or "")
    assert all(s.state is ControlState.CONTROLLING for s in late)  # the meter still answers
    assert _settings(peer) == held  # nothing written meanwhile; the inverter holds it
    assert site.export_w <= EXPORT_LIMIT

    peer.reply_delay_s = 0.0
    await asyncio.sleep(2.5 * TEST_TIMEOUT_S)  # the last late answers land on closed sockets
    assert _status(await site.cycle()).available


# --- back after an hour ----------------------------------------------------------------------


@covers("back_after_an_hour")
async def test_inverter_back_after_an_hour(
    peer: GoodWeEtPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """Off the network for an hour (and restarted meanwhile): its persistent export limit
    held export all along; the first answer brings it back under control, with nothing to
    write."""
    site = LockStep(peer)
    await site.controlling()
    held = _settings(peer)

    peer.silent = True
    gone = await site.cycles(12, dt=300.0)
    assert all(not _status(s).available for s in gone)
    assert all(s.state is ControlState.CONTROLLING for s in gone)
    assert all(site.export_w <= EXPORT_LIMIT for _ in gone)
    assert _logged(caplog, logging.WARNING, "GoodWe unavailable:", "No valid response")
    peer.restart()  # settings persist across its restart (its request log starts afresh)
    assert _settings(peer) == held

    peer.silent = False
    back = await site.cycle()
    assert _status(back).available
    assert _logged(caplog, logging.INFO, "GoodWe is back")
    assert back.plan.constraint is Constraint.EXPORT_LIMIT  # no ramp from below its output
    await site.cycles(3)
    assert _settings(peer) == held
    assert not peer.limit_writes()  # it held the limit all along: no flash write
    assert EXPORT_LIMIT - 250 <= site.export_w <= EXPORT_LIMIT


# --- frozen data -----------------------------------------------------------------------------


@covers("frozen_data")
async def test_frozen_running_data(peer: GoodWeEtPeer, caplog: pytest.LogCaptureFixture) -> None:
    """The inverter serves its last running data (its timestamp stands still): after 10 s it
    counts as unreadable, at its rating, and nothing is written on those values."""
    site = LockStep(peer)
    await site.controlling()
    held = _settings(peer)

    peer.frozen = True
    frozen = await site.cycles(12)
    first = next(i for i, s in enumerate(frozen) if not _status(s).available)
    assert first + 1 == FROZEN_AFTER_S  # the timestamp last moved at the cycle before
    caught = _status(frozen[first]).error or ""
    assert "values look frozen: the running data's timestamp has stood at" in caught
    assert all(not _status(s).available for s in frozen[first:])
    assert _settings(peer) == held
    assert _logged(caplog, logging.WARNING, "GoodWe unavailable:", "values look frozen")

    peer.frozen = False
    assert _status(await site.cycle()).available
    assert _logged(caplog, logging.INFO, "GoodWe is back")


@covers("frozen_data")
async def test_frozen_values_under_a_ticking_clock(
    peer: GoodWeEtPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """Its clock still ticks but the values stand still (a stalled power board behind a live
    communication board): the total PV energy (0.1 kWh) stops while the PV power says about
    2 kW flows, so after 310 Wh (~9 min) the read fails."""
    site = LockStep(peer)
    await site.controlling()
    live = await site.cycles(120, dt=5.0)  # 10 min: the counter moves every ~3 min
    assert all(_status(s).available for s in live)
    pv_w = peer.output_w()
    assert 1900 <= pv_w <= 2100

    peer.frozen_values = True
    frozen = await site.cycles(180, dt=5.0)
    first = next(i for i, s in enumerate(frozen) if not _status(s).available)
    caught = _status(frozen[first]).error or ""
    assert "values look frozen: PV energy unchanged for" in caught
    still_s = float(caught.split("unchanged for ")[1].split(" s")[0])
    assert still_s == pytest.approx(310 / pv_w * 3600, abs=6)  # from the counter's last move
    assert (first + 1) * 5.0 <= still_s + 5.0  # never before the freeze itself
    assert all(not _status(s).available for s in frozen[first:])
    assert _logged(caplog, logging.WARNING, "GoodWe unavailable:", "PV energy unchanged")

    peer.frozen_values = False
    back = await site.cycles(40, dt=5.0)  # the counter moves again within ~3 min
    assert _status(back[-1]).available
    assert _logged(caplog, logging.INFO, "GoodWe is back")


# --- clock jump ------------------------------------------------------------------------------


@covers("clock_jump")
async def test_clock_jumps(peer: GoodWeEtPeer) -> None:
    """Home Assistant's wall clock and the inverter's own clock jump an hour either way:
    nothing changes (the loop runs on the monotonic clock; any change of the inverter's
    timestamp counts as live)."""
    site = LockStep(peer)
    await site.controlling()
    writes = len(peer.limit_writes())
    for jump in (timedelta(hours=1), timedelta(hours=-1), timedelta(hours=-1)):
        site.wall_offset += jump
        site.inverter_offset += jump
        seen = await site.cycles(2 * int(FROZEN_AFTER_S))
        assert all(_status(s).available for s in seen)
        assert all(s.state is ControlState.CONTROLLING for s in seen)
    assert len(peer.limit_writes()) == writes  # steady: nothing written again
    assert EXPORT_LIMIT - 250 <= site.export_w <= EXPORT_LIMIT
