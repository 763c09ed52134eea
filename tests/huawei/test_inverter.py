"""The Huawei client against the simulated SUN2000 over Modbus TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
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
from custom_components.dynamic_export.huawei import registers as reg
from custom_components.dynamic_export.huawei.errors import (
    DeratingUnsupportedError,
    NotHuaweiError,
)
from custom_components.dynamic_export.huawei.inverter import (
    AVAILABLE_READ_EVERY_S,
    Baseline,
    HuaweiInverter,
    pace_for_sdongle,
)
from custom_components.dynamic_export.huawei.probe import async_probe
from custom_components.dynamic_export.sungrow.inverter import REWRITE_AFTER_S
from custom_components.dynamic_export.sunspec.connection import ModbusTcpConnection

from ..sungrow.conftest import JumpClock
from .peer import (
    ACTIVE_POWER,
    CONTROL_MODE,
    DERATING,
    MODEL,
    HuaweiPeer,
    text_words,
    words_u32,
)

type MakePeer = Callable[..., Any]
type MakeInverter = Callable[..., HuaweiInverter]
type MakeConnection = Callable[..., ModbusTcpConnection]


def command(pct: float, connect: bool = True) -> InverterCommand:
    return InverterCommand(connect=connect, limit_pct=pct)


def settle(peer: HuaweiPeer, seconds: float) -> None:
    clock = peer.clock
    assert isinstance(clock, JumpClock)
    clock.jump(seconds)
    peer.advance()


# -- encoding ---------------------------------------------------------------------------------


def test_words_go_high_first_and_signed_values_decode() -> None:
    assert reg.decode_u32(words_u32(70_000)) == 70_000
    assert reg.decode_u32([0x0001, 0x1170]) == 0x0001_1170  # high word first
    assert reg.decode_s32(words_u32(-1500)) == -1500
    assert reg.decode_s16(0xFFFF) == -1
    assert reg.decode_text(text_words("SUN2000-5KTL-M1", 15)) == "SUN2000-5KTL-M1"
    with pytest.raises(ValueError, match="two 16-bit"):
        reg.decode_u32([1])


# -- identity and reading ---------------------------------------------------------------------


async def test_setup_reads_identity_and_writes_nothing(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer()
    inverter = make_inverter(peer)
    info = await inverter.async_setup()
    assert (info.model, info.serial_number) == ("SUN2000-5KTL-M1", "HV2150012345")
    assert info.rated_power_w == 5500  # Pmax, the base of the derating
    assert info.nominal_power_w == 5000
    assert info.export_control_mode == 0
    assert inverter.revert_timeout_s == 0.0  # Huawei keeps the derating: no revert timer
    assert {r.function for r in peer.requests} == {3}  # holding registers only
    assert not peer.writes()


async def test_read_reports_output_energy_status_and_the_limit(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(available_w=3000.0, derating=800)
    inverter = make_inverter(peer)
    settle(peer, 20.0)
    reading = await inverter.async_read()
    assert reading.ac_power_w == pytest.approx(3000, abs=2)
    assert reading.rated_power_w == 5500
    assert (reading.limit_pct, reading.limit_enabled) == (80.0, True)
    assert reading.status == "mppt"  # 4400 W allowed, 3000 W available: not limited
    assert reading.lifetime_energy_wh == pytest.approx(2_345_670, abs=10)
    assert reading.available_w == 3000.0  # MPPT_PREDICTED_POWER, at least the output
    peer.available_w = 5000.0
    settle(peer, 8.0)
    reading = await inverter.async_read()
    assert reading.status == "throttled"
    assert reading.ac_power_w == pytest.approx(4400, abs=5)
    # Read every 10 s only: the last prediction (3000 W) is below the output now, so it is
    # not passed on rather than passed on stale.
    assert reading.available_w is None
    settle(peer, AVAILABLE_READ_EVERY_S)
    assert (await inverter.async_read()).available_w == 5000.0


async def test_a_prediction_below_the_output_is_not_available_power(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(available_w=3000.0)
    inverter = make_inverter(peer)
    settle(peer, 20.0)
    peer.output_source = lambda: 3500.0
    peer.advance()
    peer.available_w = 2000.0
    assert (await inverter.async_read()).available_w is None


async def test_a_prediction_of_zero_while_producing_is_not_filled_in(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    """A model that leaves MPPT_PREDICTED_POWER at 0 does not claim 0 W available."""
    peer = await make_peer(available_w=0.0)
    inverter = make_inverter(peer)
    assert (await inverter.async_read()).available_w == 0.0  # night: 0 is the truth
    peer.output_source = lambda: 30.0  # producing a little, within the tolerance
    settle(peer, AVAILABLE_READ_EVERY_S)
    assert (await inverter.async_read()).available_w is None


async def test_implausible_values_are_refused(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer()
    inverter = make_inverter(peer)
    await inverter.async_setup()
    peer.output_source = lambda: 50_000.0
    with pytest.raises(InvalidDeviceDataError, match="implausible"):
        await inverter.async_read()
    peer.output_source = lambda: -0x8000_0001  # wraps to 0x7FFFFFFF: "not available"
    with pytest.raises(InvalidDeviceDataError, match="no AC power"):
        await inverter.async_read()


# -- writes ---------------------------------------------------------------------------------


async def test_writes_only_on_a_real_change(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer()
    inverter = make_inverter(peer)
    await inverter.async_apply(command(50.0))
    assert [w.values for w in peer.derating_writes()] == [(500,)]
    await inverter.async_apply(command(50.0))  # the same
    await inverter.async_apply(command(51.9))  # the same 2 % step
    await inverter.async_read()
    await inverter.async_apply(command(52.5))  # one step up, but within the hysteresis
    assert len(peer.derating_writes()) == 1
    await inverter.async_apply(command(49.0))  # a fall is written at once, rounded down
    assert peer.derating_writes()[-1].values == (480,)
    await inverter.async_apply(command(51.0))  # 3 % above the held 48 %: clears 1.5 steps
    assert peer.derating_writes()[-1].values == (500,)
    await inverter.async_apply(command(100.0))  # lifting the limit is never held back
    assert peer.derating_writes()[-1].values == (1000,)
    assert len(peer.derating_writes()) == 4
    assert peer.flash_writes == 4
    settle(peer, 10.0)
    assert peer.output_w == pytest.approx(4000, rel=0.01)


async def test_the_output_follows_the_derating_with_a_lag(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(available_w=5000.0)
    inverter = make_inverter(peer)
    settle(peer, 20.0)
    await inverter.async_apply(command(20.0))
    assert peer.output_w > 4000  # not at once
    settle(peer, 10.0)
    assert peer.output_w == pytest.approx(1100, rel=0.01)  # 20 % of Pmax 5500 W


async def test_a_value_the_device_is_slow_to_show_is_not_rewritten(
    make_peer: MakePeer, make_inverter: MakeInverter, clock: JumpClock
) -> None:
    peer = await make_peer()
    inverter = make_inverter(peer)
    await inverter.async_apply(command(30.0))
    peer.holding[DERATING] = 1000  # the inverter shows the old value (or ignored ours)
    await inverter.async_read()
    await inverter.async_apply(command(30.0))
    assert len(peer.derating_writes()) == 1
    clock.jump(REWRITE_AFTER_S + 1)
    await inverter.async_apply(command(30.0))
    assert len(peer.derating_writes()) == 2  # written again, once a minute at most


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_bad_values_are_refused_before_anything_is_sent(
    make_peer: MakePeer, make_inverter: MakeInverter, bad: float
) -> None:
    peer = await make_peer()
    inverter = make_inverter(peer)
    with pytest.raises(ValueError, match="not a finite number"):
        await inverter.async_apply(command(bad))
    with pytest.raises(TypeError):
        await inverter.async_apply(InverterCommand(connect=1, limit_pct=50.0))  # type: ignore[arg-type]
    assert not peer.writes()


async def test_out_of_range_limits_are_clamped(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(derating=900)
    inverter = make_inverter(peer)
    await inverter.async_apply(command(250.0))
    assert peer.derating_writes()[-1].values == (1000,)
    await inverter.async_apply(command(-10.0))
    assert peer.derating_writes()[-1].values == (0,)
    await inverter.async_apply(command(60.0, connect=False))  # no relay: 0 %, held already
    assert len(peer.derating_writes()) == 2


async def test_modbus_exceptions_are_device_errors(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer()
    inverter = make_inverter(peer)
    peer.exceptions[(peer.unit, DERATING)] = 4
    with pytest.raises(DeviceResponseError):
        await inverter.async_apply(command(40.0))
    peer.exceptions.clear()
    await inverter.async_apply(command(40.0))  # the held value is read again
    assert peer.derating == 400
    peer.exceptions[(peer.unit, ACTIVE_POWER)] = 2
    with pytest.raises(DeviceError):
        await inverter.async_read()


async def test_the_peer_refuses_a_derating_out_of_range(
    make_peer: MakePeer, make_connection: MakeConnection
) -> None:
    """What the client never sends, the inverter refuses: exception 3, nothing changes."""
    peer = await make_peer()
    connection = make_connection(peer)
    with pytest.raises(DeviceResponseError, match="exception 3"):
        await connection.write_registers(peer.unit, DERATING, [1001])
    assert peer.derating == 1000


async def test_unknown_devices_and_missing_registers_are_refused(
    make_peer: MakePeer, make_connection: MakeConnection
) -> None:
    peer = await make_peer()
    connection = make_connection(peer)
    probe = await async_probe(connection, peer.unit)
    assert probe.derating_pct == 100.0
    peer.holding.update(zip(range(MODEL, MODEL + 15), text_words("SG10RT", 15), strict=True))
    with pytest.raises(NotHuaweiError):
        await async_probe(connection, peer.unit)
    peer.holding.update(
        zip(range(MODEL, MODEL + 15), text_words("SUN2000-5KTL-M1", 15), strict=True)
    )
    peer.exceptions[(peer.unit, DERATING)] = 2
    with pytest.raises(DeratingUnsupportedError):
        await async_probe(connection, peer.unit)
    peer.exceptions.clear()
    peer.holding[DERATING] = 0xFFFF  # -1: not a derating
    with pytest.raises(DeratingUnsupportedError):
        await async_probe(connection, peer.unit)
    peer.holding[DERATING] = 1000
    peer.exceptions[(peer.unit, CONTROL_MODE)] = 2  # no export control: still usable
    assert (await async_probe(connection, peer.unit)).info.export_control_mode is None
    with pytest.raises(DeviceError):  # unit 2 is not there: the dongle says so
        await async_probe(connection, 2)


async def test_unit_zero_works_where_the_dongle_uses_it(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(unit=0)
    inverter = make_inverter(peer)
    await inverter.async_apply(command(50.0))
    assert peer.derating == 500


# -- what persists, and handing back ------------------------------------------------------


async def test_release_restores_the_installers_derating(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(derating=900)
    kept: list[Baseline | None] = []
    inverter = make_inverter(peer, on_baseline=kept.append)
    await inverter.async_apply(command(20.0))
    assert kept == [Baseline(900)]
    peer.restart()  # the setting persists across a restart
    assert peer.derating == 200
    await inverter.async_release()
    assert peer.derating == 900
    assert kept == [Baseline(900), None]
    writes = len(peer.writes())
    await inverter.async_release()  # nothing left to hand back
    assert len(peer.writes()) == writes


async def test_a_stored_baseline_survives_a_crash(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(derating=1000)
    first = make_inverter(peer)
    await first.async_apply(command(30.0))
    assert first.baseline == Baseline(1000)
    # Home Assistant dies here; a new client starts with what the site stored.
    second = make_inverter(peer, baseline=first.baseline)
    await second.async_apply(command(30.0))
    assert len(peer.derating_writes()) == 1  # it already holds 30 %: nothing written
    await second.async_release()
    assert peer.derating == 1000


async def test_baseline_refuses_what_no_inverter_holds() -> None:
    with pytest.raises(ValueError, match="outside"):
        Baseline(1001)
    with pytest.raises(ValueError, match="outside"):
        Baseline(-1)


# -- the SDongle -------------------------------------------------------------------------------


async def test_a_paced_connection_gets_answers_from_a_slow_dongle(
    make_peer: MakePeer, make_connection: MakeConnection
) -> None:
    peer = await make_peer(settle_s=0.3, min_gap_s=0.03)
    hasty = make_connection(peer, timeout_s=0.2)
    with pytest.raises(DeviceUnavailableError):
        await HuaweiInverter(hasty, peer.unit).async_setup()
    assert peer.dropped >= 1
    paced = make_connection(peer, timeout_s=0.5)
    paced.pace(settle_after_connect_s=0.4, min_gap_s=0.05)
    inverter = HuaweiInverter(paced, peer.unit)
    await inverter.async_setup()
    for _ in range(3):
        await inverter.async_read()
    await inverter.async_apply(command(40.0))
    assert peer.derating == 400


async def test_one_long_lived_connection(
    make_peer: MakePeer, make_connection: MakeConnection
) -> None:
    """Reading and writing for a while opens one connection; a second client knocks the
    first off (as an SDongle does), and the first comes back on its next request."""
    peer = await make_peer()
    connection = make_connection(peer)
    inverter = HuaweiInverter(connection, peer.unit)
    for pct in (80.0, 60.0, 40.0):
        await inverter.async_read()
        await inverter.async_apply(command(pct))
    assert peer.connections == 1
    other = make_connection(peer)
    await async_probe(other, peer.unit)  # another client (a second integration)
    assert peer.kicked == 1
    await other.close()
    await inverter.async_read()  # reconnects
    assert peer.connections == 3


def test_pacing_is_what_the_sdongle_needs() -> None:
    connection = pace_for_sdongle(ModbusTcpConnection("127.0.0.1", 1))
    assert connection._settle_s == 1.5
    assert connection._gap_s == 0.05


async def test_a_connection_dropped_for_another_client_is_a_device_error(
    make_peer: MakePeer, make_connection: MakeConnection
) -> None:
    """Knocked off while it waits after connecting (the dongle took another client): the
    request fails as the device being unavailable, and the next one reconnects."""
    peer = await make_peer()
    first = make_connection(peer)
    first.pace(settle_after_connect_s=0.3)
    setup = asyncio.create_task(HuaweiInverter(first, peer.unit).async_setup())
    await asyncio.sleep(0.1)  # connected, settling
    await async_probe(make_connection(peer), peer.unit)  # another client
    assert peer.kicked == 1
    with pytest.raises(DeviceUnavailableError):
        await setup
    await HuaweiInverter(first, peer.unit).async_setup()


async def test_a_steady_hour_writes_a_handful(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    """An hour of 1 s commands wavering ±1 % around 47 %, then 49 %, through the write policy
    (deadband 1 %), reading back every 10 s: the persistent derating is written a few times."""
    peer = await make_peer()
    inverter = make_inverter(peer)
    policy = WritePolicy(deadband_pct=1.0)
    rng = random.Random(14)
    reading = await inverter.async_read()
    for second in range(3600):
        cmd = command((47.0 if second < 1800 else 49.0) + rng.uniform(-1.0, 1.0))
        if policy.should_write(
            "inv", cmd, reading, 0.0, float(second), step_pct=inverter.limit_step_pct
        ):
            await inverter.async_apply(cmd)
            policy.record("inv", cmd, float(second))
        if second % 10 == 0:
            reading = await inverter.async_read()
    assert 1 <= len(peer.derating_writes()) <= 6, peer.derating_writes()
    assert peer.flash_writes == len(peer.derating_writes())


async def test_frozen_values_fail_the_read(
    make_peer: MakePeer, make_inverter: MakeInverter, clock: JumpClock
) -> None:
    """A dongle serving its last values: the 10 Wh counter stands still at 4 kW output."""
    peer = await make_peer(available_w=4000.0)
    inverter = make_inverter(peer)
    await inverter.async_setup()
    for _ in range(12):  # live: the counter moves every 9 s, and is seen to keep up
        clock.jump(5.0)
        await inverter.async_read()
    peer.frozen = True
    caught_after, error = None, ""
    for step in range(1, 13):
        clock.jump(5.0)
        try:
            await inverter.async_read()
        except InvalidDeviceDataError as err:
            caught_after, error = step * 5, str(err)
            break
    assert caught_after is not None
    assert "values look frozen: lifetime energy unchanged" in error
    assert 30 / 4000 * 3600 <= caught_after <= 40 / 4000 * 3600 + 10  # 40 Wh, less a step
    peer.frozen = False
    clock.jump(5.0)
    assert (await inverter.async_read()).ac_power_w > 3900  # live again at once
