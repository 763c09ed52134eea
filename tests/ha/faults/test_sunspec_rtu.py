"""Fault matrix, SunSpec over RS-485: the simulated site answers Modbus RTU on a pty.

The peer is :class:`~tests.ha.peers.RtuBridge`: the simulated site's meter (unit 240) and
inverters (units 1, 2) on one serial line behind a symlinked port that can be unplugged. RTU
frames carry no transaction id and the line is half duplex, so the faults that differ from
Modbus TCP are a late answer (it could pass for the answer to the next request) and a USB
adapter pulled out. Home Assistant tests run the whole integration in real time; the others
run the real clients and control loop in lock-step with the site on a fake clock
(:class:`~tests.ha.faults.test_sunspec_tcp.LockStep`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant

from custom_components.dynamic_export.core.controller import ControlState, FailSafeReason
from custom_components.dynamic_export.core.errors import DeviceUnavailableError
from custom_components.dynamic_export.sim.server import SimulatedSiteServer
from custom_components.dynamic_export.sunspec.connection import (
    DEFAULT_TIMEOUT_S,
    LATE_ANSWER_QUIET_S,
    ModbusSerialConnection,
    SerialSettings,
)
from custom_components.dynamic_export.sunspec.device import SunSpecDevice
from custom_components.dynamic_export.sunspec.meter import SunSpecMeter

from ..helpers import STEADY_SITE, wait_for
from ..peers import RtuBridge
from ..sites import limiter_subentry, rtu_inverter, rtu_meter, setup_site, site_entry
from .matrix import Outcome, covers
from .test_sunspec_tcp import (
    CYCLE_S,
    EXPORT_LIMIT,
    GENERATION_LIMIT,
    METER_AGE_S,
    ONE_KW_IMPORT,
    SLACK_S,
    TOLERANCE,
    LockStep,
    _control_state,
    _controlling,
    _key,
    _limit_writes,
    _logged,
    _state,
    _time,
    still_sim,
)

__all__ = ["still_sim"]  # a fixture of the SunSpec TCP tests, used here too

BUS_TIMEOUT_S = 0.3
SETTINGS = SerialSettings(baudrate=115200)

OUTCOMES: dict[str, Outcome] = {
    "timeout": Outcome(
        site_does=(
            "Meter silent: fail-safe, generation held at the export limit. Inverter silent: "
            "counted at its rating, the others stay controlled. After each timeout the line "
            "stays quiet for 0.5 s before the next request"
        ),
        how_fast=(
            "Meter: ≤ meter data maximum age + the 3 s timeout + 0.5 s + 1 cycle. Inverter: "
            "the cycle that times out"
        ),
        user_sees=(
            "Control state fail_safe (reason meter_unavailable); the device's sensors "
            "unavailable, its connection off with '<port> unit N: … no response in 3 s'; "
            "WARNING '… unavailable: …'"
        ),
    ),
    "exception": Outcome(
        site_does="As for no answer (meter → fail-safe, inverter → counted at its rating)",
        how_fast="Meter: ≤ meter data maximum age + 1 cycle. Inverter: the next cycle",
        user_sees=(
            "As for no answer, with the exception in the connection's error, e.g. 'Modbus "
            "exception 6 (server device busy)'"
        ),
    ),
    "disconnect_mid_write": Outcome(
        site_does=(
            "(Adapter unplugged as a write goes out.) The write counts as failed whether or "
            "not it took effect; every device on the port is unavailable while it is out "
            "(the meter's fail-safe applies once its data is older than the maximum age); "
            "the port is reopened by itself and the first cycle after that writes the limits "
            "again. Meter (read-only: unplugged during a read): that cycle holds the target"
        ),
        how_fast="Written again at the first cycle after the adapter is back",
        user_sees=(
            "WARNING '… does not take its limit: <port> unit N: writing …' and 'cannot connect to "
            "<port>' while it is out; INFO '… is back'"
        ),
    ),
    "slow_reply": Outcome(
        site_does=(
            "Below the 3 s timeout: control goes on. Above it: as no answer; the port stays "
            "closed 0.5 s after the timeout, so a late answer is dropped instead of passing "
            "for the reply to the next request (RTU frames carry no transaction id; an "
            "answer later than that cannot be told apart)"
        ),
        how_fast="Below: no effect. Above: as no answer",
        user_sees="Below: nothing. Above: as no answer",
    ),
    "gone_at_start": Outcome(
        site_does=(
            "(Adapter missing at start-up.) Meter: fail-safe from the first cycle. "
            "Inverters: counted at the rating stored when they were added, or as unlimited "
            "if none is known (as over TCP). The port is opened and the devices set up at "
            "the first cycle after it appears"
        ),
        how_fast="At start-up; control at the first cycle after the port is back",
        user_sees=(
            "Control state fail_safe (reason meter_unavailable); connections off with 'cannot "
            "connect to <port>'; WARNING '… is not ready …; will keep trying'"
        ),
    ),
    "back_after_an_hour": Outcome(
        site_does=(
            "The port is reopened by itself (no back-off to wait out) and the limits are "
            "written again"
        ),
        how_fast="The first cycle after the adapter is back",
        user_sees=("INFO '… is back' and 'Meter data is fresh again: normal control resumed'"),
    ),
    "frozen_data": Outcome(
        site_does=(
            "As over TCP. Meter: frozen values are caught by its energy counters; its data "
            "counts as old as their last move, so the site goes to fail-safe. Inverter: "
            "caught by its lifetime energy, then counted at its rating like one that does "
            "not answer. Counters that never moved since start-up, or update rarely, cannot "
            "be judged"
        ),
        how_fast=(
            "The first cycle once the counters have stood still ≥ 10 s and the power reading "
            "adds up to 3 counter steps + 10 Wh (1 Wh counters: 47 s at 1 kW)"
        ),
        user_sees=(
            "Meter: control state fail_safe (reason meter_stale), WARNING 'Site meter (unit "
            "N) values look frozen: …'. Inverter: sensors unavailable, connection off "
            "with '… values look frozen: …'"
        ),
    ),
    "restart_during_control": Outcome(
        site_does=(
            "The port is released at unload (it is opened exclusively) and reopened at "
            "set-up; the inverters keep the last limit (revert timer, 60 s) meanwhile and "
            "the first cycle writes it again"
        ),
        how_fast="Limit held throughout; rewritten at the first cycle",
        user_sees="Control state controlling again from the first cycle",
    ),
    "clock_jump": Outcome(
        site_does=(
            "Nothing changes: timeouts, meter freshness and revert-timer refreshes run on the "
            "monotonic clock"
        ),
        how_fast="No interruption",
        user_sees="Control state stays controlling",
    ),
}


def _site(bus: RtuBridge, *, generation_limit: float | None = None, **options: Any):
    limits: dict[str, float] = {"export_limit": EXPORT_LIMIT}
    if generation_limit is not None:
        limits["generation_limit"] = generation_limit
    return site_entry(
        [
            rtu_inverter(bus, 1),
            rtu_inverter(bus, 2),
            rtu_meter(bus),
            limiter_subentry("Export limit", **limits),
        ],
        **options,
    )


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.dynamic_export")


@pytest.fixture
async def line(still_sim: SimulatedSiteServer, tmp_path: Path) -> AsyncIterator[RtuBridge]:
    """The lock-step site's units on an RS-485 line."""
    bridge = RtuBridge(still_sim, tmp_path)
    yield bridge
    bridge.close()


@pytest.fixture
async def serial(line: RtuBridge) -> AsyncIterator[ModbusSerialConnection]:
    connection = ModbusSerialConnection(line.path, SETTINGS, timeout_s=BUS_TIMEOUT_S)
    yield connection
    await connection.close()


# --- no answer, error answers ----------------------------------------------------------------


@covers("timeout")
async def test_meter_silent_on_the_bus(
    hass: HomeAssistant,
    sim: SimulatedSiteServer,
    bus: RtuBridge,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await setup_site(hass, _site(bus, meter_max_age=METER_AGE_S))
    await _controlling(hass, sim)

    sim.set_unit_offline(sim.meter_unit_id, mode="timeout")
    took = await _time(lambda: _control_state(hass) == ControlState.FAIL_SAFE, 15, "fail-safe")
    assert took <= METER_AGE_S + DEFAULT_TIMEOUT_S + LATE_ANSWER_QUIET_S + CYCLE_S + SLACK_S
    assert _state(hass, "sensor.home_control_state").attributes["reason"] == (
        FailSafeReason.METER_UNAVAILABLE
    )
    error = _state(hass, "binary_sensor.rs_485_meter_connection").attributes["error"]
    assert "ttyRS485 unit 240" in error
    assert "no response in 3 s" in error
    assert _logged(caplog, logging.WARNING, "RS-485 meter unavailable:", "no response in 3 s")
    # The inverters on the same line go on answering.
    assert _state(hass, "binary_sensor.rs_485_inverter_1_connection").state == "on"
    await wait_for(lambda: sim.site.generation_w <= EXPORT_LIMIT + TOLERANCE, 5, "fail-safe level")

    sim.set_unit_offline(sim.meter_unit_id, False)
    await _time(
        lambda: _control_state(hass) == ControlState.CONTROLLING,
        DEFAULT_TIMEOUT_S + LATE_ANSWER_QUIET_S + CYCLE_S + SLACK_S,
        "recovery",
    )


@covers("exception")
async def test_busy_inverter_on_the_bus(
    hass: HomeAssistant,
    sim: SimulatedSiteServer,
    bus: RtuBridge,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = await setup_site(hass, _site(bus, generation_limit=GENERATION_LIMIT))
    await _controlling(hass, sim)
    coordinator = entry.runtime_data.coordinator

    sim.set_unit_offline(2, mode="busy")
    took = await _time(
        lambda: abs(coordinator.data.plan.generation_target_w - (GENERATION_LIMIT - 5000)) < 1,
        5,
        "the busy inverter counted at 5 kW",
    )
    assert took <= CYCLE_S + SLACK_S
    error = _state(hass, "binary_sensor.rs_485_inverter_2_connection").attributes["error"]
    assert "Modbus exception 6 (server device busy)" in error
    assert _logged(caplog, logging.WARNING, "unavailable:", "unit 2", "server device busy")
    assert _control_state(hass) == ControlState.CONTROLLING
    await wait_for(lambda: sim.site.inverters[0].output_w <= 1000 + TOLERANCE, 5, "inverter 1")

    sim.set_unit_offline(2, False)
    await wait_for(
        lambda: all(s.available for s in coordinator.data.inverters.values()),
        CYCLE_S + SLACK_S,
        "inverter 2 back",
    )


@covers("timeout", "exception")
@pytest.mark.parametrize(
    ("unit", "mode"), [("meter", "busy"), ("inverter", "timeout")], ids=["meter-busy", "inv-silent"]
)
@pytest.mark.parametrize("scenario_data", [STEADY_SITE])
async def test_the_other_unit_faults_in_the_loop(
    still_sim: SimulatedSiteServer,
    serial: ModbusSerialConnection,
    unit: str,
    mode: str,
    scenario_data: dict[str, Any],
) -> None:
    """Meter busy: fail-safe once its reading is older than 5 s. Inverter silent: counted at
    its rating from the cycle that times out; the line works on for the others."""
    site = LockStep(still_sim, serial, generation_limit=GENERATION_LIMIT)
    await site.cycles(5)
    unit_id = still_sim.meter_unit_id if unit == "meter" else 2
    still_sim.set_unit_offline(unit_id, mode=mode)  # type: ignore[arg-type]
    faulty = await site.cycles(7)
    if unit == "meter":
        assert [s.state for s in faulty] == [ControlState.CONTROLLING] * 5 + [
            ControlState.FAIL_SAFE
        ] * 2
        assert "Modbus exception 6 (server device busy)" in (faulty[0].meter_error or "")
        assert all(s.inverters["inverter 1"].available for s in faulty)
    else:
        assert all(not s.inverters["inverter 2"].available for s in faulty)
        assert "no response in 0.3 s" in (faulty[0].inverters["inverter 2"].error or "")
        assert all(s.state is ControlState.CONTROLLING for s in faulty)
        assert faulty[0].plan.generation_target_w == pytest.approx(GENERATION_LIMIT - 5000)
    still_sim.set_unit_offline(unit_id, False)
    back = await site.cycle()
    assert back.state is ControlState.CONTROLLING
    assert back.meter_error is None
    assert all(s.available for s in back.inverters.values())


# --- disconnect mid-write --------------------------------------------------------------------


@covers("disconnect_mid_write")
@pytest.mark.parametrize("applied", [False, True], ids=["write-lost", "write-applied"])
async def test_unplugged_as_a_write_goes_out(
    hass: HomeAssistant,
    sim: SimulatedSiteServer,
    bus: RtuBridge,
    caplog: pytest.LogCaptureFixture,
    *,
    applied: bool,
) -> None:
    entry = await setup_site(hass, _site(bus))
    await _controlling(hass, sim)

    bus.unplug_at_write[1] = applied
    await hass.services.async_call(
        "number",
        "set_value",
        {ATTR_ENTITY_ID: "number.export_limit", "value": 500},
        blocking=True,
    )
    await wait_for(lambda: not bus.plugged, 5, "the write that pulls the adapter")
    await wait_for(
        lambda: bool(_logged(caplog, logging.WARNING, "unit 1: writing")), 3, "the failed write"
    )
    await asyncio.sleep(1.5 * CYCLE_S)  # out for a cycle or two
    assert _logged(caplog, logging.WARNING, "cannot connect to", "ttyRS485")

    bus.plug_in()
    back_at = sim.site.now
    await wait_for(lambda: bool(_limit_writes(sim, 1, back_at)), 5, "the limit written again")
    assert _limit_writes(sim, 1, back_at)[0] - back_at <= CYCLE_S + SLACK_S
    await wait_for(lambda: sim.site.export_w <= 500 + TOLERANCE, 8, "export at the new limit")
    command = entry.runtime_data.loop.write_policy.last_command(_key(entry, "RS-485 inverter 1"))
    assert command is not None
    assert sim.site.inverters[0].limit_pct == pytest.approx(command.limit_pct, abs=0.01)
    assert _logged(caplog, logging.INFO, "is back")


@covers("disconnect_mid_write")
@pytest.mark.parametrize("scenario_data", [STEADY_SITE])
async def test_unplugged_as_the_meter_is_read(
    still_sim: SimulatedSiteServer,
    line: RtuBridge,
    serial: ModbusSerialConnection,
    scenario_data: dict[str, Any],
) -> None:
    """Read-only: the adapter goes while the meter's read is on the line."""
    site = LockStep(still_sim, serial)
    await site.cycles(5)
    line.reply_delay_s[still_sim.meter_unit_id] = 0.1
    cycle = asyncio.ensure_future(site.cycle())
    await asyncio.sleep(0.05)  # the meter's request is out, its answer not yet
    line.unplug()
    snapshot = await cycle
    assert snapshot.meter_error is not None
    assert "connection lost" in snapshot.meter_error
    assert snapshot.state is ControlState.CONTROLLING  # held on the last reading
    line.reply_delay_s.clear()
    line.plug_in()
    back = await site.cycle()
    assert back.meter_error is None
    assert back.state is ControlState.CONTROLLING


# --- slow replies ----------------------------------------------------------------------------


@covers("slow_reply")
async def test_a_late_answer_never_passes_for_the_next_one(
    still_sim: SimulatedSiteServer, line: RtuBridge, serial: ModbusSerialConnection
) -> None:
    """The meter answers 0.3 s after the client gave up, while the next request waits for
    its own answer: without the quiet time that late frame was taken as the next reply."""
    meter = SunSpecMeter(SunSpecDevice(serial, still_sim.meter_unit_id))
    await meter.async_setup()
    still_sim.freeze(still_sim.meter_unit_id)  # the test writes the meter's power itself
    image = still_sim.meter_unit.image
    image.set(203, "W", 1111)
    line.reply_delay_s[still_sim.meter_unit_id] = BUS_TIMEOUT_S + 0.3
    with pytest.raises(DeviceUnavailableError, match=r"no response in 0\.3 s"):
        await meter.async_read()
    image.set(203, "W", 2222)
    line.reply_delay_s[still_sim.meter_unit_id] = 0.2  # pending when the late frame lands
    readings = [await meter.async_read() for _ in range(3)]
    assert line.late_frames >= 2
    assert [r.grid_power_w for r in readings] == [2222.0, 2222.0, 2222.0]


@covers("slow_reply")
@pytest.mark.parametrize("scenario_data", [STEADY_SITE])
async def test_slow_replies_on_the_bus(
    still_sim: SimulatedSiteServer,
    line: RtuBridge,
    serial: ModbusSerialConnection,
    scenario_data: dict[str, Any],
) -> None:
    """Below the timeout every unit may answer slowly; above it the meter counts as silent."""
    site = LockStep(still_sim, serial)
    await site.cycles(3)
    line.reply_delay_s.update(dict.fromkeys((240, 1, 2), BUS_TIMEOUT_S / 2))
    slow = await site.cycles(5)
    assert all(s.state is ControlState.CONTROLLING and s.meter_error is None for s in slow)
    assert all(all(i.available for i in s.inverters.values()) for s in slow)
    assert still_sim.site.export_w <= EXPORT_LIMIT + TOLERANCE

    line.reply_delay_s = {240: BUS_TIMEOUT_S + 0.2}
    too_slow = await site.cycles(7)
    assert [s.state for s in too_slow] == [ControlState.CONTROLLING] * 5 + [
        ControlState.FAIL_SAFE
    ] * 2
    assert all(all(i.available for i in s.inverters.values()) for s in too_slow)
    line.reply_delay_s = {}
    back = await site.cycle()
    assert back.state is ControlState.CONTROLLING
    assert back.meter is not None
    reported = still_sim.site.meter.reported_power_w
    assert back.meter.grid_power_w == pytest.approx(reported, abs=1)


# --- gone at start ---------------------------------------------------------------------------


@covers("gone_at_start")
async def test_adapter_missing_at_start(
    hass: HomeAssistant,
    sim: SimulatedSiteServer,
    bus: RtuBridge,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus.unplug()
    entry = await setup_site(hass, _site(bus))
    coordinator = entry.runtime_data.coordinator
    assert _control_state(hass) == ControlState.FAIL_SAFE  # from the first cycle
    assert _state(hass, "sensor.home_control_state").attributes["reason"] == (
        FailSafeReason.METER_UNAVAILABLE
    )
    assert coordinator.data.plan.generation_target_w == 0.0  # ratings never known
    error = _state(hass, "binary_sensor.rs_485_inverter_1_connection").attributes["error"]
    assert "cannot connect to" in error
    assert "counted as unlimited" in error
    assert _logged(caplog, logging.WARNING, "is not ready", "will keep trying")

    bus.plug_in()
    took = await _time(lambda: _control_state(hass) == ControlState.CONTROLLING, 5, "the bus")
    assert took <= CYCLE_S + LATE_ANSWER_QUIET_S + SLACK_S
    assert all(s.available for s in coordinator.data.inverters.values())
    await _controlling(hass, sim)


# --- back after an hour ----------------------------------------------------------------------


@covers("back_after_an_hour")
@pytest.mark.parametrize("scenario_data", [STEADY_SITE])
async def test_adapter_back_after_an_hour(
    still_sim: SimulatedSiteServer,
    line: RtuBridge,
    serial: ModbusSerialConnection,
    caplog: pytest.LogCaptureFixture,
    scenario_data: dict[str, Any],
) -> None:
    site = LockStep(still_sim, serial)
    await site.cycles(5)
    line.unplug()
    still_sim.max_step_s = 300.0  # the physics are exact whatever the step
    gone = await site.cycles(12, dt=300.0)
    still_sim.max_step_s = 0.1
    assert all(s.state is ControlState.FAIL_SAFE for s in gone)
    assert all("cannot connect" in (s.meter_error or "") for s in gone[1:])
    assert not any(inv.limit_enabled for inv in still_sim.site.inverters)  # reverted

    line.plug_in()
    back = await site.cycle()
    assert back.state is ControlState.CONTROLLING
    assert all(status.available for status in back.inverters.values())
    assert back.writes == 2
    await site.cycles(3)
    assert still_sim.site.export_w <= EXPORT_LIMIT + TOLERANCE
    assert _logged(caplog, logging.INFO, "Meter data is fresh again")


# --- frozen data -----------------------------------------------------------------------------


@covers("frozen_data")
@pytest.mark.parametrize("scenario_data", [ONE_KW_IMPORT])
async def test_frozen_meter_on_the_bus(
    still_sim: SimulatedSiteServer,
    serial: ModbusSerialConnection,
    caplog: pytest.LogCaptureFixture,
    scenario_data: dict[str, Any],
) -> None:
    site = LockStep(still_sim, serial)
    assert all(s.state is ControlState.CONTROLLING for s in await site.cycles(30))
    still_sim.freeze(still_sim.meter_unit_id)
    frozen = await site.cycles(55)
    first = next(i for i, s in enumerate(frozen) if s.state is ControlState.FAIL_SAFE)
    assert 43 <= first + 1 <= 48
    assert frozen[first].plan.fail_safe_reason is FailSafeReason.METER_STALE
    assert _logged(caplog, logging.WARNING, "Site meter (unit 240) values look frozen")
    still_sim.freeze(still_sim.meter_unit_id, False)
    assert (await site.cycle()).state is ControlState.CONTROLLING
    assert _logged(caplog, logging.INFO, "energy counters move again")


@covers("frozen_data")
@pytest.mark.parametrize("scenario_data", [STEADY_SITE])
async def test_frozen_inverter_on_the_bus(
    still_sim: SimulatedSiteServer,
    serial: ModbusSerialConnection,
    scenario_data: dict[str, Any],
) -> None:
    """Inverter 2 at 3 kW: its lifetime energy stands still 13 Wh (15.6 s) into the freeze."""
    site = LockStep(still_sim, serial, export_limit=None, generation_limit=GENERATION_LIMIT)
    await site.cycles(20)
    still_sim.freeze(2)
    frozen = await site.cycles(25)
    first = next(i for i, s in enumerate(frozen) if not s.inverters["inverter 2"].available)
    assert 14 <= first + 1 <= 18
    assert "values look frozen" in (frozen[first].inverters["inverter 2"].error or "")
    assert frozen[first].plan.generation_target_w == pytest.approx(GENERATION_LIMIT - 5000)


# --- HA restart while limiting ---------------------------------------------------------------


@covers("restart_during_control")
async def test_restart_while_limiting_on_the_bus(
    hass: HomeAssistant, sim: SimulatedSiteServer, bus: RtuBridge
) -> None:
    entry = await setup_site(hass, _site(bus))
    await _controlling(hass, sim)
    limits = [inv.limit_pct for inv in sim.site.inverters]

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    # The port is free again: another program could open it now.
    probe = ModbusSerialConnection(bus.path, SETTINGS, timeout_s=1.0)
    try:
        assert await probe.read_holding_registers(1, 40000, 2) == [0x5375, 0x6E53]
    finally:
        await probe.close()
    gap_from = sim.site.now
    while sim.site.now < gap_from + 2.0:  # Home Assistant away: the revert timer holds
        assert all(inv.limit_enabled for inv in sim.site.inverters)
        assert sim.site.export_w <= EXPORT_LIMIT + TOLERANCE
        await asyncio.sleep(0.1)
    assert [inv.limit_pct for inv in sim.site.inverters] == limits

    back_at = sim.site.now
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    for unit in (1, 2):
        writes = _limit_writes(sim, unit, back_at)
        assert writes, unit
        assert writes[0] - back_at <= CYCLE_S + SLACK_S
    assert _control_state(hass) == ControlState.CONTROLLING


# --- clock jump ------------------------------------------------------------------------------


@covers("clock_jump")
@pytest.mark.parametrize("scenario_data", [STEADY_SITE])
async def test_wall_clock_jumps_on_the_bus(
    still_sim: SimulatedSiteServer, serial: ModbusSerialConnection, scenario_data: dict[str, Any]
) -> None:
    """±1 h on the wall clock: every cycle controls, and the revert-timer refresh comes 30 s
    after the last write on the monotonic clock, not an hour early or late."""
    site = LockStep(still_sim, serial)
    await site.cycles(5)
    refreshes = []
    for jump in (timedelta(hours=1), timedelta(hours=-1), timedelta(0)):
        site.wall_offset = jump
        snapshots = await site.cycles(31)
        assert all(s.state is ControlState.CONTROLLING for s in snapshots)
        assert all(s.meter_error is None for s in snapshots)
        assert snapshots[-1].wall_time == site.wall()
        refreshes.append(sum(s.writes for s in snapshots))
    assert refreshes == [2, 2, 2]  # one refresh of both inverters per 30 s, whatever the time
    assert still_sim.site.export_w <= EXPORT_LIMIT + TOLERANCE
