"""SunSpec over Modbus RTU: one serial bus, two unit ids, a USB adapter that comes and goes.

The bus is two pseudo-terminal pairs joined by a byte pump (no socat needed): pymodbus' own
RTU server owns one end, the client opens the other through a symlink, the way a udev
``/dev/serial/by-id/...`` name points at the current ``/dev/ttyUSBn``. "Unplugging" closes the
client side's pty and removes the symlink; "plugging in" makes a new pty behind the same name.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
import tty
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from custom_components.dynamic_export.core.errors import DeviceUnavailableError
from custom_components.dynamic_export.core.measurements import InverterCommand
from custom_components.dynamic_export.sunspec.connection import (
    ConnectionPool,
    ModbusSerialConnection,
    SerialSettings,
)
from custom_components.dynamic_export.sunspec.device import SunSpecDevice
from custom_components.dynamic_export.sunspec.errors import ModbusExceptionError
from custom_components.dynamic_export.sunspec.inverter import SunSpecInverter
from custom_components.dynamic_export.sunspec.meter import SunSpecMeter

from .helpers import (
    DeviceImage,
    PymodbusServer,
    _datablocks_hold_values,
    inverter_image,
    inverter_values,
    meter_image,
    meter_values,
)

TIMEOUT_S = 0.3
SETTINGS = SerialSettings(baudrate=115200, parity="N", stopbits=1, bytesize=8)


def _pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


class VirtualBus:
    """Two pty pairs with their masters joined; ``path`` is the client's (symlinked) port."""

    def __init__(self, directory: Path, units: set[int] | None = None) -> None:
        self.path = str(directory / "ttyRS485")
        self.units = units
        """Units on the line: requests for others get no answer, as on a real RS-485 bus.
        None lets every request through to the server (which then decides)."""
        self.server_master, self._server_slave, self.server_path = _pty()
        self._client: tuple[int, int, str] | None = None
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.server_master, self._pump, self.server_master)
        self.plug_in()

    def _pump(self, source: int) -> None:
        client = self._client
        with contextlib.suppress(OSError):  # EIO while the other side is closed
            data = os.read(source, 4096)
            if client is None:
                return  # nothing plugged in: bytes are lost, as on a cut cable
            if source == self.server_master:
                os.write(client[0], data)
            elif self.units is None or (data and data[0] in self.units):
                os.write(self.server_master, data)  # an RTU frame starts with its unit id

    def plug_in(self) -> None:
        assert self._client is None
        self._client = _pty()
        self._loop.add_reader(self._client[0], self._pump, self._client[0])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.symlink(self._client[2], self.path)

    def unplug(self) -> None:
        assert self._client is not None
        master, slave, _ = self._client
        self._client = None
        self._loop.remove_reader(master)
        os.unlink(self.path)
        os.close(master)  # the client's open port now fails with EIO
        os.close(slave)

    def close(self) -> None:
        if self._client is not None:
            self.unplug()
        self._loop.remove_reader(self.server_master)
        os.close(self.server_master)
        os.close(self._server_slave)


class PymodbusRtuServer(PymodbusServer):
    """pymodbus' RTU server over the same register images as the TCP helpers."""

    def __init__(self, units: Mapping[int, DeviceImage | dict[int, int]], port: str) -> None:
        super().__init__(units)
        self.serial_port = port

    async def start(self) -> int:
        from pymodbus.framer import FramerType
        from pymodbus.server import ModbusSerialServer

        context = self._block_context() if _datablocks_hold_values() else self._sim_devices()
        params = inspect.signature(ModbusSerialServer.__init__).parameters
        kwargs: dict[str, Any] = {"port": self.serial_port, "baudrate": SETTINGS.baudrate}
        # Whether a missing unit is answered is the bus's choice (VirtualBus.units), not the
        # server's: pymodbus 3.13's server answers exception 4 even when told to ignore it.
        for name in ("ignore_missing_devices", "ignore_missing_slaves"):
            if name in params:
                kwargs[name] = False
        self._server = ModbusSerialServer(context, framer=FramerType.RTU, **kwargs)
        await self._server.serve_forever(background=True)
        return 0

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None


def _site() -> dict[int, DeviceImage]:
    return {
        1: inverter_image(103, limit_sf=0, wmax=5000, inverter=inverter_values(103, w=2100.0)),
        2: meter_image(203, values=meter_values(203, w=-800.0)),
    }


@pytest.fixture
async def bus(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[VirtualBus, PymodbusRtuServer]]:
    """Units 1 and 2 on the line; ``@pytest.mark.parametrize("bus", [None], indirect=True)``
    lets every unit id reach the server."""
    units = getattr(request, "param", {1, 2})
    virtual = VirtualBus(tmp_path, units)
    server = PymodbusRtuServer(_site(), virtual.server_path)
    await server.start()
    yield virtual, server
    await server.stop()
    virtual.close()


@pytest.fixture
async def pool() -> AsyncIterator[ConnectionPool]:
    pool = ConnectionPool(timeout_s=TIMEOUT_S)
    yield pool
    await pool.close()


async def test_two_units_share_one_bus(bus, pool: ConnectionPool) -> None:
    virtual, server = bus
    connection = pool.get_serial(virtual.path, SETTINGS)
    assert pool.get_serial(virtual.path, SETTINGS) is connection
    inverter = SunSpecInverter(SunSpecDevice(connection, 1), revert_timeout_s=60)
    meter = SunSpecMeter(SunSpecDevice(connection, 2))
    info, meter_info = await asyncio.gather(inverter.async_setup(), meter.async_setup())
    assert (info.rated_power_w, info.inverter_model_id) == (5000.0, 103)
    assert meter_info.meter_model_id == 203

    reading, site = await asyncio.gather(inverter.async_read(), meter.async_read())
    assert reading.ac_power_w == 2100.0
    assert site.grid_power_w == -800.0

    await inverter.async_apply(InverterCommand(connect=True, limit_pct=40.0))
    image = await server.snapshot(1)
    assert image.value(123, "WMaxLimPct") == 40
    assert image.value(123, "WMaxLim_Ena") == 1
    assert {r.unit for r in server.requests} == {1, 2}


async def test_multi_chunk_reads_are_not_interleaved_on_the_bus(bus, pool) -> None:
    """RTU has no transaction id: a whole read owns the bus until it is done."""
    virtual, server = bus
    connection = pool.get_serial(virtual.path, SETTINGS)
    first, second = await asyncio.gather(
        connection.read_holding_registers(1, 40000, 250),
        connection.read_holding_registers(2, 40000, 130),
    )
    assert first[:2] == second[:2] == [0x5375, 0x6E53]
    units = [r.unit for r in server.requests]
    assert units in ([1, 1, 2, 2], [2, 2, 1, 1])


async def test_silent_unit_times_out_and_the_bus_keeps_working(bus, pool) -> None:
    """Nobody on the line answers unit 7: the request times out, the bus stays usable."""
    virtual, _ = bus
    connection = pool.get_serial(virtual.path, SETTINGS)
    with pytest.raises(DeviceUnavailableError, match=r"unit 7: .*no response"):
        await connection.read_holding_registers(7, 40000, 2)
    assert await connection.read_holding_registers(1, 40000, 2) == [0x5375, 0x6E53]


@pytest.mark.parametrize("bus", [None], indirect=True)
async def test_unknown_unit_left_to_pymodbus_server(bus, pool) -> None:
    """Every unit id reaches pymodbus' RTU server, whose answer for one it lacks differs:
    3.8 stays silent (the request times out), 3.13 answers exception 4 (server device
    failure), which the client reports at once, naming the unit. The bus works on after."""
    virtual, _ = bus
    connection = pool.get_serial(virtual.path, SETTINGS)
    if _datablocks_hold_values():  # pymodbus up to 3.1x: silent
        with pytest.raises(DeviceUnavailableError, match=r"unit 7: .*no response"):
            await connection.read_holding_registers(7, 40000, 2)
    else:
        started = time.monotonic()
        with pytest.raises(ModbusExceptionError, match=r"unit 7: .*Modbus exception 4") as err:
            await connection.read_holding_registers(7, 40000, 2)
        assert err.value.code == 4
        assert time.monotonic() - started < TIMEOUT_S
    assert await connection.read_holding_registers(1, 40000, 2) == [0x5375, 0x6E53]


async def test_unplugged_adapter_fails_fast_and_comes_back(bus, tmp_path) -> None:
    virtual, _ = bus
    connection = ModbusSerialConnection(virtual.path, SETTINGS, timeout_s=2.0)
    try:
        assert await connection.read_holding_registers(1, 40000, 2) == [0x5375, 0x6E53]
        # A request waiting for a silent unit is cut short by the port closing under it.
        waiting = asyncio.ensure_future(connection.read_holding_registers(9, 40000, 2))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        virtual.unplug()
        with pytest.raises(DeviceUnavailableError, match="connection lost"):
            await waiting
        assert time.monotonic() - started < 1.0
        with pytest.raises(DeviceUnavailableError, match=r"cannot connect to .*ttyRS485"):
            await connection.read_holding_registers(1, 40000, 2)
        virtual.plug_in()
        assert await connection.read_holding_registers(1, 40000, 2) == [0x5375, 0x6E53]
    finally:
        await connection.close()


async def test_settings_the_port_rejects_make_it_unavailable(bus) -> None:
    """A pty cannot do parity: pyserial's termios error becomes DeviceUnavailableError."""
    virtual, _ = bus
    connection = ModbusSerialConnection(
        virtual.path, SerialSettings(baudrate=115200, parity="E"), timeout_s=TIMEOUT_S
    )
    with pytest.raises(DeviceUnavailableError, match=r"cannot connect to .*ttyRS485"):
        await connection.read_holding_registers(1, 40000, 2)
    await connection.close()


async def test_missing_port_is_unavailable(tmp_path) -> None:
    connection = ModbusSerialConnection(str(tmp_path / "ttyUSB9"), timeout_s=TIMEOUT_S)
    with pytest.raises(DeviceUnavailableError, match="cannot connect"):
        await connection.read_holding_registers(1, 0, 1)
    await connection.close()


async def test_pool_rejects_a_second_setting_for_one_bus() -> None:
    pool = ConnectionPool()
    connection = pool.get_serial(" /dev/ttyUSB0 ")
    assert connection.port == "/dev/ttyUSB0"
    assert str(connection.settings) == "9600 8N1"
    assert repr(connection) == "ModbusSerialConnection(/dev/ttyUSB0 9600 8N1)"
    assert pool.get_serial("/dev/ttyUSB0", SerialSettings()) is connection
    with pytest.raises(ValueError, match="already used at 9600 8N1, not 19200 8E1"):
        pool.get_serial("/dev/ttyUSB0", SerialSettings(baudrate=19200, parity="E"))
    assert pool.get_serial("/dev/ttyUSB1") is not connection
    await pool.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"baudrate": 0}, "baud rate"),
        ({"parity": "X"}, "parity"),
        ({"stopbits": 3}, "stop bits"),
        ({"bytesize": 6}, "byte size"),
    ],
)
def test_serial_settings_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SerialSettings(**kwargs)


def test_empty_port_is_rejected() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        ModbusSerialConnection("  ")
