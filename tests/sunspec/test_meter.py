"""SunSpec meter: int+SF and float models, sign convention, sentinels."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.core.errors import InvalidDeviceDataError
from custom_components.dynamic_export.sunspec.device import SunSpecDevice
from custom_components.dynamic_export.sunspec.errors import UnsupportedDeviceError
from custom_components.dynamic_export.sunspec.meter import SunSpecMeter

from .helpers import (
    assert_close,
    build_image,
    common_values,
    inverter_image,
    meter_image,
    meter_values,
)


async def _meter(make_peer, make_connection, image, **kwargs):
    server = await make_peer({240: image})
    return SunSpecMeter(SunSpecDevice(make_connection(server.port), 240), **kwargs), server


async def test_int_sf_meter_203(make_peer, make_connection) -> None:
    meter, _ = await _meter(make_peer, make_connection, meter_image(203), clock=lambda: 5.0)
    info = await meter.async_setup()
    assert (info.meter_model_id, info.phases, info.manufacturer, info.model) == (
        203, 3, "Fronius", "Smart Meter TS 65A-3"
    )  # fmt: skip
    assert meter.info == info
    reading = await meter.async_read()
    assert reading.timestamp == 5.0
    assert reading.grid_power_w == -1500.0  # exporting (W_SF 1: raw -150)
    assert reading.export_w == 1500.0
    assert reading.phase_power_w == (-500.0, -500.0, -500.0)
    assert reading.import_energy_wh == 654320.0
    assert reading.export_energy_wh == 123450.0
    assert_close(reading.voltage_v, 231.0)  # PhV not implemented: phase A
    assert_close(reading.frequency_hz, 50.02)


async def test_float_meter_213_is_read_in_chunks(make_peer, make_connection) -> None:
    meter, server = await _meter(make_peer, make_connection, meter_image(213))
    info = await meter.async_setup()
    assert (info.meter_model_id, info.phases) == (213, 3)
    server.requests.clear()
    reading = await meter.async_read()
    assert reading.grid_power_w == -1500.0
    assert reading.phase_power_w == (-500.0, -500.0, -500.0)
    assert reading.import_energy_wh == 654321.0
    assert reading.export_energy_wh == 123456.0
    assert_close(reading.voltage_v, 230.5)  # PhV (average) preferred
    assert_close(reading.frequency_hz, 50.02, rel=1e-6)
    counts = [r.count for r in server.requests]
    assert sum(counts) == 126
    assert max(counts) <= 125
    assert len(counts) == 2


@pytest.mark.parametrize("model_id", [203, 213])
async def test_invert_flips_power_and_swaps_energy(make_peer, make_connection, model_id) -> None:
    image = meter_image(model_id, values=meter_values(model_id, w=2100.0))
    meter, _ = await _meter(make_peer, make_connection, image, invert=True)
    reading = await meter.async_read()
    assert reading.grid_power_w == -2100.0
    assert reading.phase_power_w == (-700.0, -700.0, -700.0)
    plain, _ = await _meter(make_peer, make_connection, image)
    normal = await plain.async_read()
    assert normal.grid_power_w == 2100.0
    assert reading.import_energy_wh == normal.export_energy_wh
    assert reading.export_energy_wh == normal.import_energy_wh


async def test_single_phase_meter_and_missing_phases(make_peer, make_connection) -> None:
    values = {"W": 350, "W_SF": 0, "WphA": 350, "Hz": 500, "Hz_SF": -1, "PhV": 2301, "V_SF": -1}
    meter, _ = await _meter(make_peer, make_connection, meter_image(201, values=values))
    info = await meter.async_setup()
    assert info.phases == 1
    reading = await meter.async_read()
    assert reading.grid_power_w == 350.0
    assert reading.phase_power_w == (350.0, None, None)
    assert reading.import_energy_wh is None  # acc32 0 = not implemented
    assert_close(reading.voltage_v, 230.1)


async def test_no_phase_powers_gives_none(make_peer, make_connection) -> None:
    values = {"W": -20, "W_SF": 2}
    meter, _ = await _meter(make_peer, make_connection, meter_image(203, values=values))
    reading = await meter.async_read()
    assert reading.grid_power_w == -2000.0
    assert reading.phase_power_w is None
    assert reading.voltage_v is None
    assert reading.frequency_hz is None


@pytest.mark.parametrize(
    ("model_id", "values"),
    [(203, {"W": None, "W_SF": 0}), (203, {"W": 100, "W_SF": None}), (213, {"W": None})],
)
async def test_unimplemented_power_is_invalid(make_peer, make_connection, model_id, values):
    meter, _ = await _meter(make_peer, make_connection, meter_image(model_id, values=values))
    with pytest.raises(InvalidDeviceDataError, match="no power"):
        await meter.async_read()


async def test_meter_model_preference(make_peer, make_connection) -> None:
    image = build_image([(1, common_values(), 65), (213, meter_values(213)),
                         (203, meter_values(203, w=100.0))])  # fmt: skip
    meter, _ = await _meter(make_peer, make_connection, image)
    assert (await meter.async_setup()).meter_model_id == 203
    assert (await meter.async_read()).grid_power_w == 100.0


async def test_inverter_is_not_a_meter(make_peer, make_connection) -> None:
    meter, _ = await _meter(make_peer, make_connection, inverter_image(103))
    with pytest.raises(UnsupportedDeviceError, match="meter model"):
        await meter.async_setup()


@pytest.mark.parametrize("invert", [False, True])
async def test_reactive_power_and_voltage_per_measured_phase(
    make_peer, make_connection, invert: bool
) -> None:
    """VAR follows the meter's sign convention; only the phases the model has are voltages."""
    values = {**meter_values(203), "VAR": -40, "VAR_SF": 1}
    meter, _ = await _meter(
        make_peer, make_connection, meter_image(203, values=values), invert=invert
    )
    reading = await meter.async_read()
    assert reading.reactive_power_var == (400.0 if invert else -400.0)
    assert reading.phase_voltage_v is not None
    assert_close(reading.phase_voltage_v[0], 231.0)
    assert_close(reading.phase_voltage_v[1], 232.0)
    assert reading.phase_voltage_v[2] is None  # not implemented
    single, _ = await _meter(make_peer, make_connection, meter_image(201))
    one = await single.async_read()
    assert one.reactive_power_var is None
    assert one.phase_voltage_v is not None
    assert one.phase_voltage_v[1:] == (None, None), "a single-phase meter has phase A only"
    bare, _ = await _meter(make_peer, make_connection, meter_image(203, values={"W": 1, "W_SF": 0}))
    assert (await bare.async_read()).phase_voltage_v is None
