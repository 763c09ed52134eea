"""Fault matrix, SunSpec Modbus TCP: the simulated site (sim/server.py) misbehaves on 127.0.0.1.

SunSpec devices are both the site meter and the inverters, so each fault is driven against the
meter (unit 240) and an inverter (units 1 and 2) of one simulated gateway, all on one shared
connection. Most tests run the whole integration in Home Assistant (1 s cycles, real time);
those that need an hour, or exact counter arithmetic, run the plain-Python control loop with
the real SunSpec clients against the simulated site in lock-step on a fake clock
(:class:`LockStep`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from homeassistant.const import ATTR_ENTITY_ID, CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant

from custom_components.dynamic_export.const import CONF_RATED_POWER, CONF_UNIT_ID
from custom_components.dynamic_export.core.controller import (
    Controller,
    ControllerSettings,
    ControlState,
    FailSafeReason,
)
from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.core.cycle import ControlLoop, CycleSnapshot
from custom_components.dynamic_export.core.errors import DeviceUnavailableError
from custom_components.dynamic_export.core.silence import MAX_RETRY_DELAY_S
from custom_components.dynamic_export.core.write_policy import WritePolicy
from custom_components.dynamic_export.limiters.fixed import FixedLimiter
from custom_components.dynamic_export.sim.scenario import Scenario
from custom_components.dynamic_export.sim.server import SimulatedSiteServer
from custom_components.dynamic_export.sunspec.connection import (
    DEFAULT_TIMEOUT_S,
    ModbusTcpConnection,
    RegisterConnection,
)
from custom_components.dynamic_export.sunspec.device import SunSpecDevice
from custom_components.dynamic_export.sunspec.inverter import SunSpecInverter
from custom_components.dynamic_export.sunspec.meter import SunSpecMeter

from ...core.fakes import FakeClock
from ..helpers import STEADY_SITE, wait_for
from ..sites import (
    inverter_subentry,
    limiter_subentry,
    meter_subentry,
    setup_site,
    site_entry,
    sunspec_site,
)
from .matrix import Outcome, covers

EXPORT_LIMIT = 1500.0
GENERATION_LIMIT = 6000.0
TOLERANCE = 50.0
CYCLE_S = 1.0
SLACK_S = 1.0
"""Real-time tests: the coordinator's whole-second grid and a loaded test machine."""
METER_AGE_S = 2.0
"""The meter's maximum age in tests that wait for it (the default is 5 s)."""
LIMIT_POINT = "WMaxLimPct"

OUTCOMES: dict[str, Outcome] = {
    "timeout": Outcome(
        site_does=(
            "Meter silent: fail-safe, generation held at the export limit. Inverter silent: "
            "counted at its rating (generation limit, fail-safe), the others stay "
            "controlled. A cycle that asks it waits for its timeout, so a silent inverter is "
            "asked again after 1, 2, 4, 8 s and then every 10 s; the cycles between are not "
            "held up"
        ),
        how_fast=(
            "Meter: ≤ meter data maximum age + the 3 s timeout + 1 cycle (≤ 9 s by default). "
            "Inverter: the cycle that times out (3 s); back ≤ 10 s + the timeout after it "
            "answers again"
        ),
        user_sees=(
            "`sensor.<site>_control_state` fail_safe (reason meter_unavailable) and "
            "`binary_sensor.<site>_fail_safe` on; the device's sensors unavailable, its "
            "connection off with 'no response in 3 s'; WARNING '… unavailable: …'"
        ),
    ),
    "exception": Outcome(
        site_does=(
            "As for no answer: meter → fail-safe; inverter → counted at its rating. The "
            "connection stays up for the other units"
        ),
        how_fast="Meter: ≤ meter data maximum age + 1 cycle. Inverter: the next cycle",
        user_sees=(
            "As for no answer, with the exception in the connection's error, e.g. 'Modbus "
            "exception 11 (gateway target failed to respond)', '… 6 (server device busy)'"
        ),
    ),
    "disconnect_mid_write": Outcome(
        site_does=(
            "Inverter: the write counts as failed whether or not it took effect; the next "
            "cycle reconnects and writes the limit again. A late answer never counts for a "
            "later request (its connection is closed). Meter (read-only: disconnect "
            "mid-read): that cycle holds the target, the next reads afresh"
        ),
        how_fast="The next cycle (1 s)",
        user_sees=(
            "WARNING '… does not take its limit: <host:port> unit N: writing 1 registers at "
            "…: connection lost', then INFO '… takes its limit again'"
        ),
    ),
    "slow_reply": Outcome(
        site_does=(
            "Below the 3 s timeout: control goes on, cycles take longer. Above it: as no "
            "answer (meter → fail-safe, inverter → counted at its rating); the late answer "
            "arrives on a closed connection and is never used"
        ),
        how_fast="Below: no effect. Above: as no answer",
        user_sees=(
            "Below: nothing (`sensor.<site>_control_cycle_duration` grows). Above: as no answer"
        ),
    ),
    "gone_at_start": Outcome(
        site_does=(
            "Meter: fail-safe from the first cycle. Inverter: counted at the rating stored "
            "when it was added (or last read); one whose rating was never known is counted "
            "as unlimited, so nothing is left for the others under a generation limit or in "
            "fail-safe. Each is set up at the first cycle it answers"
        ),
        how_fast="At start-up; control at the first cycle after it answers",
        user_sees=(
            "Control state fail_safe (reason meter_unavailable) while the meter is missing; the "
            "inverter's connection off with '… (rating never read: counted as unlimited)' "
            "when its rating is unknown; WARNING '… is not ready …; will keep trying'"
        ),
    ),
    "back_after_an_hour": Outcome(
        site_does=(
            "Reconnects by itself (no back-off to wait out) and controls again: the limits "
            "are rewritten, export back under the limit"
        ),
        how_fast="The first cycle after the gateway answers",
        user_sees=(
            "INFO '… is back' and 'Meter data is fresh again: normal control resumed'; "
            "control state controlling"
        ),
    ),
    "frozen_data": Outcome(
        site_does=(
            "Meter (a gateway serving its last values): caught by its energy counters standing "
            "still while its power reading says energy flows; its data then counts as old as "
            "the counters' last move, so the site goes to fail-safe. Inverter: caught the "
            "same way by its lifetime energy, then counted at its rating like one that does "
            "not answer. Counters that never moved since start-up, or update rarely, cannot "
            "be judged"
        ),
        how_fast=(
            "The first cycle once the counters have stood still ≥ 10 s and the power reading "
            "adds up to 3 counter steps + 10 Wh (1 Wh counters: 10 s at ≥ 4.7 kW, 47 s at "
            "1 kW); live again the first cycle they move"
        ),
        user_sees=(
            "Meter: control state fail_safe (reason meter_stale), WARNING 'Site meter (unit "
            "N) values look frozen: …', INFO '… energy counters move again …'; its own "
            "sensors keep showing the frozen values. Inverter: sensors unavailable, "
            "connection off with '… values look frozen: …'"
        ),
    ),
    "restart_during_control": Outcome(
        site_does=(
            "The inverters keep the last limit (their revert timer, 60 s) while Home "
            "Assistant is away; the first cycle after set-up writes the limits again"
        ),
        how_fast="Limit held throughout; rewritten at the first cycle",
        user_sees="Control state controlling again from the first cycle",
    ),
    "clock_jump": Outcome(
        site_does=(
            "Nothing changes: the cycles and the meter's freshness run on the monotonic clock"
        ),
        how_fast="No interruption",
        user_sees="Control state stays controlling",
    ),
}


# --- helpers ---------------------------------------------------------------------------------


def _state(hass: HomeAssistant, entity_id: str) -> Any:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state


def _control_state(hass: HomeAssistant) -> str:
    return str(_state(hass, "sensor.home_control_state").state)


async def _time(condition: Callable[[], bool], within_s: float, what: str) -> float:
    """Seconds until ``condition`` holds (fails after ``within_s``)."""
    started = time.monotonic()
    await wait_for(condition, within_s, what)
    return time.monotonic() - started


async def _cycle_durations(coordinator: Any, over_s: float) -> list[float]:
    """How long each cycle took that ended in the next ``over_s`` seconds."""
    durations: dict[float, float] = {}
    deadline = time.monotonic() + over_s
    while time.monotonic() < deadline:
        snapshot = coordinator.data
        durations[snapshot.time] = snapshot.duration_s
        await asyncio.sleep(0.1)
    return list(durations.values())


def _site(sim: SimulatedSiteServer, *, generation_limit: float | None = None, **options: Any):
    limits: dict[str, float] = {"export_limit": EXPORT_LIMIT}
    if generation_limit is not None:
        limits["generation_limit"] = generation_limit
    return sunspec_site(sim, limiter_subentry("Export limit", **limits), **options)


def _limit_writes(sim: SimulatedSiteServer, unit: int, after_t: float) -> list[float]:
    """Times (site clock) of WMaxLimPct writes to ``unit`` after ``after_t``."""
    address = sim.inverter_units[unit].image.point(123, LIMIT_POINT)[0]
    return [t for t, u, a, _ in list(sim.writes) if u == unit and a == address and t > after_t]


def _key(entry: Any, title: str) -> str:
    """The control loop's key of the inverter with this title."""
    return next(key for key, h in entry.runtime_data.inverters.items() if h.name == title)


def _logged(caplog: pytest.LogCaptureFixture, level: int, *parts: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == level and all(p in r.getMessage() for p in parts)
    ]


async def _controlling(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """Wait until the site holds the export limit (1 kW load + 1.5 kW export)."""
    await wait_for(
        lambda: sim.site.generation_w > 2200 and sim.site.export_w <= EXPORT_LIMIT + TOLERANCE,
        10,
        "normal control",
    )
    assert _control_state(hass) == ControlState.CONTROLLING


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.dynamic_export")


# --- lock-step core harness (also used by the RS-485 module) ----------------------------------

WALL_START = datetime(2025, 1, 15, 1, 0, tzinfo=UTC)


class LockStep:
    """The real SunSpec clients and control loop against the simulated site, on a fake clock.

    The site's physics and the loop's clock move together by :meth:`cycle`, so an hour takes
    no real time; device timeouts stay real (short ones).
    """

    def __init__(
        self,
        sim: SimulatedSiteServer,
        connection: RegisterConnection,
        *,
        export_limit: float | None = EXPORT_LIMIT,
        generation_limit: float | None = None,
        meter_max_age_s: float = 5.0,
        device_timeout_s: float = 2.0,
    ) -> None:
        self.sim = sim
        self.clock = FakeClock(start=1000.0)
        self.wall_offset = timedelta(0)
        self.meter = SunSpecMeter(SunSpecDevice(connection, sim.meter_unit_id), clock=self.clock)
        self.inverters = {
            f"inverter {unit}": SunSpecInverter(
                SunSpecDevice(connection, unit), revert_timeout_s=60.0, clock=self.clock
            )
            for unit in sim.inverter_unit_ids
        }
        self.limiter = FixedLimiter(
            "Limits", Controls(export_limit=export_limit, generation_limit=generation_limit)
        )
        self.loop = ControlLoop(
            meter=self.meter,
            inverters=self.inverters,
            ratings={},
            limiters=[self.limiter],
            controller=Controller(ControllerSettings(meter_max_age_s=meter_max_age_s)),
            write_policy=WritePolicy(),
            clock=self.clock,
            wall_clock=self.wall,
            device_timeout_s=device_timeout_s,
        )

    def wall(self) -> datetime:
        """The wall clock the loop sees: the fake clock, shifted by any jump."""
        return WALL_START + timedelta(seconds=self.clock.now - 1000.0) + self.wall_offset

    async def cycle(self, dt: float = CYCLE_S) -> CycleSnapshot:
        """Let ``dt`` seconds pass on the site and the clock, then run one cycle."""
        self.sim.advance(dt)
        self.clock.advance(dt)
        return await self.loop.async_run_cycle()

    async def cycles(self, count: int, dt: float = CYCLE_S) -> list[CycleSnapshot]:
        return [await self.cycle(dt) for _ in range(count)]


@pytest.fixture
async def still_sim(
    socket_enabled: None, scenario_data: dict[str, Any]
) -> AsyncIterator[SimulatedSiteServer]:
    """The simulated site on 127.0.0.1, its time moved only by the test."""
    server = SimulatedSiteServer(
        Scenario.from_dict(scenario_data, name="lock-step"), port=0, autostep=False
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def tcp(still_sim: SimulatedSiteServer) -> AsyncIterator[ModbusTcpConnection]:
    connection = ModbusTcpConnection("127.0.0.1", still_sim.port, timeout_s=0.2)
    yield connection
    await connection.close()


# --- no answer, error answers ----------------------------------------------------------------


@covers("timeout")
async def test_meter_silent_sends_the_site_to_fail_safe(
    hass: HomeAssistant, sim: SimulatedSiteServer, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_site(hass, _site(sim, meter_max_age=METER_AGE_S))
    await _controlling(hass, sim)

    sim.set_unit_offline(sim.meter_unit_id, mode="timeout")
    took = await _time(lambda: _control_state(hass) == ControlState.FAIL_SAFE, 15, "fail-safe")
    assert took <= METER_AGE_S + DEFAULT_TIMEOUT_S + CYCLE_S + SLACK_S
    state = _state(hass, "sensor.home_control_state")
    assert state.attributes["reason"] == FailSafeReason.METER_UNAVAILABLE
    assert _state(hass, "binary_sensor.home_fail_safe").state == "on"
    assert _state(hass, "sensor.meter_grid_power").state == "unavailable"
    connection = _state(hass, "binary_sensor.meter_connection")
    assert connection.state == "off"
    assert f"no response in {DEFAULT_TIMEOUT_S:g} s" in connection.attributes["error"]
    assert _logged(caplog, logging.WARNING, "Meter unavailable:", "no response in 3 s")
    assert _logged(caplog, logging.WARNING, "Fail-safe (meter_unavailable)", "1500 W")
    await wait_for(lambda: sim.site.generation_w <= EXPORT_LIMIT + TOLERANCE, 5, "fail-safe level")
    assert entry.runtime_data.coordinator.last_update_success

    sim.set_unit_offline(sim.meter_unit_id, False)  # a cycle may be waiting out its timeout
    await _time(
        lambda: _control_state(hass) == ControlState.CONTROLLING,
        DEFAULT_TIMEOUT_S + CYCLE_S + SLACK_S,
        "recovery",
    )
    assert _logged(caplog, logging.INFO, "Meter is back")


@covers("timeout")
async def test_inverter_silent_is_counted_at_its_rating(
    hass: HomeAssistant, sim: SimulatedSiteServer, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_site(hass, _site(sim, generation_limit=GENERATION_LIMIT))
    await _controlling(hass, sim)
    coordinator = entry.runtime_data.coordinator

    sim.set_unit_offline(2, mode="timeout")
    took = await _time(
        lambda: abs(coordinator.data.plan.generation_target_w - (GENERATION_LIMIT - 5000)) < 1,
        DEFAULT_TIMEOUT_S + CYCLE_S + SLACK_S,
        "the silent inverter counted at 5 kW",
    )
    assert took <= DEFAULT_TIMEOUT_S + CYCLE_S + SLACK_S
    assert _control_state(hass) == ControlState.CONTROLLING  # the others stay controlled
    assert _state(hass, "sensor.inverter_2_ac_power").state == "unavailable"
    connection = _state(hass, "binary_sensor.inverter_2_connection")
    assert connection.state == "off"
    assert "unit 2" in connection.attributes["error"]
    assert "no response in 3 s" in connection.attributes["error"]
    assert _logged(caplog, logging.WARNING, "unavailable:", "unit 2", "no response in 3 s")
    await wait_for(lambda: sim.site.inverters[0].output_w <= 1000 + TOLERANCE, 5, "inverter 1")
    # A cycle that asks the silent unit waits out its timeout (the shared connection is
    # serialised), but it is asked only after 1, 2, 4, 8 s and then every 10 s: the cycles
    # between run at their pace.
    await wait_for(lambda: coordinator.data.duration_s >= DEFAULT_TIMEOUT_S, 5, "slow cycles")
    durations = await _cycle_durations(coordinator, 15.0)
    fast = [d for d in durations if d < CYCLE_S]
    assert len(fast) >= 2 * (len(durations) - len(fast)), durations

    sim.set_unit_offline(2, False)
    await wait_for(
        lambda: _state(hass, "binary_sensor.inverter_2_connection").state == "on",
        MAX_RETRY_DELAY_S + DEFAULT_TIMEOUT_S + CYCLE_S + SLACK_S,
        "inverter 2 back",
    )
    assert _logged(caplog, logging.INFO, "is back")


@covers("exception")
async def test_meter_gateway_error_sends_the_site_to_fail_safe(
    hass: HomeAssistant, sim: SimulatedSiteServer, caplog: pytest.LogCaptureFixture
) -> None:
    await setup_site(hass, _site(sim, meter_max_age=METER_AGE_S))
    await _controlling(hass, sim)

    sim.set_unit_offline(sim.meter_unit_id, mode="exception")  # 0x0B from the gateway
    took = await _time(lambda: _control_state(hass) == ControlState.FAIL_SAFE, 10, "fail-safe")
    assert took <= METER_AGE_S + CYCLE_S + SLACK_S
    assert _state(hass, "sensor.home_control_state").attributes["reason"] == (
        FailSafeReason.METER_UNAVAILABLE
    )
    error = _state(hass, "binary_sensor.meter_connection").attributes["error"]
    assert "Modbus exception 11 (gateway target failed to respond)" in error
    assert _logged(caplog, logging.WARNING, "Meter unavailable:", "Modbus exception 11")
    await wait_for(lambda: sim.site.generation_w <= EXPORT_LIMIT + TOLERANCE, 5, "fail-safe level")
    # The other units behind the gateway keep answering on the same connection.
    assert _state(hass, "binary_sensor.inverter_1_connection").state == "on"

    sim.set_unit_offline(sim.meter_unit_id, False)
    await _time(lambda: _control_state(hass) == ControlState.CONTROLLING, 3, "recovery")


@covers("exception")
async def test_busy_inverter_is_counted_at_its_rating(
    hass: HomeAssistant, sim: SimulatedSiteServer, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_site(hass, _site(sim, generation_limit=GENERATION_LIMIT))
    await _controlling(hass, sim)
    coordinator = entry.runtime_data.coordinator

    sim.set_unit_offline(2, mode="busy")  # exception 6
    took = await _time(
        lambda: abs(coordinator.data.plan.generation_target_w - (GENERATION_LIMIT - 5000)) < 1,
        5,
        "the busy inverter counted at 5 kW",
    )
    assert took <= CYCLE_S + SLACK_S
    error = _state(hass, "binary_sensor.inverter_2_connection").attributes["error"]
    assert "Modbus exception 6 (server device busy)" in error
    assert _logged(caplog, logging.WARNING, "unavailable:", "unit 2", "server device busy")
    assert _state(hass, "binary_sensor.meter_connection").state == "on"
    await wait_for(lambda: sim.site.inverters[0].output_w <= 1000 + TOLERANCE, 5, "inverter 1")

    sim.set_unit_offline(2, False)
    await wait_for(
        lambda: _state(hass, "binary_sensor.inverter_2_connection").state == "on",
        CYCLE_S + SLACK_S,
        "inverter 2 back",
    )


# --- disconnect mid-write --------------------------------------------------------------------


@covers("disconnect_mid_write")
@pytest.mark.parametrize("applied", [False, True], ids=["write-lost", "write-applied"])
async def test_disconnect_mid_write_writes_again(
    hass: HomeAssistant,
    sim: SimulatedSiteServer,
    caplog: pytest.LogCaptureFixture,
    *,
    applied: bool,
) -> None:
    """The gateway drops the connection when a limit write arrives; the client cannot know
    whether it took effect, so the next cycle writes it again."""
    entry = await setup_site(hass, _site(sim))
    await _controlling(hass, sim)
    coordinator = entry.runtime_data.coordinator
    key = _key(entry, "Inverter 1")
    available: list[bool] = []
    coordinator.async_add_listener(
        lambda: available.append(coordinator.data.inverters[key].available)
    )

    sim.drop_next_write(1, applied=applied)
    await hass.services.async_call(
        "number",
        "set_value",
        {ATTR_ENTITY_ID: "number.export_limit", "value": 500},
        blocking=True,
    )
    await wait_for(lambda: 1 not in sim.write_drops, 5, "the write that drops the connection")
    dropped_at = sim.site.now
    await wait_for(lambda: bool(_limit_writes(sim, 1, dropped_at)), 5, "the limit written again")
    assert _limit_writes(sim, 1, dropped_at)[0] - dropped_at <= CYCLE_S + SLACK_S
    assert _logged(
        caplog, logging.WARNING, "does not take its limit:", "unit 1: writing", "connection lost"
    )
    await wait_for(
        lambda: bool(_logged(caplog, logging.INFO, "takes its limit again")), 3, "written again"
    )
    # What the client wrote is what the inverter holds, and the new limit is kept.
    await wait_for(lambda: sim.site.export_w <= 500 + TOLERANCE, 8, "export at the new limit")
    assert False in available  # shown unavailable for the cycle whose write failed
    assert available[-1]
    command = entry.runtime_data.loop.write_policy.last_command(key)
    assert command is not None
    assert sim.site.inverters[0].limit_enabled
    assert sim.site.inverters[0].limit_pct == pytest.approx(command.limit_pct, abs=0.01)


@covers("disconnect_mid_write")
async def test_disconnect_mid_meter_read_holds_for_one_cycle(
    hass: HomeAssistant, sim: SimulatedSiteServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Read-only: the nearest fault is the connection dropped while the meter is read."""
    entry = await setup_site(hass, _site(sim))
    await _controlling(hass, sim)
    coordinator = entry.runtime_data.coordinator
    states: list[str] = []
    coordinator.async_add_listener(lambda: states.append(coordinator.data.state.value))

    sim.drop_next_read(sim.meter_unit_id)
    await wait_for(lambda: not sim.read_drops, 5, "the read that drops the connection")
    await wait_for(lambda: bool(_logged(caplog, logging.INFO, "Meter is back")), 3, "next read")
    await asyncio.sleep(CYCLE_S)
    assert _logged(caplog, logging.WARNING, "Meter unavailable:")
    assert ControlState.FAIL_SAFE not in states
    assert _state(hass, "binary_sensor.meter_connection").state == "on"
    assert sim.site.export_w <= EXPORT_LIMIT + TOLERANCE


# --- slow replies ----------------------------------------------------------------------------


@covers("slow_reply")
async def test_slow_replies_below_the_timeout_change_nothing(
    hass: HomeAssistant, sim: SimulatedSiteServer
) -> None:
    entry = await setup_site(hass, _site(sim))
    await _controlling(hass, sim)
    coordinator = entry.runtime_data.coordinator
    states: list[str] = []
    coordinator.async_add_listener(lambda: states.append(coordinator.data.state.value))

    slow_s = 0.5  # each answer of the meter and of inverter 1; the client waits 3 s
    sim.reply_delay_s.update({sim.meter_unit_id: slow_s, 1: slow_s})
    await wait_for(lambda: coordinator.data.duration_s >= 3 * slow_s, 8, "slow cycles")
    states.clear()
    await wait_for(lambda: len(states) >= 3, 15, "three slow cycles")
    assert set(states) == {ControlState.CONTROLLING}
    assert all(status.available for status in coordinator.data.inverters.values())
    assert coordinator.data.meter_error is None
    assert sim.site.export_w <= EXPORT_LIMIT + TOLERANCE


@covers("slow_reply")
async def test_late_answers_are_never_taken(
    still_sim: SimulatedSiteServer, tcp: ModbusTcpConnection
) -> None:
    """Above the timeout: the answer comes after the client gave up; the next request gets
    its own answer, with the values of its own time."""
    meter = SunSpecMeter(SunSpecDevice(tcp, still_sim.meter_unit_id))
    await meter.async_setup()
    still_sim.freeze(still_sim.meter_unit_id)  # the test writes the meter's power itself
    image = still_sim.meter_unit.image
    still_sim.reply_delay_s[still_sim.meter_unit_id] = 0.3  # the client waits 0.2 s
    image.set(203, "W", 1111)
    with pytest.raises(DeviceUnavailableError, match=r"no response in 0\.2 s"):
        await meter.async_read()
    image.set(203, "W", 2222)
    still_sim.reply_delay_s[still_sim.meter_unit_id] = 0.15  # pending when the late one lands
    readings = [await meter.async_read() for _ in range(3)]
    assert [r.grid_power_w for r in readings] == [2222.0, 2222.0, 2222.0]


@covers("slow_reply", "timeout")
@pytest.mark.parametrize("scenario_data", [STEADY_SITE])
async def test_slow_units_above_the_timeout_in_the_loop(
    still_sim: SimulatedSiteServer, tcp: ModbusTcpConnection, scenario_data: dict[str, Any]
) -> None:
    """Meter too slow: fail-safe once its last reading is older than the maximum age.
    Inverter too slow: counted at its rating; both come back at the first good answer."""
    site = LockStep(still_sim, tcp)
    await site.cycles(5)
    still_sim.reply_delay_s[2] = 0.3
    snapshot = await site.cycle()
    assert snapshot.inverters["inverter 2"].reading is None
    assert "no response in 0.2 s" in (snapshot.inverters["inverter 2"].error or "")
    assert snapshot.state is ControlState.CONTROLLING
    still_sim.reply_delay_s.clear()
    assert (await site.cycle()).inverters["inverter 2"].available

    still_sim.reply_delay_s[still_sim.meter_unit_id] = 0.3
    states = [s.state for s in await site.cycles(7)]
    # Held while the last reading is at most 5 s old, fail-safe after.
    assert states == [ControlState.CONTROLLING] * 5 + [ControlState.FAIL_SAFE] * 2
    still_sim.reply_delay_s.clear()
    snapshot = await site.cycle()
    assert snapshot.state is ControlState.CONTROLLING
    assert snapshot.meter is not None
    assert snapshot.meter.grid_power_w == pytest.approx(
        still_sim.site.meter.reported_power_w, abs=1
    )


# --- gone at start ---------------------------------------------------------------------------


@covers("gone_at_start")
async def test_meter_gone_at_start(
    hass: HomeAssistant, sim: SimulatedSiteServer, caplog: pytest.LogCaptureFixture
) -> None:
    sim.set_unit_offline(sim.meter_unit_id, mode="exception")
    await setup_site(hass, _site(sim))
    assert _control_state(hass) == ControlState.FAIL_SAFE  # from the first cycle
    assert _state(hass, "sensor.home_control_state").attributes["reason"] == (
        FailSafeReason.METER_UNAVAILABLE
    )
    assert _logged(caplog, logging.WARNING, "Meter is not ready", "will keep trying")
    await wait_for(lambda: sim.site.generation_w <= EXPORT_LIMIT + TOLERANCE, 5, "fail-safe level")

    sim.set_unit_offline(sim.meter_unit_id, False)
    took = await _time(lambda: _control_state(hass) == ControlState.CONTROLLING, 5, "meter")
    assert took <= CYCLE_S + SLACK_S
    await wait_for(lambda: sim.site.generation_w > 2200, 8, "normal control")


@covers("gone_at_start")
@pytest.mark.parametrize("stored_rating", [5000.0, None], ids=["rating-stored", "never-read"])
async def test_inverter_gone_at_start(
    hass: HomeAssistant, sim: SimulatedSiteServer, stored_rating: float | None
) -> None:
    """Down since start-up: counted at the rating the flow stored; unknown: as unlimited."""
    data: dict[str, Any] = {CONF_HOST: "127.0.0.1", CONF_PORT: sim.port, CONF_UNIT_ID: 2}
    if stored_rating is not None:
        data[CONF_RATED_POWER] = stored_rating
    down = inverter_subentry(sim, 2)
    down = type(down)(
        data=data, subentry_type=down["subentry_type"], title="Inverter 2", unique_id="SIM-INV-2"
    )
    sim.set_unit_offline(2, mode="exception")
    entry = site_entry(
        [
            inverter_subentry(sim, 1),
            down,
            meter_subentry(sim),
            limiter_subentry("Limits", generation_limit=GENERATION_LIMIT),
        ]
    )
    await setup_site(hass, entry)
    coordinator = entry.runtime_data.coordinator
    expected = 1000.0 if stored_rating else 0.0  # 6 kW minus 5 kW, or minus "unlimited"
    assert coordinator.data.plan.generation_target_w == pytest.approx(expected)  # first cycle
    error = _state(hass, "binary_sensor.inverter_2_connection").attributes["error"]
    assert ("counted as unlimited" in error) is (stored_rating is None)
    await wait_for(
        lambda: sim.site.inverters[0].output_w <= expected + TOLERANCE, 5, "inverter 1 held"
    )

    sim.set_unit_offline(2, False)
    took = await _time(
        lambda: all(s.available for s in coordinator.data.inverters.values()), 5, "inverter 2"
    )
    assert took <= CYCLE_S + SLACK_S
    await wait_for(lambda: sim.site.generation_w > 2200, 8, "both controlled")


# --- back after an hour ----------------------------------------------------------------------


@covers("back_after_an_hour")
async def test_gateway_back_after_an_hour(
    still_sim: SimulatedSiteServer, tcp: ModbusTcpConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole gateway (meter and inverters) is gone for an hour, then answers again."""
    site = LockStep(still_sim, tcp)
    await site.cycles(5)
    assert still_sim.site.export_w <= EXPORT_LIMIT + TOLERANCE

    await still_sim.stop()
    still_sim.max_step_s = 300.0  # the physics are exact whatever the step
    gone = await site.cycles(12, dt=300.0)  # an hour: every refused connect takes ~0.1 s
    still_sim.max_step_s = 0.1
    assert all(s.state is ControlState.FAIL_SAFE for s in gone)
    assert all(s.meter_error and "cannot connect" in s.meter_error for s in gone)
    assert all(not s.writes for s in gone)
    assert not any(inv.limit_enabled for inv in still_sim.site.inverters)  # reverted meanwhile

    await still_sim.start()  # the same port
    back = await site.cycle()
    assert back.state is ControlState.CONTROLLING
    assert back.meter_error is None
    assert all(status.available for status in back.inverters.values())
    assert back.writes == 2  # control again at the first cycle
    assert all(inv.limit_enabled for inv in still_sim.site.inverters)
    await site.cycles(3)
    assert still_sim.site.export_w <= EXPORT_LIMIT + TOLERANCE
    assert _logged(caplog, logging.INFO, "meter is back")
    assert _logged(caplog, logging.INFO, "Meter data is fresh again")


# --- frozen data -----------------------------------------------------------------------------

BUSY_HOUSE = {
    **STEADY_SITE,
    "description": "A big load: 14 kW of import, so frozen counters show within seconds",
    "load_w": 20000,
}


@covers("frozen_data")
@pytest.mark.parametrize("scenario_data", [BUSY_HOUSE])
async def test_frozen_meter_sends_the_site_to_fail_safe(
    hass: HomeAssistant,
    sim: SimulatedSiteServer,
    caplog: pytest.LogCaptureFixture,
    scenario_data: dict[str, Any],
) -> None:
    await setup_site(hass, _site(sim))
    await wait_for(lambda: sim.site.generation_w > 5500, 8, "full generation")
    await asyncio.sleep(2 * CYCLE_S)  # the counters show they keep up

    sim.freeze(sim.meter_unit_id)
    took = await _time(lambda: _control_state(hass) == ControlState.FAIL_SAFE, 15, "fail-safe")
    assert took <= 10.0 + CYCLE_S + SLACK_S  # at 14 kW the 10 s still time decides
    assert _state(hass, "sensor.home_control_state").attributes["reason"] == (
        FailSafeReason.METER_STALE
    )
    assert _state(hass, "binary_sensor.meter_connection").state == "on"  # it does answer
    assert _state(hass, "sensor.meter_grid_power").state != "unavailable"
    assert _logged(caplog, logging.WARNING, "Site meter (unit 240) values look frozen")
    assert _logged(caplog, logging.WARNING, "Fail-safe (meter_stale)")
    await wait_for(lambda: sim.site.generation_w <= EXPORT_LIMIT + TOLERANCE, 5, "fail-safe level")

    sim.freeze(sim.meter_unit_id, False)
    took = await _time(lambda: _control_state(hass) == ControlState.CONTROLLING, 5, "live")
    assert took <= CYCLE_S + SLACK_S
    assert _logged(caplog, logging.INFO, "energy counters move again")
    assert len(_logged(caplog, logging.WARNING, "values look frozen")) == 1
    # The simulated devices' counters start where a real device's would (not at 0, which
    # SunSpec reads as "not implemented"), so nothing says they cannot be judged.
    assert not _logged(caplog, logging.WARNING, "cannot be detected")


ONE_KW_IMPORT = {
    **STEADY_SITE,
    "description": "1 kW of import under a 1.5 kW export limit",
    "pv_available_w": 2000,
    "load_w": 3000,
}


@covers("frozen_data")
@pytest.mark.parametrize("scenario_data", [ONE_KW_IMPORT])
async def test_frozen_meter_at_1_kw(
    still_sim: SimulatedSiteServer, tcp: ModbusTcpConnection, scenario_data: dict[str, Any]
) -> None:
    """1 Wh counters at 1 kW: 13 Wh uncounted takes 47 s; live counters never trip it."""
    site = LockStep(still_sim, tcp)
    live = await site.cycles(120)
    assert all(s.state is ControlState.CONTROLLING for s in live)
    last_move = site.clock.now - 4.0  # the counters move every 3.6 s at 1 kW

    still_sim.freeze(still_sim.meter_unit_id)
    frozen = await site.cycles(60)
    first = next(i for i, s in enumerate(frozen) if s.state is ControlState.FAIL_SAFE)
    assert 43 <= first + 1 <= 48
    assert frozen[first].plan.fail_safe_reason is FailSafeReason.METER_STALE
    assert all(s.state is ControlState.FAIL_SAFE for s in frozen[first:])
    assert frozen[first].plan.generation_target_w == pytest.approx(EXPORT_LIMIT)
    assert frozen[first].meter is not None
    assert frozen[first].meter.timestamp >= last_move

    still_sim.freeze(still_sim.meter_unit_id, False)
    assert (await site.cycle()).state is ControlState.CONTROLLING


@covers("frozen_data")
@pytest.mark.parametrize("scenario_data", [STEADY_SITE])
async def test_frozen_inverter_is_counted_at_its_rating(
    still_sim: SimulatedSiteServer, tcp: ModbusTcpConnection, scenario_data: dict[str, Any]
) -> None:
    """The gateway keeps serving inverter 1's last values: its lifetime energy stands still
    at 3 kW, so after 13 Wh (15.6 s) it counts as not answering, at its 5 kW rating."""
    site = LockStep(still_sim, tcp, export_limit=None, generation_limit=GENERATION_LIMIT)
    live = await site.cycles(20)
    assert all(s.inverters["inverter 1"].available for s in live)

    still_sim.freeze(1)
    frozen = await site.cycles(25)
    first = next(i for i, s in enumerate(frozen) if not s.inverters["inverter 1"].available)
    assert 14 <= first + 1 <= 18
    caught = frozen[first]
    assert "values look frozen: lifetime energy unchanged" in (
        caught.inverters["inverter 1"].error or ""
    )
    assert caught.plan.generation_target_w == pytest.approx(GENERATION_LIMIT - 5000)
    assert all(not s.inverters["inverter 1"].available for s in frozen[first:])
    assert still_sim.site.inverters[1].output_w <= GENERATION_LIMIT - 5000 + TOLERANCE

    still_sim.freeze(1, False)
    assert (await site.cycle()).inverters["inverter 1"].available


# --- HA restart while limiting ---------------------------------------------------------------


@covers("restart_during_control")
async def test_restart_while_limiting(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    entry = await setup_site(hass, _site(sim))
    await _controlling(hass, sim)
    limits = [inv.limit_pct for inv in sim.site.inverters]
    assert all(inv.limit_enabled for inv in sim.site.inverters)

    assert await hass.config_entries.async_unload(entry.entry_id)
    gap_from = sim.site.now
    exports = []
    while sim.site.now < gap_from + 3.0:  # Home Assistant away: the revert timer holds
        exports.append(sim.site.export_w)
        assert all(inv.limit_enabled for inv in sim.site.inverters)
        await asyncio.sleep(0.1)
    assert [inv.limit_pct for inv in sim.site.inverters] == limits
    assert max(exports) <= EXPORT_LIMIT + TOLERANCE

    back_at = sim.site.now
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    for unit in (1, 2):  # written by the first cycle, not only at the next refresh
        writes = _limit_writes(sim, unit, back_at)
        assert writes, unit
        assert writes[0] - back_at <= CYCLE_S + SLACK_S
    assert _control_state(hass) == ControlState.CONTROLLING
    await asyncio.sleep(2 * CYCLE_S)
    assert sim.site.export_w <= EXPORT_LIMIT + TOLERANCE


# --- clock jump ------------------------------------------------------------------------------


@covers("clock_jump")
async def test_wall_clock_jumps(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """The wall clock jumps an hour ahead, then to an hour behind: control does not notice."""
    entry = await setup_site(hass, _site(sim))
    await _controlling(hass, sim)
    loop = entry.runtime_data.loop
    coordinator = entry.runtime_data.coordinator
    snapshots: list[CycleSnapshot] = []
    coordinator.async_add_listener(lambda: snapshots.append(coordinator.data))
    real_wall = loop.wall_clock

    for jump in (timedelta(hours=1), timedelta(hours=-1)):
        loop.wall_clock = lambda jump=jump: real_wall() + jump
        before = len(snapshots)
        await asyncio.sleep(3 * CYCLE_S)
        seen = snapshots[before:]
        assert len(seen) >= 2, "cycles stalled"
        assert all(s.state is ControlState.CONTROLLING for s in seen)
        assert all(s.meter_error is None for s in seen)
        assert abs(seen[-1].wall_time - (datetime.now(UTC) + jump)) < timedelta(seconds=5)
        assert sim.site.export_w <= EXPORT_LIMIT + TOLERANCE
