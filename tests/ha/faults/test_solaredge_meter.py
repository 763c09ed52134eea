"""Fault matrix, the SolarEdge meter: meter 1 of the simulated inverter (tests/solaredge/peer.py).

The site's grid meter is wired to the inverter and read through the inverter's own Modbus
connection: one client, one request at a time, inverter and meter in turn. A fault of the meter
alone (the inverter still answering) must send the site to its fail-safe level, which the
inverter is then driven to; a fault of the whole connection leaves both away, and then the
inverter's own command timeout brings its fallback limit. The faults that need minutes or
exact timing run the plain-Python control loop with the real SolarEdge clients against the
peer in lock-step on a fake clock; the ones whose outcome is what the user sees run the whole
integration in Home Assistant (1 s cycles, real time), the peer's meter showing the grid power
of a household model whose PV the inverter limits.
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
from custom_components.dynamic_export.core.controller import (
    Controller,
    ControlState,
    FailSafeReason,
)
from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.core.cycle import ControlLoop, CycleSnapshot
from custom_components.dynamic_export.core.write_policy import WritePolicy
from custom_components.dynamic_export.limiters.fixed import FixedLimiter
from custom_components.dynamic_export.solaredge.inverter import SolarEdgeInverter
from custom_components.dynamic_export.solaredge.meter import SolarEdgeMeter
from custom_components.dynamic_export.sunspec.connection import (
    DEFAULT_TIMEOUT_S,
    ModbusTcpConnection,
)

from ...core.fakes import FakeClock
from ...solaredge.peer import F_DYNAMIC_LIMIT, RATING_W, UNIT, PeerMeter, SolarEdgePeer
from ...sunspec.helpers import free_port
from ..helpers import state_of, wait_for
from ..peers import Generator, PeerSite, run_until
from ..sites import limiter_subentry, setup_site, site_entry, unload_sites
from ..subentries.devices.test_solaredge import TITLE, solaredge_subentry
from ..subentries.devices.test_solaredge_meter import METER_TITLE, solaredge_meter_subentry
from .matrix import Outcome, covers

EXPORT_LIMIT = 1500.0
LOAD_W = 600.0
AVAILABLE_W = 4500.0
TOLERANCE = 60.0
REVERT_S = 20.0
"""The site's revert timeout in the lock-step tests: the inverter's command timeout."""
HA_REVERT_S = 10.0
CYCLE_S = 1.0
METER_AGE_S = 5.0
"""The meter data maximum age (the default)."""
SLACK_S = 1.5
"""Real-time tests: the coordinator's whole-second grid and a loaded test machine."""
INVERTER = TITLE.lower().replace("-", "_").replace(" ", "_")
METER = METER_TITLE.lower().replace("-", "_").replace(" ", "_")
LOCK_STEP_TIMEOUT_S = 0.2

OUTCOMES: dict[str, Outcome] = {
    "timeout": Outcome(
        site_does=(
            "Meter silent, the inverter answering: fail-safe, the inverter driven to the "
            "fail-safe level (generation at the export limit); each cycle the inverter's "
            "reads wait behind the meter's 3 s timeout on the one connection, and it stays "
            "controlled. The whole inverter silent: both unavailable, fail-safe, nothing "
            "written, so the inverter's own command timeout brings its fallback limit (0 % by "
            "default). Control resumes at the first answer"
        ),
        how_fast=(
            "Fail-safe ≤ meter data maximum age + the 3 s timeout + 1 cycle (≤ 9 s by "
            "default); the inverter's fallback ≤ the revert timeout after the last write; "
            "back ≤ the 3 s timeout + 1 cycle after it answers"
        ),
        user_sees=(
            "`sensor.<site>_control_state` fail_safe (reason meter_unavailable), "
            "`binary_sensor.<site>_fail_safe` on; the meter's sensors unavailable, its "
            "connection off with '… no response in 3 s' (the inverter's stays on while it "
            "answers); WARNING '<meter> unavailable: …' and 'Fail-safe (meter_unavailable) …' "
            "once, INFO '<meter> is back' and 'Meter data is fresh again …' once"
        ),
    ),
    "exception": Outcome(
        site_does=(
            "The inverter refuses the meter's read (e.g. exception 4 or 11) while answering "
            "its own: the last reading ages out, then fail-safe with the inverter driven to "
            "the fail-safe level; control resumes at the first read it answers"
        ),
        how_fast="Fail-safe after the meter data maximum age (5 s); back the first cycle",
        user_sees=(
            "As for no answer, with the exception in the meter's connection error, e.g. "
            "'Modbus exception 11 (gateway target failed to respond)'"
        ),
    ),
    "disconnect_mid_write": Outcome(
        site_does=(
            "(Read-only: the connection drops during the meter's read.) The last reading "
            "stands while within the maximum age, so control goes on; the next cycle "
            "reconnects and reads afresh. A limit write dropped on the shared connection "
            "leaves the meter's next read untouched"
        ),
        how_fast="The next cycle (1 s)",
        user_sees=(
            "WARNING '<meter> unavailable: … connection lost', then INFO '<meter> is back'; "
            "the control state stays controlling"
        ),
    ),
    "slow_reply": Outcome(
        site_does=(
            "The meter's read and the inverter's three go one after the other on the one "
            "connection: below the 3 s timeout control goes on. Above it: as no answer; a "
            "late answer arrives on a closed connection and is never used"
        ),
        how_fast="Below: no effect. Above: as no answer",
        user_sees="Below: nothing (cycles take longer). Above: as no answer",
    ),
    "gone_at_start": Outcome(
        site_does=(
            "The inverter (and so its meter) not there at start-up: the site starts in "
            "fail-safe (no meter), the inverter counted at its stored rating; both are set "
            "up at the first cycle the inverter answers, through one connection, and the "
            "export limit is held from then on"
        ),
        how_fast="At start-up; control at the first cycle after it answers (≤ 2 cycles)",
        user_sees=(
            "Control state fail_safe (reason meter_unavailable); WARNING '<device> is not "
            "ready (…); will keep trying' for the inverter and for its meter; their "
            "connections off with 'cannot connect …', on once it answers"
        ),
    ),
    "back_after_an_hour": Outcome(
        site_does=(
            "For the hour: both unavailable, fail-safe, nothing written; the inverter holds "
            "its fallback limit once its command timeout ran out. Back: the first cycle reads "
            "the meter and the inverter on a new connection and writes the limit, which ends "
            "the fallback"
        ),
        how_fast="The first cycle after it answers",
        user_sees=(
            "Connections off with 'cannot connect …' meanwhile; INFO '<meter> is back', "
            "'<inverter> is back' and 'Meter data is fresh again: normal control resumed' once"
        ),
    ),
    "frozen_data": Outcome(
        site_does=(
            "The inverter serving the meter's last values is caught by its energy counters "
            "standing still while its power reading says energy flows: its data counts as "
            "old as their last move, so the site goes to fail-safe (meter_stale) and drives "
            "the inverter to the fail-safe level. Live again at the counters' first move"
        ),
        how_fast=(
            "Once the counters stood still ≥ 10 s and the power reading adds up to 3 steps "
            "+ 10 Wh (1 Wh counters: about 31 s at 1.5 kW), plus the maximum age"
        ),
        user_sees=(
            "Control state fail_safe (reason meter_stale); WARNING 'SolarEdge meter 1 (unit "
            "1) values look frozen: energy counters unchanged …' once, INFO '… energy "
            "counters move again: its values are live' once"
        ),
    ),
    "restart_during_control": Outcome(
        site_does=(
            "While Home Assistant is away the inverter keeps the last limit until its command "
            "timeout, then its fallback. After start-up the meter is identified again and "
            "read with the inverter over one new connection; the first cycle controls"
        ),
        how_fast="Controlled from the first cycle after set-up",
        user_sees=(
            "Control state controlling again from the first cycle; one Modbus client at any "
            "time (nobody knocked off)"
        ),
    ),
    "clock_jump": Outcome(
        site_does=(
            "Nothing changes: the meter's readings are dated on the monotonic clock, so a "
            "wall clock set ±1 h neither ages them nor freshens frozen ones"
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


def _once(caplog: pytest.LogCaptureFixture, level: int, *parts: str) -> None:
    """Exactly one log line with all of ``parts`` at ``level``."""
    lines = _logged(caplog, level, *parts)
    assert len(lines) == 1, (parts, lines)


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.dynamic_export")


WALL_START = datetime(2025, 1, 15, 1, 0, tzinfo=UTC)


class LockStep:
    """The real SolarEdge inverter and meter clients on one connection, a control loop, the
    peer, all on one fake clock. The peer's meter shows the house's load less its output."""

    def __init__(
        self,
        peer: SolarEdgePeer,
        meter: PeerMeter,
        connection: ModbusTcpConnection,
        clock: FakeClock,
        *,
        device_timeout_s: float = 2.0,
    ) -> None:
        self.peer = peer
        self.peer_meter = meter
        self.clock = clock
        self.load_w = LOAD_W
        meter.source = lambda: self.load_w - peer.current_output_w
        self.wall_offset = timedelta(0)
        self.meter = SolarEdgeMeter(connection, UNIT, 1, clock=clock)
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
            limiters=[FixedLimiter("Limits", Controls(export_limit=EXPORT_LIMIT))],
            controller=Controller(),
            write_policy=WritePolicy(),
            clock=clock,
            wall_clock=self.wall,
            device_timeout_s=device_timeout_s,
            names={"se": "SolarEdge", "meter": "SolarEdge meter"},
        )

    @property
    def export_w(self) -> float:
        return self.peer.output_w - self.load_w

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
        """Fifteen cycles: the inverter holds the export limit on its own meter's readings."""
        seen = await self.cycles(15)
        assert seen[-1].state is ControlState.CONTROLLING
        assert EXPORT_LIMIT - 300 <= self.export_w <= EXPORT_LIMIT + TOLERANCE

    async def at_fail_safe_level(self) -> None:
        """A few cycles more: the inverter is driven to the fail-safe level and stays there."""
        seen = await self.cycles(8)
        assert all(s.state is ControlState.FAIL_SAFE for s in seen)
        assert all(s.plan.generation_target_w == pytest.approx(EXPORT_LIMIT) for s in seen)
        assert self.peer.output_w <= EXPORT_LIMIT + TOLERANCE


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
def grid() -> PeerMeter:
    return PeerMeter()


@pytest.fixture
async def still_se(
    socket_enabled: None, clock: FakeClock, grid: PeerMeter
) -> AsyncIterator[SolarEdgePeer]:
    """The simulated inverter with its grid meter on 127.0.0.1, on the fake clock."""
    peer = SolarEdgePeer(
        available_w=AVAILABLE_W, committed=True, commit_s=0.3, clock=clock, meters=[grid]
    )
    await peer.start()
    try:
        yield peer
    finally:
        peer.hang = False
        await peer.stop()


@pytest.fixture
async def tcp(still_se: SolarEdgePeer) -> AsyncIterator[ModbusTcpConnection]:
    connection = ModbusTcpConnection("127.0.0.1", still_se.port, timeout_s=LOCK_STEP_TIMEOUT_S)
    yield connection
    await connection.close()


@pytest.fixture
async def site(
    still_se: SolarEdgePeer, grid: PeerMeter, tcp: ModbusTcpConnection, clock: FakeClock
) -> LockStep:
    return LockStep(still_se, grid, tcp, clock)


# --- Home Assistant sites --------------------------------------------------------------------


class LiveSite:
    """The inverter and its meter on the real clock in a household; the meter shows its grid."""

    def __init__(self, peer: SolarEdgePeer, meter: PeerMeter) -> None:
        self.peer = peer
        self.grid = meter
        self.generator = Generator(AVAILABLE_W, peer.ceiling_w, time_constant_s=0.8)
        peer.output_source = lambda: self.generator.output_w
        self.house = PeerSite(load_w=LOAD_W, generators=[self.generator], tick_s=0.1)
        meter.source = lambda: self.house.grid_power_w

    def entry(self, **options: Any) -> Any:
        return site_entry(
            [
                solaredge_subentry(self.peer, fallback=0.0),
                solaredge_meter_subentry(self.peer),
                limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
            ],
            **{CONF_REVERT_TIMEOUT: HA_REVERT_S, **options},
        )


def _live_peer(port: int = 0) -> tuple[SolarEdgePeer, PeerMeter]:
    meter = PeerMeter()
    peer = SolarEdgePeer(available_w=AVAILABLE_W, committed=True, commit_s=1.0, meters=[meter])
    peer.port = port
    return peer, meter


@pytest.fixture
async def live(hass: HomeAssistant, socket_enabled: None) -> AsyncIterator[LiveSite]:
    """A committed inverter and its meter in a live household; sites unloaded before it stops."""
    peer, meter = _live_peer()
    await peer.start()
    site = LiveSite(peer, meter)
    site.house.start()
    try:
        yield site
    finally:
        meter.silent = False
        meter.refuse = None
        await unload_sites(hass)
        await site.house.stop()
        await peer.stop()


def _held(site: LiveSite) -> bool:
    return abs(-site.house.grid_power_w - EXPORT_LIMIT) <= 200


def _control_state(hass: HomeAssistant) -> str:
    return state_of(hass, "sensor.home_control_state")


async def _time(condition: Callable[[], bool], within_s: float, what: str) -> float:
    started = time.monotonic()
    await wait_for(condition, within_s, what)
    return time.monotonic() - started


# --- no answer, error answer: the meter alone ------------------------------------------------


@covers("timeout", "exception")
@pytest.mark.parametrize("fault", ["silent", "refused"])
async def test_meter_fault_sends_the_site_to_its_fail_safe_level(
    hass: HomeAssistant, live: LiveSite, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    """The inverter answers, its meter does not (no answer, or exception 11): fail-safe, the
    inverter driven to the export limit, the meter shown away; one line each way."""
    await setup_site(hass, live.entry())
    await wait_for(lambda: _held(live), 15, "the export limit held")
    assert _control_state(hass) == ControlState.CONTROLLING
    meter_connection = f"binary_sensor.{METER}_connection"
    assert state_of(hass, meter_connection) == "on"

    live.house.load_w = 0.0  # with no load, only the fail-safe level keeps export in limit
    if fault == "silent":
        live.grid.silent = True
        bound = METER_AGE_S + DEFAULT_TIMEOUT_S + CYCLE_S + SLACK_S
    else:
        live.grid.refuse = 11
        bound = METER_AGE_S + CYCLE_S + SLACK_S
    took = await _time(lambda: _control_state(hass) == ControlState.FAIL_SAFE, 20, "fail-safe")
    assert took <= bound
    assert hass.states.get("sensor.home_control_state").attributes["reason"] == (
        FailSafeReason.METER_UNAVAILABLE
    )
    assert state_of(hass, "binary_sensor.home_fail_safe") == "on"
    assert state_of(hass, "sensor.home_fail_safe_reason") == "meter_unavailable"
    await wait_for(lambda: state_of(hass, meter_connection) == "off", 5, "the meter shown away")
    error = hass.states.get(meter_connection).attributes["error"]
    if fault == "silent":
        assert f"no response in {DEFAULT_TIMEOUT_S:g} s" in error
    else:
        assert "Modbus exception 11 (gateway target failed to respond)" in error
    assert state_of(hass, f"sensor.{METER}_grid_power") == "unavailable"
    # The inverter still answers (behind the meter's timeout on the one connection) and is
    # driven to the fail-safe level: with no load, export stays within the limit.
    failed_at = live.house.t
    await run_until(live.house, failed_at + 8.0)
    assert state_of(hass, f"binary_sensor.{INVERTER}_connection") == "on"
    settled = live.house.window(failed_at + 4.0, live.house.t)
    assert all(s.generation_w <= EXPORT_LIMIT + TOLERANCE for s in settled), settled
    assert all(s.export_w <= EXPORT_LIMIT + TOLERANCE for s in settled), settled

    live.grid.silent = False
    live.grid.refuse = None
    live.house.load_w = LOAD_W
    took = await _time(
        lambda: _control_state(hass) == ControlState.CONTROLLING,
        DEFAULT_TIMEOUT_S + 2 * CYCLE_S + SLACK_S,
        "control again",
    )
    await wait_for(lambda: state_of(hass, meter_connection) == "on", 3, "the meter back")
    await wait_for(lambda: _held(live), 15, "the export limit held again")
    _once(caplog, logging.WARNING, f"{METER_TITLE} unavailable:")
    _once(caplog, logging.WARNING, "Fail-safe (meter_unavailable)")
    _once(caplog, logging.INFO, f"{METER_TITLE} is back")
    _once(caplog, logging.INFO, "Meter data is fresh again")
    assert not _logged(caplog, logging.WARNING, f"{TITLE} unavailable")


@covers("exception")
@pytest.mark.parametrize("code", [4, 11])
async def test_refused_meter_reads_age_out_to_the_fail_safe_level(
    site: LockStep, grid: PeerMeter, caplog: pytest.LogCaptureFixture, code: int
) -> None:
    await site.controlling()
    grid.refuse = code
    refused = await site.cycles(8)
    states = [s.state for s in refused]
    # The last reading stands for the maximum age (5 s), then fail-safe.
    assert states == [ControlState.CONTROLLING] * 5 + [ControlState.FAIL_SAFE] * 3
    assert all(f"Modbus exception {code}" in (s.meter_error or "") for s in refused)
    assert all(s.inverters["se"].available for s in refused)
    assert refused[-1].plan.fail_safe_reason is FailSafeReason.METER_UNAVAILABLE
    await site.at_fail_safe_level()
    _once(caplog, logging.WARNING, "SolarEdge meter unavailable:", f"exception {code}")

    grid.refuse = None
    assert (await site.cycle()).state is ControlState.CONTROLLING
    await site.cycles(8)
    assert EXPORT_LIMIT - 300 <= site.export_w <= EXPORT_LIMIT + TOLERANCE
    _once(caplog, logging.INFO, "SolarEdge meter is back")
    _once(caplog, logging.INFO, "Meter data is fresh again")


# --- no answer: the whole connection ---------------------------------------------------------


@covers("timeout")
async def test_silent_inverter_takes_its_meter_with_it(
    site: LockStep, still_se: SolarEdgePeer, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing answers on the connection: both away, fail-safe, nothing written; the
    inverter's own command timeout brings its fallback (0 %). Back: control at once."""
    await site.controlling()
    last_write = still_se.last_command_at
    still_se.hang = True
    silent: list[CycleSnapshot] = []
    while not still_se.fallback_active:
        silent.append(await site.cycle())
        assert site.clock.now - last_write <= REVERT_S + CYCLE_S, "no fallback"
    assert site.clock.now - last_write > REVERT_S
    assert all(not s.writes for s in silent)
    assert all(not s.inverters["se"].available for s in silent)
    assert all("no response in 0.2 s" in (s.meter_error or "") for s in silent)
    assert all(s.state is ControlState.FAIL_SAFE for s in silent[5:])
    await site.cycles(8)
    assert still_se.output_w <= 10.0
    _once(caplog, logging.WARNING, "SolarEdge meter unavailable:", "no response in 0.2 s")
    _once(caplog, logging.WARNING, "SolarEdge unavailable:")
    _once(caplog, logging.WARNING, "Fail-safe (meter_unavailable)")

    still_se.hang = False
    back = await site.cycle()
    assert back.state is ControlState.CONTROLLING
    assert back.inverters["se"].available
    assert back.writes == 1
    assert not still_se.fallback_active
    await site.cycles(8)
    assert EXPORT_LIMIT - 300 <= site.export_w <= EXPORT_LIMIT + TOLERANCE
    _once(caplog, logging.INFO, "SolarEdge meter is back")
    _once(caplog, logging.INFO, "SolarEdge is back")


# --- disconnect ------------------------------------------------------------------------------


@covers("disconnect_mid_write")
async def test_dropped_meter_read_and_dropped_write(
    site: LockStep, still_se: SolarEdgePeer, grid: PeerMeter, caplog: pytest.LogCaptureFixture
) -> None:
    """The connection drops during the meter's read: that cycle keeps the last reading (still
    within the maximum age); the next reads afresh. A dropped limit write does not disturb
    the meter's next read on the reopened connection."""
    await site.controlling()
    grid.drop_next_read = True
    dropped = await site.cycle()
    assert "connection lost" in (dropped.meter_error or "")
    assert dropped.state is ControlState.CONTROLLING
    after = await site.cycle()
    assert after.meter_error is None
    assert after.state is ControlState.CONTROLLING
    _once(caplog, logging.WARNING, "SolarEdge meter unavailable:", "connection lost")
    _once(caplog, logging.INFO, "SolarEdge meter is back")

    still_se.drop_next_write(F_DYNAMIC_LIMIT, applied=False)
    site.loop.limiters[0] = FixedLimiter("Limits", Controls(export_limit=500.0))
    lost = await site.cycle()
    assert "connection lost" in (lost.write_errors.get("se") or "")
    again = await site.cycle()
    assert again.meter_error is None
    assert again.writes == 1
    await site.cycles(8)
    assert site.export_w <= 500 + TOLERANCE


# --- slow replies ----------------------------------------------------------------------------


@covers("slow_reply")
async def test_slow_and_late_answers(
    site: LockStep, still_se: SolarEdgePeer, grid: PeerMeter
) -> None:
    """Below the timeout the cycle waits for the four answers in turn and controls; above
    it, as no answer; the first answer after that is the meter's own, of its own time."""
    await site.controlling()
    still_se.response_delay = 0.1  # the client waits 0.2 s per request
    started = time.monotonic()
    slow = await site.cycles(4)
    assert time.monotonic() - started >= 4 * 4 * 0.1  # the meter's read and the inverter's 3
    assert all(s.state is ControlState.CONTROLLING and s.meter_error is None for s in slow)

    still_se.response_delay = 0.3
    late = await site.cycles(3)
    assert all("no response in 0.2 s" in (s.meter_error or "") for s in late)
    still_se.response_delay = 0.0
    site.load_w = 1000.0
    back = await site.cycles(2)
    reading = back[-1].meter
    assert reading is not None
    assert reading.grid_power_w == pytest.approx(site.load_w - still_se.output_w, abs=5.0)


# --- gone at start ---------------------------------------------------------------------------


@covers("gone_at_start")
async def test_inverter_and_meter_gone_at_start(
    hass: HomeAssistant, socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    peer, meter = _live_peer(free_port())  # known to the site; nothing listens yet
    site = LiveSite(peer, meter)
    site.house.start()
    try:
        await setup_site(hass, site.entry())
        _once(caplog, logging.WARNING, f"{METER_TITLE} is not ready", "will keep trying")
        _once(caplog, logging.WARNING, f"{TITLE} is not ready", "will keep trying")
        await wait_for(lambda: _control_state(hass) == ControlState.FAIL_SAFE, 5, "fail-safe")
        assert hass.states.get("sensor.home_control_state").attributes["reason"] == (
            FailSafeReason.METER_UNAVAILABLE
        )
        meter_connection = f"binary_sensor.{METER}_connection"
        assert state_of(hass, meter_connection) == "off"
        assert "cannot connect" in hass.states.get(meter_connection).attributes["error"]

        await peer.start(peer.port)
        took = await _time(lambda: _control_state(hass) == ControlState.CONTROLLING, 10, "control")
        assert took <= 2 * CYCLE_S + SLACK_S
        assert state_of(hass, meter_connection) == "on"
        await wait_for(lambda: _held(site), 15, "the export limit held")
        assert peer.knocked_off == 0
    finally:
        await unload_sites(hass)
        await site.house.stop()
        await peer.stop()


# --- back after an hour ----------------------------------------------------------------------


@covers("back_after_an_hour")
async def test_back_after_an_hour(
    site: LockStep, still_se: SolarEdgePeer, caplog: pytest.LogCaptureFixture
) -> None:
    await site.controlling()
    await still_se.stop()
    gone = []
    for _ in range(12):  # an hour
        gone.append(await site.cycle(dt=300.0))
        assert still_se.fallback_active  # its command timeout ran out: 0 %
    assert all(s.state is ControlState.FAIL_SAFE and not s.writes for s in gone)
    assert all("cannot connect" in (s.meter_error or "") for s in gone)
    assert all("cannot connect" in (s.inverters["se"].error or "") for s in gone)

    await still_se.start(still_se.port)
    back = await site.cycle()
    assert back.state is ControlState.CONTROLLING
    assert back.writes == 1
    assert not still_se.fallback_active
    await site.cycles(8)
    assert EXPORT_LIMIT - 300 <= site.export_w <= EXPORT_LIMIT + TOLERANCE
    for line in ("SolarEdge meter is back", "SolarEdge is back", "Meter data is fresh again"):
        _once(caplog, logging.INFO, line)


# --- frozen data -----------------------------------------------------------------------------


@covers("frozen_data")
async def test_frozen_meter_sends_the_site_to_its_fail_safe_level(
    site: LockStep, grid: PeerMeter, caplog: pytest.LogCaptureFixture
) -> None:
    """The inverter keeps serving its meter's last values while the house exports 1.5 kW."""
    await site.controlling()
    await site.cycles(10)
    grid.freeze()
    frozen: list[CycleSnapshot] = []
    while not frozen or frozen[-1].state is not ControlState.FAIL_SAFE:
        frozen.append(await site.cycle())
        assert len(frozen) <= 60, "no fail-safe"
    assert 30 <= len(frozen) <= 45, len(frozen)
    assert frozen[-1].plan.fail_safe_reason is FailSafeReason.METER_STALE
    assert all(s.meter_error is None for s in frozen)  # it answers, with old values
    site.load_w = 0.0  # only the fail-safe level keeps export within the limit now
    await site.at_fail_safe_level()
    assert site.export_w <= EXPORT_LIMIT + TOLERANCE
    _once(caplog, logging.WARNING, "SolarEdge meter 1 (unit 1) values look frozen")
    _once(caplog, logging.WARNING, "Fail-safe (meter_stale)")

    grid.freeze(False)
    site.load_w = LOAD_W
    back = await site.cycles(2)
    assert back[-1].state is ControlState.CONTROLLING
    _once(caplog, logging.INFO, "energy counters move again")
    _once(caplog, logging.INFO, "Meter data is fresh again")


# --- Home Assistant restart while limiting ---------------------------------------------------


@covers("restart_during_control")
async def test_restart_reads_meter_and_inverter_on_one_new_connection(
    hass: HomeAssistant, live: LiveSite
) -> None:
    entry = await setup_site(hass, live.entry())
    await wait_for(lambda: _held(live), 15, "the export limit held")
    assert await hass.config_entries.async_unload(entry.entry_id)
    await asyncio.sleep(2.0)
    assert not live.peer.fallback_active  # within its command timeout: the limit holds
    live.peer.reset_client_counts()
    requests = len(live.peer.requests)

    back_at = time.monotonic()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(
        lambda: _control_state(hass) == ControlState.CONTROLLING, CYCLE_S + SLACK_S, "control"
    )
    assert time.monotonic() - back_at <= CYCLE_S + SLACK_S
    new = live.peer.requests[requests:]
    assert any(r.address == live.grid.common_address for r in new)  # identified again
    assert any(r.address == live.grid.address for r in new)  # and read
    await asyncio.sleep(3 * CYCLE_S)
    assert _held(live)
    assert (live.peer.peak_clients, live.peer.knocked_off) == (1, 0)


# --- clock jump ------------------------------------------------------------------------------


@covers("clock_jump")
async def test_wall_clock_jumps(site: LockStep, still_se: SolarEdgePeer) -> None:
    await site.controlling()
    for jump in (timedelta(hours=1), timedelta(hours=-1)):
        site.wall_offset = jump
        seen = await site.cycles(int(REVERT_S) + 5)
        assert all(s.state is ControlState.CONTROLLING for s in seen)
        assert all(s.meter_error is None for s in seen)
        assert seen[-1].wall_time == site.wall()
        assert not still_se.fallback_active
        assert EXPORT_LIMIT - 300 <= site.export_w <= EXPORT_LIMIT + TOLERANCE
