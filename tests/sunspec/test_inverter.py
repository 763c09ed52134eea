"""SunSpec inverter: setup, readings and limit writes (only the control registers)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from custom_components.dynamic_export.core.errors import InvalidDeviceDataError
from custom_components.dynamic_export.core.measurements import InverterCommand
from custom_components.dynamic_export.sunspec.device import SunSpecDevice
from custom_components.dynamic_export.sunspec.errors import UnsupportedDeviceError
from custom_components.dynamic_export.sunspec.inverter import STATUS_NAMES, SunSpecInverter

from .helpers import (
    DeviceImage,
    ModbusPeer,
    assert_close,
    build_image,
    common_values,
    controls_values,
    inverter_image,
    inverter_values,
    meter_image,
    spec_points,
)

CONTROL_POINTS = ("Conn", "Conn_RvrtTms", "WMaxLimPct", "WMaxLimPct_RvrtTms", "WMaxLim_Ena")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _inverter(
    make_peer: Callable[..., Any],
    make_connection: Callable[..., Any],
    image: DeviceImage,
    **kwargs: Any,
) -> tuple[SunSpecInverter, ModbusPeer]:
    server = await make_peer({1: image})
    device = SunSpecDevice(make_connection(server.port), 1)
    return SunSpecInverter(device, **kwargs), server


async def _value(server: ModbusPeer, model_id: int, point: str) -> int:
    """A one-register point as the server holds it now."""
    return (await server.snapshot(1)).value(model_id, point)


def _control_addresses(image: DeviceImage) -> set[int]:
    return set().union(*(image.point_addresses(123, p) for p in CONTROL_POINTS))


@pytest.mark.parametrize(("model_id", "phases"), [(101, 1), (102, 2), (103, 3)])
async def test_int_sf_inverter(make_peer, make_connection, model_id: int, phases: int) -> None:
    clock = Clock()
    image = inverter_image(model_id, wmax=750, wmax_sf=1)
    inverter, _ = await _inverter(make_peer, make_connection, image, clock=clock)
    info = await inverter.async_setup()
    assert (info.manufacturer, info.model, info.serial_number, info.version) == (
        "Fronius", "Symo 8.2-3-M", "12345678", "1.2.3"
    )  # fmt: skip
    assert info.rated_power_w == 7500.0
    assert (info.inverter_model_id, info.phases) == (model_id, phases)
    assert inverter.info == info
    reading = await inverter.async_read()
    assert reading.timestamp == 1000.0
    assert reading.ac_power_w == 1307.0
    assert reading.lifetime_energy_wh == 1720967.0
    assert reading.rated_power_w == 7500.0
    assert reading.status == "mppt"
    assert reading.limit_pct == 100
    assert reading.limit_enabled is False
    assert reading.connected is True


async def test_float_inverter_113(make_peer, make_connection) -> None:
    image = inverter_image(113, limit_sf=-2, inverter=inverter_values(113, w=4321.5, st=5))
    inverter, _ = await _inverter(make_peer, make_connection, image)
    info = await inverter.async_setup()
    assert (info.inverter_model_id, info.phases) == (113, 3)
    reading = await inverter.async_read()
    assert reading.ac_power_w == 4321.5
    assert reading.lifetime_energy_wh == 1720967.0
    assert reading.status == "throttled"
    assert_close(reading.limit_pct, 100.0)


async def test_inverter_model_preference(make_peer, make_connection) -> None:
    image = build_image([
        (1, common_values(), 65), (113, inverter_values(113)), (103, inverter_values(103)),
        (121, {"WMax": 5000, "WMax_SF": 0}), (123, controls_values()),
    ])  # fmt: skip
    inverter, _ = await _inverter(make_peer, make_connection, image)
    assert (await inverter.async_setup()).inverter_model_id == 103


async def test_rating_falls_back_to_nameplate(make_peer, make_connection) -> None:
    image = inverter_image(103, with_settings=False)
    inverter, _ = await _inverter(make_peer, make_connection, image)
    assert (await inverter.async_setup()).rated_power_w == 8200.0


@pytest.mark.parametrize(
    ("wmax", "wmax_sf"),
    [(0, 0), (65000, 3), (None, 0), (5000, None)],
)
async def test_implausible_rating_is_invalid(
    make_peer, make_connection, wmax: int | None, wmax_sf: int | None
) -> None:
    image = build_image([
        (1, common_values(), 65), (103, inverter_values(103)),
        (121, {"WMax": wmax, "WMax_SF": wmax_sf}), (123, controls_values()),
    ])  # fmt: skip
    inverter, _ = await _inverter(make_peer, make_connection, image)
    with pytest.raises(InvalidDeviceDataError, match="rated power"):
        await inverter.async_setup()


@pytest.mark.parametrize("sf", [1, -5, None])
async def test_limit_sf_out_of_range_is_invalid(make_peer, make_connection, sf: Any) -> None:
    controls = controls_values() | {"WMaxLimPct_SF": sf, "WMaxLimPct": 100}
    image = inverter_image(103, controls=controls)
    inverter, server = await _inverter(make_peer, make_connection, image)
    with pytest.raises(InvalidDeviceDataError, match="WMaxLimPct_SF"):
        await inverter.async_setup()
    with pytest.raises(InvalidDeviceDataError):
        await inverter.async_apply(InverterCommand(connect=True, limit_pct=50))
    assert server.writes() == []


async def test_power_sf_out_of_range_is_invalid(make_peer, make_connection) -> None:
    image = inverter_image(103, inverter=inverter_values(103) | {"W_SF": 12})
    inverter, _ = await _inverter(make_peer, make_connection, image)
    await inverter.async_setup()
    with pytest.raises(InvalidDeviceDataError, match="W_SF"):
        await inverter.async_read()


@pytest.mark.parametrize("model_id", [103, 113])
async def test_unimplemented_power_is_invalid(make_peer, make_connection, model_id) -> None:
    image = inverter_image(model_id, inverter=inverter_values(model_id) | {"W": None})
    inverter, _ = await _inverter(make_peer, make_connection, image)
    with pytest.raises(InvalidDeviceDataError, match="no AC power"):
        await inverter.async_read()  # also sets up lazily


async def test_unimplemented_optional_points_read_as_none(make_peer, make_connection) -> None:
    inverter_regs = inverter_values(103) | {"WH": None, "St": None}
    controls = controls_values() | {"WMaxLim_Ena": None, "Conn": None, "WMaxLimPct_SF": -2,
                                    "WMaxLimPct": None}  # fmt: skip
    image = inverter_image(103, inverter=inverter_regs, controls=controls)
    inverter, _ = await _inverter(make_peer, make_connection, image)
    reading = await inverter.async_read()
    assert reading.lifetime_energy_wh is None
    assert reading.status is None
    assert reading.limit_enabled is None
    assert reading.connected is None
    assert reading.limit_pct is None
    assert reading.limit_w == reading.rated_power_w


async def test_no_controls_model_is_unsupported(make_peer, make_connection) -> None:
    image = build_image([(1, common_values(), 65), (103, inverter_values(103)),
                         (121, {"WMax": 5000, "WMax_SF": 0})])  # fmt: skip
    inverter, _ = await _inverter(make_peer, make_connection, image)
    with pytest.raises(UnsupportedDeviceError, match="123"):
        await inverter.async_setup()


async def test_meter_is_not_an_inverter(make_peer, make_connection) -> None:
    inverter, _ = await _inverter(make_peer, make_connection, meter_image(203))
    with pytest.raises(UnsupportedDeviceError, match="inverter model"):
        await inverter.async_setup()


def test_status_names_match_official_symbols() -> None:
    for model_id in (101, 102, 103, 112, 113):
        symbols = spec_points(model_id)["St"].symbols
        assert {v: k.lower() for k, v in symbols.items()} == STATUS_NAMES
    # pysunspec2 1.3.7's model 111 spells them "ggOFF", "ggSLEEPING", ... (same values).
    symbols_111 = spec_points(111)["St"].symbols
    assert {v: k.lower().removeprefix("gg") for k, v in symbols_111.items()} == STATUS_NAMES


@pytest.mark.parametrize(
    ("sf", "pct", "raw"),
    [
        (0, 100.0, 100),
        (-2, 100.0, 10000),
        (0, 37.5, 37),
        (-2, 37.5, 3750),
        (-1, 37.56, 375),
        (-2, 37.519, 3751),
        (-2, 57.99, 5799),
        (-2, 150.0, 10000),
        (-2, -5.0, 0),
        (0, 0.0, 0),
        (-3, 12.3456, 12345),
        (-3, 100.0, 65534),  # 100 % is not representable with SF -3: the closest lower value
    ],
)
async def test_limit_written_with_device_sf_rounded_down(
    make_peer, make_connection, sf: int, pct: float, raw: int
) -> None:
    image = inverter_image(103, limit_sf=sf)
    inverter, server = await _inverter(make_peer, make_connection, image)
    await inverter.async_setup()
    await inverter.async_apply(InverterCommand(connect=True, limit_pct=pct))
    assert await _value(server, 123, "WMaxLimPct") == raw
    assert await _value(server, 123, "WMaxLim_Ena") == 1
    reading = await inverter.async_read()
    assert reading.limit_enabled is True
    assert reading.limit_pct is not None
    assert reading.limit_pct <= max(0.0, min(100.0, pct)) + 1e-9


@pytest.mark.parametrize("model_id", [101, 103, 113])
async def test_apply_touches_only_control_registers(
    make_peer, make_connection, model_id: int
) -> None:
    image = inverter_image(model_id, limit_sf=-2, controls=controls_values(sf=-2, conn=0))
    inverter, server = await _inverter(make_peer, make_connection, image, revert_timeout_s=30)
    await inverter.async_setup()
    before = await server.snapshot(1)
    assert before.registers == image.registers
    await inverter.async_apply(InverterCommand(connect=True, limit_pct=42.0))
    await inverter.async_read()
    await inverter.async_apply(InverterCommand(connect=True, limit_pct=10.0))
    await inverter.async_apply(InverterCommand(connect=False, limit_pct=0.0))
    await inverter.async_release()
    after = (await server.snapshot(1)).registers
    assert set(after) == set(before.registers)
    changed = {a for a in after if after[a] != before.registers[a]}
    assert changed
    assert changed <= _control_addresses(image)
    assert server.writes()
    for write in server.writes():
        assert write.count == 1, write
        assert write.address in _control_addresses(image)


async def test_apply_sequence_and_revert_timer_written_once(make_peer, make_connection) -> None:
    image = inverter_image(103, limit_sf=-2, controls=controls_values(sf=-2, rvrt=0))
    inverter, server = await _inverter(make_peer, make_connection, image, revert_timeout_s=60)
    await inverter.async_setup()
    assert inverter.revert_timeout_s == 60.0
    await inverter.async_apply(InverterCommand(connect=True, limit_pct=50.0))
    rvrt, pct, ena = (image.address(123, p) for p in
                      ("WMaxLimPct_RvrtTms", "WMaxLimPct", "WMaxLim_Ena"))  # fmt: skip
    assert [(w.address, w.values) for w in server.writes()] == [
        (rvrt, (60,)), (pct, (5000,)), (ena, (1,))
    ]  # fmt: skip
    server.requests.clear()
    await inverter.async_read()
    await inverter.async_apply(InverterCommand(connect=True, limit_pct=60.0))
    # Already enabled: the setpoint alone moves the limit (one request, not two).
    assert [(w.address, w.values) for w in server.writes()] == [(pct, (6000,))]
    # Someone else reset the timer: the next read notices and the next apply rewrites it.
    await server.set_registers(1, image.encode(123, "WMaxLimPct_RvrtTms", 0))
    server.requests.clear()
    await inverter.async_read()
    await inverter.async_apply(InverterCommand(connect=True, limit_pct=60.0))
    assert [w.address for w in server.writes()] == [rvrt, pct]
    # The limit was dropped (its timer ran out, or someone disabled it): enabled again.
    await server.set_registers(1, image.encode(123, "WMaxLim_Ena", 0))
    server.requests.clear()
    await inverter.async_read()
    await inverter.async_apply(InverterCommand(connect=True, limit_pct=60.0))
    assert [(w.address, w.values) for w in server.writes()] == [(pct, (6000,)), (ena, (1,))]
    server.requests.clear()
    await inverter.async_release()
    await inverter.async_apply(InverterCommand(connect=True, limit_pct=60.0))
    assert [w.address for w in server.writes()] == [ena, pct, ena]


async def test_revert_timer_not_written_when_unimplemented(make_peer, make_connection) -> None:
    image = inverter_image(103, controls=controls_values(rvrt=None))
    inverter, server = await _inverter(make_peer, make_connection, image)
    await inverter.async_setup()
    assert inverter.revert_timeout_s == 0.0
    await inverter.async_apply(InverterCommand(connect=True, limit_pct=20.0))
    assert [w.address for w in server.writes()] == [
        image.address(123, "WMaxLimPct"), image.address(123, "WMaxLim_Ena")
    ]  # fmt: skip


async def test_disconnect_and_reconnect(make_peer, make_connection) -> None:
    image = inverter_image(103)
    inverter, server = await _inverter(make_peer, make_connection, image, revert_timeout_s=45)
    await inverter.async_setup()
    await inverter.async_apply(InverterCommand(connect=False, limit_pct=0.0))
    assert await _value(server, 123, "Conn") == 0
    assert await _value(server, 123, "Conn_RvrtTms") == 45
    assert await _value(server, 123, "WMaxLim_Ena") == 0  # a disconnect writes nothing else
    assert (await inverter.async_read()).connected is False
    server.requests.clear()
    await inverter.async_apply(InverterCommand(connect=True, limit_pct=80.0))
    assert await _value(server, 123, "Conn") == 1
    assert server.writes()[0].address == image.address(123, "Conn")
    assert (await inverter.async_read()).connected is True
    server.requests.clear()
    await inverter.async_apply(InverterCommand(connect=True, limit_pct=80.0))
    assert image.address(123, "Conn") not in [w.address for w in server.writes()]


async def test_release(make_peer, make_connection) -> None:
    image = inverter_image(103, controls=controls_values(conn=0, ena=1))
    inverter, server = await _inverter(make_peer, make_connection, image)
    await inverter.async_setup()
    await inverter.async_release()
    assert await _value(server, 123, "WMaxLim_Ena") == 0
    assert await _value(server, 123, "Conn") == 1
    server.requests.clear()
    await inverter.async_read()
    await inverter.async_release()
    assert [w.address for w in server.writes()] == [image.address(123, "WMaxLim_Ena")]


@pytest.mark.parametrize("pct", [math.nan, math.inf, -math.inf])
async def test_nonfinite_limit_is_rejected_before_writing(
    make_peer, make_connection, pct: float
) -> None:
    image = inverter_image(103)
    inverter, server = await _inverter(make_peer, make_connection, image)
    await inverter.async_setup()
    with pytest.raises(ValueError, match="finite"):
        await inverter.async_apply(InverterCommand(connect=True, limit_pct=pct))
    assert server.writes() == []


def test_revert_timeout_validation() -> None:
    device = SunSpecDevice(object(), 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="revert_timeout_s"):
        SunSpecInverter(device, revert_timeout_s=-1)
    with pytest.raises(ValueError, match="revert_timeout_s"):
        SunSpecInverter(device, revert_timeout_s=math.nan)
    assert SunSpecInverter(device, revert_timeout_s=0.5).revert_timeout_s == 1.0


async def test_reactive_power_voltage_and_frequency(make_peer, make_connection) -> None:
    """VAr, the voltage of each phase the inverter has, and frequency, as CSIP-AUS reports."""
    values = {**inverter_values(102), "VAr": -12, "VAr_SF": 1, "PhVphB": 2398, "PhVphC": 2400}
    image = inverter_image(102, inverter=values)
    inverter, _ = await _inverter(make_peer, make_connection, image)
    reading = await inverter.async_read()
    assert reading.reactive_power_var == -120.0
    assert reading.phase_voltage_v is not None
    assert_close(reading.phase_voltage_v[0], 241.5)
    assert_close(reading.phase_voltage_v[1], 239.8)
    assert reading.phase_voltage_v[2] is None, "a two-phase inverter has no phase C"
    assert_close(reading.frequency_hz, 50.01)
    bare, _ = await _inverter(make_peer, make_connection, inverter_image(101))
    assert (await bare.async_read()).reactive_power_var is None


def _with_available(w_aval: int | None) -> DeviceImage:
    """An inverter image whose model 122 has ``WAval`` (W at SF 0; None: unimplemented)."""
    image = inverter_image(103)
    if w_aval is not None:
        image.registers.update(image.encode(122, "WAval", w_aval))
        image.registers.update(image.encode(122, "WAval_SF", 0))
    return image


async def test_available_power_is_read_from_model_122_every_ten_seconds(
    make_peer, make_connection
) -> None:
    """WAval reaches the reading; model 122 is asked at most every 10 s, not every cycle."""
    clock = Clock()
    image = _with_available(6200)
    inverter, server = await _inverter(make_peer, make_connection, image, clock=clock)
    status_address = image.locations[122]

    def status_reads() -> int:
        return sum(
            1
            for r in server.requests
            if r.function == 3 and r.address <= status_address < r.address + r.count
        )

    assert (await inverter.async_read()).available_w == 6200.0
    reads = status_reads()
    await server.set_registers(1, image.encode(122, "WAval", 5100))
    clock.now += 5.0
    assert (await inverter.async_read()).available_w == 6200.0  # the last value still stands
    assert status_reads() == reads
    clock.now += 5.0
    assert (await inverter.async_read()).available_w == 5100.0
    assert status_reads() == reads + 1


@pytest.mark.parametrize("w_aval", [None, 0, 20000])
async def test_available_power_not_filled_in_is_not_used(
    make_peer, make_connection, w_aval: int | None
) -> None:
    """Unimplemented, below the output (headroom, or never filled in) or past the rating."""
    inverter, _ = await _inverter(make_peer, make_connection, _with_available(w_aval))
    reading = await inverter.async_read()
    assert reading.ac_power_w > 50.0
    assert reading.available_w is None
