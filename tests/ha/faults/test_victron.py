"""Fault matrix, Victron GX: the simulated GX (tests/victron/peer.py) misbehaves on 127.0.0.1.

The GX is both the site's controllable "inverter" (its ESS maximum feed-in, which it holds
by curtailing its own PV) and the site meter (its grid meter at unit 30), on one connection.
Its feed-in setting is persistent and has no timeout: whatever happens to Home Assistant or
the network, the GX keeps holding the last cap with its own loop, which is the device's own
safe behaviour these tests show. Most faults run the plain-Python control loop with the
real GX clients against the peer in lock-step on a fake clock (the PV's lag and an hour of
absence take no real time); the ones whose outcome is what the user sees run the whole
integration in Home Assistant (1 s cycles, real time).
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

from custom_components.dynamic_export.core.controller import (
    Controller,
    ControllerSettings,
    ControlState,
    FailSafeReason,
)
from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.core.cycle import ControlLoop, CycleSnapshot
from custom_components.dynamic_export.core.write_policy import WritePolicy
from custom_components.dynamic_export.limiters.fixed import FixedLimiter
from custom_components.dynamic_export.sunspec.connection import (
    DEFAULT_TIMEOUT_S,
    ModbusTcpConnection,
)
from custom_components.dynamic_export.victron.inverter import VictronGxInverter
from custom_components.dynamic_export.victron.meter import VictronGridMeter

from ...core.fakes import FakeClock
from ...sunspec.helpers import free_port
from ...victron.peer import (
    GRID_POWER,
    GRID_UNIT,
    GX_SERIAL,
    MAX_FEED_IN_W,
    METER_SERIAL,
    SYSTEM_UNIT,
    GxPeer,
)
from ..helpers import state_of, wait_for
from ..sites import limiter_subentry, setup_site, site_entry, unload_sites
from ..subentries.devices.test_victron import gx_meter_subentry, gx_subentry
from .matrix import Outcome, covers

EXPORT_LIMIT = 1500.0
TOLERANCE = 60.0
RATING_W = 5000.0
AVAILABLE_W = 4500.0
LOAD_W = 600.0
CYCLE_S = 1.0
SLACK_S = 1.0
"""Real-time tests: the coordinator's whole-second grid and a loaded test machine."""
METER_AGE_S = 2.0
"""The meter's maximum age in the Home Assistant tests (the default is 5 s)."""
GX = f"victron_gx_{GX_SERIAL[-4:].lower()}"
METER = f"victron_grid_meter_{METER_SERIAL[-4:].lower()}"

OUTCOMES: dict[str, Outcome] = {
    "timeout": Outcome(
        site_does=(
            "The whole GX silent: nothing can be read or written, so the site goes to "
            "fail-safe (no meter); the GX itself keeps holding the last feed-in cap with its "
            "own loop (a persistent setting with no timeout), so export stays under the "
            "limit through load steps. Control resumes at the first answer"
        ),
        how_fast=(
            "Fail-safe ≤ meter data maximum age + the 3 s timeout + 1 cycle; the GX settles "
            "a 400 W load step under its cap within 2.5 s (the peer's PV lag); back ≤ the "
            "3 s timeout + 1 cycle after it answers"
        ),
        user_sees=(
            "`sensor.<site>_control_state` fail_safe (reason meter_unavailable); the GX's and "
            "its grid meter's connections off with 'no response in 3 s' (the one queued "
            "behind it on the shared connection may show 'no answer within 5 s'), the "
            "meter's sensors unavailable; WARNING '… unavailable: …', INFO '… is back'"
        ),
    ),
    "exception": Outcome(
        site_does=(
            "Grid meter service gone (exception 10/11): fail-safe, and the GX, still "
            "answering, is given the fail-safe level: a cap of the export limit less the "
            "site's own use. The GX busy (exception 6): unavailable, nothing written, its "
            "last cap stays and is not rewritten when it answers. Writes refused (exception "
            "2: Modbus TCP writes switched off on the GX): tried again every cycle while the "
            "GX keeps its previous cap"
        ),
        how_fast="Meter: after the meter data maximum age (5 s). GX: the next cycle",
        user_sees=(
            "Control state fail_safe (reason meter_unavailable); the connection's error, "
            "e.g. 'Modbus exception 11 (gateway target failed to respond)'; WARNING '… "
            "unavailable: …' or '… does not take its limit: … exception 2 …', then INFO '… is "
            "back' / '… takes its limit again'"
        ),
    ),
    "disconnect_mid_write": Outcome(
        site_does=(
            "The write of the feed-in cap counts as failed; the next cycle reconnects, reads "
            "back what the GX holds and writes only if the cap did not land: a write that "
            "took effect is not written again (a flash write saved)"
        ),
        how_fast="The next cycle (1 s)",
        user_sees=(
            "WARNING '… does not take its limit: <host:port> unit 100: writing 2 registers at "
            "2722: connection lost', then INFO '… takes its limit again'"
        ),
    ),
    "slow_reply": Outcome(
        site_does=(
            "Control goes on while the answers fit the timeouts: the meter (3 requests) and "
            "the GX (4) share one connection, so a cycle waits for 7 answers one after the "
            "other. A request slower than the timeout is as no answer; its late answer "
            "arrives on a closed connection and is never used"
        ),
        how_fast=(
            "Below: no effect while 7 answers fit the 5 s device timeout. Above: as no answer"
        ),
        user_sees="Below: nothing (cycles take longer). Above: as no answer",
    ),
    "gone_at_start": Outcome(
        site_does=(
            "The site starts without it, in fail-safe (no meter) from the first cycle; the "
            "GX and its meter are set up at the first cycle the GX answers, and the export "
            "limit is held from then on"
        ),
        how_fast="At start-up; control at the first cycle after it answers (≤ 2 s)",
        user_sees=(
            "Control state fail_safe (reason meter_unavailable); WARNING '<device> is not "
            "ready (…); will keep trying' for the GX and for its meter; the GX's connection "
            "off with 'cannot connect …', on once it answers"
        ),
    ),
    "back_after_an_hour": Outcome(
        site_does=(
            "For the hour: fail-safe, nothing written, the GX holds the last cap by itself. "
            "Back: control at the first cycle; the cap it still holds is read back and not "
            "written again"
        ),
        how_fast="The first cycle after the GX answers",
        user_sees=(
            "INFO '… is back' and 'Meter data is fresh again: normal control resumed'; "
            "control state controlling"
        ),
    ),
    "frozen_data": Outcome(
        site_does=(
            "The GX serving its grid meter's last values is caught by the meter's energy "
            "totals (0.01 kWh) standing still while its power says energy flows; its data "
            "then counts as old as the totals' last move, so the site goes to fail-safe and "
            "the GX gets the fail-safe cap, never more than the fail-safe level even while "
            "its frozen grid value and its live PV value add up to a negative own use. "
            "Firmware without the totals cannot be judged (said once)"
        ),
        how_fast=(
            "The first cycle once the totals stood still ≥ 10 s and the power reading adds "
            "up to 40 Wh since their last move (72-96 s at 1.5 kW of export; 10 s at ≥ "
            "14.4 kW); live again at their first move"
        ),
        user_sees=(
            "Control state fail_safe (reason meter_stale); WARNING 'Victron grid meter (unit "
            "N) values look frozen: …', INFO '… energy totals move again …'; without totals "
            "WARNING '… reports no energy totals: frozen values cannot be detected'"
        ),
    ),
    "restart_during_control": Outcome(
        site_does=(
            "Home Assistant stopping does not unload the site, so nothing is handed back: "
            "the GX holds the last cap (persistent, no timeout) while Home Assistant is "
            "away; the first cycle of the new start reads it back and controls without "
            "writing it again. Unloading or reloading the site instead hands back the GX's "
            "own setting"
        ),
        how_fast="Cap held throughout; control at the first cycle",
        user_sees=(
            "Nothing while away (no 'Handed back' line); control state controlling again "
            "from the first cycle"
        ),
    ),
    "clock_jump": Outcome(
        site_does=(
            "Nothing changes: the cycles and the meter's freshness run on the monotonic "
            "clock, and the GX's setting has no timer"
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


class LockStep:
    """The real GX clients and control loop against the peer, on one fake clock.

    The peer's PV follows the GX's cap with its 1 s lag on the same clock, so an hour takes
    no real time; request timeouts stay real (short ones).
    """

    def __init__(
        self,
        peer: GxPeer,
        connection: ModbusTcpConnection,
        clock: FakeClock,
        *,
        export_limit: float = EXPORT_LIMIT,
        own_limit_w: int = -1,
        meter_max_age_s: float = 5.0,
        device_timeout_s: float = 2.0,
    ) -> None:
        self.peer = peer
        self.clock = clock
        self.wall_offset = timedelta(0)
        self.meter = VictronGridMeter(connection, GRID_UNIT, clock=clock)
        self.gx = VictronGxInverter(
            connection, rated_power_w=RATING_W, own_limit_w=own_limit_w, clock=clock
        )
        self.loop = ControlLoop(
            meter=self.meter,
            inverters={"gx": self.gx},
            ratings={"gx": RATING_W},  # from the subentry: always known
            limiters=[FixedLimiter("Limits", Controls(export_limit=export_limit))],
            controller=Controller(ControllerSettings(meter_max_age_s=meter_max_age_s)),
            write_policy=WritePolicy(),
            clock=clock,
            wall_clock=self.wall,
            device_timeout_s=device_timeout_s,
            names={"gx": "Victron GX", "meter": "Grid meter"},
        )

    def wall(self) -> datetime:
        return WALL_START + timedelta(seconds=self.clock.now - 1000.0) + self.wall_offset

    async def cycle(self, dt: float = CYCLE_S) -> CycleSnapshot:
        """Let ``dt`` seconds pass on the GX and the clock, then run one cycle."""
        self.clock.advance(dt)
        self.peer.advance()
        return await self.loop.async_run_cycle()

    async def cycles(self, count: int, dt: float = CYCLE_S) -> list[CycleSnapshot]:
        return [await self.cycle(dt) for _ in range(count)]

    async def controlling(self) -> list[CycleSnapshot]:
        """Ten cycles: the GX holds the export limit."""
        seen = await self.cycles(10)
        assert seen[-1].state is ControlState.CONTROLLING
        assert EXPORT_LIMIT - 300 <= self.peer.export_w <= EXPORT_LIMIT + TOLERANCE
        return seen


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
async def still_gx(socket_enabled: None, clock: FakeClock) -> AsyncIterator[GxPeer]:
    """The simulated GX on 127.0.0.1, its time moved only by the test."""
    peer = GxPeer(available_w=AVAILABLE_W, load_w=LOAD_W, clock=clock)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


@pytest.fixture
async def tcp(still_gx: GxPeer) -> AsyncIterator[ModbusTcpConnection]:
    connection = ModbusTcpConnection("127.0.0.1", still_gx.port, timeout_s=0.2)
    yield connection
    await connection.close()


@pytest.fixture
async def site(still_gx: GxPeer, tcp: ModbusTcpConnection, clock: FakeClock) -> LockStep:
    return LockStep(still_gx, tcp, clock)


@pytest.fixture
async def live_gx(hass: HomeAssistant, socket_enabled: None) -> AsyncIterator[GxPeer]:
    """The simulated GX on the real clock, for the Home Assistant tests.

    Sites still loaded at the end are unloaded (handing the GX back) before it stops.
    """
    peer = GxPeer(available_w=AVAILABLE_W, load_w=LOAD_W)
    await peer.start()
    try:
        yield peer
    finally:
        peer.hang = False
        peer.unit_errors.clear()
        await unload_sites(hass)
        await peer.stop()


def _gx_site(peer: GxPeer, **options: Any) -> Any:
    return site_entry(
        [
            gx_subentry(peer),
            gx_meter_subentry(peer),
            limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
        ],
        **options,
    )


async def _gx_follows_a_load_step(peer: GxPeer, cap: int) -> None:
    """Drop the load by 400 W: the GX's own loop brings export back under its cap.

    Its PV follows with a 1 s lag, so export overshoots at the step and settles within
    about 2 s (what the peer models; a real GX's loop latency is not documented).
    """
    peer.advance()  # the step happens now, not at the peer's last request
    peer.load_w = 200.0
    exports: list[tuple[float, float]] = []
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < 4.0:
        exports.append((elapsed, peer.export_w))
        await asyncio.sleep(0.1)
    assert max(e for _, e in exports) <= cap + 400 + TOLERANCE
    assert max(e for t, e in exports if t >= 2.5) <= cap + TOLERANCE


def _control_state(hass: HomeAssistant) -> str:
    return state_of(hass, "sensor.home_control_state")


async def _time(condition: Callable[[], bool], within_s: float, what: str) -> float:
    started = time.monotonic()
    await wait_for(condition, within_s, what)
    return time.monotonic() - started


# --- no answer -------------------------------------------------------------------------------


@covers("timeout")
async def test_silent_gx_holds_its_cap_while_the_site_fails_safe(
    hass: HomeAssistant, live_gx: GxPeer, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_site(hass, _gx_site(live_gx, meter_max_age=METER_AGE_S))
    await wait_for(
        lambda: abs(live_gx.export_w - EXPORT_LIMIT) <= 300 and live_gx.max_feed_in_w > 0,
        10,
        "the GX holding the export limit",
    )
    assert _control_state(hass) == ControlState.CONTROLLING
    cap = live_gx.max_feed_in_w

    live_gx.hang = True
    took = await _time(lambda: _control_state(hass) == ControlState.FAIL_SAFE, 15, "fail-safe")
    assert took <= METER_AGE_S + DEFAULT_TIMEOUT_S + CYCLE_S + SLACK_S
    attributes = hass.states.get("sensor.home_control_state").attributes
    assert attributes["reason"] == FailSafeReason.METER_UNAVAILABLE
    await wait_for(
        lambda: state_of(hass, f"binary_sensor.{GX}_connection") == "off", 8, "the GX shown off"
    )
    # The GX's request times out after 3 s; the meter's, queued behind it on the one
    # connection, may run into the cycle's 5 s device timeout first.
    errors = [
        hass.states.get(f"binary_sensor.{device}_connection").attributes["error"]
        for device in (GX, METER)
    ]
    assert any(f"no response in {DEFAULT_TIMEOUT_S:g} s" in e for e in errors), errors
    assert all("no response in" in e or "no answer within 5 s" in e for e in errors), errors
    assert state_of(hass, f"sensor.{METER}_grid_power") == "unavailable"
    assert _logged(caplog, logging.WARNING, "unavailable:", "no response in 3 s")
    # The GX goes on by itself: the cap is unchanged and export stays under the limit.
    await _gx_follows_a_load_step(live_gx, cap)
    assert live_gx.max_feed_in_w == cap
    assert cap <= EXPORT_LIMIT
    assert entry.runtime_data.coordinator.last_update_success

    live_gx.hang = False
    await wait_for(
        lambda: _control_state(hass) == ControlState.CONTROLLING,
        DEFAULT_TIMEOUT_S + CYCLE_S + SLACK_S,
        "control again",
    )
    assert _logged(caplog, logging.INFO, "is back")


# --- error answers ---------------------------------------------------------------------------


@covers("exception")
@pytest.mark.parametrize("code", [10, 11])
async def test_meter_service_gone_gives_the_gx_the_fail_safe_cap(
    site: LockStep, still_gx: GxPeer, caplog: pytest.LogCaptureFixture, code: int
) -> None:
    """The GX lost its grid meter (exception 10/11 for unit 30): fail-safe once the last
    reading is older than the maximum age; the GX, still answering, gets the fail-safe
    level, a cap of the export limit less the site's own use."""
    await site.controlling()
    still_gx.unit_errors[GRID_UNIT] = code
    gone = await site.cycles(8)
    states = [s.state for s in gone]
    assert states == [ControlState.CONTROLLING] * 5 + [ControlState.FAIL_SAFE] * 3
    assert all(f"Modbus exception {code}" in (s.meter_error or "") for s in gone)
    failing = gone[-1]
    assert failing.plan.fail_safe_reason is FailSafeReason.METER_UNAVAILABLE
    assert failing.plan.generation_target_w == pytest.approx(EXPORT_LIMIT)
    assert failing.inverters["gx"].available
    assert still_gx.max_feed_in_w <= EXPORT_LIMIT - LOAD_W
    await site.cycles(3)
    assert still_gx.export_w <= EXPORT_LIMIT - LOAD_W + TOLERANCE
    assert _logged(caplog, logging.WARNING, "Grid meter unavailable:", f"exception {code}")
    assert _logged(caplog, logging.WARNING, "Fail-safe (meter_unavailable)")

    del still_gx.unit_errors[GRID_UNIT]
    assert (await site.cycle()).state is ControlState.CONTROLLING
    await site.cycles(5)
    assert EXPORT_LIMIT - 300 <= still_gx.export_w <= EXPORT_LIMIT + TOLERANCE


@covers("exception")
async def test_busy_gx_is_counted_at_its_rating_and_keeps_its_cap(
    site: LockStep, still_gx: GxPeer, caplog: pytest.LogCaptureFixture
) -> None:
    await site.controlling()
    cap = still_gx.max_feed_in_w
    still_gx.unit_errors[SYSTEM_UNIT] = 6
    busy = await site.cycles(3)
    assert all(not s.inverters["gx"].available for s in busy)
    assert all(s.state is ControlState.CONTROLLING for s in busy)  # the meter answers
    assert "Modbus exception 6 (server device busy)" in (busy[-1].inverters["gx"].error or "")
    assert all(not s.writes for s in busy)
    assert still_gx.max_feed_in_w == cap
    assert still_gx.export_w <= EXPORT_LIMIT + TOLERANCE  # its own loop holds the cap
    assert _logged(caplog, logging.WARNING, "Victron GX unavailable:", "server device busy")

    del still_gx.unit_errors[SYSTEM_UNIT]
    back = await site.cycle()
    assert back.inverters["gx"].available
    assert not back.writes  # the cap it holds is still right: no flash write
    assert _logged(caplog, logging.INFO, "Victron GX is back")


@covers("exception")
async def test_refused_writes_leave_the_previous_cap(
    site: LockStep, still_gx: GxPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """Modbus TCP writes switched off on the GX (exception 2): the site keeps asking every
    cycle; the GX holds what it had."""
    await site.controlling()
    cap = still_gx.max_feed_in_w
    still_gx.read_only = True
    site.loop.limiters[0] = FixedLimiter("Limits", Controls(export_limit=500.0))
    refused = await site.cycles(3)
    assert all("exception 2" in (s.write_errors.get("gx") or "") for s in refused)
    assert len([r for r in still_gx.requests if r.address == MAX_FEED_IN_W]) >= 3
    assert still_gx.max_feed_in_w == cap
    assert _logged(caplog, logging.WARNING, "Victron GX does not take its limit:", "exception 2")

    still_gx.read_only = False
    taken = await site.cycle()
    assert taken.writes == 1
    assert still_gx.max_feed_in_w <= 500
    assert _logged(caplog, logging.INFO, "Victron GX takes its limit again")


# --- disconnect mid-write --------------------------------------------------------------------


@covers("disconnect_mid_write")
@pytest.mark.parametrize("applied", [False, True], ids=["write-lost", "write-applied"])
async def test_disconnect_mid_write(
    site: LockStep, still_gx: GxPeer, caplog: pytest.LogCaptureFixture, *, applied: bool
) -> None:
    """The connection drops when the new cap arrives. Lost: written again the next cycle.
    Applied: read back as held, so not written a second time (each is a flash write)."""
    await site.controlling()
    still_gx.drop_next_write(MAX_FEED_IN_W, applied=applied)
    site.loop.limiters[0] = FixedLimiter("Limits", Controls(export_limit=800.0))
    dropped = await site.cycle()
    assert still_gx.dropped == [(MAX_FEED_IN_W, applied)]
    assert "connection lost" in (dropped.write_errors.get("gx") or "")
    assert _logged(
        caplog,
        logging.WARNING,
        "Victron GX does not take its limit:",
        "unit 100: writing 2 registers at 2722",
        "connection lost",
    )
    writes = len(still_gx.feed_in_writes())
    after = await site.cycle()
    assert after.write_errors == {}
    assert len(still_gx.feed_in_writes()) == writes + (0 if applied else 1)
    assert 0 <= still_gx.max_feed_in_w <= 800
    assert _logged(caplog, logging.INFO, "Victron GX takes its limit again")
    await site.cycles(5)
    assert still_gx.export_w <= 800 + TOLERANCE


# --- slow replies ----------------------------------------------------------------------------


@covers("slow_reply")
async def test_slow_answers_below_the_timeout_change_nothing(
    site: LockStep, still_gx: GxPeer
) -> None:
    await site.controlling()
    still_gx.response_delay = 0.1  # the client waits 0.2 s per request
    started = time.monotonic()
    slow = await site.cycles(5)
    assert time.monotonic() - started >= 5 * 7 * 0.1  # 7 answers a cycle, one at a time
    assert all(s.state is ControlState.CONTROLLING for s in slow)
    assert all(s.inverters["gx"].available and s.meter_error is None for s in slow)
    assert still_gx.export_w <= EXPORT_LIMIT + TOLERANCE


@covers("slow_reply", "timeout")
async def test_late_answers_are_never_taken(site: LockStep, still_gx: GxPeer) -> None:
    """Above the timeout the answer comes after the client gave up: as no answer; the next
    request gets its own answer, with the values of its own time."""
    await site.controlling()
    still_gx.response_delay = 0.3  # the client waits 0.2 s
    late = await site.cycles(7)
    assert all("no response in 0.2 s" in (s.meter_error or "") for s in late)
    assert all(not s.inverters["gx"].available for s in late)
    states = [s.state for s in late]
    assert states == [ControlState.CONTROLLING] * 5 + [ControlState.FAIL_SAFE] * 2
    still_gx.response_delay = 0.0
    back = await site.cycle()
    assert back.state is ControlState.CONTROLLING
    assert back.meter is not None
    words = [still_gx.grid[GRID_POWER + phase] for phase in range(3)]
    truth = sum((word ^ 0x8000) - 0x8000 for word in words)  # int16, decoded here
    assert back.meter.grid_power_w == pytest.approx(truth, abs=1)


# --- gone at start ---------------------------------------------------------------------------


@covers("gone_at_start")
async def test_gx_gone_at_start(
    hass: HomeAssistant, socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    peer = GxPeer(available_w=AVAILABLE_W, load_w=LOAD_W, max_feed_in_w=1000)
    peer.port = port  # known to the site; nothing listens yet
    try:
        entry = await setup_site(hass, _gx_site(peer))
        assert _control_state(hass) == ControlState.FAIL_SAFE  # from the first cycle
        attributes = hass.states.get("sensor.home_control_state").attributes
        assert attributes["reason"] == FailSafeReason.METER_UNAVAILABLE
        assert len(_logged(caplog, logging.WARNING, "is not ready", "will keep trying")) == 2
        coordinator = entry.runtime_data.coordinator
        assert coordinator.data.plan.generation_target_w == 0.0  # the GX counted at 5 kW
        assert state_of(hass, f"binary_sensor.{GX}_connection") == "off"
        assert (
            "cannot connect"
            in (hass.states.get(f"binary_sensor.{GX}_connection").attributes["error"])
        )

        await peer.start(port)
        took = await _time(lambda: _control_state(hass) == ControlState.CONTROLLING, 5, "GX")
        assert took <= CYCLE_S + SLACK_S
        await wait_for(
            lambda: state_of(hass, f"binary_sensor.{GX}_connection") == "on", 3, "GX set up"
        )
        await wait_for(
            lambda: abs(peer.export_w - EXPORT_LIMIT) <= 300, 8, "the GX holding the limit"
        )
    finally:
        await unload_sites(hass)
        await peer.stop()


# --- back after an hour ----------------------------------------------------------------------


@covers("back_after_an_hour")
async def test_gx_back_after_an_hour(
    site: LockStep, still_gx: GxPeer, caplog: pytest.LogCaptureFixture
) -> None:
    await site.controlling()
    cap = still_gx.max_feed_in_w
    writes = len(still_gx.feed_in_writes())

    await still_gx.stop()
    exports = []
    gone = []
    for _ in range(12):  # an hour; the GX's own loop goes on with its cap
        gone.append(await site.cycle(dt=300.0))
        exports.append(still_gx.export_w)
    assert all(s.state is ControlState.FAIL_SAFE for s in gone)
    assert all("cannot connect" in (s.meter_error or "") for s in gone)
    assert all(not s.writes for s in gone)
    assert max(exports) <= EXPORT_LIMIT + TOLERANCE
    assert still_gx.max_feed_in_w == cap

    await still_gx.start(still_gx.port)  # the same port
    back = await site.cycle()
    assert back.state is ControlState.CONTROLLING
    assert back.meter_error is None
    assert back.inverters["gx"].available
    assert len(still_gx.feed_in_writes()) == writes  # the cap held is still right
    await site.cycles(5)
    assert EXPORT_LIMIT - 300 <= still_gx.export_w <= EXPORT_LIMIT + TOLERANCE
    assert _logged(caplog, logging.INFO, "Grid meter is back")
    assert _logged(caplog, logging.INFO, "Meter data is fresh again")


# --- frozen data -----------------------------------------------------------------------------


@covers("frozen_data")
async def test_frozen_grid_meter_sends_the_site_to_fail_safe(
    site: LockStep, still_gx: GxPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """Export at ~1.45 kW: 40 Wh uncounted takes ~100 s; live totals never trip it."""
    live = await site.cycles(150)
    assert all(s.state is ControlState.CONTROLLING for s in live)
    assert not _logged(caplog, logging.WARNING, "look frozen")

    still_gx.freeze_meter()
    frozen = await site.cycles(130)
    first = next(i for i, s in enumerate(frozen) if s.state is ControlState.FAIL_SAFE)
    export_w = -live[-1].meter.grid_power_w if live[-1].meter else 0.0
    # Caught once 40 Wh went uncounted since the totals' last move (up to one 10 Wh step
    # of it before the freeze); the reading then counts as old as that move.
    assert 30 / export_w * 3600 <= first + 1 <= 40 / export_w * 3600 + 2
    failing = frozen[first]
    assert failing.plan.fail_safe_reason is FailSafeReason.METER_STALE
    assert all(s.state is ControlState.FAIL_SAFE for s in frozen[first:])
    assert failing.inverters["gx"].available
    assert _logged(caplog, logging.WARNING, "Victron grid meter (unit 30) values look frozen")
    assert _logged(caplog, logging.WARNING, "Fail-safe (meter_stale)")
    await site.cycles(3)
    assert still_gx.max_feed_in_w <= EXPORT_LIMIT - LOAD_W  # the fail-safe cap

    still_gx.freeze_meter(False)
    assert (await site.cycle()).state is ControlState.CONTROLLING
    assert _logged(caplog, logging.INFO, "energy totals move again")


@covers("frozen_data")
async def test_frozen_grid_value_and_a_cloud_never_raise_the_cap(
    site: LockStep, still_gx: GxPeer
) -> None:
    """A cloud comes as the meter freezes: the GX's PV value drops to 300 W while its grid
    value stays at 1.45 kW of export, which reads as a site using -1150 W. The fail-safe
    level (1500 W of generation) then must not become a 2650 W cap."""
    await site.cycles(150)  # the totals show they keep up
    still_gx.freeze_meter()
    still_gx.available_w = 300.0
    caps = []
    states = []
    for _ in range(130):
        states.append((await site.cycle()).state)
        caps.append(still_gx.max_feed_in_w)
    assert ControlState.FAIL_SAFE in states
    assert max(caps) <= EXPORT_LIMIT


@covers("frozen_data")
async def test_firmware_without_totals_cannot_be_judged(
    socket_enabled: None, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    peer = GxPeer(available_w=AVAILABLE_W, load_w=LOAD_W, energy_totals=False, clock=clock)
    await peer.start()
    connection = ModbusTcpConnection("127.0.0.1", peer.port, timeout_s=0.2)
    try:
        site = LockStep(peer, connection, clock)
        await site.controlling()
        peer.freeze_meter()
        frozen = await site.cycles(150)
        assert all(s.state is ControlState.CONTROLLING for s in frozen)
        assert len(_logged(caplog, logging.WARNING, "no energy totals", "cannot be detected")) == 1
    finally:
        await connection.close()
        await peer.stop()


# --- Home Assistant restart while limiting ---------------------------------------------------


@covers("restart_during_control")
async def test_home_assistant_stopping_hands_nothing_back(
    hass: HomeAssistant, live_gx: GxPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """Home Assistant stops without unloading its entries: the cap written stays, and the
    GX goes on holding it (a reload or removal of the site would hand back instead)."""
    await setup_site(hass, _gx_site(live_gx))
    await wait_for(
        lambda: abs(live_gx.export_w - EXPORT_LIMIT) <= 300 and live_gx.max_feed_in_w > 0,
        10,
        "the GX holding the export limit",
    )
    cap = live_gx.max_feed_in_w
    writes = len(live_gx.feed_in_writes())

    await hass.async_stop()
    await _gx_follows_a_load_step(live_gx, cap)
    assert len(live_gx.feed_in_writes()) == writes
    assert live_gx.max_feed_in_w == cap
    assert cap <= EXPORT_LIMIT
    assert not _logged(caplog, logging.INFO, "Handed back")


@covers("restart_during_control")
async def test_restart_while_limiting(
    site: LockStep, still_gx: GxPeer, tcp: ModbusTcpConnection, clock: FakeClock
) -> None:
    """Home Assistant stops (it does not unload its entries, so nothing is handed back): the
    GX holds the cap for the ten minutes it is away. The new process's first cycle reads
    the cap back and controls without writing it again."""
    await site.controlling()
    cap = still_gx.max_feed_in_w
    writes = len(still_gx.feed_in_writes())
    await tcp.close()

    exports = []
    for _ in range(60):  # ten minutes without Home Assistant; the load moves meanwhile
        clock.advance(10.0)
        still_gx.load_w = LOAD_W + 400.0 * (len(exports) % 3 - 1)
        exports.append(still_gx.export_w)
    assert max(exports) <= EXPORT_LIMIT + TOLERANCE
    assert still_gx.max_feed_in_w == cap
    still_gx.load_w = LOAD_W

    connection = ModbusTcpConnection("127.0.0.1", still_gx.port, timeout_s=0.2)
    try:
        again = LockStep(still_gx, connection, clock)
        first = await again.cycle()
        assert first.state is ControlState.CONTROLLING
        assert first.inverters["gx"].available
        await again.cycles(5)
        assert len(still_gx.feed_in_writes()) == writes
        assert EXPORT_LIMIT - 300 <= still_gx.export_w <= EXPORT_LIMIT + TOLERANCE
    finally:
        await connection.close()


# --- clock jump ------------------------------------------------------------------------------


@covers("clock_jump")
async def test_wall_clock_jumps(site: LockStep, still_gx: GxPeer) -> None:
    """The wall clock jumps an hour ahead, then to an hour behind: control does not notice."""
    await site.controlling()
    writes = len(still_gx.feed_in_writes())
    for jump in (timedelta(hours=1), timedelta(hours=-1)):
        site.wall_offset = jump
        seen = await site.cycles(5)
        assert all(s.state is ControlState.CONTROLLING for s in seen)
        assert all(s.meter_error is None and s.inverters["gx"].available for s in seen)
        assert seen[-1].wall_time == site.wall()
        assert EXPORT_LIMIT - 300 <= still_gx.export_w <= EXPORT_LIMIT + TOLERANCE
    assert len(still_gx.feed_in_writes()) == writes
