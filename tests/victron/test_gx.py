"""The GX client against the simulated GX: translation, writes on change, errors, the meter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from custom_components.dynamic_export.core.errors import DeviceError
from custom_components.dynamic_export.core.measurements import InverterCommand
from custom_components.dynamic_export.sunspec.errors import ModbusExceptionError
from custom_components.dynamic_export.victron import registers as reg
from custom_components.dynamic_export.victron.errors import (
    EssUnavailableError,
    GridMeterUnavailableError,
    NotVictronGxError,
)
from custom_components.dynamic_export.victron.inverter import VictronGxInverter
from custom_components.dynamic_export.victron.meter import VictronGridMeter
from custom_components.dynamic_export.victron.probe import async_probe_grid_meter, async_probe_gx

from .conftest import StepClock
from .peer import (
    GRID_ENERGY,
    GRID_UNIT,
    GX_SERIAL,
    MAX_FEED_IN_100W,
    MAX_FEED_IN_W,
    METER_SERIAL,
    SYSTEM_UNIT,
    GxPeer,
)

RATING_W = 5000.0

MakePeer = Callable[..., Any]
MakeGx = Callable[..., VictronGxInverter]


def limit(pct: float, connect: bool = True) -> InverterCommand:
    return InverterCommand(connect=connect, limit_pct=pct)


async def settle(peer: GxPeer, clock: StepClock, seconds: float = 10.0) -> None:
    """Let the PV follow the ESS loop's ceiling (10 lag constants)."""
    clock.step(seconds)
    peer.advance()


async def test_setup_reads_without_writing(make_peer: MakePeer, make_gx: MakeGx) -> None:
    peer = await make_peer(max_feed_in_w=5000)
    gx = make_gx(peer)
    info = await gx.async_setup()
    assert (info.serial_number, info.wide_register, info.max_feed_in_w) == (GX_SERIAL, True, 5000)
    assert gx.own_limit_w == 5000  # what it held becomes the GX's own setting
    assert gx.revert_timeout_s == 0.0  # persistent: nothing to refresh
    assert not gx.supports_connect
    assert not peer.writes()


async def test_reading_reports_pv_and_an_unlimited_gx(
    make_peer: MakePeer, make_gx: MakeGx, clock: StepClock
) -> None:
    peer = await make_peer(available_w=4000, load_w=500)
    gx = make_gx(peer)
    await settle(peer, clock)
    reading = await gx.async_read()
    assert reading.ac_power_w == pytest.approx(4000, abs=2)
    assert reading.rated_power_w == RATING_W
    assert reading.limit_enabled is False  # -1: no limit
    assert reading.status is None


async def test_export_share_becomes_the_feed_in_cap_and_holds_through_load_steps(
    make_peer: MakePeer, make_gx: MakeGx, clock: StepClock
) -> None:
    """G = P + E - export gives cap = E whatever the load: one write, then none."""
    peer = await make_peer(available_w=4000, load_w=500)
    gx = make_gx(peer)
    await settle(peer, clock)
    for load in (500.0, 1200.0, 300.0):
        peer.load_w = load
        await settle(peer, clock)
        reading = await gx.async_read()
        grid = peer.load_w - peer.output_w
        target = reading.ac_power_w + (1500.0 - -grid)  # the controller's rule at E = 1500 W
        await gx.async_apply(limit(target / RATING_W * 100))
        await settle(peer, clock)
        assert peer.max_feed_in_w == 1500
        assert peer.export_w == pytest.approx(1500, abs=5)
    assert len(peer.feed_in_writes()) == 1  # the cap never moved: written once
    reading = await gx.async_read()
    assert reading.status == "throttled"
    assert reading.limit_enabled is True


async def test_generation_limit_translates_to_a_cap_on_the_present_load(
    make_peer: MakePeer, make_gx: MakeGx, clock: StepClock
) -> None:
    peer = await make_peer(available_w=4000, load_w=800)
    gx = make_gx(peer)
    await settle(peer, clock)
    await gx.async_read()
    await gx.async_apply(limit(40.0))  # 2000 W of generation: 2000 - 800 W of load
    # Rounded down to 50 W; the registers' whole watts may put it a watt below 1200.
    assert peer.max_feed_in_w in (1150, 1200)
    await settle(peer, clock)
    assert peer.output_w == pytest.approx(800 + peer.max_feed_in_w, abs=5)
    reading = await gx.async_read()
    assert reading.limit_pct == 40.0  # the command it stands for, while the GX holds it
    await gx.async_apply(limit(40.0))  # same cap: no write
    assert len(peer.feed_in_writes()) == 1


async def test_cap_is_clamped_to_zero_and_to_the_gx_own_setting(
    make_peer: MakePeer, make_gx: MakeGx, clock: StepClock
) -> None:
    peer = await make_peer(available_w=4000, load_w=1000, max_feed_in_w=2000)
    gx = make_gx(peer)
    await gx.async_setup()
    await settle(peer, clock)
    await gx.async_read()
    await gx.async_apply(limit(10.0))  # 500 W < 1000 W of load: zero feed-in is the floor
    assert peer.max_feed_in_w == 0
    await gx.async_apply(limit(0.0, connect=False))  # no relay: zero feed-in too
    assert peer.max_feed_in_w == 0
    await gx.async_apply(limit(99.0))  # would be 3950 W: never above the GX's own 2000 W
    assert peer.max_feed_in_w == 2000
    await gx.async_apply(limit(100.0))  # unlimited: the GX's own setting
    assert peer.max_feed_in_w == 2000
    assert [r.values for r in peer.feed_in_writes()] == [(0, 0), (0, 2000)]


async def test_cap_is_rounded_down_to_the_step(
    make_peer: MakePeer, make_gx: MakeGx, clock: StepClock
) -> None:
    peer = await make_peer(available_w=4000, load_w=777)
    gx = make_gx(peer)
    await settle(peer, clock)
    await gx.async_read()
    await gx.async_apply(limit(50.0))  # 2500 - 777 = 1723 W -> 1700 W
    assert peer.max_feed_in_w == 1700


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "50", True, None])
async def test_bad_values_are_refused_before_anything_is_sent(
    make_peer: MakePeer, make_gx: MakeGx, bad: Any
) -> None:
    peer = await make_peer()
    gx = make_gx(peer)
    with pytest.raises((TypeError, ValueError)):
        await gx.async_apply(InverterCommand(connect=True, limit_pct=bad))
    assert not peer.requests


def test_encoders_refuse_what_the_register_cannot_hold() -> None:
    assert reg.feed_in_registers(-1, wide=True) == [0xFFFF, 0xFFFF]
    assert reg.feed_in_registers(70_000, wide=True) == [1, 70_000 - 65_536]
    assert reg.feed_in_registers(1500, wide=False) == [15]
    with pytest.raises(ValueError, match="-1"):
        reg.feed_in_registers(-2, wide=True)
    with pytest.raises(ValueError, match="100 W steps"):
        reg.feed_in_registers(1550, wide=False)
    with pytest.raises(ValueError, match="int16"):
        reg.feed_in_registers(4_000_000, wide=False)
    with pytest.raises(ValueError, match="int32"):
        reg.feed_in_registers(2**31, wide=True)
    with pytest.raises(ValueError, match="rated power"):
        VictronGxInverter(object(), rated_power_w=float("nan"))  # type: ignore[arg-type]


async def test_old_firmware_uses_2706_in_100_w_steps(
    make_peer: MakePeer, make_gx: MakeGx, clock: StepClock
) -> None:
    peer = await make_peer(available_w=4000, load_w=777, wide=False)
    gx = make_gx(peer)
    info = await gx.async_setup()
    assert not info.wide_register
    await settle(peer, clock)
    await gx.async_read()
    await gx.async_apply(limit(50.0))  # 1723 W -> 17 x 100 W
    assert [(r.address, r.values) for r in peer.feed_in_writes()] == [(MAX_FEED_IN_100W, (17,))]
    assert peer.max_feed_in_w == 1700


async def test_a_cap_changed_on_the_gx_is_seen_as_drift(
    make_peer: MakePeer, make_gx: MakeGx, clock: StepClock
) -> None:
    peer = await make_peer(available_w=4000, load_w=500)
    gx = make_gx(peer)
    await settle(peer, clock)
    await gx.async_read()
    await gx.async_apply(limit(40.0))  # cap 1500 W
    peer.max_feed_in_w = 3000  # someone raised it on the GX
    await settle(peer, clock)
    reading = await gx.async_read()
    assert reading.limit_pct == pytest.approx((3000 + 500) / RATING_W * 100, abs=0.1)
    peer.max_feed_in_w = -1
    reading = await gx.async_read()
    assert reading.limit_enabled is False


async def test_the_cap_persists_without_writes_and_release_restores_the_own_setting(
    make_peer: MakePeer, make_gx: MakeGx, clock: StepClock
) -> None:
    """No timeout: when writes stop the cap stays (safe for export); release hands back."""
    peer = await make_peer(available_w=4000, load_w=500, max_feed_in_w=3000)
    gx = make_gx(peer, own_limit_w=3000)
    await settle(peer, clock)
    await gx.async_read()
    await gx.async_apply(limit(30.0))  # 1500 - 500 W
    await settle(peer, clock, 3600.0)  # an hour with no client
    assert peer.max_feed_in_w == 1000
    assert peer.export_w == pytest.approx(1000, abs=5)
    await gx.async_release()
    assert peer.max_feed_in_w == 3000
    writes = len(peer.feed_in_writes())
    await gx.async_release()  # holds it already: nothing written
    assert len(peer.feed_in_writes()) == writes


async def test_modbus_exceptions_are_device_errors(
    make_peer: MakePeer, make_gx: MakeGx, clock: StepClock
) -> None:
    peer = await make_peer()
    gx = make_gx(peer)
    await settle(peer, clock)
    await gx.async_read()
    peer.read_only = True  # the GX refuses writes with exception 2
    with pytest.raises(ModbusExceptionError) as caught:
        await gx.async_apply(limit(10.0))
    assert caught.value.code == reg.ILLEGAL_DATA_ADDRESS
    assert isinstance(caught.value, DeviceError)
    peer.exceptions[(SYSTEM_UNIT, 808)] = 4
    with pytest.raises(DeviceError):
        await gx.async_read()


async def test_probe_errors(make_peer: MakePeer, connect: Callable[..., Any]) -> None:
    no_ess = await make_peer(ess_running=False)
    with pytest.raises(EssUnavailableError):
        await async_probe_gx(connect(no_ess))
    # The grid meter needs no ESS: a GX without it still serves it as a site meter.
    assert (await async_probe_grid_meter(connect(no_ess), GRID_UNIT)).phases == 3
    external = await make_peer(ess_mode=3)
    with pytest.raises(EssUnavailableError, match="mode 3"):
        await async_probe_gx(connect(external))
    gx = await make_peer()
    gx.exceptions[(SYSTEM_UNIT, 800)] = 10
    with pytest.raises(NotVictronGxError):
        await async_probe_gx(connect(gx))
    del gx.exceptions[(SYSTEM_UNIT, 800)]
    assert (await async_probe_grid_meter(connect(gx), GRID_UNIT)).serial_number == METER_SERIAL
    with pytest.raises(GridMeterUnavailableError):
        await async_probe_grid_meter(connect(gx), SYSTEM_UNIT)  # the grid service is not at 100
    with pytest.raises(GridMeterUnavailableError):
        await async_probe_grid_meter(connect(gx), 31)  # nothing at 31
    assert not gx.writes()


async def test_grid_meter_reads_power_energy_and_phases(
    make_peer: MakePeer, make_meter: Callable[..., VictronGridMeter], clock: StepClock
) -> None:
    peer = await make_peer(available_w=4000, load_w=1000, phases=1)
    meter = make_meter(peer)
    info = await meter.async_setup()
    assert (info.serial_number, info.phases) == (METER_SERIAL, 1)
    await settle(peer, clock)
    before = await meter.async_read()
    assert before.grid_power_w == pytest.approx(-3000, abs=2)  # + import / - export
    assert before.phase_power_w is None
    assert before.voltage_v == 230.0
    await settle(peer, clock, 3600.0)
    after = await meter.async_read()
    assert after.export_energy_wh is not None
    assert before.export_energy_wh is not None
    assert after.export_energy_wh - before.export_energy_wh == pytest.approx(3000, abs=20)
    assert after.import_energy_wh == before.import_energy_wh


async def test_three_phase_meter_reports_each_phase(
    make_peer: MakePeer, make_meter: Callable[..., VictronGridMeter], clock: StepClock
) -> None:
    peer = await make_peer(available_w=0, load_w=900)
    meter = make_meter(peer)
    await settle(peer, clock)
    reading = await meter.async_read()
    assert reading.phase_power_w == (300.0, 300.0, 300.0)
    assert reading.grid_power_w == 900.0


async def test_wide_register_word_order(make_peer: MakePeer, make_gx: MakeGx) -> None:
    """2722 is high word first: 70 kW is (1, 4464)."""
    peer = await make_peer(max_feed_in_w=70_000)
    assert (peer.system[MAX_FEED_IN_W], peer.system[MAX_FEED_IN_W + 1]) == (1, 4464)
    assert (await make_gx(peer).async_setup()).max_feed_in_w == 70_000


async def test_meter_without_energy_totals_reads_power(
    make_peer: MakePeer, make_meter: Callable[..., VictronGridMeter], clock: StepClock
) -> None:
    """Older firmware has no 2634-2637: energy is unknown, power still read (asked once)."""
    peer = await make_peer(available_w=0, load_w=600, energy_totals=False)
    meter = make_meter(peer)
    await settle(peer, clock)
    for _ in range(3):
        reading = await meter.async_read()
        assert reading.grid_power_w == 600.0
        assert reading.import_energy_wh is None
    assert len([r for r in peer.requests if r.address == GRID_ENERGY]) == 1


async def test_noise_within_a_step_does_not_rewrite_the_cap(
    make_peer: MakePeer, make_gx: MakeGx, clock: StepClock
) -> None:
    """The exact cap moves by a few watts with every reading; the setting is not rewritten."""
    peer = await make_peer(available_w=4000, load_w=500)
    gx = make_gx(peer)
    await settle(peer, clock)
    await gx.async_read()
    await gx.async_apply(limit(2000 / RATING_W * 100))  # cap = 2000 - 4000 + 3500 = 1500
    held = peer.max_feed_in_w
    await settle(peer, clock)
    for noise in (-15.0, 10.0, -18.0, 40.0):  # within (-25, +50) W of it, a few W to spare
        reading = await gx.async_read()
        grid = peer.load_w - peer.output_w
        exact = held + noise  # the share that gives this cap on this reading
        await gx.async_apply(limit((exact + reading.ac_power_w + grid) / RATING_W * 100))
    assert len(peer.feed_in_writes()) == 1
    reading = await gx.async_read()
    grid = peer.load_w - peer.output_w
    await gx.async_apply(limit((held - 40 + reading.ac_power_w + grid) / RATING_W * 100))
    assert peer.max_feed_in_w == held - 50  # more than half a step below: written, down


async def test_frozen_meter_values_count_as_old(
    make_peer: MakePeer, make_meter: Callable[..., VictronGridMeter], clock: StepClock
) -> None:
    """The GX keeps serving the meter's last values: its totals stand still while 3.5 kW
    flows, so after 40 Wh (41 s) a reading counts as old as the totals' last move."""
    peer = await make_peer(available_w=4000, load_w=500)
    meter = make_meter(peer)
    for _ in range(60):  # live: the 10 Wh totals move every ~10 s
        await settle(peer, clock, 1.0)
        reading = await meter.async_read()
        assert reading.timestamp == clock.now
    peer.freeze_meter()
    stamps = []
    for _ in range(60):
        await settle(peer, clock, 1.0)
        stamps.append((await meter.async_read()).timestamp)
    first_old = next(i for i, t in enumerate(stamps) if t < clock.now - 60 + i)
    assert 30 <= first_old + 1 <= 42  # 30-40 Wh still since the last move, at 3.5 kW
    assert clock.now - stamps[-1] >= 50
    peer.freeze_meter(False)
    await settle(peer, clock, 1.0)
    assert (await meter.async_read()).timestamp == clock.now


async def test_coarse_totals_are_never_judged_frozen(
    make_peer: MakePeer, make_meter: Callable[..., VictronGridMeter], clock: StepClock
) -> None:
    """A meter whose totals move in 100 Wh steps (0.1 kWh behind the GX's 0.01 kWh register)
    cannot be told from a frozen one: it is never judged, so it never trips a false
    fail-safe."""
    peer = await make_peer(available_w=4000, load_w=500, energy_step_wh=100)
    meter = make_meter(peer)
    for _ in range(600):
        await settle(peer, clock, 1.0)
        assert (await meter.async_read()).timestamp == clock.now


async def test_cap_never_exceeds_the_generation_asked_for(
    make_peer: MakePeer, make_gx: MakeGx
) -> None:
    """PV 500 W with the grid still reading 1450 W of export (a frozen value) says the site
    uses -950 W: taken as 0 W, so a 30 % share (1500 W) caps feed-in at 1500 W, not 2450 W."""
    peer = await make_peer()
    gx = make_gx(peer)
    await gx.async_setup()
    assert gx.cap_for(limit(30.0), pv_w=500.0, grid_w=-1450.0) == 1500
    assert gx.cap_for(limit(30.0), pv_w=2050.0, grid_w=-1450.0) == 900  # 600 W own use
