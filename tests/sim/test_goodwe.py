"""The simulated GoodWe ET inverter, read and limited with the component's own GoodWe client.

Real UDP on loopback (port 8899 at a 127.x.y.z address per inverter); simulated time moves
only when a test advances it.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_socket  # type: ignore[import-untyped,unused-ignore]  # typed from 0.8

from custom_components.dynamic_export.core.errors import (
    DeviceResponseError,
    DeviceUnavailableError,
)
from custom_components.dynamic_export.core.measurements import InverterCommand
from custom_components.dynamic_export.goodwe_inverter.client import (
    EXPORT_ENABLED,
    EXPORT_LIMIT,
    GoodWeEtClient,
)
from custom_components.dynamic_export.goodwe_inverter.errors import NoGoodWeMeterError
from custom_components.dynamic_export.goodwe_inverter.inverter import GoodWeInverter
from custom_components.dynamic_export.sim import goodwe as sim_goodwe
from custom_components.dynamic_export.sim.families import FamilyOptions
from custom_components.dynamic_export.sim.goodwe import GoodWeEndpoint, GoodWeUnit, crc16
from custom_components.dynamic_export.sim.scenario import Scenario
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

TIMEOUT_S = 0.3
LOAD_W = 600.0


def allow_loopback_range(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let sockets connect to all of 127/8: the HA test plugin allows 127.0.0.1 only.

    The simulated GoodWe inverters listen on their own 127.x.y.z (port 8899 is fixed), and the
    library connects its UDP socket there. Anything else still goes through the plugin's guard.
    """
    guarded = socket.socket.connect
    true_connect = getattr(pytest_socket, "_true_connect", guarded)

    def connect(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else None
        if isinstance(host, str) and host.startswith("127."):
            return true_connect(sock, address)
        return guarded(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(autouse=True)
def _loopback_range(monkeypatch: pytest.MonkeyPatch) -> None:
    allow_loopback_range(monkeypatch)


def _scenario(count: int, pv_each_w: float, events: list[dict[str, Any]] | None = None) -> Scenario:
    return Scenario.from_dict(
        {
            "duration_s": 3600,
            "inverters": [{"rating_w": 5000, "family": "goodwe"} for _ in range(count)],
            "pv_available_w": count * pv_each_w,
            "load_w": LOAD_W,
            "events": events or [],
        },
        name="goodwe",
    )


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., Any]]:
    """Start simulated sites; all stop after the test, then goodwe 0.3's retry timers end."""
    started: list[SimulatedSiteServer] = []

    async def _start(scenario: Scenario, **kwargs: Any) -> SimulatedSiteServer:
        server = SimulatedSiteServer(scenario, autostep=False, **kwargs)
        await server.start()
        started.append(server)
        return server

    yield _start
    for server in started:
        await server.stop()
    await asyncio.sleep(TIMEOUT_S + 0.05)  # the library's timers only close its sockets


def _client(server: SimulatedSiteServer, unit_id: int = 1) -> GoodWeEtClient:
    return GoodWeEtClient(server.goodwe_hosts[unit_id], timeout_s=TIMEOUT_S)


def _unit(server: SimulatedSiteServer, unit_id: int = 1) -> GoodWeUnit:
    unit = server.vendor_units[unit_id]
    assert isinstance(unit, GoodWeUnit)
    return unit


async def test_reads_identity_output_and_its_meter(servers: Callable[..., Any]) -> None:
    """Identity from the device info; output and export at its meter as the site has them."""
    server = await servers(_scenario(2, 3000.0))
    hosts = server.goodwe_hosts
    assert sorted(hosts) == [1, 2]
    assert len(set(hosts.values())) == 2  # one loopback address each
    assert all(h.startswith("127.") and h != "127.0.0.1" for h in hosts.values())
    assert server.device_units == [("goodwe", 1), ("goodwe", 2)]
    server.advance(5.0)
    client = _client(server, 2)
    info = await client.async_identify()
    assert info.serial_number == _unit(server, 2).serial
    assert info.model_name == "GW5K-ET"
    assert info.rated_power_w == 5000.0
    runtime = await client.async_runtime()
    site = server.site
    assert runtime.meter_ok
    assert runtime.ac_power_w == pytest.approx(site.inverters[1].output_w, abs=1.0)
    assert runtime.export_w == pytest.approx(-site.meter.reported_power_w, abs=1.0)
    assert runtime.export_w == pytest.approx(6000.0 - LOAD_W, abs=20.0)
    assert runtime.lifetime_energy_wh is not None
    assert runtime.lifetime_energy_wh > 1_000_000
    assert await client.async_read_setting(EXPORT_ENABLED) == 0
    # A live inverter's clock moves with the site's, and it says what its panels give: what
    # the client's frozen-data checks watch.
    assert runtime.pv_power_w == pytest.approx(runtime.ac_power_w, abs=1.0)
    server.advance(2.0)
    later = await client.async_runtime()
    assert later.inverter_time is not None
    assert runtime.inverter_time is not None
    assert (later.inverter_time - runtime.inverter_time).total_seconds() == pytest.approx(
        2.0, abs=1.0
    )


async def test_export_limit_holds_export_at_its_meter_through_load_steps(
    servers: Callable[..., Any],
) -> None:
    """Two inverters, both limited to 1000 W: export settles there whatever the load does."""
    events = [
        {"t": 30.0, "type": "load_step", "delta_w": 2000.0},
        {"t": 60.0, "type": "load_step", "delta_w": -2300.0},
    ]
    server = await servers(_scenario(2, 3000.0, events))
    for unit_id in (1, 2):
        client = _client(server, unit_id)
        await client.async_write_setting(EXPORT_LIMIT, 1000)
        await client.async_write_setting(EXPORT_ENABLED, 1)
    site = server.site
    for until, load in ((29.0, LOAD_W), (59.0, LOAD_W + 2000.0), (90.0, LOAD_W - 300.0)):
        server.advance(until - 10.0 - site.now)
        worst = 0.0
        for _ in range(100):  # the last 10 s before the next step: steady at the limit
            server.advance(0.1)
            worst = max(worst, abs(site.export_w - 1000.0))
        assert worst < 15.0, (until, site.status_line())
        assert site.load_w == pytest.approx(load)
        first, second = (inv.output_w for inv in site.inverters)
        assert first == pytest.approx(second, rel=0.05)  # the same rating: the same share
    assert _unit(server, 1).flash_writes == 2
    assert server.write_requests[1] == 2


async def test_component_client_limits_the_simulated_inverter(
    servers: Callable[..., Any],
) -> None:
    """GoodWeInverter's translation reaches the device: generation settles at the command."""
    server = await servers(_scenario(1, 4000.0))
    site = server.site
    server.advance(5.0)
    inverter = GoodWeInverter(_client(server), clock=lambda: site.now)
    await inverter.async_setup()
    reading = await inverter.async_read()
    assert reading.limit_enabled is False
    assert reading.ac_power_w == pytest.approx(4000.0, abs=5.0)
    await inverter.async_apply(InverterCommand(connect=True, limit_pct=50.0))
    unit = _unit(server)
    # 2500 W of generation is 2500 - 4000 + 3400 W of export.
    assert (unit.export_switch, unit.export_limit_w) == (1, 1900)
    assert inverter.baseline is not None
    assert inverter.baseline.enabled == 0
    server.advance(10.0)
    assert site.inverters[0].output_w == pytest.approx(2500.0, abs=15.0)
    assert site.export_w == pytest.approx(1900.0, abs=15.0)
    reading = await inverter.async_read()
    assert reading.limit_pct == 50.0
    assert reading.ac_power_w == pytest.approx(2500.0, abs=15.0)
    await inverter.async_apply(InverterCommand(connect=True, limit_pct=50.0))
    assert unit.flash_writes == 2  # the limit and the switch, once
    logged = [(unit_id, address, values) for _, unit_id, address, values in server.writes]
    assert (1, sim_goodwe.EXPORT_LIMIT, [1900]) in logged
    assert server.limit_write_pct(1, sim_goodwe.EXPORT_LIMIT, [1900]) == 38.0
    await inverter.async_release()
    assert (unit.export_switch, unit.export_limit_w) == (0, 0)
    server.advance(10.0)
    assert site.inverters[0].output_w == pytest.approx(4000.0, abs=15.0)


async def test_export_limit_survives_a_restart_and_refuses_a_bad_switch(
    servers: Callable[..., Any],
) -> None:
    """A restart starts the output from zero and keeps the settings; no flash write for it."""
    server = await servers(_scenario(1, 4000.0))
    site = server.site
    client = _client(server)
    await client.async_write_setting(EXPORT_LIMIT, 500)
    await client.async_write_setting(EXPORT_ENABLED, 1)
    await client.async_write_setting(EXPORT_ENABLED, 1)  # the same value: no flash write
    unit = _unit(server)
    assert unit.flash_writes == 2
    server.advance(10.0)
    assert site.export_w == pytest.approx(500.0, abs=15.0)
    unit.restart(site)
    server.refresh()
    assert (await client.async_runtime()).ac_power_w == 0.0
    assert await client.async_read_setting(EXPORT_ENABLED) == 1
    assert await client.async_read_setting(EXPORT_LIMIT) == 500
    server.advance(10.0)
    assert site.export_w == pytest.approx(500.0, abs=15.0)
    assert (unit.restarts, unit.flash_writes) == (1, 2)
    with pytest.raises(DeviceResponseError):
        await client.async_write_setting(EXPORT_ENABLED, 2)
    assert (unit.export_switch, unit.flash_writes) == (1, 2)


async def test_silent_meter_and_offline_inverter(servers: Callable[..., Any]) -> None:
    """A silent meter makes the component's client refuse it; an offline one times out."""
    server = await servers(_scenario(1, 4000.0))
    site = server.site
    unit = _unit(server)
    unit.set_export_limit(switch=1, limit_w=1000)
    server.advance(10.0)
    held = site.inverters[0].output_w
    assert held == pytest.approx(1600.0, abs=15.0)
    unit.meter_ok = False
    server.refresh()
    inverter = GoodWeInverter(_client(server), clock=lambda: site.now)
    with pytest.raises(NoGoodWeMeterError):
        await inverter.async_read()
    server.advance(10.0)
    assert site.inverters[0].output_w == pytest.approx(held, abs=1.0)  # the ceiling stays
    server.set_unit_offline(1)
    with pytest.raises(DeviceUnavailableError):
        await _client(server).async_runtime()
    server.set_unit_offline(1, False)
    assert (await _client(server).async_runtime()).meter_ok is False


async def test_addresses_from_a_prefix(servers: Callable[..., Any]) -> None:
    """``goodwe_prefix`` gives inverter n the address <prefix>.n (the CLI's fixed addresses)."""
    prefix = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
    server = await servers(_scenario(2, 3000.0), family_options=FamilyOptions(goodwe_prefix=prefix))
    assert server.goodwe_hosts == {1: f"{prefix}.1", 2: f"{prefix}.2"}
    assert (await _client(server, 2).async_identify()).rated_power_w == 5000.0
    with pytest.raises(ValueError, match="loopback"):
        sim_goodwe.goodwe_host("10.0.0", 0)


def test_frames_for_another_address_or_with_a_bad_crc_are_not_answered() -> None:
    """As on the bus: only 0xF7 and a good CRC get an answer, framed AA 55 … CRC."""
    seen: list[tuple[int, bytes]] = []

    def handler(unit_id: int, pdu: bytes) -> bytes:
        seen.append((unit_id, pdu))
        return bytes((3, 2, 0x12, 0x34))

    scenario = _scenario(1, 1000.0)
    site_server = SimulatedSiteServer(scenario, autostep=False)
    endpoint = GoodWeEndpoint(_unit(site_server), handler, lambda: None)
    body = bytes((0xF7, 3)) + (35138).to_bytes(2, "big") + (1).to_bytes(2, "big")
    frame = body + crc16(body)
    answer = endpoint.answer(frame)
    assert answer == b"\xaa\x55\xf7\x03\x02\x12\x34" + crc16(b"\xf7\x03\x02\x12\x34")
    assert seen == [(1, frame[1:-2])]
    other = bytes((0x11,)) + body[1:]
    assert endpoint.answer(other + crc16(other)) is None
    assert endpoint.answer(body + b"\x00\x00") is None
    assert endpoint.answer(b"\xaa\x55" + frame) is None
    assert len(seen) == 1
