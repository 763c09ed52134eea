"""The GoodWe client through the real ``goodwe`` library against the simulated ET inverter.

Nothing of the library is mocked: every read and write is a Modbus frame in a UDP datagram
to the peer on a loopback address, port 8899, answered as the inverter would.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from custom_components.dynamic_export.core.capability import site_capability
from custom_components.dynamic_export.core.controls import ControlType
from custom_components.dynamic_export.core.errors import DeviceUnavailableError
from custom_components.dynamic_export.core.measurements import InverterCommand
from custom_components.dynamic_export.goodwe_inverter.client import GoodWeEtClient
from custom_components.dynamic_export.goodwe_inverter.errors import (
    NoGoodWeMeterError,
    NotGoodWeEtError,
)
from custom_components.dynamic_export.goodwe_inverter.inverter import (
    REWRITE_AFTER_S,
    SETTINGS_MAX_AGE_S,
    Baseline,
    GoodWeInverter,
)
from custom_components.dynamic_export.goodwe_inverter.probe import async_probe

from .conftest import JumpClock, client_of, library_timers_done
from .peer import (
    DEVICE_INFO,
    EXPORT_LIMIT,
    EXPORT_SWITCH,
    METER_COMM_STATUS,
    MODEL,
    SERIAL,
    GoodWeEtPeer,
)

type MakePeer = Callable[..., Any]
type MakeInverter = Callable[..., GoodWeInverter]


def command(pct: float, connect: bool = True) -> InverterCommand:
    return InverterCommand(connect=connect, limit_pct=pct)


def settings_written(peer: GoodWeEtPeer) -> list[tuple[int, int]]:
    return [(r.address, r.value) for r in peer.limit_writes()]


@pytest.mark.parametrize(("switch", "own"), [(0, None), (1, 3000)])
async def test_probe_reads_identity_and_settings_and_writes_nothing(
    make_peer: MakePeer, switch: int, own: int | None
) -> None:
    peer = await make_peer(export_switch=switch, export_limit_w=3000)
    probe = await async_probe(client_of(peer))
    assert probe.info.serial_number == SERIAL
    assert probe.info.model_name == MODEL
    assert probe.info.rated_power_w == 5000.0
    assert probe.own_export_limit_w == own
    assert not peer.limit_writes()
    assert all(r.address != 0 for r in peer.requests)


async def test_probe_refusals(make_peer: MakePeer) -> None:
    no_meter = await make_peer(meter_ok=False)
    with pytest.raises(NoGoodWeMeterError):
        await async_probe(client_of(no_meter))
    stranger = await make_peer()
    stranger.exceptions[DEVICE_INFO] = 2  # no ET device info block: another family
    with pytest.raises(NotGoodWeEtError):
        await async_probe(client_of(stranger))
    silent = await make_peer()
    await silent.stop()  # nothing listens there any more
    started = time.monotonic()
    with pytest.raises(DeviceUnavailableError):
        await async_probe(client_of(silent, timeout_s=0.2, retries=1))
    assert time.monotonic() - started < 0.2 * 2 + 1.0  # the deadline bounds the retries
    assert not no_meter.limit_writes()
    assert not stranger.limit_writes()


async def test_read_reports_output_energy_and_the_limit_in_force(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(export_switch=1, export_limit_w=1000, load_w=800.0)
    inverter = make_inverter(peer)
    reading = await inverter.async_read()
    # Held at 1000 W of export with an 800 W load: 1800 W of the 4000 W the panels give.
    assert reading.ac_power_w == 1800.0
    assert reading.rated_power_w == 5000.0
    assert reading.lifetime_energy_wh == pytest.approx(12_345_600.0)
    assert reading.limit_enabled is True
    # The installer's limit, translated back: 1000 W export + 800 W load = 36 % of 5 kW.
    assert reading.limit_pct == pytest.approx(36.0)
    off = await make_peer()
    reading = await make_inverter(off).async_read()
    assert (reading.limit_enabled, reading.limit_pct) == (False, None)
    assert not peer.limit_writes()
    assert not off.limit_writes()


async def test_apply_writes_only_what_changes(
    make_peer: MakePeer, make_inverter: MakeInverter, clock: JumpClock
) -> None:
    peer = await make_peer(load_w=500.0)  # 4000 W out, 3500 W exported, no limit set
    kept: list[Baseline | None] = []
    inverter = make_inverter(peer, on_baseline=kept.append)
    await inverter.async_read()
    await inverter.async_apply(command(40.0))  # 2000 W: export 2000 - 4000 + 3500 = 1500 W
    assert settings_written(peer) == [(EXPORT_LIMIT, 1500), (EXPORT_SWITCH, 1)]  # limit first
    assert kept == [Baseline(0, 0)]
    assert peer.ceiling_w() == 2000.0

    reading = await inverter.async_read()
    assert (reading.ac_power_w, reading.limit_pct) == (2000.0, 40.0)
    for pct in (40.0, 40.5, 39.5, 40.2):  # within a step of what is held: nothing is written
        await inverter.async_apply(command(pct))
    assert len(peer.limit_writes()) == 2

    await inverter.async_apply(command(42.0))  # 2100 W: 1600 W of export, a step above
    assert settings_written(peer)[2:] == [(EXPORT_LIMIT, 1600)]
    await inverter.async_apply(command(39.0))  # 1950 W: 1450 W, a fall is written at once
    assert settings_written(peer)[3:] == [(EXPORT_LIMIT, 1450)]
    assert peer.flash_writes == 4  # every write changed the setting
    assert kept == [Baseline(0, 0)]  # the baseline is taken once

    # Someone sets another limit in the app: seen at the next settings read, written back.
    peer.registers[EXPORT_LIMIT] = 4000
    clock.jump(SETTINGS_MAX_AGE_S + 1)
    reading = await inverter.async_read()
    assert reading.limit_pct == pytest.approx((4000 + 1950 - 1450) / 50)  # drift, translated
    await inverter.async_apply(command(39.0))
    assert settings_written(peer)[-1] == (EXPORT_LIMIT, 1450)


async def test_a_value_is_not_rewritten_within_a_minute(
    make_peer: MakePeer, make_inverter: MakeInverter, clock: JumpClock
) -> None:
    """An inverter that ignores a write is not written every cycle (each may wear flash)."""
    peer = await make_peer(load_w=500.0)
    inverter = make_inverter(peer)
    await inverter.async_read()
    await inverter.async_apply(command(40.0))
    peer.registers[EXPORT_LIMIT] = 3000  # it did not keep the value
    clock.jump(SETTINGS_MAX_AGE_S + 1)
    await inverter.async_read()
    await inverter.async_apply(command(40.0))
    assert [w for w in settings_written(peer) if w[0] == EXPORT_LIMIT] == [(EXPORT_LIMIT, 1500)]
    clock.jump(REWRITE_AFTER_S)
    await inverter.async_read()
    await inverter.async_apply(command(40.0))
    assert settings_written(peer)[-1][0] == EXPORT_LIMIT


async def test_the_installers_limit_is_a_ceiling_and_comes_back_at_full_power(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(export_switch=1, export_limit_w=2000, load_w=500.0)
    inverter = make_inverter(peer)
    await inverter.async_read()  # 2500 W out, 2000 W exported
    await inverter.async_apply(command(99.0))  # would be 4950 - 2500 + 2000 = 4450 W
    assert not peer.limit_writes()  # held at the installer's 2000 W: nothing to change
    await inverter.async_apply(command(30.0))  # 1500 W: 1000 W of export
    assert settings_written(peer) == [(EXPORT_LIMIT, 1000)]  # the switch is already on
    await inverter.async_apply(command(100.0))
    assert settings_written(peer)[1:] == [(EXPORT_LIMIT, 2000)]
    assert inverter.baseline == Baseline(1, 2000)


async def test_disconnect_is_zero_export(make_peer: MakePeer, make_inverter: MakeInverter) -> None:
    peer = await make_peer(load_w=700.0)
    inverter = make_inverter(peer)
    assert (inverter.supports_connect, inverter.limits_generation) == (False, False)
    await inverter.async_read()
    await inverter.async_apply(command(80.0, connect=False))
    assert (peer.export_switch, peer.export_limit_w) == (1, 0)
    assert peer.ceiling_w() == 700.0  # generation covers the load, nothing leaves the site


async def test_a_silent_meter_makes_the_inverter_unavailable(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    """Its export limit follows its meter: without the meter nothing holds export."""
    peer = await make_peer()
    inverter = make_inverter(peer)
    await inverter.async_read()
    peer.registers[METER_COMM_STATUS] = 0
    with pytest.raises(NoGoodWeMeterError):
        await inverter.async_read()
    with pytest.raises(NoGoodWeMeterError):
        await inverter.async_apply(command(40.0))  # nothing is written on stale numbers
    assert not peer.limit_writes()
    peer.registers[METER_COMM_STATUS] = 1
    await inverter.async_read()
    await inverter.async_apply(command(40.0))
    assert peer.export_switch == 1


@pytest.mark.parametrize("bad", [math.nan, math.inf, True, "50"])
async def test_bad_commands_are_refused_before_anything_is_sent(
    make_peer: MakePeer, make_inverter: MakeInverter, bad: Any
) -> None:
    peer = await make_peer()
    inverter = make_inverter(peer)
    with pytest.raises((TypeError, ValueError)):
        await inverter.async_apply(InverterCommand(connect=True, limit_pct=bad))
    assert not peer.requests


async def test_release_restores_the_installers_settings(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(export_switch=0, export_limit_w=6000)
    kept: list[Baseline | None] = []
    inverter = make_inverter(peer, on_baseline=kept.append)
    await inverter.async_release()  # never limited: nothing to hand back
    assert not peer.limit_writes()
    await inverter.async_read()
    await inverter.async_apply(command(20.0))
    await inverter.async_release()
    assert (peer.export_switch, peer.export_limit_w) == (0, 6000)
    assert kept == [Baseline(0, 6000), None]
    assert inverter.baseline is None


async def test_after_a_crash_the_stored_baseline_is_what_release_restores(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    """The inverter still holds our limit; only the stored baseline knows the installer's."""
    peer = await make_peer(export_switch=1, export_limit_w=900)  # our limit, left in force
    inverter = make_inverter(peer, baseline=Baseline(1, 3000))
    await inverter.async_read()
    await inverter.async_apply(command(100.0))  # no limit asked: the installer's 3000 W
    assert settings_written(peer) == [(EXPORT_LIMIT, 3000)]
    await inverter.async_apply(command(10.0))
    await inverter.async_release()
    assert (peer.export_switch, peer.export_limit_w) == (1, 3000)


async def test_lost_answers_are_retried_and_a_silent_inverter_is_unavailable(
    make_peer: MakePeer,
) -> None:
    peer = await make_peer()
    client = client_of(peer, retries=2)
    await client.async_identify()
    peer.drop = 1  # UDP lost one answer: the library asks again
    runtime = await client.async_runtime()
    assert runtime.meter_ok
    peer.drop = 100
    started = time.monotonic()
    with pytest.raises(DeviceUnavailableError):
        await client.async_runtime()
    assert time.monotonic() - started < 3 * 0.3 + 1.0


async def test_the_library_does_not_block_the_event_loop(make_peer: MakePeer) -> None:
    """A slow answer is awaited, not waited for: a ticker keeps running meanwhile."""
    peer = await make_peer()
    client = GoodWeEtClient(peer.host, timeout_s=1.0, retries=0)
    await client.async_identify()
    peer.reply_delay_s = 0.5
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        await client.async_runtime()  # two requests, each answered 0.5 s late
    finally:
        task.cancel()
    assert time.monotonic() - started >= 1.0
    assert len(gaps) > 50
    assert max(gaps) < 0.25, max(gaps)
    await library_timers_done(1.0)


async def test_a_site_with_a_goodwe_claims_no_generation_limit(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer()
    capability = site_capability(
        meter=object(),  # type: ignore[arg-type]
        inverters={"gw": make_inverter(peer)},
        ratings={"gw": 5000.0},
    )
    assert ControlType.GENERATION_LIMIT not in capability.controls
    assert ControlType.EXPORT_LIMIT in capability.controls
