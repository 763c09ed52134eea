"""Fault matrix: Hoymiles inverters behind OpenDTU (the fake DTU over HTTP on 127.0.0.1).

The site in Home Assistant: the DTU's two inverters (HM-800 and HMS-2000, 2.8 kW together),
one simulated 5 kW SunSpec inverter with the simulated meter, and a 4 kW generation limit.
While the DTU's inverters are unavailable they count at their rating, so the SunSpec
inverter is held at 4000 - 2800 = 1200 W: that is the action these tests watch. Faults
that need hours of clock run on the plain-Python control loop with fake clocks, the real
OpenDTU client and the real fake DTU.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from homeassistant.core import HomeAssistant

from custom_components.dynamic_export.const import DOMAIN
from custom_components.dynamic_export.core.controller import Controller, ControlState
from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.core.cycle import ControlLoop, CycleSnapshot
from custom_components.dynamic_export.core.measurements import MeterReading
from custom_components.dynamic_export.core.write_policy import WritePolicy
from custom_components.dynamic_export.opendtu.client import OpenDtuClient
from custom_components.dynamic_export.opendtu.inverter import OpenDtuInverter
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from ...core.fakes import FakeClock, RecordingLimiter
from ...opendtu.dtu import HM_SERIAL, HMS_SERIAL, PASSWORD, FakeDtu
from ..helpers import wait_for
from ..peers import DtuPeer, dtu_peer
from ..sites import (
    dtu_subentry,
    inverter_subentry,
    limiter_subentry,
    meter_subentry,
    setup_site,
    site_entry,
)
from .matrix import Outcome, covers

OUTCOMES: dict[str, Outcome] = {
    "timeout": Outcome(
        "Its inverters are unavailable and count at their rating (under a generation limit "
        "the other inverters are held lower); nothing is sent to them",
        "≤ 1 cycle after the 3 s request timeout; a DTU's later inverters after the 5 s "
        "device timeout (measured ≤ 8 s)",
        "binary_sensor.<inverter>_connection off, error 'no answer in 3 s' (or 'within 5 s'); "
        "its sensors unavailable; WARNING '… unavailable: OpenDTU …: no answer in 3 s'",
    ),
    "exception": Outcome(
        "HTTP 500 on a read: its inverters unavailable, counted at their rating. A refused "
        "limit (an error code, or HTTP 401 after the admin password was changed) is sent "
        "again every cycle until accepted; meanwhile the inverter keeps its previous limit "
        "and the other inverters get only what that leaves",
        "next cycle (measured ≤ 3 s); the limit lands ≤ 1 cycle after the DTU accepts again",
        "binary_sensor.<inverter>_connection off with the DTU's reason ('the DTU could not "
        "parse the command (code 1004)', 'the admin password was refused', 'HTTP 500'); "
        "WARNING '… unavailable: …' (a read) or '… does not take its limit: …' (a limit)",
    ),
    "disconnect_mid_write": Outcome(
        "The connection drops on POST /api/limit/config: whether the DTU took the limit is "
        "unknown, so the same limit is sent again",
        "next cycle (measured ≤ 2.5 s after the drop)",
        "WARNING '… does not take its limit: OpenDTU …: /api/limit/config: Server disconnected'",
    ),
    "slow_reply": Outcome(
        "Control goes on; the inverters of one DTU share one limit-status answer per cycle, "
        "so reading them takes one answer per inverter plus one",
        "no effect while that fits the 5 s device timeout (tested: 2 inverters at 1.3 s per "
        "answer); slower is a timeout",
        "nothing: connections stay on; cycles take longer",
    ),
    "gone_at_start": Outcome(
        "The site starts; the DTU's inverters are unavailable and count at their configured "
        "rating, or as unlimited if the DTU knew it at set-up (the other inverters then hold "
        "0 W under a generation limit); controlled once the DTU answers",
        "≤ 1 cycle after the DTU answers (measured ≤ 3 s)",
        "WARNING '<DTU> is not ready (…); will keep trying'; "
        "binary_sensor.<inverter>_connection off, error 'Cannot connect …'",
    ),
    "back_after_an_hour": Outcome(
        "Unavailable for the hour (counted at their rating); when the DTU answers again, a "
        "limit the inverters lost (they restarted) is written again",
        "first cycle after the DTU answers",
        "binary_sensor.<inverter>_connection off for the hour, then on; INFO '… is back'",
    ),
    "frozen_data": Outcome(
        "An inverter the DTU no longer hears (reachable false, or data_age over 60 s) is "
        "unavailable and counts at its rating",
        "next cycle (measured ≤ 3 s)",
        "binary_sensor.<inverter>_connection off, error 'not reachable by radio' or "
        "'the DTU's data is 75 s old'",
    ),
    "restart_during_control": Outcome(
        "The limit found before our first write is stored; after a restart control resumes, "
        "and handing back restores that stored limit, not our own one still in force",
        "limit written in the first cycle after start-up",
        "INFO 'Handed back to their own settings: …' when the site is unloaded",
    ),
    "clock_jump": Outcome(
        "Nothing: freshness comes from the DTU's data_age and acknowledgements are timed on "
        "the monotonic clock",
        "no effect (wall clock ±1 h)",
        "nothing",
    ),
}

GENERATION_LIMIT = 4000.0
DTU_RATING = 2800.0  # HM-800 + HMS-2000
HELD_AT = GENERATION_LIMIT - DTU_RATING
HM = "garage_hm_800"
HMS = "roof_hms_2000"
CONNECTIONS = (f"binary_sensor.{HM}_connection", f"binary_sensor.{HMS}_connection")


@pytest.fixture
async def dtu(socket_enabled: None) -> AsyncIterator[DtuPeer]:
    dtu = dtu_peer()
    dtu.ack_delay_s = 0.5
    await dtu.start()
    yield dtu
    dtu.delay_s = 0.0
    await dtu.stop()
    # Whatever a test did, nothing may ever ask for a persistent (EEPROM) limit.
    assert set(dtu.posted_types()) <= {0, 1}, dtu.posted_types()


def _site(dtu: DtuPeer, sim: SimulatedSiteServer) -> Any:
    return site_entry(
        [
            dtu_subentry(dtu),
            inverter_subentry(sim, 1),
            meter_subentry(sim),
            limiter_subentry("Generation", generation_limit=GENERATION_LIMIT),
        ]
    )


def _on(hass: HomeAssistant, entity_id: str) -> bool:
    state = hass.states.get(entity_id)
    return state is not None and state.state == "on"


def _error(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return str(state.attributes.get("error") or "")


def _target(entry: Any) -> float:
    snapshot: CycleSnapshot = entry.runtime_data.coordinator.data
    return snapshot.plan.generation_target_w


async def _controlling(hass: HomeAssistant) -> None:
    await wait_for(lambda: all(_on(hass, c) for c in CONNECTIONS), 8, "the DTU's inverters")
    await wait_for(
        lambda: hass.states.get("sensor.home_control_state").state == ControlState.CONTROLLING,
        5,
        "control",
    )


async def _held_for_the_dtu(entry: Any, sim: SimulatedSiteServer) -> None:
    """The SunSpec inverter is held so that the silent DTU's rating fits the limit."""
    await wait_for(lambda: _target(entry) <= HELD_AT + 1, 5, "target counting the DTU")
    await wait_for(
        lambda: sim.site.inverters[0].output_w <= HELD_AT + 50, 6, "SunSpec inverter held"
    )


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and text in r.getMessage()
    ]


def _posts(dtu: FakeDtu, serial: str | None = None) -> list[dict[str, Any]]:
    posted = [
        json.loads(form["data"])
        for method, path, form in dtu.requests
        if (method, path) == ("POST", "/api/limit/config") and "data" in form
    ]
    return [p for p in posted if serial is None or p.get("serial") == serial]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@covers("timeout")
async def test_dtu_that_stops_answering(
    hass: HomeAssistant,
    dtu: DtuPeer,
    sim: SimulatedSiteServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = _site(dtu, sim)
    await setup_site(hass, entry)
    await _controlling(hass)

    dtu.delay_s = 3.5  # beyond the client's 3 s timeout
    started = time.monotonic()
    await wait_for(lambda: not any(_on(hass, c) for c in CONNECTIONS), 10, "inverters down")
    assert time.monotonic() - started <= 8.0
    assert "no answer in 3 s" in _error(hass, CONNECTIONS[0])
    assert "no answer" in _error(hass, CONNECTIONS[1])
    assert hass.states.get(f"sensor.{HM}_ac_power").state == "unavailable"
    await _held_for_the_dtu(entry, sim)
    assert _warnings(caplog, "unavailable: OpenDTU 127.0.0.1: /api/livedata/status: no answer")
    assert entry.runtime_data.coordinator.last_update_success
    dtu.delay_s = 0.0


@covers("exception")
async def test_dtu_error_answers(
    hass: HomeAssistant,
    dtu: DtuPeer,
    sim: SimulatedSiteServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The DTU answers every limit with its error code 1004, from the very first one.
    refused = json.dumps({"type": "warning", "message": "Failed to parse data!", "code": 1004})
    dtu.overrides[("POST", "/api/limit/config")] = (200, refused)
    entry = _site(dtu, sim)
    await setup_site(hass, entry)
    await wait_for(
        lambda: "could not parse the command (code 1004)" in _error(hass, CONNECTIONS[0]),
        3,
        "the refusal shown",
    )
    assert not dtu.commands
    sent = len(_posts(dtu, HM_SERIAL))
    await asyncio.sleep(2.5)
    assert len(_posts(dtu, HM_SERIAL)) >= sent + 2  # sent again every cycle
    assert _warnings(caplog, "the DTU could not parse the command (code 1004)")

    # The admin password was changed on the DTU: reads are open, limits get HTTP 401.
    dtu.overrides.clear()
    dtu.password = "changed-on-the-dtu"
    await wait_for(
        lambda: "the admin password was refused" in _error(hass, CONNECTIONS[0]),
        3,
        "the 401 shown",
    )
    assert not dtu.commands
    dtu.password = PASSWORD
    started = time.monotonic()
    await wait_for(
        lambda: {c["serial"] for c in dtu.commands} == {HM_SERIAL, HMS_SERIAL},
        3,
        "limits taken",
    )
    assert time.monotonic() - started <= 2.5
    await _controlling(hass)

    # A server error on the readings: the inverters are unavailable and count at rating.
    dtu.overrides[("GET", "/api/livedata/status")] = (500, "")
    started = time.monotonic()
    await wait_for(lambda: not any(_on(hass, c) for c in CONNECTIONS), 4, "inverters down")
    assert time.monotonic() - started <= 3.0
    assert _error(hass, CONNECTIONS[0]).endswith("HTTP 500")
    await _held_for_the_dtu(entry, sim)
    dtu.overrides.clear()


@pytest.mark.parametrize("taken", [True, False], ids=["taken-then-dropped", "dropped-unread"])
@covers("disconnect_mid_write")
async def test_connection_drops_on_the_limit_command(
    hass: HomeAssistant,
    dtu: DtuPeer,
    sim: SimulatedSiteServer,
    caplog: pytest.LogCaptureFixture,
    *,
    taken: bool,
) -> None:
    drops = dtu.drops_after if taken else dtu.drops
    drops[("POST", "/api/limit/config")] = 1  # the very first limit command
    entry = _site(dtu, sim)
    await setup_site(hass, entry)
    await wait_for(lambda: drops[("POST", "/api/limit/config")] == 0, 3, "the drop")
    dropped_at = time.monotonic()
    (first, *_) = _posts(dtu)
    serial = first["serial"]
    await wait_for(lambda: len(_posts(dtu, serial)) >= 2, 3, "the limit sent again")
    assert time.monotonic() - dropped_at <= 2.5
    again = _posts(dtu, serial)[1]
    assert (again["limit_type"], again["limit_value"]) == (
        first["limit_type"],
        first["limit_value"],
    )
    # The DTU ends up holding it, acknowledged.
    accepted = [c for c in dtu.commands if c["serial"] == serial]
    assert len(accepted) == (2 if taken else 1)
    await wait_for(lambda: dtu.inverters[serial].limit_status == "Ok", 3, "acknowledged")
    assert _warnings(caplog, "/api/limit/config: Server disconnected")
    await _controlling(hass)


@covers("slow_reply")
async def test_slow_dtu_keeps_both_inverters(
    hass: HomeAssistant, dtu: DtuPeer, sim: SimulatedSiteServer
) -> None:
    entry = _site(dtu, sim)
    await setup_site(hass, entry)
    await _controlling(hass)
    reads = dtu.count("GET", "/api/livedata/status")
    dtu.delay_s = 1.3  # each answer; the client waits up to 3 s
    seen: list[tuple[bool, bool]] = []
    until = time.monotonic() + 9.0
    while time.monotonic() < until:
        seen.append((_on(hass, CONNECTIONS[0]), _on(hass, CONNECTIONS[1])))
        await asyncio.sleep(0.1)
    assert all(a and b for a, b in seen), [_error(hass, c) for c in CONNECTIONS]
    assert dtu.count("GET", "/api/livedata/status") >= reads + 2  # cycles went on
    assert hass.states.get("sensor.home_control_state").state == ControlState.CONTROLLING
    assert _target(entry) > HELD_AT + 100  # the DTU's inverters counted at their output
    dtu.delay_s = 0.0


@covers("gone_at_start")
async def test_dtu_down_when_home_assistant_starts(
    hass: HomeAssistant,
    dtu: DtuPeer,
    sim: SimulatedSiteServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await dtu.stop()
    dtu.port = _closed_port()
    entry = _site(dtu, sim)
    await setup_site(hass, entry)
    assert "is not ready" in caplog.text
    assert not any(_on(hass, c) for c in CONNECTIONS)
    assert "Cannot connect" in _error(hass, CONNECTIONS[0])
    await _held_for_the_dtu(entry, sim)

    await dtu.start()  # the DTU comes up at its address
    started = time.monotonic()
    await wait_for(lambda: all(_on(hass, c) for c in CONNECTIONS), 4, "inverters read")
    assert time.monotonic() - started <= 3.0
    await wait_for(
        lambda: {c["serial"] for c in dtu.commands} == {HM_SERIAL, HMS_SERIAL}, 3, "limited"
    )
    await wait_for(lambda: _target(entry) > HELD_AT + 100, 5, "the DTU counted at its output")


@covers("frozen_data")
async def test_dtu_that_no_longer_hears_its_inverters(
    hass: HomeAssistant, dtu: DtuPeer, sim: SimulatedSiteServer
) -> None:
    entry = _site(dtu, sim)
    await setup_site(hass, entry)
    await _controlling(hass)
    dtu.inverters[HM_SERIAL].data_age_ms = 75_000  # last heard 75 s ago
    dtu.inverters[HMS_SERIAL].reachable = False
    started = time.monotonic()
    await wait_for(lambda: not any(_on(hass, c) for c in CONNECTIONS), 4, "inverters down")
    assert time.monotonic() - started <= 3.0
    assert "the DTU's data is 75 s old" in _error(hass, CONNECTIONS[0])
    assert "not reachable by radio" in _error(hass, CONNECTIONS[1])
    await _held_for_the_dtu(entry, sim)

    dtu.inverters[HM_SERIAL].data_age_ms = 2300
    dtu.inverters[HMS_SERIAL].reachable = True
    await _controlling(hass)


@covers("restart_during_control")
async def test_restart_while_limiting_restores_the_stored_baseline(
    hass: HomeAssistant,
    dtu: DtuPeer,
    hass_storage: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Home Assistant stopped with our 10 % in force (it does not unload on stop)."""
    caplog.set_level(logging.INFO)
    dtu.inverters[HM_SERIAL].limit_relative = 10.0  # ours, from before the restart
    entry = site_entry(
        [dtu_subentry(dtu, (HM_SERIAL,)), limiter_subentry("Export limit", export_limit=0.0)]
    )
    (sub_id,) = [s.subentry_id for s in entry.subentries.values() if s.title.startswith("Open")]
    key = f"{sub_id}_{HM_SERIAL}"
    hass_storage[f"{DOMAIN}.{entry.entry_id}"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.{entry.entry_id}",
        "data": {"opendtu_baselines": {key: 80.0}},  # found before our first limit
    }
    await setup_site(hass, entry)  # no meter: fail-safe, the inverter at its 5 % minimum
    assert _posts(dtu, HM_SERIAL), "no limit in the first cycle"
    assert _posts(dtu, HM_SERIAL)[0]["limit_value"] == 40.0  # 5 % of 800 W
    await wait_for(lambda: dtu.inverters[HM_SERIAL].limit_relative == 5.0, 3, "limited")

    assert await hass.config_entries.async_unload(entry.entry_id)
    last = dtu.commands[-1]
    assert (last["serial"], last["limit_type"], last["limit_value"]) == (HM_SERIAL, 1, 80.0)
    stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"]
    assert stored["opendtu_baselines"] == {}
    assert "Handed back to their own settings" in caplog.text


# --- the plain-Python control loop, fake clocks, the real client and the fake DTU ----------

AVAILABLE = {HM_SERIAL: 750.0, HMS_SERIAL: 1800.0}
LOAD_W = 400.0
EXPORT_LIMIT = 800.0


class DtuSiteMeter:
    """The grid meter of a site whose generation is the DTU's inverters.

    Each inverter produces its sunlight up to the limit the DTU acknowledged (nothing while
    unreachable or switched off), so the loop sees its own writes take effect.
    """

    def __init__(self, dtu: FakeDtu, clock: Callable[[], float]) -> None:
        self.dtu = dtu
        self.clock = clock

    def generation_w(self) -> float:
        total = 0.0
        for serial, inverter in self.dtu.inverters.items():
            ceiling = inverter.max_power * min(inverter.limit_relative, 100.0) / 100.0
            up = inverter.powered and inverter.reachable
            inverter.ac_power = min(AVAILABLE[serial], ceiling) if up else 0.0
            total += inverter.ac_power
        return total

    async def async_read(self) -> MeterReading:
        return MeterReading(timestamp=self.clock(), grid_power_w=LOAD_W - self.generation_w())


class Wall:
    """A wall clock that can be set forward or back."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime(2025, 6, 1, 2, 0, tzinfo=UTC) + self.offset


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _core_site(
    session: aiohttp.ClientSession, clock: FakeClock, wall: Wall
) -> tuple[FakeDtu, ControlLoop, dict[str, OpenDtuInverter]]:
    dtu = FakeDtu(clock, ack_delay_s=2.0)
    await dtu.start()
    client = OpenDtuClient(session, "127.0.0.1", PASSWORD, port=dtu.port, clock=clock)
    inverters = {serial: OpenDtuInverter(client, serial, clock=clock) for serial in AVAILABLE}
    loop = ControlLoop(
        meter=DtuSiteMeter(dtu, clock),
        inverters=inverters,
        ratings={},
        limiters=[RecordingLimiter("fixed", Controls(export_limit=EXPORT_LIMIT))],
        controller=Controller(),
        write_policy=WritePolicy(),
        clock=clock,
        wall_clock=wall,
    )
    return dtu, loop, inverters


async def _cycles(loop: ControlLoop, clock: FakeClock, count: int, step_s: float = 1.0) -> Any:
    snapshot = None
    for _ in range(count):
        clock.advance(step_s)
        snapshot = await loop.async_run_cycle()
    return snapshot


def _export(dtu: FakeDtu) -> float:
    return DtuSiteMeter(dtu, time.monotonic).generation_w() - LOAD_W


@covers("back_after_an_hour")
async def test_dtu_back_after_an_hour(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock, wall = FakeClock(), Wall()
    dtu, loop, inverters = await _core_site(session, clock, wall)
    try:
        await _cycles(loop, clock, 20)
        assert abs(_export(dtu) - EXPORT_LIMIT) <= 60, _export(dtu)
        held = {s: inv.limit_relative for s, inv in dtu.inverters.items()}
        assert all(pct < 100 for pct in held.values()), held

        # New limits go out, and the DTU goes (power cut, Wi-Fi down) before acknowledging.
        dtu.ack_delay_s = 1e9
        loop.limiters[0].answer = Controls(export_limit=EXPORT_LIMIT - 300.0)  # type: ignore[attr-defined]
        posted = len(_posts(dtu))
        await _cycles(loop, clock, 1)
        assert len(_posts(dtu)) > posted
        assert all(inv.pending_limit.in_flight for inv in inverters.values())
        await dtu.stop()  # ... gone
        for _ in range(120):  # ... for an hour of 30 s cycles
            snapshot = await _cycles(loop, clock, 1, 30.0)
            assert not any(s.available for s in snapshot.inverters.values())
            assert snapshot.state is ControlState.CONTROLLING
        # Meanwhile the inverters restarted and run at their own 100 % again.
        for inverter in dtu.inverters.values():
            inverter.limit_relative, inverter.limit_status = 100.0, "Ok"
            inverter.ack_at = None
        dtu.ack_delay_s = 2.0
        loop.limiters[0].answer = Controls(export_limit=EXPORT_LIMIT)  # type: ignore[attr-defined]
        posted = len(_posts(dtu))
        await dtu.start()  # back, at the same address

        snapshot = await _cycles(loop, clock, 1)
        assert all(s.available for s in snapshot.inverters.values())
        assert {p["serial"] for p in _posts(dtu)[posted:]} == set(AVAILABLE)  # rewritten
        await _cycles(loop, clock, 5)
        assert abs(_export(dtu) - EXPORT_LIMIT) <= 60, _export(dtu)
        assert sum("is back" in r.getMessage() for r in caplog.records) == 2
    finally:
        await dtu.stop()


@covers("clock_jump")
async def test_wall_clock_jumps_change_nothing(session: aiohttp.ClientSession) -> None:
    clock, wall = FakeClock(), Wall()
    dtu, loop, inverters = await _core_site(session, clock, wall)
    try:
        await _cycles(loop, clock, 20)
        posted = len(_posts(dtu))
        for jump in (timedelta(hours=1), timedelta(hours=-1), timedelta(hours=-1)):
            wall.offset += jump
            snapshot = await _cycles(loop, clock, 5)
            assert all(s.available for s in snapshot.inverters.values())
        assert len(_posts(dtu)) == posted  # steady: nothing written again
        assert abs(_export(dtu) - EXPORT_LIMIT) <= 60

        # A limit sent across a jump is acknowledged on the monotonic clock as usual.
        dtu.inverters[HMS_SERIAL].limit_relative = 100.0  # someone else changed it
        await _cycles(loop, clock, 1)
        wall.offset += timedelta(hours=1)
        await _cycles(loop, clock, 3)
        assert inverters[HMS_SERIAL].pending_limit.outcome == "Ok"
        assert inverters[HMS_SERIAL].response_time_s is not None
        assert inverters[HMS_SERIAL].response_time_s <= 3.0
    finally:
        await dtu.stop()
