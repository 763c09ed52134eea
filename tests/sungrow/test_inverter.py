"""The Sungrow client against the simulated inverter over Modbus TCP on 127.0.0.1."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest

from custom_components.dynamic_export.core.errors import (
    DeviceError,
    DeviceResponseError,
    DeviceUnavailableError,
    InvalidDeviceDataError,
)
from custom_components.dynamic_export.core.measurements import InverterCommand
from custom_components.dynamic_export.core.write_policy import WritePolicy
from custom_components.dynamic_export.sungrow import registers as reg
from custom_components.dynamic_export.sungrow.errors import (
    NotSungrowError,
    PowerLimitUnsupportedError,
)
from custom_components.dynamic_export.sungrow.inverter import (
    REWRITE_AFTER_S,
    Baseline,
    SungrowInverter,
)
from custom_components.dynamic_export.sungrow.probe import async_probe
from custom_components.dynamic_export.sunspec.connection import ModbusTcpConnection

from .conftest import JumpClock
from .peer import (
    DEVICE_TYPE_DOC,
    OFF,
    ON,
    SG,
    SH,
    UNIT,
    SungrowPeer,
    at,
    words_u32,
)

type MakePeer = Callable[..., Any]
type MakeInverter = Callable[..., SungrowInverter]
type MakeConnection = Callable[..., ModbusTcpConnection]


def command(pct: float, connect: bool = True) -> InverterCommand:
    return InverterCommand(connect=connect, limit_pct=pct)


def settle(peer: SungrowPeer, seconds: float) -> None:
    clock = peer.clock
    assert isinstance(clock, JumpClock)
    clock.jump(seconds)
    peer.advance()


# -- encoding ---------------------------------------------------------------------------------


def test_doc_numbers_are_one_based_and_words_low_first() -> None:
    assert reg.wire(5008) == 5007
    assert reg.wire(13090) == 13089
    with pytest.raises(ValueError, match="outside"):
        reg.wire(0)
    assert reg.decode_u32(words_u32(70_000)) == 70_000
    assert reg.decode_u32([0x1170, 0x0001]) == 0x0001_1170  # low word first
    assert reg.decode_s32(words_u32(-1500)) == -1500
    with pytest.raises(ValueError, match="two 16-bit"):
        reg.decode_u32([1])


def test_family_from_device_type_code() -> None:
    assert reg.family_of(0x0E03) is reg.Family.SH  # SH10RT
    assert reg.family_of(0x0D06) is reg.Family.SH  # SH5K-20
    assert reg.family_of(0x2603) is reg.Family.SG
    assert reg.family_of(0) is None
    assert reg.family_of(0xFFFF) is None


@pytest.mark.parametrize(
    ("pct", "step", "raw"),
    [(47.9, 2.0, 460), (48.0, 2.0, 480), (100.0, 2.0, 1000), (150.0, 2.0, 1000),
     (-5.0, 2.0, 0), (33.33, 0.1, 333), (99.99, 1.0, 990)],
)  # fmt: skip
def test_ratio_is_clamped_and_rounded_down(pct: float, step: float, raw: int) -> None:
    assert reg.ratio_value(pct, step) == raw


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True, "50"])
def test_ratio_refuses_what_is_not_a_limit(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        reg.ratio_value(bad, 2.0)


# -- identity and reading ---------------------------------------------------------------------


@pytest.mark.parametrize("variant", [SG, SH], ids=["sg", "sh"])
async def test_setup_reads_identity_from_input_registers(
    make_peer: MakePeer, make_inverter: MakeInverter, variant: Any
) -> None:
    peer = await make_peer(variant)
    inverter = make_inverter(peer)
    info = await inverter.async_setup()
    assert info.family.value == variant.family
    assert info.serial_number == variant.serial
    assert info.rated_power_w == variant.nominal_tenth_kw * 100
    assert info.model == f"{variant.family.upper()} (0x{variant.device_type:04X})"
    assert inverter.revert_timeout_s == 0.0  # Sungrow holds the setting: no revert timer
    identity = [r for r in peer.requests if r.function == 4 and r.address == at(4990)]
    assert identity, "the identity is read with FC4 from doc 4990 (wire 4989)"
    assert not peer.writes(), "set-up writes nothing"


@pytest.mark.parametrize("variant", [SG, SH], ids=["sg", "sh"])
async def test_read_reports_output_energy_and_the_limit(
    make_peer: MakePeer, make_inverter: MakeInverter, variant: Any
) -> None:
    peer = await make_peer(variant, available_w=3000.0, switch=ON, ratio=800)
    inverter = make_inverter(peer)
    settle(peer, 20.0)
    reading = await inverter.async_read()
    assert reading.ac_power_w == pytest.approx(3000, abs=2)
    assert reading.limit_enabled is True
    assert reading.limit_pct == 80.0
    assert reading.rated_power_w == variant.nominal_tenth_kw * 100
    assert reading.lifetime_energy_wh is not None
    assert reading.lifetime_energy_wh == pytest.approx(1_234_000, abs=variant.energy_wh_per_count)
    fc4 = {r.address for r in peer.requests if r.function == 4}
    fc3 = {r.address for r in peer.requests if r.function == 3}
    assert at(variant.active_power_doc) in fc4
    assert at(variant.switch_doc) in fc3


async def test_sh_active_power_is_signed(make_peer: MakePeer, make_inverter: MakeInverter) -> None:
    """A hybrid charging its battery from the grid reports negative AC power."""
    peer = await make_peer(SH)
    inverter = make_inverter(peer)
    await inverter.async_setup()
    peer.output_source = lambda: -1200.0
    assert (await inverter.async_read()).ac_power_w == -1200.0


# -- writes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [SG, SH], ids=["sg", "sh"])
async def test_first_limit_enables_the_switch_then_sets_the_ratio(
    make_peer: MakePeer, make_inverter: MakeInverter, variant: Any
) -> None:
    peer = await make_peer(variant, available_w=4000.0)
    inverter = make_inverter(peer)
    await inverter.async_apply(command(25.0))  # held in 2 % steps, rounded down: 24 %
    writes = peer.limit_writes()
    assert [(w.address, w.values) for w in writes] == [
        (at(variant.switch_doc), (ON,)),
        (at(variant.ratio_doc), (240,)),
    ]
    settle(peer, 10.0)
    assert peer.output_w == pytest.approx(variant.nominal_tenth_kw * 100 * 0.24, rel=0.01)


async def test_writes_only_on_a_real_change(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(SG)
    inverter = make_inverter(peer)
    await inverter.async_apply(command(50.0))
    assert len(peer.limit_writes()) == 2
    await inverter.async_apply(command(50.0))  # the same
    await inverter.async_apply(command(51.9))  # the same 2 % step
    await inverter.async_read()
    await inverter.async_apply(command(52.5))  # one step up, but within the hysteresis
    assert len(peer.limit_writes()) == 2
    await inverter.async_apply(command(49.0))  # a fall is written at once
    assert peer.limit_writes()[-1].values == (480,)
    await inverter.async_apply(command(51.0))  # 3 % above the held 48 %: clears 1.5 steps
    assert peer.limit_writes()[-1].values == (500,)
    await inverter.async_apply(command(100.0))  # lifting the limit is never held back
    assert peer.limit_writes()[-1].values == (1000,)
    assert len(peer.limit_writes()) == 5
    assert peer.flash_writes == 5


async def test_a_value_the_device_is_slow_to_show_is_not_rewritten(
    make_peer: MakePeer, make_inverter: MakeInverter, clock: JumpClock
) -> None:
    """The ratio reads back old after a write: not a reason to write again every cycle."""
    peer = await make_peer(SG, switch=ON, ratio=1000, apply_s=1e6)  # slow, or ignoring it
    inverter = make_inverter(peer)
    await inverter.async_apply(command(30.0))
    reading = await inverter.async_read()
    assert reading.limit_pct == 100.0  # not applied yet
    await inverter.async_apply(command(30.0))
    assert len(peer.limit_writes()) == 1
    clock.jump(REWRITE_AFTER_S + 1)
    await inverter.async_read()
    await inverter.async_apply(command(30.0))
    assert len(peer.limit_writes()) == 2  # written again, once a minute at most


async def _hour_of_wavering_commands(inverter: SungrowInverter) -> None:
    """An hour of 1 s commands wavering ±1 % around 47 %, then 49 %, through the write policy
    (deadband 1 %), reading the inverter back every 10 s."""
    policy = WritePolicy(deadband_pct=1.0)
    rng = random.Random(14)
    reading = await inverter.async_read()
    for second in range(3600):
        centre = 47.0 if second < 1800 else 49.0
        cmd = command(centre + rng.uniform(-1.0, 1.0))
        if policy.should_write(
            "inv", cmd, reading, 0.0, float(second), step_pct=inverter.limit_step_pct
        ):
            await inverter.async_apply(cmd)
            policy.record("inv", cmd, float(second))
        if second % 10 == 0:
            reading = await inverter.async_read()


async def test_steady_state_writes_a_handful_an_hour(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    steps = await make_peer(SG)
    await _hour_of_wavering_commands(make_inverter(steps))
    assert len(steps.limit_writes()) <= 6, steps.limit_writes()
    # The same hour at the finest step the register has writes far more often.
    fine = await make_peer(SG)
    await _hour_of_wavering_commands(make_inverter(fine, step_pct=0.1))
    assert len(fine.limit_writes()) > 50


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_bad_values_are_refused_before_anything_is_sent(
    make_peer: MakePeer, make_inverter: MakeInverter, bad: float
) -> None:
    peer = await make_peer(SG)
    inverter = make_inverter(peer)
    with pytest.raises(ValueError, match="not a finite number"):
        await inverter.async_apply(command(bad))
    assert not peer.writes()


async def test_out_of_range_limits_are_clamped(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(SG)
    inverter = make_inverter(peer)
    await inverter.async_apply(command(250.0))
    assert peer.limit_writes()[-1].values == (ON,)  # 100 %: the ratio already holds it
    await inverter.async_apply(command(-10.0))
    assert peer.limit_writes()[-1].values == (0,)
    await inverter.async_apply(command(60.0, connect=False))  # no relay: 0 %
    assert len(peer.limit_writes()) == 2


async def test_modbus_exceptions_are_device_errors(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(SG)
    inverter = make_inverter(peer)
    peer.exceptions[(UNIT, at(SG.ratio_doc))] = 4  # setting failed
    with pytest.raises(DeviceResponseError):
        await inverter.async_apply(command(40.0))
    peer.exceptions.clear()
    await inverter.async_apply(command(40.0))  # the held values are read again
    assert peer.ratio == 400
    peer.exceptions[(UNIT, at(SG.active_power_doc))] = 2
    with pytest.raises(DeviceError):
        await inverter.async_read()


async def test_unknown_devices_and_missing_registers_are_refused(
    make_peer: MakePeer, make_connection: MakeConnection
) -> None:
    peer = await make_peer(SH)
    connection = make_connection(peer)
    probe = await async_probe(connection, UNIT)
    assert probe.info.family is reg.Family.SH
    assert not probe.limited
    peer.inputs[at(DEVICE_TYPE_DOC)] = 0
    with pytest.raises(NotSungrowError):
        await async_probe(connection, UNIT)
    peer.inputs[at(DEVICE_TYPE_DOC)] = SH.device_type
    peer.exceptions[(UNIT, at(SH.switch_doc))] = 2
    with pytest.raises(PowerLimitUnsupportedError):
        await async_probe(connection, UNIT)
    peer.exceptions.clear()
    peer.holding[at(SH.switch_doc)] = 0x12
    with pytest.raises(PowerLimitUnsupportedError):
        await async_probe(connection, UNIT)
    with pytest.raises(DeviceError):  # unit 2 is not there: the gateway says so
        await async_probe(connection, 2)


# -- what persists, and handing back ------------------------------------------------------


async def test_release_restores_the_installers_limitation(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(SH, switch=ON, ratio=900)
    kept: list[Baseline | None] = []
    inverter = make_inverter(peer, on_baseline=kept.append)
    await inverter.async_apply(command(20.0))
    assert kept == [Baseline(ON, 900)]
    assert (peer.switch, peer.ratio) == (ON, 200)
    peer.restart()  # settings persist across a restart
    assert (peer.switch, peer.ratio) == (ON, 200)
    await inverter.async_release()
    assert (peer.switch, peer.ratio) == (ON, 900)
    assert kept == [Baseline(ON, 900), None]
    writes = len(peer.writes())
    await inverter.async_release()  # nothing left to hand back
    assert len(peer.writes()) == writes


async def test_a_stored_baseline_survives_a_crash(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    """After a crash the inverter still holds our limit; the stored baseline is restored."""
    peer = await make_peer(SG, switch=OFF, ratio=1000)
    first = make_inverter(peer)
    await first.async_apply(command(30.0))
    assert first.baseline == Baseline(OFF, 1000)
    # Home Assistant dies here; a new client starts with what the site stored.
    second = make_inverter(peer, baseline=first.baseline)
    await second.async_apply(command(30.0))
    assert len(peer.limit_writes()) == 2  # it already holds 30 %: nothing written
    await second.async_release()
    assert (peer.switch, peer.ratio) == (OFF, 1000)


async def test_baseline_refuses_what_no_inverter_holds() -> None:
    with pytest.raises(ValueError, match="neither"):
        Baseline(0x12, 500)
    with pytest.raises(ValueError, match="outside"):
        Baseline(ON, 5000)


# -- WiNet-S pacing -------------------------------------------------------------------------


async def test_a_paced_connection_gets_answers_from_a_slow_dongle(
    make_peer: MakePeer, make_connection: MakeConnection
) -> None:
    peer = await make_peer(SG, settle_s=0.3, min_gap_s=0.03)
    hasty = make_connection(peer, timeout_s=0.2)
    with pytest.raises(DeviceUnavailableError):
        await SungrowInverter(hasty, UNIT).async_setup()
    assert peer.dropped >= 1
    paced = make_connection(peer, timeout_s=0.5)
    paced.pace(settle_after_connect_s=0.4, min_gap_s=0.05)
    inverter = SungrowInverter(paced, UNIT)
    await inverter.async_setup()
    for _ in range(3):
        await inverter.async_read()
    await inverter.async_apply(command(40.0))
    assert peer.ratio == 400


@pytest.mark.parametrize(
    ("variant", "live_s", "within_s"),
    [(SH, 240, 330), (SG, 2700, 3000)],  # 310 Wh and 3010 Wh at 4 kW: 279 s and 2709 s
    ids=["sh", "sg"],
)
async def test_frozen_values_fail_the_read(
    make_peer: MakePeer,
    make_inverter: MakeInverter,
    clock: JumpClock,
    variant: Any,
    live_s: int,
    within_s: int,
) -> None:
    """A dongle serving its last values: the energy counter stands still at 4 kW output."""
    peer = await make_peer(variant, available_w=4000.0)
    inverter = make_inverter(peer)
    await inverter.async_setup()
    for _ in range(live_s // 10):  # live: the counter moves, and is seen to keep up
        clock.jump(10.0)
        await inverter.async_read()
    peer.frozen = True
    caught_after, error = None, ""
    for step in range(1, within_s // 10 + 1):
        clock.jump(10.0)
        try:
            await inverter.async_read()
        except InvalidDeviceDataError as err:
            caught_after, error = step * 10, str(err)
            break
    assert caught_after is not None
    assert "values look frozen: lifetime energy unchanged" in error
    margin_wh = 3 * variant.energy_wh_per_count + 10
    # Up to one counter step may have been uncounted when the values froze.
    assert (margin_wh - variant.energy_wh_per_count) / 4000 * 3600 <= caught_after
    peer.frozen = False
    clock.jump(10.0)
    assert (await inverter.async_read()).ac_power_w > 3900  # live again at once
