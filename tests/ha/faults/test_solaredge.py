"""Fault matrix, SolarEdge: the simulated inverter (tests/solaredge/peer.py) fails on 127.0.0.1.

The inverter is limited through Enhanced Dynamic Power Control: a limit held in RAM that
every write restarts the inverter's command timeout for (the site's revert timeout); when
nothing is written for that long, the inverter applies its fallback limit (0 % by default)
by itself. That is the device's own safe behaviour, and most of these tests show it on the
peer's clock: a fault that keeps the site from writing ends, at the latest one command
timeout after the last write, in the fallback. The faults that need minutes or exact timing
run the plain-Python control loop with the real SolarEdge client against the peer in
lock-step on a fake clock; the ones whose outcome is what the user sees run the whole
integration in Home Assistant (1 s cycles, real time), with the household model and a grid
power sensor of the device tests as the site meter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from homeassistant.core import HomeAssistant

from custom_components.dynamic_export.const import CONF_REVERT_TIMEOUT
from custom_components.dynamic_export.core.controller import Controller, ControlState
from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.core.cycle import ControlLoop, CycleSnapshot
from custom_components.dynamic_export.core.measurements import MeterReading
from custom_components.dynamic_export.core.write_policy import WritePolicy
from custom_components.dynamic_export.limiters.fixed import FixedLimiter
from custom_components.dynamic_export.solaredge.inverter import SolarEdgeInverter
from custom_components.dynamic_export.sunspec.connection import (
    DEFAULT_TIMEOUT_S,
    ModbusTcpConnection,
)

from ...core.fakes import FakeClock
from ...solaredge.peer import (
    F_COMMIT,
    F_DYNAMIC_LIMIT,
    F_EDPC_ENABLE,
    RATING_W,
    UNIT,
    SolarEdgePeer,
)
from ...sunspec.helpers import free_port
from ..helpers import state_of, wait_for
from ..peers import GRID, Generator, PeerSite, run_until, set_power
from ..sites import entity_meter_subentry, limiter_subentry, setup_site, site_entry, unload_sites
from ..subentries.devices.test_solaredge import TITLE, solaredge_subentry
from .matrix import Outcome, covers

EXPORT_LIMIT = 1500.0
LOAD_W = 600.0
AVAILABLE_W = 4500.0
TOLERANCE = 60.0
REVERT_S = 20.0
"""The site's revert timeout in the lock-step tests: the inverter's command timeout."""
HA_REVERT_S = 10.0
"""The same in the Home Assistant tests (the shortest a 1 s interval allows)."""
CYCLE_S = 1.0
SLACK_S = 1.0
"""Real-time tests: the coordinator's whole-second grid and a loaded test machine."""
INVERTER = TITLE.lower().replace("-", "_").replace(" ", "_")

OUTCOMES: dict[str, Outcome] = {
    "timeout": Outcome(
        site_does=(
            "Unavailable; nothing reaches it, so its own command timeout (the site's revert "
            "timeout) runs out and it applies its fallback limit (0 % by default) by itself. "
            "The first answer brings it back under control: the limit written ends the "
            "fallback"
        ),
        how_fast=(
            "Unavailable in the cycle that times out (3 s); fallback ≤ the revert timeout "
            "after the last write; back ≤ the 3 s timeout + 1 cycle after it answers"
        ),
        user_sees=(
            "`binary_sensor.<inverter>_connection` off with '… unit 1: reading … no response "
            "in 3 s', its sensors unavailable; WARNING '… unavailable: …', INFO '… is back'"
        ),
    ),
    "exception": Outcome(
        site_does=(
            "A refused read (e.g. exception 6, busy): unavailable, nothing written, so it "
            "falls back by itself after its command timeout. A refused limit write (e.g. "
            "exception 4): sent again every cycle; refusals do not restart its command "
            "timeout, so it falls back by itself if they go on"
        ),
        how_fast=(
            "The next cycle; fallback ≤ the revert timeout after the last write it took; "
            "control again at the first cycle it answers or takes the limit"
        ),
        user_sees=(
            "The connection's error, e.g. 'Modbus exception 6 (server device busy)'; "
            "WARNING '… unavailable: …' or '… does not take its limit: … exception 4 …', then "
            "INFO '… is back' / '… takes its limit again'"
        ),
    ),
    "disconnect_mid_write": Outcome(
        site_does=(
            "The limit write counts as failed whether or not it took effect; the next cycle "
            "reconnects and writes it again (a RAM register: no wear), and the inverter holds "
            "exactly the limit last written"
        ),
        how_fast="The next cycle (1 s)",
        user_sees=(
            "WARNING '… does not take its limit: <host:port> unit 1: writing 2 registers at "
            "62242: connection lost', then INFO '… takes its limit again'"
        ),
    ),
    "slow_reply": Outcome(
        site_does=(
            "Below the 3 s timeout: control goes on (a read is 3 requests). Above it: as no "
            "answer; the late answer arrives on a closed connection and is never used"
        ),
        how_fast="Below: no effect. Above: as no answer",
        user_sees="Below: nothing (cycles take longer). Above: as no answer",
    ),
    "gone_at_start": Outcome(
        site_does=(
            "Counted at the rating stored when it was added; set up at the first cycle it "
            "answers, with the one-time power-control commit if it never had one (a commit "
            "longer than a cycle is waited for over the next cycles, never started twice)"
        ),
        how_fast=(
            "At start-up; control at the first cycle after it answers, plus the commit "
            "(5-10 s on an inverter, 1 s in the test)"
        ),
        user_sees=(
            "WARNING '<inverter> is not ready (…); will keep trying'; its connection off with "
            "'cannot connect …', on once it is set up"
        ),
    ),
    "back_after_an_hour": Outcome(
        site_does=(
            "Meanwhile the inverter holds its fallback limit (its command timeout ran out). "
            "Back: the first cycle writes the limit, which ends the fallback. One that "
            "restarted meanwhile lost EDPC (RAM) and ran towards 100 % at its own ramp until "
            "then: EDPC is set up again (no commit) before the limit"
        ),
        how_fast="The first cycle after it answers",
        user_sees="INFO '… is back'; its connection on again",
    ),
    "frozen_data": Outcome(
        site_does=(
            "SunSpec values standing still (lifetime energy unchanged while the power "
            "reading says energy flows) fail its reads: unavailable, nothing written, so its "
            "command timeout brings it to the fallback limit. Live again at the first move"
        ),
        how_fast=(
            "The first cycle once the counter stood still ≥ 10 s and the power reading adds "
            "up to 13 Wh (1 Wh counter: 22 s at 2.1 kW); fallback ≤ the revert timeout after "
            "the last write"
        ),
        user_sees=(
            "Its sensors unavailable, connection off with '… values look frozen: lifetime "
            "energy unchanged …'; WARNING '… unavailable: …'"
        ),
    ),
    "restart_during_control": Outcome(
        site_does=(
            "Nothing is handed back when Home Assistant stops: the inverter keeps the last "
            "limit until its command timeout, then holds the fallback limit (0 % by "
            "default) until the site is back; the first cycle after start-up writes the "
            "limit and nothing else (no commit, no EDPC set-up)"
        ),
        how_fast=(
            "Limit held for the revert timeout, then the fallback; rewritten at the first cycle"
        ),
        user_sees="Control state controlling again from the first cycle",
    ),
    "clock_jump": Outcome(
        site_does=(
            "Nothing changes: cycles, refreshes and the meter's freshness run on the "
            "monotonic clock, the command timeout on the inverter's own"
        ),
        how_fast="No interruption",
        user_sees="Control state stays controlling",
    ),
}


# --- helpers ---------------------------------------------------------------------------------


def _logged(caplog: pytest.LogCaptureFixture, level: int, *parts: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == level and all(p in r.getMessage() for p in parts)
    ]


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.dynamic_export")


WALL_START = datetime(2025, 1, 15, 1, 0, tzinfo=UTC)


class HouseMeter:
    """The site meter of the lock-step tests: the house's load less the inverter's output.

    Not the device under test (a SolarEdge site has its meter elsewhere); it reads the
    peer's true output on the same clock.
    """

    def __init__(self, peer: SolarEdgePeer, clock: FakeClock) -> None:
        self.peer = peer
        self.clock = clock
        self.load_w = LOAD_W

    async def async_read(self) -> MeterReading:
        return MeterReading(timestamp=self.clock(), grid_power_w=self.load_w - self.peer.output_w)


class LockStep:
    """The real SolarEdge client and control loop against the peer, on one fake clock."""

    def __init__(
        self,
        peer: SolarEdgePeer,
        connection: ModbusTcpConnection,
        clock: FakeClock,
        *,
        export_limit: float = EXPORT_LIMIT,
        device_timeout_s: float = 2.0,
    ) -> None:
        self.peer = peer
        self.clock = clock
        self.wall_offset = timedelta(0)
        self.meter = HouseMeter(peer, clock)
        self.inverter = SolarEdgeInverter(
            connection,
            UNIT,
            revert_timeout_s=REVERT_S,
            fallback_pct=0.0,
            commit_poll_s=0.02,
            clock=clock,
        )
        self.loop = ControlLoop(
            meter=self.meter,
            inverters={"se": self.inverter},
            ratings={"se": RATING_W},
            limiters=[FixedLimiter("Limits", Controls(export_limit=export_limit))],
            controller=Controller(),
            write_policy=WritePolicy(),
            clock=clock,
            wall_clock=self.wall,
            device_timeout_s=device_timeout_s,
            names={"se": "SolarEdge", "meter": "Meter"},
        )

    @property
    def export_w(self) -> float:
        return self.peer.output_w - self.meter.load_w

    def wall(self) -> datetime:
        return WALL_START + timedelta(seconds=self.clock.now - 1000.0) + self.wall_offset

    async def cycle(self, dt: float = CYCLE_S) -> CycleSnapshot:
        """Let ``dt`` seconds pass on the inverter and the clock, then run one cycle."""
        self.clock.advance(dt)
        self.peer.advance()
        return await self.loop.async_run_cycle()

    async def cycles(self, count: int, dt: float = CYCLE_S) -> list[CycleSnapshot]:
        return [await self.cycle(dt) for _ in range(count)]

    async def controlling(self) -> None:
        """Fifteen cycles: the inverter holds the export limit."""
        seen = await self.cycles(15)
        assert seen[-1].state is ControlState.CONTROLLING
        assert EXPORT_LIMIT - 300 <= self.export_w <= EXPORT_LIMIT + TOLERANCE

    def last_write(self) -> float:
        """Peer time of the last limit write that took effect."""
        return self.peer.last_command_at


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
async def still_se(socket_enabled: None, clock: FakeClock) -> AsyncIterator[SolarEdgePeer]:
    """The simulated inverter on 127.0.0.1 (power control committed), on the fake clock."""
    peer = SolarEdgePeer(available_w=AVAILABLE_W, committed=True, commit_s=0.3, clock=clock)
    await peer.start()
    try:
        yield peer
    finally:
        peer.hang = False
        await peer.stop()


@pytest.fixture
async def tcp(still_se: SolarEdgePeer) -> AsyncIterator[ModbusTcpConnection]:
    connection = ModbusTcpConnection("127.0.0.1", still_se.port, timeout_s=0.2)
    yield connection
    await connection.close()


@pytest.fixture
async def site(still_se: SolarEdgePeer, tcp: ModbusTcpConnection, clock: FakeClock) -> LockStep:
    return LockStep(still_se, tcp, clock)


async def _fallback_within(site: LockStep, limit_s: float) -> list[CycleSnapshot]:
    """Cycles until the inverter applies its fallback by itself; checks it came in time."""
    last_write = site.last_write()
    seen: list[CycleSnapshot] = []
    while not site.peer.fallback_active:
        seen.append(await site.cycle())
        assert site.clock.now - last_write <= limit_s + CYCLE_S, "no fallback"
    assert site.clock.now - last_write > REVERT_S  # not before its command timeout
    await site.cycles(8)  # the output follows with its 1 s lag
    assert site.peer.output_w <= 10.0  # fallback 0 %
    return seen


# --- Home Assistant sites --------------------------------------------------------------------


class LiveSite:
    """The inverter on the real clock in a household whose grid power a sensor shows."""

    def __init__(self, hass: HomeAssistant, peer: SolarEdgePeer) -> None:
        self.peer = peer
        self.generator = Generator(AVAILABLE_W, peer.ceiling_w, time_constant_s=0.8)
        peer.output_source = lambda: self.generator.output_w
        self.house = PeerSite(load_w=LOAD_W, generators=[self.generator], tick_s=0.1)
        self.house.sinks.append(lambda grid_w: set_power(hass, GRID, round(grid_w, 1)))

    def entry(self, **options: Any) -> Any:
        return site_entry(
            [
                solaredge_subentry(self.peer, fallback=0.0),
                entity_meter_subentry(),
                limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
            ],
            **{CONF_REVERT_TIMEOUT: HA_REVERT_S, **options},
        )


@pytest.fixture
async def live(hass: HomeAssistant, socket_enabled: None) -> AsyncIterator[LiveSite]:
    """A committed inverter in a live household; sites are unloaded before it stops."""
    peer = SolarEdgePeer(available_w=AVAILABLE_W, committed=True, commit_s=1.0)
    await peer.start()
    site = LiveSite(hass, peer)
    site.house.start()
    try:
        yield site
    finally:
        peer.hang = False
        await unload_sites(hass)
        await site.house.stop()
        await peer.stop()


def _held(site: LiveSite) -> bool:
    return abs(-site.house.grid_power_w - EXPORT_LIMIT) <= 200


async def _time(condition: Callable[[], bool], within_s: float, what: str) -> float:
    started = time.monotonic()
    await wait_for(condition, within_s, what)
    return time.monotonic() - started


# --- no answer -------------------------------------------------------------------------------


@covers("timeout")
async def test_silent_inverter_shown_unavailable(
    hass: HomeAssistant, live: LiveSite, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_site(hass, live.entry())
    await wait_for(lambda: _held(live), 12, "the export limit held")
    connection = f"binary_sensor.{INVERTER}_connection"
    assert state_of(hass, connection) == "on"

    live.peer.hang = True
    took = await _time(lambda: state_of(hass, connection) == "off", 10, "shown unavailable")
    assert took <= DEFAULT_TIMEOUT_S + CYCLE_S + SLACK_S
    error = hass.states.get(connection).attributes["error"]
    assert "unit 1: reading" in error
    assert f"no response in {DEFAULT_TIMEOUT_S:g} s" in error
    assert state_of(hass, f"sensor.{INVERTER}_ac_power") == "unavailable"
    assert _logged(caplog, logging.WARNING, f"{TITLE} unavailable:", "no response in 3 s")
    assert entry.runtime_data.coordinator.last_update_success

    live.peer.hang = False
    took = await _time(lambda: state_of(hass, connection) == "on", 10, "back")
    assert took <= DEFAULT_TIMEOUT_S + CYCLE_S + SLACK_S
    assert _logged(caplog, logging.INFO, f"{TITLE} is back")
    await wait_for(lambda: _held(live), 8, "the export limit held again")


@covers("timeout")
async def test_silent_inverter_falls_back_by_itself(
    site: LockStep, still_se: SolarEdgePeer, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing reaches it: its own command timeout runs out and the fallback (0 %) holds."""
    await site.controlling()
    still_se.hang = True
    silent = await _fallback_within(site, REVERT_S)
    assert all(not s.inverters["se"].available for s in silent)
    assert all("no response in 0.2 s" in (s.inverters["se"].error or "") for s in silent)
    assert all(not s.writes for s in silent)
    assert _logged(caplog, logging.WARNING, "SolarEdge unavailable:", "no response in 0.2 s")

    still_se.hang = False
    back = await site.cycle()
    assert back.inverters["se"].available
    assert back.writes == 1
    assert not still_se.fallback_active
    await site.cycles(8)
    assert EXPORT_LIMIT - 300 <= site.export_w <= EXPORT_LIMIT + TOLERANCE
    assert _logged(caplog, logging.INFO, "SolarEdge is back")


# --- error answers ---------------------------------------------------------------------------


@covers("exception")
async def test_busy_inverter_is_counted_at_its_rating_and_falls_back(
    site: LockStep, still_se: SolarEdgePeer, caplog: pytest.LogCaptureFixture
) -> None:
    await site.controlling()
    still_se.busy = 6
    busy = await _fallback_within(site, REVERT_S)
    assert all(not s.inverters["se"].available and not s.writes for s in busy)
    assert "Modbus exception 6 (server device busy)" in (busy[0].inverters["se"].error or "")
    assert _logged(caplog, logging.WARNING, "SolarEdge unavailable:", "server device busy")

    still_se.busy = None
    back = await site.cycle()
    assert back.inverters["se"].available
    assert back.writes == 1
    await site.cycles(8)
    assert EXPORT_LIMIT - 300 <= site.export_w <= EXPORT_LIMIT + TOLERANCE


@covers("exception")
async def test_refused_limit_is_sent_again_and_the_timeout_still_runs(
    site: LockStep, still_se: SolarEdgePeer, caplog: pytest.LogCaptureFixture
) -> None:
    """The inverter refuses the limit (exception 4) but answers reads: the site asks every
    cycle; the refusals do not restart the command timeout, so the fallback comes anyway."""
    await site.controlling()
    taken = len(still_se.writes_to(F_DYNAMIC_LIMIT))
    still_se.write_exceptions[F_DYNAMIC_LIMIT] = 4
    refused = await _fallback_within(site, REVERT_S)
    assert all(s.inverters["se"].reading is not None for s in refused)
    assert sum(1 for s in refused if "exception 4" in (s.write_errors.get("se") or "")) >= 3
    assert len(still_se.refused) >= len(refused) - 1  # about one try a cycle
    assert len(still_se.writes_to(F_DYNAMIC_LIMIT)) == taken
    assert _logged(caplog, logging.WARNING, "SolarEdge does not take its limit:", "exception 4")

    del still_se.write_exceptions[F_DYNAMIC_LIMIT]
    again = await site.cycle()
    assert again.writes == 1
    assert not again.write_errors
    assert not still_se.fallback_active
    assert _logged(caplog, logging.INFO, "SolarEdge takes its limit again")


# --- disconnect mid-write --------------------------------------------------------------------


@covers("disconnect_mid_write")
@pytest.mark.parametrize("applied", [False, True], ids=["write-lost", "write-applied"])
async def test_disconnect_mid_write_writes_again(
    site: LockStep, still_se: SolarEdgePeer, caplog: pytest.LogCaptureFixture, *, applied: bool
) -> None:
    await site.controlling()
    still_se.drop_next_write(F_DYNAMIC_LIMIT, applied=applied)
    site.loop.limiters[0] = FixedLimiter("Limits", Controls(export_limit=500.0))
    dropped = await site.cycle()
    assert still_se.dropped == [(F_DYNAMIC_LIMIT, applied)]
    assert "connection lost" in (dropped.write_errors.get("se") or "")
    assert _logged(
        caplog,
        logging.WARNING,
        "SolarEdge does not take its limit:",
        f"unit 1: writing 2 registers at {F_DYNAMIC_LIMIT}",
        "connection lost",
    )
    writes = len(still_se.writes_to(F_DYNAMIC_LIMIT))
    after = await site.cycle()
    assert after.writes == 1
    assert not after.write_errors
    assert len(still_se.writes_to(F_DYNAMIC_LIMIT)) == writes + 1
    command = site.loop.write_policy.last_command("se")
    assert command is not None
    assert still_se.float_at(F_DYNAMIC_LIMIT) == pytest.approx(command.limit_pct, abs=0.01)
    assert _logged(caplog, logging.INFO, "SolarEdge takes its limit again")
    await site.cycles(8)
    assert site.export_w <= 500 + TOLERANCE


# --- slow replies ----------------------------------------------------------------------------


@covers("slow_reply")
async def test_slow_answers_below_the_timeout_change_nothing(
    site: LockStep, still_se: SolarEdgePeer
) -> None:
    await site.controlling()
    still_se.response_delay = 0.1  # the client waits 0.2 s per request
    started = time.monotonic()
    slow = await site.cycles(5)
    assert time.monotonic() - started >= 5 * 3 * 0.1  # three requests a read
    assert all(s.state is ControlState.CONTROLLING and s.inverters["se"].available for s in slow)
    assert EXPORT_LIMIT - 300 <= site.export_w <= EXPORT_LIMIT + TOLERANCE


@covers("slow_reply")
async def test_late_answers_are_never_taken(site: LockStep, still_se: SolarEdgePeer) -> None:
    """Above the timeout: as no answer; the next request gets its own answer, with the
    values of its own time, not the late one meant for an earlier request."""
    await site.controlling()
    still_se.response_delay = 0.3  # the client waits 0.2 s
    late = await site.cycles(3)
    assert all("no response in 0.2 s" in (s.inverters["se"].error or "") for s in late)
    still_se.response_delay = 0.0
    site.loop.limiters[0] = FixedLimiter("Limits", Controls(export_limit=800.0))
    back = await site.cycles(2)
    reading = back[-1].inverters["se"].reading
    assert reading is not None
    assert reading.limit_pct == pytest.approx(still_se.float_at(F_DYNAMIC_LIMIT), abs=0.01)
    assert reading.ac_power_w == pytest.approx(still_se.output_w, abs=2.0)


# --- gone at start ---------------------------------------------------------------------------


@covers("gone_at_start")
async def test_inverter_gone_at_start_is_committed_when_it_answers(
    hass: HomeAssistant, socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Down since start-up, never committed: counted at the stored rating; at its first
    answer the site commits power control once (1 s here), sets EDPC up and limits."""
    peer = SolarEdgePeer(available_w=AVAILABLE_W, committed=False, commit_s=1.0)
    peer.port = free_port()  # known to the site; nothing listens yet
    site = LiveSite(hass, peer)
    site.house.start()
    try:
        entry = await setup_site(hass, site.entry())
        connection = f"binary_sensor.{INVERTER}_connection"
        assert _logged(caplog, logging.WARNING, f"{TITLE} is not ready", "will keep trying")
        assert state_of(hass, connection) == "off"
        assert "cannot connect" in hass.states.get(connection).attributes["error"]
        assert list(entry.runtime_data.loop.ratings.values()) == [RATING_W]  # stored

        await peer.start(peer.port)
        took = await _time(lambda: state_of(hass, connection) == "on", 10, "set up")
        assert took <= peer.commit_s + 2 * CYCLE_S + SLACK_S
        assert peer.power_control_committed
        assert len(peer.writes_to(F_COMMIT)) == 1
        assert peer.edpc_enabled
        await wait_for(lambda: _held(site), 10, "the export limit held")
        assert len(peer.writes_to(F_COMMIT)) == 1  # never again
    finally:
        await unload_sites(hass)
        await site.house.stop()
        await peer.stop()


# --- back after an hour ----------------------------------------------------------------------


@covers("back_after_an_hour")
@pytest.mark.parametrize("restarted", [False, True], ids=["same", "restarted"])
async def test_back_after_an_hour(
    site: LockStep,
    still_se: SolarEdgePeer,
    caplog: pytest.LogCaptureFixture,
    *,
    restarted: bool,
) -> None:
    await site.controlling()
    await still_se.stop()
    gone = []
    for _ in range(12):  # an hour
        gone.append(await site.cycle(dt=300.0))
        assert still_se.fallback_active  # its command timeout ran out: 0 %
        assert still_se.output_w <= 10.0
    assert all(not s.inverters["se"].available and not s.writes for s in gone)
    assert all("cannot connect" in (s.inverters["se"].error or "") for s in gone)
    if restarted:
        still_se.restart()  # RAM lost: EDPC off, so it runs unlimited until we are back
        site.clock.advance(10.0)
        still_se.advance()
        assert not still_se.edpc_enabled
        assert not still_se.fallback_active
        assert still_se.limit_pct > 0.0  # rising at its default ramp

    await still_se.start(still_se.port)
    edpc_writes = len(still_se.writes_to(F_EDPC_ENABLE))
    back = await site.cycle()
    assert back.inverters["se"].available
    assert back.writes == 1
    assert still_se.edpc_enabled
    assert not still_se.fallback_active
    assert len(still_se.writes_to(F_EDPC_ENABLE)) == edpc_writes + (1 if restarted else 0)
    assert still_se.timeout_s == REVERT_S
    assert not still_se.writes_to(F_COMMIT)
    await site.cycles(8)
    assert EXPORT_LIMIT - 300 <= site.export_w <= EXPORT_LIMIT + TOLERANCE
    assert _logged(caplog, logging.INFO, "SolarEdge is back")


# --- frozen data -----------------------------------------------------------------------------


@covers("frozen_data")
async def test_frozen_inverter_is_counted_at_its_rating_and_falls_back(
    site: LockStep, still_se: SolarEdgePeer, caplog: pytest.LogCaptureFixture
) -> None:
    """Its SunSpec values stand still at 2.1 kW: after 13 Wh (22 s) it counts as not
    answering; nothing is written, so its command timeout brings the fallback."""
    await site.cycles(40)  # the counter shows it keeps up
    still_se.freeze()
    frozen: list[CycleSnapshot] = []
    while not still_se.fallback_active:
        frozen.append(await site.cycle())
        assert len(frozen) <= 60, "no fallback"
    first = next(i for i, s in enumerate(frozen) if not s.inverters["se"].available)
    assert 15 <= first + 1 <= 25
    error = frozen[first].inverters["se"].error or ""
    assert "values look frozen: lifetime energy unchanged" in error
    assert all(not s.inverters["se"].available and not s.writes for s in frozen[first:])
    assert _logged(caplog, logging.WARNING, "SolarEdge unavailable:", "values look frozen")
    await site.cycles(8)
    assert still_se.output_w <= 10.0

    still_se.freeze(False)
    back = await site.cycle()
    assert back.inverters["se"].available
    assert back.writes == 1
    assert not still_se.fallback_active


@covers("frozen_data")
async def test_live_counter_at_low_power_never_trips(
    site: LockStep, still_se: SolarEdgePeer, caplog: pytest.LogCaptureFixture
) -> None:
    """At 200 W the 1 Wh counter moves every 18 s: never judged frozen."""
    site.loop.limiters[0] = FixedLimiter("Limits", Controls(export_limit=0.0))
    site.meter.load_w = 200.0
    live = await site.cycles(240)
    assert all(s.inverters["se"].available for s in live[5:])
    assert not _logged(caplog, logging.WARNING, "look frozen")


# --- Home Assistant restart while limiting ---------------------------------------------------


@covers("restart_during_control")
async def test_restart_while_limiting(hass: HomeAssistant, live: LiveSite) -> None:
    """Unloaded (Home Assistant stopping): nothing is handed back, the limit holds; set up
    again within the command timeout, the first cycle writes only the limit."""
    entry = await setup_site(hass, live.entry())
    await wait_for(lambda: _held(live), 12, "the export limit held")
    limit = live.peer.float_at(F_DYNAMIC_LIMIT)

    assert await hass.config_entries.async_unload(entry.entry_id)
    gap_from = live.house.t
    writes = len(live.peer.writes())
    await run_until(live.house, gap_from + 3.0)
    away = live.house.window(gap_from, live.house.t)
    assert live.peer.edpc_enabled
    assert not live.peer.fallback_active
    assert live.peer.float_at(F_DYNAMIC_LIMIT) == limit
    assert max(s.export_w for s in away) <= EXPORT_LIMIT + 100

    back_at = live.house.t
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: len(live.peer.writes()) > writes, CYCLE_S + SLACK_S, "a write")
    first = live.peer.writes()[writes:]
    assert {w.address for w in first} == {F_DYNAMIC_LIMIT}  # no commit, no EDPC set-up
    assert live.house.t - back_at <= CYCLE_S + SLACK_S
    assert state_of(hass, "sensor.home_control_state") == ControlState.CONTROLLING
    await asyncio.sleep(2 * CYCLE_S)
    assert _held(live)


@covers("restart_during_control")
async def test_long_restart_ends_in_the_fallback(
    site: LockStep, still_se: SolarEdgePeer, tcp: ModbusTcpConnection, clock: FakeClock
) -> None:
    """Home Assistant away for ten minutes: the limit holds for the command timeout, then
    the fallback (0 %); the new process's first cycle writes the limit and nothing else."""
    await site.controlling()
    await tcp.close()
    last = site.last_write()
    while clock.now - last < REVERT_S - 0.5:
        clock.advance(0.5)
        still_se.advance()
        assert not still_se.fallback_active
        assert site.export_w <= EXPORT_LIMIT + TOLERANCE
    clock.advance(600.0)
    still_se.advance()
    assert still_se.fallback_active
    assert still_se.output_w <= 10.0

    connection = ModbusTcpConnection("127.0.0.1", still_se.port, timeout_s=0.2)
    try:
        again = LockStep(still_se, connection, clock)
        writes = len(still_se.writes())
        first = await again.cycle()
        assert first.state is ControlState.CONTROLLING
        assert first.writes == 1
        assert [w.address for w in still_se.writes()[writes:]] == [F_DYNAMIC_LIMIT]
        assert not still_se.fallback_active
        await again.cycles(8)
        assert EXPORT_LIMIT - 300 <= again.export_w <= EXPORT_LIMIT + TOLERANCE
    finally:
        await connection.close()


# --- clock jump ------------------------------------------------------------------------------


@covers("clock_jump")
async def test_wall_clock_jumps(site: LockStep, still_se: SolarEdgePeer) -> None:
    """The wall clock jumps an hour ahead, then to an hour behind: control does not notice,
    and the refreshes keep the inverter's command timeout from running out."""
    await site.controlling()
    for jump in (timedelta(hours=1), timedelta(hours=-1)):
        site.wall_offset = jump
        seen = await site.cycles(int(REVERT_S) + 5)
        assert all(s.state is ControlState.CONTROLLING for s in seen)
        assert all(s.inverters["se"].available for s in seen)
        assert seen[-1].wall_time == site.wall()
        assert not still_se.fallback_active
        assert EXPORT_LIMIT - 300 <= site.export_w <= EXPORT_LIMIT + TOLERANCE
