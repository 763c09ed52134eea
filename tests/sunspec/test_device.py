"""Discovery, block reads and single-point writes."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.core.errors import (
    DeviceError,
    DeviceResponseError,
    InvalidDeviceDataError,
)
from custom_components.dynamic_export.sunspec.device import CommonInfo, SunSpecDevice
from custom_components.dynamic_export.sunspec.errors import (
    NotSunSpecError,
    UnsupportedDeviceError,
)

from .helpers import (
    FakeModbusServer,
    build_image,
    common_values,
    controls_values,
    inverter_image,
)


@pytest.mark.parametrize("base", [40000, 0, 50000])
async def test_discovery_at_each_base(make_peer, make_connection, base: int) -> None:
    image = inverter_image(base=base)
    server = await make_peer({1: image})
    device = SunSpecDevice(make_connection(server.port), 1)
    models = await device.async_scan()
    assert {mid: loc.address for mid, loc in models.items()} == image.locations
    assert models[1].length == 65
    assert models[123].length == 24
    assert device.models == models


async def test_fronius_worked_example_addresses(make_peer, make_connection) -> None:
    """Model 1 L=65 then 103, 120..123: WMaxLimPct at 40232 as Fronius documents it."""
    server = await make_peer({1: inverter_image(103, common_length=65)})
    device = SunSpecDevice(make_connection(server.port), 1)
    models = await device.async_scan()
    assert {mid: loc.address for mid, loc in models.items()} == {
        1: 40002, 103: 40069, 120: 40121, 121: 40149, 122: 40181, 123: 40227
    }  # fmt: skip


async def test_garbage_at_first_base_falls_through(make_peer, make_connection) -> None:
    image = inverter_image(base=50000)
    image.registers.update({40000: 0x1234, 40001: 0x5678})
    server = await make_peer({1: image})
    device = SunSpecDevice(make_connection(server.port), 1)
    assert (await device.async_scan())[123].address == image.locations[123]


async def test_not_sunspec(make_peer, make_connection) -> None:
    registers = dict.fromkeys(range(40000, 40010), 0) | dict.fromkeys(range(4), 0x4141)
    server = await make_peer({1: registers})
    device = SunSpecDevice(make_connection(server.port), 1)
    with pytest.raises(NotSunSpecError):
        await device.async_scan()
    reads = [r.address for r in server.requests]
    # pymodbus logs only the reads its address check let through (50000 is past the map).
    assert reads == ([40000, 0, 50000] if isinstance(server, FakeModbusServer) else [40000, 0])


async def test_offline_unit_behind_gateway_is_not_reported_as_not_sunspec(
    make_server, make_connection
) -> None:
    server = await make_server({1: inverter_image()})
    device = SunSpecDevice(make_connection(server.port), 2)  # unit 2 absent: exception 11
    with pytest.raises(DeviceResponseError, match="gateway") as info:
        await device.async_scan()
    assert not isinstance(info.value, NotSunSpecError)


async def test_device_failure_at_the_marker_is_not_reported_as_not_sunspec(
    make_server, make_connection
) -> None:
    """Only "illegal address/value" means "no map here"; a device failure (4) is passed on."""
    server = await make_server({1: inverter_image()})
    server.exceptions[(1, 40000)] = 4
    device = SunSpecDevice(make_connection(server.port), 1)
    with pytest.raises(DeviceResponseError) as info:
        await device.async_scan()
    assert not isinstance(info.value, NotSunSpecError)
    assert [r.address for r in server.requests] == [40000]


@pytest.mark.parametrize("make_peer", ["pymodbus"], indirect=True)
async def test_unit_missing_from_pymodbus_server(make_peer, make_connection) -> None:
    """pymodbus' server is no gateway and never answers 11 for a unit it lacks: 3.8 sends an
    exception frame with function code 0x80 that pymodbus' client cannot decode (we see a lost
    connection), 3.16 answers exception 4 (a device failure). Either way the scan fails, and
    the shared socket goes on serving the unit that is there."""
    server = await make_peer({1: inverter_image()})
    connection = make_connection(server.port)
    with pytest.raises(DeviceError):
        await SunSpecDevice(connection, 2).async_scan()
    assert 123 in await SunSpecDevice(connection, 1).async_scan()


async def test_chain_without_end_marker(make_peer, make_connection) -> None:
    image = build_image([(1, common_values(), 65), (123, controls_values())], end_marker=False)
    server = await make_peer({1: image})
    device = SunSpecDevice(make_connection(server.port), 1)
    assert set(await device.async_scan()) == {1, 123}


async def test_absurd_length_is_invalid(make_peer, make_connection) -> None:
    image = build_image([(1, common_values(), 65)])
    image.registers[40002 + 67 + 1] = 0xFFF0  # next header: some id, huge L
    image.registers[40002 + 67] = 64000
    server = await make_peer({1: image})
    device = SunSpecDevice(make_connection(server.port), 1)
    with pytest.raises(InvalidDeviceDataError, match="length"):
        await device.async_scan()


async def test_endless_chain_is_cut_off(make_peer, make_connection) -> None:
    registers = {40000: 0x5375, 40001: 0x6E53}
    for i in range(300):  # 300 empty models, no end marker
        registers[40002 + 2 * i] = 64000 + i
        registers[40003 + 2 * i] = 0
    server = await make_peer({1: registers})
    device = SunSpecDevice(make_connection(server.port), 1)
    with pytest.raises(InvalidDeviceDataError, match="more than 100"):
        await device.async_scan()
    assert len(server.requests) <= 103


@pytest.mark.parametrize("length", [65, 66])
async def test_read_common(make_peer, make_connection, length: int) -> None:
    image = build_image([(1, common_values("SMA", "STP 10.0", "3001234567"), length)])
    server = await make_peer({126: image})
    device = SunSpecDevice(make_connection(server.port), 126)
    await device.async_scan()
    assert await device.async_read_common() == CommonInfo(
        manufacturer="SMA",
        model="STP 10.0",
        options="opt",
        version="1.2.3",
        serial_number="3001234567",
    )


async def test_read_model_scans_lazily_and_rejects_absent_models(
    make_peer, make_connection
) -> None:
    server = await make_peer({1: inverter_image(101)})
    device = SunSpecDevice(make_connection(server.port), 1)
    values = await device.async_read_model(101)
    assert values["W"] == 1307
    with pytest.raises(UnsupportedDeviceError):
        await device.async_read_model(103)
    with pytest.raises(UnsupportedDeviceError):
        await device.async_read_model(160)  # not vendored


async def test_moved_map_is_detected_then_rescanned(make_peer, make_connection) -> None:
    int_sf, floats = inverter_image(103), inverter_image(113)
    # Registers past the int+SF map's end marker exist (zero) so the float map fits later.
    server = await make_peer({1: dict.fromkeys(floats.registers, 0) | int_sf.registers})
    device = SunSpecDevice(make_connection(server.port), 1)
    await device.async_scan()
    await server.set_registers(1, floats.registers)  # Fronius switched to float: map shifts
    with pytest.raises(InvalidDeviceDataError, match="no longer"):
        await device.async_read_model(123)
    assert device.models == {}
    values = await device.async_read_model(123)  # rescans
    assert values["ID"] == 123
    assert device.models[123].address == 40227 + 10


async def test_write_point_writes_only_that_point(make_peer, make_connection) -> None:
    image = inverter_image(103)
    server = await make_peer({1: image})
    device = SunSpecDevice(make_connection(server.port), 1)
    await device.async_scan()
    before = await server.snapshot(1)
    await device.async_write_point(123, "WMaxLimPct", 42)
    after = await server.snapshot(1)
    changed = {a for a in after.registers if after.registers[a] != before.registers[a]}
    assert changed == {image.address(123, "WMaxLimPct")} == {40232}
    assert after.value(123, "WMaxLimPct") == 42
    assert [(w.function, w.address, w.values) for w in server.writes()] == [(16, 40232, (42,))]


async def test_write_point_refuses_read_only_points(make_peer, make_connection) -> None:
    server = await make_peer({1: inverter_image(103)})
    device = SunSpecDevice(make_connection(server.port), 1)
    await device.async_scan()
    with pytest.raises(ValueError, match="read-only"):
        await device.async_write_point(123, "WMaxLimPct_SF", -2)
    with pytest.raises(ValueError, match="read-only"):
        await device.async_write_point(103, "W", 0)
    with pytest.raises(KeyError):
        await device.async_write_point(123, "Nope", 0)
    assert server.writes() == []
    assert (await server.snapshot(1)).registers == inverter_image(103).registers


def test_unit_id_range() -> None:
    with pytest.raises(ValueError, match="unit id"):
        SunSpecDevice(object(), 256)  # type: ignore[arg-type]
