"""Fault matrix: the Powerwall 2 gateway as the site meter (the fake gateway over pinned HTTPS).

The site in Home Assistant: the two simulated 5 kW SunSpec inverters, the gateway reporting
the simulated site's grid power, a 1500 W export limit and a 2 s meter data maximum age
(5 s by default; the tests use 2 s to run faster). Without fresh meter data the site falls
to its fail-safe level: generation held at the export limit, whatever the load. The gateway
is read-only, so there is no write to interrupt: the connection drops mid-read instead.
Faults that need hours of clock run on the plain-Python control loop with fake clocks, the
real Powerwall client and the real fake gateway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
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
from custom_components.dynamic_export.powerwall.client import PowerwallClient
from custom_components.dynamic_export.powerwall.meter import PowerwallMeter
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from ...core.fakes import FakeClock, FakeSite, RecordingLimiter
from ...powerwall.gateway import PASSWORD
from ..helpers import wait_for
from ..peers import SiteGateway
from ..sites import inverter_subentry, limiter_subentry, powerwall_subentry, setup_site, site_entry
from .matrix import Outcome, covers

OUTCOMES: dict[str, Outcome] = {
    "timeout": Outcome(
        "Fail-safe: generation held at the export limit until the gateway answers; then "
        "normal control",
        "once the last reading is older than the meter data maximum age: ≤ max age + the "
        "2 s request timeout + 1 cycle (measured ≤ 6 s at 2 s max age)",
        "sensor.<site>_control_state fail_safe (reason meter_unavailable), "
        "binary_sensor.<site>_fail_safe on; meter connection off, error 'no answer in 2 s'; "
        "WARNING '<meter> unavailable: Powerwall …'",
    ),
    "exception": Outcome(
        "HTTP 500, or 502 (gateway stopped): fail-safe as for a timeout. HTTP 401 (token "
        "expired): logs in again and retries at once, control goes on. Password refused: "
        "fail-safe, and no new login for 60 s so the gateway does not lock the account",
        "fail-safe ≤ max age + 1 cycle (measured ≤ 4 s at 2 s max age); the re-login "
        "within the same read",
        "meter connection off with 'HTTP 500', 'gateway stopped (HTTP 502); no meter data' "
        "or 'the password was refused'; control_state fail_safe; a re-login shows nothing",
    ),
    "disconnect_mid_write": Outcome(
        "(read-only: disconnect mid-read) A dropped read is retried at once on a new "
        "connection. If that drops too, the last reading stands while within max age and "
        "the next cycle reads again; drops that go on: fail-safe",
        "next cycle; fail-safe ≤ max age + 1 cycle (measured ≤ 4 s at 2 s max age)",
        "nothing for one drop; then meter connection off, error 'Server disconnected'; "
        "WARNING '<meter> unavailable: Powerwall …'",
    ),
    "slow_reply": Outcome(
        "Control goes on, each reading dated when the gateway heard its meter",
        "no effect below the 2 s request timeout (tested at 1.5 s)",
        "nothing: cycles take longer",
    ),
    "gone_at_start": Outcome(
        "The site starts in fail-safe (generation at the export limit); normal control from "
        "the gateway's first reading",
        "≤ 1 cycle after the gateway answers (measured ≤ 3 s)",
        "control_state fail_safe (reason meter_unavailable until a first reading); meter "
        "connection off, error 'Cannot connect …'",
    ),
    "back_after_an_hour": Outcome(
        "Fail-safe for the hour; when the gateway is back, logs in again (a restarted "
        "gateway forgets tokens) and normal control resumes",
        "first cycle after the gateway answers",
        "control_state fail_safe, then controlling; INFO 'meter is back'",
    ),
    "frozen_data": Outcome(
        "The gateway answers but last_communication_time stops: the reading keeps that "
        "date, goes stale, and the site falls to fail-safe",
        "≤ max age + 1 cycle after the gateway last heard its meter (measured ≤ 4 s at 2 s)",
        "control_state fail_safe (reason meter_stale); meter connection stays on; WARNING "
        "'Fail-safe (meter_stale): …', after 5 s 'Powerwall … has not heard from its site "
        "meter …: its data is frozen'; INFO '… hears from its site meter again'",
    ),
    "restart_during_control": Outcome(
        "A new login on the first read; fail-safe until the first reading (the inverters "
        "keep our last limit on their revert timer meanwhile)",
        "normal control ≤ 1 cycle after the first reading (measured ≤ 2.5 s)",
        "control_state fail_safe (reason meter_unavailable) until then",
    ),
    "clock_jump": Outcome(
        "Nothing: a new reading's age is taken on the gateway's own clock (its HTTP Date), "
        "then ages on the monotonic clock; our wall clock never makes live data stale, "
        "even for a gateway that sends no Date",
        "no effect (either clock ±1 h); frozen data still goes stale within max age",
        "nothing",
    ),
}

EXPORT_LIMIT = 1500.0
MAX_AGE = 2.0
STATE = "sensor.home_control_state"
CONNECTION = "binary_sensor.tesla_powerwall_connection"
AGGREGATES = "/api/meters/aggregates"


def _site(gateway: SiteGateway, sim: SimulatedSiteServer) -> Any:
    gateway.follow_sim(sim)
    return site_entry(
        [
            inverter_subentry(sim, 1),
            inverter_subentry(sim, 2),
            powerwall_subentry(gateway),
            limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
        ],
        meter_max_age=MAX_AGE,
    )


def _state(hass: HomeAssistant) -> str:
    return hass.states.get(STATE).state


def _reason(hass: HomeAssistant) -> str | None:
    reason: str | None = hass.states.get(STATE).attributes.get("reason")
    return reason


def _error(hass: HomeAssistant) -> str:
    return str(hass.states.get(CONNECTION).attributes.get("error") or "")


def _snapshot(entry: Any) -> CycleSnapshot:
    snapshot: CycleSnapshot = entry.runtime_data.coordinator.data
    return snapshot


async def _controlling(hass: HomeAssistant, within: float = 5.0) -> float:
    started = time.monotonic()
    await wait_for(lambda: _state(hass) == ControlState.CONTROLLING, within, "control")
    return time.monotonic() - started


async def _fail_safe(hass: HomeAssistant, entry: Any, within: float) -> float:
    """Seconds until fail-safe, which must hold generation at the export limit."""
    started = time.monotonic()
    await wait_for(lambda: _state(hass) == ControlState.FAIL_SAFE, within, "fail-safe")
    elapsed = time.monotonic() - started
    assert hass.states.get("binary_sensor.home_fail_safe").state == "on"
    assert _snapshot(entry).plan.generation_target_w <= EXPORT_LIMIT + 1
    return elapsed


def _logged(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()]


@covers("timeout")
async def test_gateway_that_stops_answering(
    hass: HomeAssistant,
    gateway: SiteGateway,
    sim: SimulatedSiteServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = _site(gateway, sim)
    await setup_site(hass, entry)
    await _controlling(hass)
    gateway.delay_s = 3.0  # beyond the client's 2 s timeout
    assert await _fail_safe(hass, entry, 8) <= MAX_AGE + 2.0 + 2.0
    assert _reason(hass) == FailSafeReason.METER_UNAVAILABLE
    assert hass.states.get(CONNECTION).state == "off"
    assert "no answer in 2 s" in _error(hass)
    assert _logged(caplog, logging.WARNING, "unavailable: Powerwall 127.0.0.1")
    gateway.delay_s = 0.0
    assert await _controlling(hass, 6) <= 5.0


@covers("exception")
async def test_gateway_error_answers(
    hass: HomeAssistant,
    gateway: SiteGateway,
    sim: SimulatedSiteServer,
) -> None:
    entry = _site(gateway, sim)
    await setup_site(hass, entry)
    await _controlling(hass)

    gateway.overrides[AGGREGATES] = (500, b"")
    assert await _fail_safe(hass, entry, 5) <= MAX_AGE + 2.0
    assert _error(hass).endswith("HTTP 500")
    gateway.overrides.clear()
    gateway.stopped = True  # sitemaster stopped: 502 with an empty body
    await wait_for(lambda: "gateway stopped (HTTP 502)" in _error(hass), 3, "502 shown")
    assert _state(hass) == ControlState.FAIL_SAFE
    gateway.stopped = False
    await _controlling(hass)

    # The token expires: one new login inside the read, no gap in control.
    logins = gateway.logins
    gateway.expire_tokens()
    states = []
    for _ in range(25):
        states.append(_state(hass))
        await asyncio.sleep(0.1)
    assert gateway.logins == logins + 1
    assert set(states) == {ControlState.CONTROLLING}

    # The password was changed on the gateway: refused, and not tried again for a while.
    gateway.password = "NEW01"
    gateway.expire_tokens()
    await _fail_safe(hass, entry, 5)
    assert "the password was refused" in _error(hass)
    attempts = gateway.login_attempts
    await asyncio.sleep(2.5)
    assert gateway.login_attempts == attempts  # backing off: the gateway would lock us out


@covers("disconnect_mid_write")
async def test_connection_drops_mid_read(
    hass: HomeAssistant,
    gateway: SiteGateway,
    sim: SimulatedSiteServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = _site(gateway, sim)
    await setup_site(hass, entry)
    await _controlling(hass)

    # One drop: the HTTP client retries a GET on a new connection at once; nothing shows.
    gateway.drops[AGGREGATES] = 1
    await wait_for(lambda: gateway.drops[AGGREGATES] == 0, 3, "the drop")
    await asyncio.sleep(1.0)
    assert not _logged(caplog, logging.WARNING, "unavailable: Powerwall")
    # Two in a row: that read fails; the previous reading stands and the next cycle reads.
    gateway.drops[AGGREGATES] = 2
    states = []
    for _ in range(30):
        states.append(_state(hass))
        await asyncio.sleep(0.1)
    assert gateway.drops[AGGREGATES] == 0
    assert set(states) == {ControlState.CONTROLLING}  # the previous reading was fresh enough
    assert _logged(caplog, logging.WARNING, f"unavailable: Powerwall 127.0.0.1: {AGGREGATES}")
    assert hass.states.get(CONNECTION).state == "on"  # read again the next cycle

    gateway.drops[AGGREGATES] = 1000  # every read drops
    assert await _fail_safe(hass, entry, 6) <= MAX_AGE + 2.0
    assert "Server disconnected" in _error(hass)
    gateway.drops.clear()
    assert await _controlling(hass) <= 2.5


@covers("slow_reply")
async def test_slow_gateway_keeps_control(
    hass: HomeAssistant, gateway: SiteGateway, sim: SimulatedSiteServer
) -> None:
    entry = _site(gateway, sim)
    await setup_site(hass, entry)
    await _controlling(hass)
    await wait_for(lambda: sim.site.export_w <= EXPORT_LIMIT + 50, 8, "export at the limit")
    gateway.delay_s = 1.5  # below the 2 s timeout
    reads = gateway.count(AGGREGATES)
    states, exports = [], []
    until = time.monotonic() + 8.0
    while time.monotonic() < until:
        states.append((_state(hass), hass.states.get(CONNECTION).state))
        exports.append(sim.site.export_w)
        await asyncio.sleep(0.1)
    assert set(states) == {(ControlState.CONTROLLING, "on")}
    assert gateway.count(AGGREGATES) >= reads + 3
    assert max(exports) <= EXPORT_LIMIT + 100, max(exports)
    gateway.delay_s = 0.0


@covers("gone_at_start")
async def test_gateway_down_when_home_assistant_starts(
    hass: HomeAssistant, gateway: SiteGateway, sim: SimulatedSiteServer
) -> None:
    await gateway.stop()  # nothing listens at its address
    entry = _site(gateway, sim)
    await setup_site(hass, entry)
    assert _state(hass) == ControlState.FAIL_SAFE
    assert _reason(hass) == FailSafeReason.METER_UNAVAILABLE
    assert _snapshot(entry).plan.generation_target_w <= EXPORT_LIMIT
    assert hass.states.get(CONNECTION).state == "off"
    assert "Cannot connect" in _error(hass)
    await wait_for(lambda: sim.site.generation_w <= EXPORT_LIMIT + 50, 6, "fail-safe level")

    await gateway.start()  # same address, same certificate
    assert await _controlling(hass) <= 3.0
    assert gateway.logins == 1


@covers("frozen_data")
async def test_frozen_gateway_data(
    hass: HomeAssistant,
    gateway: SiteGateway,
    sim: SimulatedSiteServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = _site(gateway, sim)
    await setup_site(hass, entry)
    await _controlling(hass)
    gateway.freeze()  # still answering, but the meter data stops
    assert await _fail_safe(hass, entry, 6) <= MAX_AGE + 2.0
    assert _reason(hass) == FailSafeReason.METER_STALE
    assert hass.states.get(CONNECTION).state == "on"  # it answers; its data is old
    assert _logged(caplog, logging.WARNING, "Fail-safe (meter_stale)")
    await wait_for(
        lambda: bool(_logged(caplog, logging.WARNING, "has not heard from its site meter")),
        5,
        "the gateway's frozen data logged",
    )
    gateway.thaw()
    assert await _controlling(hass) <= 2.5
    await wait_for(
        lambda: bool(_logged(caplog, logging.INFO, "hears from its site meter again")),
        2,
        "recovery logged",
    )


@covers("restart_during_control")
async def test_restart_logs_in_again_and_waits_for_a_reading(
    hass: HomeAssistant, gateway: SiteGateway, sim: SimulatedSiteServer
) -> None:
    entry = _site(gateway, sim)
    await setup_site(hass, entry)
    await _controlling(hass)
    logins = gateway.logins
    assert await hass.config_entries.async_unload(entry.entry_id)

    gateway.stopped = True  # the gateway is not ready when Home Assistant is back
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert gateway.logins == logins + 1  # a fresh client logs in again
    assert _state(hass) == ControlState.FAIL_SAFE
    assert _reason(hass) == FailSafeReason.METER_UNAVAILABLE
    assert _snapshot(entry).plan.generation_target_w <= EXPORT_LIMIT

    gateway.stopped = False
    assert await _controlling(hass) <= 2.5


# --- the plain-Python control loop, fake clocks, the real client and the fake gateway -------

WALL_ZERO = datetime(2025, 1, 15, 1, 0, tzinfo=UTC)


class Clocks:
    """A monotonic clock and wall clocks following it, each of which can be set off."""

    def __init__(self) -> None:
        self.monotonic = FakeClock()
        self.ours = timedelta()  # our wall clock's error
        self.gateways = timedelta()  # the gateway's wall clock's error

    def _wall(self) -> datetime:
        return WALL_ZERO + timedelta(seconds=self.monotonic.now)

    def wall(self) -> datetime:
        return self._wall() + self.ours

    def gateway(self) -> datetime:
        return self._wall() + self.gateways


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _core_site(
    session: aiohttp.ClientSession, directory: Path, clocks: Clocks
) -> tuple[SiteGateway, FakeSite, ControlLoop]:
    site = FakeSite(load_w=1000.0, clock=clocks.monotonic)
    site.add_inverter("a", 5000.0, 3000.0)
    site.add_inverter("b", 5000.0, 3000.0)
    gateway = SiteGateway(directory, clock=clocks.gateway)
    gateway.grid = lambda: site.grid_power_w
    await gateway.start()
    client = PowerwallClient(
        session,
        "127.0.0.1",
        PASSWORD,
        fingerprint=gateway.fingerprint,
        port=gateway.port,
        clock=clocks.monotonic,
    )
    loop = ControlLoop(
        meter=PowerwallMeter(client, clock=clocks.monotonic, wall_clock=clocks.wall),
        inverters=site.inverters,
        ratings=site.ratings,
        limiters=[RecordingLimiter("fixed", Controls(export_limit=EXPORT_LIMIT))],
        controller=Controller(ControllerSettings(meter_max_age_s=MAX_AGE)),
        write_policy=WritePolicy(),
        clock=clocks.monotonic,
        wall_clock=clocks.wall,
    )
    return gateway, site, loop


async def _cycles(
    loop: ControlLoop, clocks: Clocks, count: int, step_s: float = 1.0
) -> list[CycleSnapshot]:
    snapshots = []
    for _ in range(count):
        clocks.monotonic.advance(step_s)
        snapshots.append(await loop.async_run_cycle())
    return snapshots


def _states(snapshots: list[CycleSnapshot]) -> list[ControlState]:
    return [s.state for s in snapshots]


@covers("back_after_an_hour")
async def test_gateway_back_after_an_hour(
    session: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clocks = Clocks()
    gateway, site, loop = await _core_site(session, tmp_path, clocks)
    try:
        (snapshot,) = (await _cycles(loop, clocks, 10))[-1:]
        assert snapshot.state is ControlState.CONTROLLING
        assert abs(site.export_w - EXPORT_LIMIT) <= 50

        await gateway.stop()  # gone for an hour of 30 s cycles
        away = await _cycles(loop, clocks, 120, 30.0)
        assert set(_states(away)) == {ControlState.FAIL_SAFE}
        assert away[-1].plan.fail_safe_reason is FailSafeReason.METER_UNAVAILABLE
        assert site.generation_w <= EXPORT_LIMIT + 1

        logins = gateway.logins
        gateway.expire_tokens()  # a restarted gateway knows none of the old tokens
        await gateway.start()
        (back,) = await _cycles(loop, clocks, 1)
        assert back.state is ControlState.CONTROLLING
        assert gateway.logins == logins + 1
        await _cycles(loop, clocks, 10)
        assert abs(site.export_w - EXPORT_LIMIT) <= 50
        assert any(r.getMessage() == "meter is back" for r in caplog.records)
    finally:
        await gateway.stop()


@covers("clock_jump")
async def test_clock_jumps_do_not_decide_freshness(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    clocks = Clocks()
    gateway, site, loop = await _core_site(session, tmp_path, clocks)
    try:
        await _cycles(loop, clocks, 5)
        jumps = (timedelta(hours=1), timedelta(hours=-1), timedelta(hours=-1))
        for jump in jumps:  # our wall clock jumps
            clocks.ours += jump
            assert set(_states(await _cycles(loop, clocks, 4))) == {ControlState.CONTROLLING}
        for jump in jumps:  # the gateway's clock jumps (its meter times with it)
            clocks.gateways += jump
            assert set(_states(await _cycles(loop, clocks, 4))) == {ControlState.CONTROLLING}

        # Frozen data still goes stale within the max age, whichever way a clock jumps.
        for clock in ("ours", "gateways"):
            for jump in jumps:
                gateway.freeze()
                setattr(clocks, clock, getattr(clocks, clock) + jump)
                states = _states(await _cycles(loop, clocks, 4))
                assert states[-1] is ControlState.FAIL_SAFE, (clock, jump, states)
                gateway.thaw()
                assert _states(await _cycles(loop, clocks, 1)) == [ControlState.CONTROLLING]

        # A gateway without a usable Date: our wall clock stands in, and may be wrong.
        gateway.date_header = False
        for jump in jumps:
            clocks.ours += jump
            assert set(_states(await _cycles(loop, clocks, 4))) == {ControlState.CONTROLLING}
        gateway.freeze()
        clocks.ours -= timedelta(hours=1)  # a frozen time now looks an hour in the future
        states = _states(await _cycles(loop, clocks, 4))
        assert states[-1] is ControlState.FAIL_SAFE, states
        assert abs(site.export_w) <= EXPORT_LIMIT
    finally:
        await gateway.stop()
