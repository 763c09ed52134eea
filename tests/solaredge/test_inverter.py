"""The SolarEdge client against the simulated inverter over Modbus TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import math
import struct
from collections.abc import Callable
from typing import Any

import pytest

from custom_components.dynamic_export.core.errors import (
    DeviceError,
    DeviceResponseError,
    DeviceUnavailableError,
)
from custom_components.dynamic_export.core.measurements import InverterCommand
from custom_components.dynamic_export.core.write_policy import WritePolicy
from custom_components.dynamic_export.solaredge import registers as reg
from custom_components.dynamic_export.solaredge.errors import (
    CommitError,
    NotSolarEdgeError,
    PowerControlUnsupportedError,
)
from custom_components.dynamic_export.solaredge.inverter import SolarEdgeInverter, limit_value
from custom_components.dynamic_export.solaredge.probe import async_probe
from custom_components.dynamic_export.sunspec.connection import ModbusTcpConnection

from .conftest import JumpClock
from .peer import (
    F_ACTIVE_POWER_BASE,
    F_ADV_PWR_CTRL_EN,
    F_COMMIT,
    F_DYNAMIC_LIMIT,
    F_EDPC_ENABLE,
    F_FALLBACK,
    F_RAMP_DOWN,
    F_RAMP_UP,
    F_REACTIVE_CONFIG,
    F_TIMEOUT,
    MODEL,
    RATING_W,
    SERIAL,
    UNIT,
    SolarEdgePeer,
    le_float,
)

type MakePeer = Callable[..., Any]
type MakeInverter = Callable[..., SolarEdgeInverter]

CONFIG_REGISTERS = {F_ADV_PWR_CTRL_EN, F_REACTIVE_CONFIG, F_COMMIT}


def command(pct: float, connect: bool = True) -> InverterCommand:
    return InverterCommand(connect=connect, limit_pct=pct)


async def settle(peer: SolarEdgePeer, seconds: float = 0.0) -> None:
    """Let the peer's output follow its limit (lag 1 s) by jumping its clock."""
    clock = peer.clock
    assert isinstance(clock, JumpClock)
    clock.jump(seconds)
    peer.advance()


def test_word_order_is_low_word_first() -> None:
    """50.0 is 0x42480000: SolarEdge sends 0x0000 first, then 0x4248."""
    assert reg.encode_float(50.0) == [0x0000, 0x4248]
    assert reg.decode_float([0x0000, 0x4248]) == 50.0
    assert reg.encode_uint32(0x0001_0002) == [0x0002, 0x0001]
    assert reg.decode_int32(reg.encode_int32(-1)) == -1
    assert reg.encode_float(-1.0) == le_float(-1.0)  # the peer's own encoding agrees
    assert reg.decode_float([0x0000, 0x7FC0]) is None  # NaN: not implemented


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_encoders_refuse_what_a_register_cannot_hold(bad: float) -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        reg.encode_float(bad)
    with pytest.raises(ValueError, match="does not fit a float32"):
        reg.encode_float(1e39)
    with pytest.raises(ValueError, match="does not fit a uint32"):
        reg.encode_uint32(-1)
    with pytest.raises(ValueError, match="does not fit a uint32"):
        reg.encode_uint32(2**32)
    with pytest.raises(ValueError, match="does not fit an int32"):
        reg.encode_int32(2**31)


def test_commit_results() -> None:
    assert reg.commit_error(0) is None
    assert reg.commit_error(0xF104) == (
        "the inverter rejected the setting at register 0xF104",
        0xF104,
    )
    assert reg.commit_error(3) == ("commit failed: internal error 3", None)
    assert reg.commit_error(0xFFFF) == ("commit failed: unknown error", None)


async def test_setup_reads_identity_and_commits_once(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    """An inverter without power control gets one commit, which takes its time; never again."""
    peer = await make_peer(commit_s=0.5)
    inverter = make_inverter(peer)
    loop = asyncio.get_running_loop()
    started = loop.time()
    info = await inverter.async_setup()
    assert loop.time() - started >= 0.5  # waited for the commit to finish
    assert (info.manufacturer, info.model, info.serial_number) == ("SolarEdge", MODEL, SERIAL)
    assert (info.rated_power_w, info.inverter_model_id, info.phases) == (RATING_W, 103, 3)
    assert peer.power_control_committed
    assert len(peer.writes_to(F_COMMIT)) == 1
    # Cycles after it never commit, nor does a new client (the settings are persistent).
    for pct in (80.0, 40.0, 40.0, 100.0):
        await inverter.async_apply(command(pct))
        await inverter.async_read()
    again = make_inverter(peer)
    await again.async_setup()
    await again.async_apply(command(10.0))
    assert len(peer.writes_to(F_COMMIT)) == 1
    assert inverter.commits == 1
    assert again.commits == 0


async def test_committed_inverter_is_not_committed_again(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(committed=True)
    inverter = make_inverter(peer)
    await inverter.async_setup()
    await inverter.async_apply(command(50.0))
    assert not any(w.address in CONFIG_REGISTERS for w in peer.writes())


async def test_commit_rejected_names_the_register(
    make_peer: MakePeer, make_inverter: MakeInverter, clock: JumpClock
) -> None:
    peer = await make_peer()
    peer.commit_result = F_REACTIVE_CONFIG
    inverter = make_inverter(peer)
    with pytest.raises(CommitError) as caught:
        await inverter.async_setup()
    assert caught.value.register == F_REACTIVE_CONFIG
    assert "0xF104" in str(caught.value)
    assert isinstance(caught.value, DeviceError)
    assert not peer.power_control_committed
    # Nothing is limited before power control is committed, and the persistent settings
    # are not committed again each cycle: limits are refused without asking the inverter.
    before = len(peer.requests)
    for _ in range(3):
        with pytest.raises(CommitError):
            await inverter.async_apply(command(50.0))
    assert len(peer.requests) == before
    assert not peer.writes_to(F_DYNAMIC_LIMIT)
    reading = await inverter.async_read()  # still read
    assert reading.limit_enabled is False
    # Only after the retry time is the commit tried again (and now it succeeds).
    peer.commit_result = 0
    clock.jump(601.0)
    await inverter.async_apply(command(50.0))
    assert len(peer.writes_to(F_COMMIT)) == 2
    assert peer.power_control_committed
    assert peer.float_at(F_DYNAMIC_LIMIT) == 50.0


async def test_commit_that_never_ends_times_out(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(commit_s=60.0)
    inverter = make_inverter(peer, commit_timeout_s=0.3)
    with pytest.raises(CommitError, match=r"not committed within 0\.3 s"):
        await inverter.async_setup()


async def test_commit_cut_short_is_awaited_not_repeated(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    """A cycle that gave up waiting (its timeout) leaves the commit running: the next waits."""
    peer = await make_peer(commit_s=0.6)
    inverter = make_inverter(peer)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await inverter.async_setup()
    await inverter.async_setup()
    assert len(peer.writes_to(F_COMMIT)) == 1
    assert peer.power_control_committed


@pytest.mark.parametrize("applied", [False, True], ids=["commit-lost", "commit-landed"])
async def test_commit_write_cut_off_is_told_apart(
    make_peer: MakePeer, make_inverter: MakeInverter, *, applied: bool
) -> None:
    """The connection drops as the commit goes out. Lost: its register still reads 0, which
    is not taken for success: the commit is written again. Landed: the register holds the 1
    while the inverter commits, so it is waited for, not started twice."""
    peer = await make_peer(commit_s=0.3)
    peer.drop_next_write(F_COMMIT, applied=applied)
    inverter = make_inverter(peer)
    with pytest.raises(DeviceUnavailableError, match="connection lost"):
        await inverter.async_setup()
    await inverter.async_setup()
    assert peer.power_control_committed
    assert len(peer.writes_to(F_COMMIT)) == 1
    assert inverter.commits == (1 if applied else 2)


async def test_first_limit_sets_up_edpc_and_the_output_follows(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    """Timeout, fallback, base, both ramps off, then EDPC on, then the float limit."""
    peer = await make_peer(committed=True, available_w=4000.0)
    await settle(peer, 10.0)
    assert peer.output_w == pytest.approx(4000.0, abs=1.0)
    inverter = make_inverter(peer, revert_timeout_s=30.0, fallback_pct=5.0)
    await inverter.async_apply(command(20.0))
    assert peer.timeout_s == 30
    assert peer.float_at(F_FALLBACK) == 5.0
    assert peer.float_at(F_ACTIVE_POWER_BASE) == RATING_W
    assert peer.float_at(F_RAMP_UP) == -1.0
    assert peer.float_at(F_RAMP_DOWN) == -1.0
    assert peer.edpc_enabled
    order = [w.address for w in peer.writes()]
    assert order.index(F_EDPC_ENABLE) > max(order.index(a) for a in (F_TIMEOUT, F_FALLBACK))
    assert order[-1] == F_DYNAMIC_LIMIT
    # The limit as registers: 20.0 = 0x41A00000, low word first.
    assert peer.writes_to(F_DYNAMIC_LIMIT)[-1].values == (0x0000, 0x41A0)
    # No ramp: 4 kW comes down to 1 kW within the inverter's own lag, not 20 minutes.
    await settle(peer, 8.0)
    assert peer.output_w == pytest.approx(1000.0, abs=10.0)
    reading = await inverter.async_read()
    assert reading.limit_enabled is True
    assert reading.limit_pct == pytest.approx(20.0)
    assert reading.limit_w == pytest.approx(1000.0)
    assert reading.ac_power_w == pytest.approx(1000.0, abs=10.0)
    assert reading.rated_power_w == RATING_W
    assert reading.status == "throttled"
    assert reading.lifetime_energy_wh is not None
    assert reading.connected is None
    # Later limits write the limit only.
    before = len(peer.writes())
    await inverter.async_apply(command(55.5))
    assert [w.address for w in peer.writes()[before:]] == [F_DYNAMIC_LIMIT]
    assert peer.float_at(F_DYNAMIC_LIMIT) == pytest.approx(55.5)


async def test_settings_already_in_place_are_not_written(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    """A second client (a restart of Home Assistant) finds EDPC set up: it writes the limit."""
    peer = await make_peer(committed=True)
    await make_inverter(peer).async_apply(command(30.0))
    before = len(peer.writes())
    await make_inverter(peer).async_apply(command(30.0))
    assert [w.address for w in peer.writes()[before:]] == [F_DYNAMIC_LIMIT]


async def test_default_ramp_would_be_slow(make_peer: MakePeer) -> None:
    """The peer's physics are real: with the default 5 %/min ramp a cut takes minutes."""
    peer = await make_peer(committed=True, available_w=5000.0)
    connection = ModbusTcpConnection("127.0.0.1", peer.port, timeout_s=0.5)
    try:
        await connection.write_registers(UNIT, F_EDPC_ENABLE, [1])
        await connection.write_registers(UNIT, F_DYNAMIC_LIMIT, le_float(0.0))
    finally:
        await connection.close()
    await settle(peer, 6.0)
    assert peer.limit_pct == pytest.approx(99.5, abs=0.1)
    assert peer.output_w > 4900.0


async def test_write_policy_refreshes_within_the_command_timeout(
    make_peer: MakePeer, make_inverter: MakeInverter, clock: JumpClock
) -> None:
    """Cycles of an unchanged command write only at half the timeout; no fallback meanwhile."""
    peer = await make_peer(committed=True, available_w=4000.0)
    inverter = make_inverter(peer, revert_timeout_s=20.0, fallback_pct=0.0)
    policy = WritePolicy(deadband_pct=1.0)
    writes: list[float] = []
    for _ in range(100):  # 100 cycles of 1 s
        reading = await inverter.async_read()
        now = clock()
        wanted = command(50.0)
        if policy.should_write(
            "se",
            wanted,
            reading,
            inverter.revert_timeout_s,
            now,
            step_pct=inverter.limit_step_pct,
        ):
            await inverter.async_apply(wanted)
            policy.record("se", wanted, now)
            writes.append(now)
        clock.jump(1.0)
        peer.advance()
        assert not peer.fallback_active
    gaps = [b - a for a, b in itertools.pairwise(writes)]
    assert len(writes) in (9, 10)
    assert all(9.9 <= gap <= 11.1 for gap in gaps), gaps
    assert peer.output_w == pytest.approx(2500.0, abs=10.0)


@pytest.mark.parametrize("fallback", [0.0, 30.0, 100.0])
async def test_fallback_applies_after_the_command_timeout(
    make_peer: MakePeer, make_inverter: MakeInverter, fallback: float
) -> None:
    """Nothing written for the command timeout (Home Assistant stopped): the fallback holds."""
    peer = await make_peer(committed=True, available_w=5000.0)
    inverter = make_inverter(peer, revert_timeout_s=10.0, fallback_pct=fallback)
    await inverter.async_apply(command(50.0))
    await settle(peer, 9.0)
    assert not peer.fallback_active
    assert peer.output_w == pytest.approx(2500.0, abs=10.0)
    await settle(peer, 2.0)
    await settle(peer, 8.0)
    assert peer.fallback_active
    assert peer.output_w == pytest.approx(RATING_W * fallback / 100.0, abs=10.0)
    reading = await inverter.async_read()
    assert reading.limit_pct == pytest.approx(50.0)  # 0xF322 itself is unchanged
    # The next write takes over again.
    await inverter.async_apply(command(40.0))
    await settle(peer, 6.0)
    assert not peer.fallback_active
    assert peer.output_w == pytest.approx(2000.0, abs=10.0)


async def test_inverter_restart_is_seen_and_edpc_set_up_again(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    """The RAM settings are lost in a restart: the read says so, the next write restores them."""
    peer = await make_peer(committed=True)
    inverter = make_inverter(peer, revert_timeout_s=30.0)
    await inverter.async_apply(command(25.0))
    peer.restart()
    reading = await inverter.async_read()
    assert reading.limit_enabled is False
    assert reading.limit_w == RATING_W
    policy = WritePolicy()
    policy.record("se", command(25.0), 0.0)
    assert policy.should_write("se", command(25.0), reading, 30.0, 1.0)  # drift: rewrite
    await inverter.async_apply(command(25.0))
    assert peer.edpc_enabled
    assert peer.timeout_s == 30
    assert peer.float_at(F_RAMP_UP) == -1.0
    assert peer.float_at(F_DYNAMIC_LIMIT) == 25.0
    assert len(peer.writes_to(F_COMMIT)) == 0


async def test_release_hands_back_and_no_fallback_follows(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(committed=True, available_w=4000.0)
    inverter = make_inverter(peer, revert_timeout_s=10.0, fallback_pct=0.0)
    await inverter.async_apply(command(10.0))
    await inverter.async_release()
    assert not peer.edpc_enabled
    assert peer.float_at(F_DYNAMIC_LIMIT) == 100.0
    await settle(peer, 30.0)  # well past the timeout
    assert not peer.fallback_active
    assert peer.output_w == pytest.approx(4000.0, abs=10.0)
    reading = await inverter.async_read()
    assert reading.limit_enabled is False
    await inverter.async_apply(command(10.0))  # control again: EDPC back on
    assert peer.edpc_enabled


@pytest.mark.parametrize(
    ("pct", "written"),
    [(150.0, 100.0), (-5.0, 0.0), (33.339, 33.33), (0.004, 0.0), (100, 100.0)],
)
async def test_limits_are_clamped_and_rounded_down(
    make_peer: MakePeer, make_inverter: MakeInverter, pct: float, written: float
) -> None:
    peer = await make_peer(committed=True)
    inverter = make_inverter(peer)
    await inverter.async_apply(command(pct))
    assert peer.float_at(F_DYNAMIC_LIMIT) == pytest.approx(written, abs=1e-5)
    assert limit_value(pct) <= max(0.0, pct) + 1e-9


async def test_disconnect_is_a_zero_limit(make_peer: MakePeer, make_inverter: MakeInverter) -> None:
    peer = await make_peer(committed=True)
    inverter = make_inverter(peer)
    assert inverter.supports_connect is False
    await inverter.async_apply(command(80.0, connect=False))
    assert peer.float_at(F_DYNAMIC_LIMIT) == 0.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "50", True, None])
async def test_bad_values_never_reach_the_device(
    make_peer: MakePeer, make_inverter: MakeInverter, bad: Any
) -> None:
    peer = await make_peer(committed=True)
    inverter = make_inverter(peer)
    await inverter.async_setup()
    before = len(peer.requests)
    with pytest.raises((ValueError, TypeError)):
        await inverter.async_apply(InverterCommand(connect=True, limit_pct=bad))
    with pytest.raises(TypeError):
        await inverter.async_apply(InverterCommand(connect=1, limit_pct=50.0))  # type: ignore[arg-type]
    assert len(peer.requests) == before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"revert_timeout_s": 0.0},
        {"revert_timeout_s": math.nan},
        {"revert_timeout_s": 2.0**33},
        {"fallback_pct": -1.0},
        {"fallback_pct": 100.5},
        {"fallback_pct": math.nan},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    connection = ModbusTcpConnection("127.0.0.1", 1)
    with pytest.raises(ValueError, match="must be"):
        SolarEdgeInverter(connection, UNIT, **kwargs)


async def test_modbus_exception_is_a_device_error(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(committed=True)
    inverter = make_inverter(peer)
    await inverter.async_apply(command(50.0))
    peer.exceptions[(UNIT, F_DYNAMIC_LIMIT)] = 4
    with pytest.raises(DeviceResponseError, match="exception 4"):
        await inverter.async_apply(command(40.0))
    with pytest.raises(DeviceResponseError):
        await inverter.async_read()


async def test_silent_or_gone_inverter_is_unavailable(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(committed=True)
    inverter = make_inverter(peer)
    await inverter.async_apply(command(50.0))
    peer.hang = True
    with pytest.raises(DeviceUnavailableError):
        await inverter.async_read()
    peer.hang = False
    await peer.stop()
    with pytest.raises(DeviceUnavailableError):
        await inverter.async_apply(command(40.0))


async def test_implausible_values_are_refused(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer(committed=True)
    inverter = make_inverter(peer)
    await inverter.async_setup()
    await peer.set_registers(
        UNIT, dict(zip((F_DYNAMIC_LIMIT, F_DYNAMIC_LIMIT + 1), le_float(250.0), strict=True))
    )
    with pytest.raises(DeviceError, match="dynamic limit 250"):
        await inverter.async_read()
    rating = struct.unpack(">HH", struct.pack(">f", -5.0))
    await peer.set_registers(UNIT, {0xF304: rating[1], 0xF305: rating[0]})
    with pytest.raises(DeviceError, match="implausible rating"):
        await make_inverter(peer).async_setup()


async def test_probe_identifies_without_writing(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer()
    connection = ModbusTcpConnection("127.0.0.1", peer.port, timeout_s=0.5)
    try:
        probe = await async_probe(connection, UNIT)
    finally:
        await connection.close()
    assert probe.info.serial_number == SERIAL
    assert probe.committed is False
    assert not peer.writes()


async def test_other_makes_are_refused(make_peer: MakePeer, make_inverter: MakeInverter) -> None:
    peer = await make_peer(manufacturer="Fronius")
    with pytest.raises(NotSolarEdgeError):
        await make_inverter(peer).async_setup()
    assert not peer.writes()


async def test_firmware_without_power_control(
    make_peer: MakePeer, make_inverter: MakeInverter
) -> None:
    peer = await make_peer()
    for address in range(0xF300, 0xF324):
        peer.exceptions[(UNIT, address)] = 2  # illegal data address, as old firmware answers
    with pytest.raises(PowerControlUnsupportedError):
        await make_inverter(peer).async_setup()
    connection = ModbusTcpConnection("127.0.0.1", peer.port, timeout_s=0.5)
    try:
        with pytest.raises(PowerControlUnsupportedError):
            await async_probe(connection, UNIT)
    finally:
        await connection.close()


async def test_one_client_at_a_time(make_peer: MakePeer, make_inverter: MakeInverter) -> None:
    """A second Modbus client knocks the first off; each request reconnects and succeeds."""
    peer = await make_peer(committed=True)
    first, second = make_inverter(peer), make_inverter(peer)
    for _ in range(3):
        await first.async_read()
        await second.async_read()
    assert peer.knocked_off >= 5
    assert peer.max_open_connections == 1
    # One shared connection (what the integration does per host:port) never gets knocked off.
    knocked = peer.knocked_off
    connection = ModbusTcpConnection("127.0.0.1", peer.port, timeout_s=0.5)
    try:
        shared = [SolarEdgeInverter(connection, UNIT) for _ in range(2)]
        for inverter in shared * 3:
            await inverter.async_read()
    finally:
        await connection.close()
    assert peer.knocked_off == knocked + 1  # only the previous client's socket, once


async def test_frozen_values_fail_the_read(
    make_peer: MakePeer, make_inverter: MakeInverter, clock: JumpClock
) -> None:
    """The inverter keeps serving its last SunSpec values at 4 kW: the 1 Wh lifetime energy
    stands still, so after 13 Wh (12 s) and at least 10 s the read fails; live again after."""
    peer = await make_peer(committed=True, available_w=4000.0)
    inverter = make_inverter(peer)
    await settle(peer, 10.0)
    for _ in range(20):  # live: the counter moves every 0.9 s
        await settle(peer, 1.0)
        await inverter.async_read()
    peer.freeze()
    reads = 0
    error = ""
    while not error and reads < 30:
        await settle(peer, 1.0)
        reads += 1
        try:
            await inverter.async_read()
        except DeviceError as err:
            error = str(err)
    assert "values look frozen: lifetime energy" in error
    assert 10 <= reads <= 13
    peer.freeze(False)
    await settle(peer, 1.0)
    reading = await inverter.async_read()
    assert reading.ac_power_w == pytest.approx(4000.0, abs=10.0)
