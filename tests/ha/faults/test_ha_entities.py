"""Fault matrix: Home Assistant entities as the site meter and as inverters.

The site in Home Assistant: a grid power sensor as the meter (export shown positive, in kW,
2 s maximum age), inverter PV1 limited through an ``input_number`` in W (4 kW) and inverter
PV2 through a template ``number`` in % (3 kW), and a 1500 W export limit. A small physics
loop makes the power sensors follow the limits and reports the grid sensor. PV2's number is
the faulty device: its ``set_value`` can be slow, hang, raise, or take the number offline in
the middle of the write (``input_boolean``/``input_number`` knobs in its action). Faults that
need hours or a wall clock that jumps run on the plain-Python control loop over the same
kind of entities, with a fake monotonic clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from homeassistant.const import EVENT_CALL_SERVICE
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.setup import async_setup_component

from custom_components.dynamic_export.const import LIMIT_UNIT_PERCENT, LIMIT_UNIT_WATT
from custom_components.dynamic_export.core.controller import (
    Controller,
    ControllerSettings,
    ControlState,
    FailSafeReason,
)
from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.core.cycle import ControlLoop, CycleSnapshot
from custom_components.dynamic_export.core.write_policy import WritePolicy
from custom_components.dynamic_export.subentries.devices.ha_entities import (
    HaEntityInverter,
    HaEntityMeter,
)

from ...core.fakes import FakeClock, RecordingLimiter
from ..helpers import wait_for
from ..peers import (
    GRID,
    PCT_BACKING,
    PCT_LIMIT,
    PV1_POWER,
    PV2_POWER,
    W_LIMIT,
    EntitySite,
    set_power,
)
from ..sites import (
    entity_inverter_subentry,
    entity_meter_subentry,
    limiter_subentry,
    setup_site,
    site_entry,
)
from .matrix import Outcome, covers

OUTCOMES: dict[str, Outcome] = {
    "timeout": Outcome(
        "A set_value that does not return is abandoned after the 5 s device timeout (the "
        "number's action is stopped, nothing lands late) and tried again every cycle; "
        "meanwhile the inverter may keep its previous limit, so the others get only what "
        "that leaves",
        "≤ 1 cycle after the 5 s device timeout (measured ≤ 7 s); while it hangs, every "
        "cycle waits the 5 s",
        "binary_sensor.<inverter>_connection off, error 'no answer within 5 s'; WARNING "
        "'… does not take its limit: no answer within 5 s'",
    ),
    "exception": Outcome(
        "A set_value that raises: tried again every cycle; the inverter keeps its previous "
        "limit meanwhile and the others get only what that leaves. A grid state that is "
        "not a number: meter unavailable, fail-safe "
        "(generation at the export limit). An inverter power state that is not a number: "
        "that inverter unavailable, counted at its rating",
        "next cycle; fail-safe ≤ max age + 1 cycle (measured ≤ 4 s at 2 s max age)",
        "binary_sensor.<inverter>_connection off, error 'number.…: setting … failed: …'; "
        "meter connection off, error \"sensor.…: 'garbage' is not a number\"; "
        "control_state fail_safe",
    ),
    "disconnect_mid_write": Outcome(
        "The number goes unavailable during set_value, so the limit may not have landed: "
        "when the number is back showing another value, the limit is written again",
        "≤ 1 cycle after the number is back (measured ≤ 2.5 s)",
        "the number unavailable (and sensor.<inverter>_power_limit with it, at a cycle "
        "that finds it so); then sensor.<inverter>_power_limit shows the new limit",
    ),
    "slow_reply": Outcome(
        "Control goes on; the cycle waits for set_value",
        "no effect below the 5 s device timeout (tested at 2 s)",
        "nothing: cycles take longer while limits are written",
    ),
    "gone_at_start": Outcome(
        "Entities not there yet when Home Assistant starts (their integration loads "
        "later): fail-safe, the inverters unavailable and counted at their rating; "
        "controlled as soon as the entities appear",
        "≤ 1 cycle after the entities appear (measured ≤ 2 s)",
        "control_state fail_safe (reason meter_unavailable); connection off, error "
        "'sensor.… does not exist'",
    ),
    "back_after_an_hour": Outcome(
        "Fail-safe for the hour (inverters unavailable); when the entities are back, the "
        "meter counts as fresh and limits are written at once, rising from the fail-safe "
        "level at the ramp-up rate",
        "first cycle after the entities are back",
        "control_state fail_safe, then controlling; INFO 'meter is back'",
    ),
    "frozen_data": Outcome(
        "A grid sensor no longer reported is unavailable once older than its maximum age: "
        "fail-safe. An inverter's power sensor no longer reported is unavailable once older "
        "than its own maximum age (60 s by default) and counted at its rating. Ages count "
        "from when the state was last seen reported",
        "≤ the sensor's max age + 1 cycle (measured ≤ 4 s at 2 s; the inverter at its max age "
        "+ 1 cycle)",
        "meter connection off, error 'sensor.… has not been reported for N s (more than "
        "2 s)'; control_state fail_safe; WARNING '<meter> unavailable: …'; the inverter's "
        "connection off with the same error",
    ),
    "restart_during_control": Outcome(
        "Unloading the site (reload, removal) hands every number back to its maximum; "
        "after start-up the limits are written again. A stop without unload leaves the "
        "last limit in the number (it has no revert timer)",
        "at unload; limited again ≤ 3 s after start-up (measured)",
        "INFO 'Handed back to their own settings: …'",
    ),
    "clock_jump": Outcome(
        "Nothing: a sensor's age is kept on the monotonic clock from when its state was "
        "seen reported, so a wall clock set back does not make a frozen sensor look fresh, "
        "nor one set forward a live sensor look stale",
        "no effect (wall clock ±1 h); a frozen sensor still goes stale within its max age",
        "nothing",
    ),
}

EXPORT_LIMIT = 1500.0
SENSOR_MAX_AGE = 2.0
STATE = "sensor.home_control_state"
PV1_CONNECTION = "binary_sensor.pv1_connection"
PV2_CONNECTION = "binary_sensor.pv2_connection"
METER_CONNECTION = "binary_sensor.grid_connection"
ONLINE = "input_boolean.pv2_online"
FAIL = "input_boolean.pv2_fail"
DROP = "input_boolean.pv2_drop"
DELAY = "input_number.pv2_delay"


async def _faulty_numbers(hass: HomeAssistant) -> None:
    """PV1's W limit, and PV2's % limit whose set_value can be slow, fail or drop out."""
    assert await async_setup_component(
        hass,
        "input_number",
        {
            "input_number": {
                "pv1_limit": {"min": 0, "max": 5000, "step": 1, "initial": 5000},
                "pv2_limit_backing": {"min": 0, "max": 100, "step": 1, "initial": 100},
                "pv2_delay": {"min": 0, "max": 60, "step": 0.5, "initial": 0},
            }
        },
    )
    assert await async_setup_component(
        hass,
        "input_boolean",
        {
            "input_boolean": {
                "pv2_online": {"initial": True},
                "pv2_fail": {"initial": False},
                "pv2_drop": {"initial": False},
            }
        },
    )

    def when(entity_id: str) -> list[dict[str, Any]]:
        return [{"condition": "state", "entity_id": entity_id, "state": "on"}]

    set_value = [
        {"delay": {"seconds": "{{ states('input_number.pv2_delay') | float(0) }}"}},
        {
            "if": when(DROP),  # the device drops off in the middle of the write
            "then": [
                {"action": "input_boolean.turn_off", "target": {"entity_id": ONLINE}},
                {"stop": "the inverter went offline"},
            ],
        },
        {"if": when(FAIL), "then": [{"action": "pv2_inverter.refuse_limit"}]},
        {
            "action": "input_number.set_value",
            "target": {"entity_id": PCT_BACKING},
            "data": {"value": "{{ value }}"},
        },
    ]
    assert await async_setup_component(
        hass,
        "template",
        {
            "template": [
                {
                    "number": [
                        {
                            "name": "PV2 limit",
                            "state": "{{ states('input_number.pv2_limit_backing') }}",
                            "availability": "{{ is_state('input_boolean.pv2_online', 'on') }}",
                            "min": 0,
                            "max": 100,
                            "step": 1,
                            "set_value": set_value,
                        }
                    ]
                }
            ]
        },
    )
    await hass.async_block_till_done()
    assert hass.states.get(PCT_LIMIT).state == "100.0"


@pytest.fixture
async def entity_site(hass: HomeAssistant) -> AsyncIterator[EntitySite]:
    await _faulty_numbers(hass)
    model = EntitySite(hass, load_w=1000.0)
    model.site.start()
    yield model
    await model.site.stop()


def _entry() -> Any:
    return site_entry(
        [
            entity_inverter_subentry("PV1", PV1_POWER, W_LIMIT, LIMIT_UNIT_WATT, 4000),
            entity_inverter_subentry("PV2", PV2_POWER, PCT_LIMIT, LIMIT_UNIT_PERCENT, 3000),
            entity_meter_subentry(invert=True, max_age=SENSOR_MAX_AGE),
            limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
        ],
        meter_max_age=SENSOR_MAX_AGE,
    )


def _state(hass: HomeAssistant, entity_id: str = STATE) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def _error(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return str(state.attributes.get("error") or "")


def _number(hass: HomeAssistant, entity_id: str) -> float:
    return float(_state(hass, entity_id))


async def _switch(hass: HomeAssistant, entity_id: str, *, on: bool) -> None:
    await hass.services.async_call(
        "input_boolean", "turn_on" if on else "turn_off", {"entity_id": entity_id}, blocking=True
    )


async def _set_delay(hass: HomeAssistant, seconds: float) -> None:
    await hass.services.async_call(
        "input_number", "set_value", {"entity_id": DELAY, "value": seconds}, blocking=True
    )


def _limit_calls(hass: HomeAssistant) -> list[float]:
    """Record every number.set_value asked of PV2 (the time it was asked)."""
    calls: list[float] = []

    @callback
    def seen(event: Event) -> None:
        data = event.data
        called = (data.get("domain"), data.get("service"))
        if called == ("number", "set_value") and data["service_data"].get("entity_id") == PCT_LIMIT:
            calls.append(time.monotonic())

    hass.bus.async_listen(EVENT_CALL_SERVICE, seen)
    return calls


def _logged(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()]


async def _controlling(hass: HomeAssistant, within: float = 5.0) -> float:
    started = time.monotonic()
    await wait_for(lambda: _state(hass) == ControlState.CONTROLLING, within, "control")
    return time.monotonic() - started


@covers("timeout")
async def test_set_value_that_never_returns(
    hass: HomeAssistant, entity_site: EntitySite, caplog: pytest.LogCaptureFixture
) -> None:
    calls = _limit_calls(hass)
    await _set_delay(hass, 6.0)  # PV2's integration takes 6 s for every write
    started = time.monotonic()
    await setup_site(hass, _entry())
    assert time.monotonic() - started <= 7.0  # the first cycle gave up after 5 s
    await wait_for(lambda: "no answer within 5 s" in _error(hass, PV2_CONNECTION), 3, "shown")
    assert time.monotonic() - started <= 7.0
    assert _logged(caplog, logging.WARNING, "does not take its limit: no answer within 5 s")
    await wait_for(lambda: len(calls) >= 2, 8, "tried again")
    await asyncio.sleep(max(0.0, calls[0] + 7.0 - time.monotonic()))
    assert _number(hass, PCT_BACKING) == 100.0  # the abandoned write did not land at 6 s
    assert _number(hass, W_LIMIT) < 5000.0  # PV1 was limited all the same

    await _set_delay(hass, 0.0)
    started = time.monotonic()
    await wait_for(lambda: _number(hass, PCT_BACKING) < 100.0, 8, "PV2 limited")
    assert time.monotonic() - started <= 7.0  # the hanging cycle ends, the next one writes


@covers("exception")
async def test_set_value_that_raises_and_states_that_are_not_numbers(
    hass: HomeAssistant, entity_site: EntitySite, caplog: pytest.LogCaptureFixture
) -> None:
    calls = _limit_calls(hass)
    await _switch(hass, FAIL, on=True)  # PV2's integration refuses every write
    entry = _entry()
    await setup_site(hass, entry)
    await wait_for(lambda: "setting" in _error(hass, PV2_CONNECTION), 3, "the refusal shown")
    assert _error(hass, PV2_CONNECTION).startswith(f"{PCT_LIMIT}: setting ")
    assert "failed" in _error(hass, PV2_CONNECTION)
    count = len(calls)
    # Tried again every cycle (1 s): two more within about two cycles.
    await wait_for(lambda: len(calls) >= count + 2, 3.5, "the write tried again each cycle")
    assert _number(hass, PCT_BACKING) == 100.0
    await _switch(hass, FAIL, on=False)
    started = time.monotonic()
    await wait_for(lambda: _number(hass, PCT_BACKING) < 100.0, 3, "PV2 limited")
    assert time.monotonic() - started <= 2.5
    await _controlling(hass)

    # The grid sensor reports something that is not a number: fail-safe.
    entity_site.report_grid = False
    set_power(hass, GRID, "garbage", "kW")
    started = time.monotonic()
    await wait_for(lambda: _state(hass) == ControlState.FAIL_SAFE, 6, "fail-safe")
    assert time.monotonic() - started <= SENSOR_MAX_AGE + 2.0
    assert _state(hass, "binary_sensor.home_fail_safe") == "on"
    assert "'garbage' is not a number" in _error(hass, METER_CONNECTION)
    assert entry.runtime_data.coordinator.data.plan.generation_target_w <= EXPORT_LIMIT + 1
    entity_site.report_grid = True
    await _controlling(hass)

    # PV1's power sensor is not a number: PV1 is unavailable, the site runs on.
    entity_site.site.sinks.clear()
    set_power(hass, PV1_POWER, "n/a")
    await wait_for(lambda: "not a number" in _error(hass, PV1_CONNECTION), 3, "PV1 down")
    assert _state(hass, "sensor.pv1_ac_power") == "unavailable"
    assert entry.runtime_data.coordinator.last_update_success


@covers("disconnect_mid_write")
async def test_number_goes_offline_during_set_value(
    hass: HomeAssistant, entity_site: EntitySite
) -> None:
    entry = _entry()
    await setup_site(hass, entry)
    site = entity_site.site
    await wait_for(lambda: abs(site.samples[-1].export_w - EXPORT_LIMIT) <= 50, 10, "settled")
    await asyncio.sleep(1.0)
    before = _number(hass, PCT_BACKING)

    # The load rises, so new limits go out; PV2 drops offline in the middle of its write.
    await _switch(hass, DROP, on=True)
    site.load_w += 600.0
    await wait_for(lambda: _state(hass, PCT_LIMIT) == "unavailable", 3, "PV2 offline")
    assert _number(hass, PCT_BACKING) == before  # the limit did not land
    await _switch(hass, DROP, on=False)
    await _switch(hass, ONLINE, on=True)  # back at once, still showing the old limit
    started = time.monotonic()
    # The same limit as the lost one: only the read-back tells it never landed.
    await wait_for(lambda: _number(hass, PCT_BACKING) > before, 4, "limit written again")
    assert time.monotonic() - started <= 2.5
    await _controlling(hass)


@covers("slow_reply")
async def test_slow_set_value_keeps_control(hass: HomeAssistant, entity_site: EntitySite) -> None:
    await _set_delay(hass, 2.0)  # every write to PV2 takes 2 s
    entry = _entry()
    await setup_site(hass, entry)
    site = entity_site.site
    await wait_for(lambda: site.samples[-1].export_w <= EXPORT_LIMIT + 50, 10, "export held")
    start = site.t
    connections = []
    while site.t < start + 5.0:
        connections.append((_state(hass, PV2_CONNECTION), _state(hass)))
        await asyncio.sleep(0.1)
    assert set(connections) == {("on", ControlState.CONTROLLING)}
    window = site.window(start, start + 5.0)
    assert all(s.export_w <= EXPORT_LIMIT + 100 for s in window), max(s.export_w for s in window)
    assert _number(hass, PCT_BACKING) < 100.0


@covers("gone_at_start")
async def test_entities_missing_when_home_assistant_starts(hass: HomeAssistant) -> None:
    entry = _entry()
    await setup_site(hass, entry)  # before the integration that provides the entities
    assert _state(hass) == ControlState.FAIL_SAFE
    assert hass.states.get(STATE).attributes["reason"] == FailSafeReason.METER_UNAVAILABLE
    assert _error(hass, METER_CONNECTION) == f"{GRID} does not exist"
    assert _error(hass, PV1_CONNECTION) == f"{PV1_POWER} does not exist"
    snapshot: CycleSnapshot = entry.runtime_data.coordinator.data
    assert snapshot.plan.generation_target_w == 0.0  # both counted at rating: 7 kW > 1.5 kW

    await _faulty_numbers(hass)  # the entities appear
    model = EntitySite(hass, load_w=1000.0)
    model.site.start()
    try:
        started = time.monotonic()
        await _controlling(hass)
        assert time.monotonic() - started <= 2.0
        await wait_for(
            lambda: _number(hass, W_LIMIT) < 5000.0 and _number(hass, PCT_BACKING) < 100.0,
            3,
            "limits written",
        )
    finally:
        await model.site.stop()


@covers("frozen_data")
async def test_grid_sensor_no_longer_reported(
    hass: HomeAssistant, entity_site: EntitySite, caplog: pytest.LogCaptureFixture
) -> None:
    entry = _entry()
    await setup_site(hass, entry)
    await _controlling(hass)
    entity_site.report_grid = False  # the sensor keeps its last state
    started = time.monotonic()
    await wait_for(lambda: _state(hass) == ControlState.FAIL_SAFE, 6, "fail-safe")
    assert time.monotonic() - started <= SENSOR_MAX_AGE + 2.0
    assert _state(hass, METER_CONNECTION) == "off"
    assert "has not been reported for" in _error(hass, METER_CONNECTION)
    assert _logged(caplog, logging.WARNING, "Grid unavailable: sensor.grid_power has not been")
    assert entry.runtime_data.coordinator.data.plan.generation_target_w <= EXPORT_LIMIT + 1
    entity_site.report_grid = True
    assert await _controlling(hass) <= 2.5


@covers("restart_during_control")
async def test_unload_hands_back_and_start_up_limits_again(
    hass: HomeAssistant, entity_site: EntitySite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    entry = _entry()
    await setup_site(hass, entry)
    await wait_for(
        lambda: _number(hass, W_LIMIT) < 5000.0 and _number(hass, PCT_BACKING) < 100.0,
        4,
        "limited",
    )
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert (_number(hass, W_LIMIT), _number(hass, PCT_BACKING)) == (5000.0, 100.0)
    assert _logged(caplog, logging.INFO, "Handed back to their own settings")

    started = time.monotonic()
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(
        lambda: _number(hass, W_LIMIT) < 5000.0 and _number(hass, PCT_BACKING) < 100.0,
        4,
        "limited again",
    )
    assert time.monotonic() - started <= 3.0


# --- the plain-Python control loop over entities, with a fake monotonic clock --------------

LOAD_W = 1000.0
PV1_AVAILABLE_W = 2600.0
INVERTER_MAX_AGE = 30.0


class EntityLoop:
    """The control loop over PV1 and the grid sensor, with the physics done per cycle."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.hass = hass
        self.clock = FakeClock()
        self.meter = HaEntityMeter(hass, GRID, max_age_s=SENSOR_MAX_AGE, clock=self.clock)
        inverter = HaEntityInverter(
            hass,
            PV1_POWER,
            W_LIMIT,
            limit_unit=LIMIT_UNIT_WATT,
            rated_power_w=4000,
            max_age_s=INVERTER_MAX_AGE,
            clock=self.clock,
        )
        self.loop = ControlLoop(
            meter=self.meter,
            inverters={"pv1": inverter},
            ratings={"pv1": 4000.0},
            limiters=[RecordingLimiter("fixed", Controls(export_limit=EXPORT_LIMIT))],
            controller=Controller(ControllerSettings(meter_max_age_s=SENSOR_MAX_AGE)),
            write_policy=WritePolicy(),
            clock=self.clock,
            wall_clock=lambda: datetime.now(UTC),
        )
        self.reporting = True
        self.reporting_output = True

    def output_w(self) -> float:
        limit = self.hass.states.get(W_LIMIT)
        ceiling = float(limit.state) if limit and limit.state != "unavailable" else 5000.0
        return min(PV1_AVAILABLE_W, ceiling)

    def report(self, timestamp: float | None = None) -> None:
        """The sensors' integrations report (``timestamp``: on a wall clock other than ours)."""
        output = self.output_w()
        if self.reporting_output:
            self.hass.states.async_set(
                PV1_POWER, str(output), {"unit_of_measurement": "W"}, timestamp=timestamp
            )
        self.hass.states.async_set(
            GRID, str(LOAD_W - output), {"unit_of_measurement": "W"}, timestamp=timestamp
        )

    async def cycles(self, count: int, step_s: float = 1.0) -> list[CycleSnapshot]:
        snapshots = []
        for _ in range(count):
            self.clock.advance(step_s)
            if self.reporting:
                self.report()
            snapshots.append(await self.loop.async_run_cycle())
            await self.hass.async_block_till_done()
        return snapshots


def _states(snapshots: list[CycleSnapshot]) -> list[ControlState]:
    return [s.state for s in snapshots]


@pytest.fixture
async def entity_loop(hass: HomeAssistant) -> EntityLoop:
    assert await async_setup_component(
        hass,
        "input_number",
        {"input_number": {"pv1_limit": {"min": 0, "max": 5000, "step": 1, "initial": 5000}}},
    )
    model = EntityLoop(hass)
    model.report()
    return model


@covers("back_after_an_hour")
async def test_entities_back_after_an_hour(
    hass: HomeAssistant, entity_loop: EntityLoop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await entity_loop.cycles(10)
    assert entity_loop.output_w() == LOAD_W + EXPORT_LIMIT

    # The other integration goes away: its entities are unavailable for an hour.
    entity_loop.reporting = False
    for entity_id in (GRID, PV1_POWER, W_LIMIT):
        hass.states.async_set(entity_id, "unavailable")
    away = await entity_loop.cycles(120, 30.0)
    assert set(_states(away)) == {ControlState.FAIL_SAFE}
    assert away[-1].plan.fail_safe_reason is FailSafeReason.METER_UNAVAILABLE
    assert not away[-1].inverters["pv1"].available

    # Back; its number restarted at its maximum.
    hass.states.async_set(W_LIMIT, "5000.0", {"min": 0, "max": 5000, "step": 1})
    entity_loop.reporting = True
    (back,) = await entity_loop.cycles(1)
    assert back.state is ControlState.CONTROLLING
    assert back.inverters["pv1"].wrote
    assert _number(hass, W_LIMIT) < 5000.0  # from the fail-safe level, ramping up
    await entity_loop.cycles(3)
    assert entity_loop.output_w() == LOAD_W + EXPORT_LIMIT
    assert _logged(caplog, logging.INFO, "meter is back")


@covers("frozen_data")
async def test_inverter_power_no_longer_reported(
    hass: HomeAssistant, entity_loop: EntityLoop
) -> None:
    """An inverter whose power is not reported past its maximum age is unavailable.

    Its integration may have stopped polling and left the last value standing: sharing the
    site's target out from it would be sharing from a guess.
    """
    await entity_loop.cycles(5)
    entity_loop.reporting_output = False  # the grid sensor still reports
    stale = await entity_loop.cycles(int(INVERTER_MAX_AGE) + 3)
    live = [snap.inverters["pv1"].available for snap in stale]
    assert all(live[: int(INVERTER_MAX_AGE) - 1]), live
    assert not live[-1]
    error = stale[-1].inverters["pv1"].error or ""
    assert f"{PV1_POWER} has not been reported for" in error, error
    assert "(more than 30 s)" in error

    entity_loop.reporting_output = True
    (back,) = await entity_loop.cycles(1)
    assert back.inverters["pv1"].available
    assert back.state is ControlState.CONTROLLING


@covers("clock_jump")
async def test_wall_clock_jumps_do_not_decide_freshness(
    hass: HomeAssistant, entity_loop: EntityLoop
) -> None:
    await entity_loop.cycles(5)

    # Set forward an hour: the report made just before the jump carries the old time.
    entity_loop.reporting = False
    entity_loop.report(timestamp=time.time() - 3600.0)
    snapshots = await entity_loop.cycles(1)
    assert snapshots[0].meter_error is None, snapshots[0].meter_error
    entity_loop.reporting = True
    assert set(_states(await entity_loop.cycles(3))) == {ControlState.CONTROLLING}

    # Set back an hour, then the sensor freezes: its last report looks an hour ahead.
    entity_loop.reporting = False
    entity_loop.report(timestamp=time.time() + 3600.0)
    snapshots = await entity_loop.cycles(5)
    assert _states(snapshots)[:2] == [ControlState.CONTROLLING] * 2
    assert snapshots[-1].state is ControlState.FAIL_SAFE
    assert "has not been reported for" in (snapshots[-1].meter_error or "")
    entity_loop.reporting = True
    assert _states(await entity_loop.cycles(1)) == [ControlState.CONTROLLING]
