"""Test doubles for the SunSpec client.

Register maps are laid out straight from the official pysunspec2 model JSON and encoded with
pysunspec2's own serialisers, independently of the vendored models.py and codec.py, so the
tests cross-check the generated tables. ``FakeModbusServer`` is a small Modbus TCP server
(FC3/FC6/FC16) with fault injection; ``PymodbusServer`` serves the same images from pymodbus'
own server, so the client is also checked against an independent Modbus implementation. Both
offer the ``ModbusPeer`` interface (request log, connection count, datastore snapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import json
import math
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from sunspec2 import mb as sunspec_mb


def _json_dir() -> Path:
    spec = importlib.util.find_spec("sunspec2")
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin).parent / "models" / "json"


JSON_DIR = _json_dir()


@dataclass(frozen=True)
class SpecPoint:
    name: str
    offset: int  # from the ID register
    type: str
    size: int
    sf: str | int | None
    access: str
    symbols: dict[str, int]


@cache
def spec_model(model_id: int) -> dict[str, Any]:
    return json.loads((JSON_DIR / f"model_{model_id}.json").read_text(encoding="utf-8"))


@cache
def spec_points(model_id: int) -> dict[str, SpecPoint]:
    """Fixed-block points of a model as the official JSON defines them."""
    points: dict[str, SpecPoint] = {}
    offset = 0
    for p in spec_model(model_id)["group"]["points"]:
        symbols = {s["name"]: s["value"] for s in p.get("symbols", [])}
        points[p["name"]] = SpecPoint(
            p["name"], offset, p["type"], p["size"], p.get("sf"), p.get("access", "R"), symbols
        )
        offset += p["size"]
    return points


def spec_length(model_id: int) -> int:
    return sum(p.size for p in spec_points(model_id).values()) - 2


def spec_encode(point: SpecPoint, value: Any) -> list[int]:
    """Registers for a raw value (None: the not-implemented value) using pysunspec2's code."""
    if value is None:
        if point.type == "float32":
            return [0x7FC0, 0x0000]
        if point.type == "pad":
            return [0] * point.size
        value = sunspec_mb.unimpl_value[point.type]
    info = sunspec_mb.point_type_info[point.type]
    data = info.to_data(value, point.size * 2)
    assert len(data) == point.size * 2, (point, value)
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def spec_block(
    model_id: int, values: Mapping[str, Any] | None = None, length: int | None = None
) -> list[int]:
    """ID, L and body of a model with the given raw values (unset points not implemented)."""
    values = dict(values or {})
    points = spec_points(model_id)
    unknown = set(values) - set(points)
    assert not unknown, f"model {model_id} has no {unknown}"
    body = spec_length(model_id) if length is None else length
    regs = [0] * (body + 2)
    regs[0], regs[1] = model_id, body
    for point in points.values():
        if point.name in ("ID", "L") or point.offset + point.size > body + 2:
            continue
        regs[point.offset : point.offset + point.size] = spec_encode(point, values.get(point.name))
    return regs


@dataclass
class DeviceImage:
    """A sparse register map plus where each model (its ID register) was put."""

    registers: dict[int, int]
    locations: dict[int, int] = field(default_factory=dict)

    def address(self, model_id: int, point: str) -> int:
        return self.locations[model_id] + spec_points(model_id)[point].offset

    def point_addresses(self, model_id: int, point: str) -> set[int]:
        start = self.address(model_id, point)
        return set(range(start, start + spec_points(model_id)[point].size))

    def read(self, model_id: int, point: str) -> list[int]:
        start = self.address(model_id, point)
        return [self.registers[a] for a in range(start, start + spec_points(model_id)[point].size)]

    def value(self, model_id: int, point: str) -> int:
        """The raw register of a one-register point."""
        regs = self.read(model_id, point)
        assert len(regs) == 1, (model_id, point, regs)
        return regs[0]

    def encode(self, model_id: int, point: str, value: Any) -> dict[int, int]:
        """The registers (address -> value) that hold ``value`` in this map."""
        regs = spec_encode(spec_points(model_id)[point], value)
        start = self.address(model_id, point)
        return dict(zip(range(start, start + len(regs)), regs, strict=True))

    def write(self, model_id: int, point: str, value: Any) -> None:
        self.registers.update(self.encode(model_id, point, value))


def _registers(image: DeviceImage | Mapping[int, int]) -> Mapping[int, int]:
    return image.registers if isinstance(image, DeviceImage) else image


def _locations(image: DeviceImage | Mapping[int, int]) -> Mapping[int, int]:
    return image.locations if isinstance(image, DeviceImage) else {}


def build_image(
    models: Sequence[tuple[int, Mapping[str, Any]] | tuple[int, Mapping[str, Any], int]],
    base: int = 40000,
    *,
    end_marker: bool = True,
) -> DeviceImage:
    """'SunS' at ``base``, then the models in order, then 0xFFFF 0 (unless end_marker=False)."""
    image = DeviceImage({base: 0x5375, base + 1: 0x6E53})
    address = base + 2
    for entry in models:
        model_id, values = entry[0], entry[1]
        length = entry[2] if len(entry) == 3 else None
        block = spec_block(model_id, values, length)
        image.locations.setdefault(model_id, address)
        for i, reg in enumerate(block):
            image.registers[address + i] = reg
        address += len(block)
    if end_marker:
        image.registers[address] = 0xFFFF
        image.registers[address + 1] = 0
    return image


def raw_sf(value: float, sf: int) -> int:
    """Test-side scaling (value = raw * 10**sf)."""
    return round(value / 10**sf)


def common_values(mn: str = "Fronius", md: str = "Symo 8.2-3-M", sn: str = "12345678") -> dict:
    return {"Mn": mn, "Md": md, "Opt": "opt", "Vr": "1.2.3", "SN": sn, "DA": 1}


def inverter_values(
    model_id: int, *, w: float = 1307.0, wh: float = 1720967.0, st: int = 4
) -> dict[str, Any]:
    """Raw values for an inverter model: int+SF (101-103) or float (111-113)."""
    if model_id in (111, 112, 113):
        return {"W": w, "WH": wh, "Hz": 50.01, "PhVphA": 241.5, "A": 5.49, "St": st}
    return {
        "A": 549,
        "AphA": 549,
        "A_SF": -2,
        "PhVphA": 2415,
        "V_SF": -1,
        "W": raw_sf(w, 0),
        "W_SF": 0,
        "Hz": 5001,
        "Hz_SF": -2,
        "WH": int(wh),
        "WH_SF": 0,
        "St": st,
    }


def controls_values(
    *, sf: int = 0, pct: float = 100.0, ena: int = 0, conn: int = 1, rvrt: int | None = 0
) -> dict[str, Any]:
    return {
        "Conn_WinTms": 0,
        "Conn_RvrtTms": 0,
        "Conn": conn,
        "WMaxLimPct": min(raw_sf(pct, sf), 0xFFFE),
        "WMaxLimPct_WinTms": 0,
        "WMaxLimPct_RvrtTms": rvrt,
        "WMaxLimPct_RmpTms": 0,
        "WMaxLim_Ena": ena,
        "OutPFSet": 1000,
        "OutPFSet_Ena": 0,
        "VArPct_Ena": 0,
        "WMaxLimPct_SF": sf,
        "OutPFSet_SF": -3,
    }


def inverter_image(
    model_id: int = 103,
    *,
    limit_sf: int = 0,
    wmax: int = 7500,
    wmax_sf: int = 0,
    common_length: int = 65,
    base: int = 40000,
    inverter: Mapping[str, Any] | None = None,
    controls: Mapping[str, Any] | None = None,
    with_settings: bool = True,
) -> DeviceImage:
    """A Fronius-shaped inverter map: 1, inverter, 120, 121, 122, 123."""
    models: list[Any] = [
        (1, common_values(), common_length),
        (model_id, inverter if inverter is not None else inverter_values(model_id)),
        (120, {"DERTyp": 4, "WRtg": 8200, "WRtg_SF": 0}),
    ]
    if with_settings:
        models.append((121, {"WMax": wmax, "WMax_SF": wmax_sf}))
    models.append((122, {"PVConn": 7}))
    models.append((123, controls if controls is not None else controls_values(sf=limit_sf)))
    return build_image(models, base)


def meter_values(model_id: int, *, w: float = -1500.0) -> dict[str, Any]:
    """Raw values for a meter model: int+SF (201-204) or float (211-214)."""
    if model_id in (211, 212, 213, 214):
        return {
            "W": w,
            "WphA": w / 3,
            "WphB": w / 3,
            "WphC": w / 3,
            "Hz": 50.02,
            "PhV": 230.5,
            "PhVphA": 231.0,
            "TotWhExp": 123456.0,
            "TotWhImp": 654321.0,
        }
    return {
        "W": round(w / 10),
        "WphA": round(w / 30),
        "WphB": round(w / 30),
        "WphC": round(w / 30),
        "W_SF": 1,
        "Hz": 5002,
        "Hz_SF": -2,
        "PhVphA": 2310,
        "PhVphB": 2320,
        "V_SF": -1,
        "TotWhExp": 12345,
        "TotWhImp": 65432,
        "TotWh_SF": 1,
    }


def meter_image(model_id: int = 203, *, values: Mapping[str, Any] | None = None) -> DeviceImage:
    return build_image(
        [
            (1, common_values("Fronius", "Smart Meter TS 65A-3", "M1"), 65),
            (model_id, values if values is not None else meter_values(model_id)),
        ]
    )


# --------------------------------------------------------------------------------------------
# Modbus TCP servers


@dataclass(frozen=True)
class Request:
    unit: int
    function: int
    address: int
    count: int
    values: tuple[int, ...] = ()


class ModbusPeer(Protocol):
    """What tests use of a server, whichever implementation (fake or pymodbus) it is."""

    port: int
    requests: list[Request]
    connections: int

    @property
    def open_connections(self) -> int: ...
    async def start(self) -> int: ...
    async def stop(self) -> None: ...
    def writes(self) -> list[Request]: ...
    async def snapshot(self, unit: int) -> DeviceImage: ...
    async def set_registers(self, unit: int, registers: Mapping[int, int]) -> None: ...


class FakeModbusServer:
    """Modbus TCP server over sparse per-unit register images, with fault injection.

    Reading or writing an address missing from the image answers exception 2 (as real devices
    do past their map); an unknown unit answers 11, as a gateway does for an offline device.
    """

    def __init__(self, units: Mapping[int, DeviceImage | dict[int, int]]) -> None:
        # The registers are shared with the caller's images (not copied).
        self.units: dict[int, dict[int, int]] = {
            unit: image.registers if isinstance(image, DeviceImage) else image
            for unit, image in units.items()
        }
        self._locations = {unit: dict(_locations(image)) for unit, image in units.items()}
        self.requests: list[Request] = []
        self.connections = 0
        self.hang = False  # accept requests, never answer
        self.drop_next = 0  # close the connection instead of answering the next N requests
        self.exceptions: dict[tuple[int, int], int] = {}  # (unit, address) -> exception code
        self.response_delay = 0.0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    @property
    def open_connections(self) -> int:
        """Client connections the server has not seen closed yet."""
        return len(self._writers)

    async def drop_connections(self) -> None:
        """Close every open client connection (server keeps listening)."""
        for writer in list(self._writers):
            writer.close()
        await asyncio.sleep(0.05)

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.function in (6, 16)]

    async def snapshot(self, unit: int) -> DeviceImage:
        """A copy of the unit's registers as they are now."""
        return DeviceImage(dict(self.units[unit]), dict(self._locations[unit]))

    async def set_registers(self, unit: int, registers: Mapping[int, int]) -> None:
        """Change registers of the unit (only addresses its image has)."""
        missing = set(registers) - set(self.units[unit])
        assert not missing, f"unit {unit} has no registers {sorted(missing)}"
        self.units[unit].update(registers)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.add(writer)
        self.connections += 1
        try:
            while True:
                header = await reader.readexactly(7)
                tid, _pid, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                if self.drop_next:
                    self.drop_next -= 1
                    return
                if self.hang or self._unanswered(unit, pdu):
                    continue
                if self.response_delay:
                    await asyncio.sleep(self.response_delay)
                reply = self._process(unit, pdu)
                writer.write(struct.pack(">HHHB", tid, 0, len(reply) + 1, unit) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)  # type: ignore[arg-type]

    def _unanswered(self, unit: int, pdu: bytes) -> bool:
        """Whether to leave this request unanswered (a peer silent for part of its map)."""
        return False

    def _process(self, unit: int, pdu: bytes) -> bytes:
        function = pdu[0]
        if function == 3:
            address, count = struct.unpack(">HH", pdu[1:5])
            self.requests.append(Request(unit, 3, address, count))
        elif function == 6:
            address, value = struct.unpack(">HH", pdu[1:5])
            count, values = 1, (value,)
            self.requests.append(Request(unit, 6, address, 1, values))
        elif function == 16:
            address, count, _nbytes = struct.unpack(">HHB", pdu[1:6])
            values = struct.unpack(f">{count}H", pdu[6 : 6 + 2 * count])
            self.requests.append(Request(unit, 16, address, count, values))
        else:
            return bytes([function | 0x80, 1])
        image = self.units.get(unit)
        if image is None:
            return bytes([function | 0x80, 11])
        addresses = range(address, address + count)
        for a in addresses:
            if (unit, a) in self.exceptions:
                return bytes([function | 0x80, self.exceptions[(unit, a)]])
        if function == 3 and not 1 <= count <= 125:
            return bytes([function | 0x80, 3])
        if any(a not in image for a in addresses):
            return bytes([function | 0x80, 2])
        if function == 3:
            data = b"".join(image[a].to_bytes(2, "big") for a in addresses)
            return bytes([3, len(data)]) + data
        for a, v in zip(addresses, values, strict=True):
            image[a] = v
        if function == 6:
            return pdu[:5]
        return struct.pack(">BHH", 16, address, count)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def register_runs(registers: Mapping[int, int]) -> list[tuple[int, list[int]]]:
    """The contiguous runs of a sparse register map, as (start address, values)."""
    runs: list[tuple[int, list[int]]] = []
    for address in sorted(registers):
        if runs and runs[-1][0] + len(runs[-1][1]) == address:
            runs[-1][1].append(registers[address])
        else:
            runs.append((address, [registers[address]]))
    return runs


def _datablocks_hold_values() -> bool:
    """Whether pymodbus' datastore blocks hold the registers (up to 3.1x) or only describe
    them for the SimDevice runtime that newer releases build from them."""
    from pymodbus.datastore import ModbusSequentialDataBlock

    return not hasattr(ModbusSequentialDataBlock(1, [0]), "simdata")


class PymodbusServer:
    """pymodbus' own Modbus TCP server over the same sparse images as ``FakeModbusServer``.

    Only the images' addresses exist: pymodbus itself answers exception 2 for gaps and for
    anything past the end of a map. Unknown units are left to pymodbus. Works with the
    datastore-block API (pymodbus 3.8: ModbusSlaveContext/``slaves=``; 3.10+:
    ModbusDeviceContext/``devices=``) and with the SimDevice runtime of later releases.

    ``requests`` logs the accesses pymodbus made to the datastore on the clients' behalf (so,
    unlike the fake's log, only requests that passed pymodbus' own address checks);
    ``connections`` counts accepted connections. ``snapshot`` and ``set_registers`` read and
    change the live datastore.
    """

    def __init__(self, units: Mapping[int, DeviceImage | dict[int, int]]) -> None:
        self.layouts: dict[int, DeviceImage] = {
            unit: DeviceImage(dict(_registers(image)), dict(_locations(image)))
            for unit, image in units.items()
        }
        self.requests: list[Request] = []
        self.connections = 0
        self.port = 0
        self._server: Any = None
        self._listener: asyncio.Server | None = None
        self._contexts: dict[int, Any] = {}  # datastore-block API: unit -> device context
        self._quiet = False  # True while the test itself touches the datastore

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.function in (6, 16)]

    @property
    def open_connections(self) -> int:
        """Client connections the server has not seen closed yet."""
        return len(self._server.active_connections) if self._server is not None else 0

    def _record(self, request: Request) -> None:
        if not self._quiet:
            self.requests.append(request)

    # -- the two datastore flavours ------------------------------------------------------

    def _block_context(self) -> Any:
        from pymodbus import datastore

        # pymodbus 3.10 renamed ModbusSlaveContext to ModbusDeviceContext (and slaves=).
        base = getattr(datastore, "ModbusDeviceContext", None) or datastore.ModbusSlaveContext
        record = self._record

        class RecordingContext(base):  # type: ignore[misc, valid-type]
            def __init__(self, unit: int, **blocks: Any) -> None:
                super().__init__(**blocks)
                self.unit = unit

            async def async_getValues(  # noqa: N802 (pymodbus' name)
                self, fc_as_hex: int, address: int, count: int = 1
            ) -> Any:
                if fc_as_hex == 3:
                    record(Request(self.unit, 3, address, count))
                return await super().async_getValues(fc_as_hex, address, count)

            async def async_setValues(  # noqa: N802
                self, fc_as_hex: int, address: int, values: Any
            ) -> None:
                record(Request(self.unit, fc_as_hex, address, len(values), tuple(values)))
                await super().async_setValues(fc_as_hex, address, values)

        for unit, image in self.layouts.items():
            context = RecordingContext(unit, hr=datastore.ModbusSparseDataBlock())
            # Filled through the context so its own address convention (+1 in pymodbus 3.8)
            # applies: the sparse block then holds exactly the image's addresses.
            for start, values in register_runs(image.registers):
                context.setValues(16, start, values)
            self._contexts[unit] = context
        params = inspect.signature(datastore.ModbusServerContext).parameters
        keyword = "devices" if "devices" in params else "slaves"
        return datastore.ModbusServerContext(**{keyword: self._contexts}, single=False)

    def _sim_devices(self) -> list[Any]:
        from pymodbus.simulator import DataType, SimData, SimDevice

        devices = []
        for unit, image in self.layouts.items():

            async def action(
                function: int,
                _start: int,
                address: int,
                count: int,
                _registers: list[int],
                values: list[int] | None,
                unit: int = unit,
            ) -> None:
                self._record(Request(unit, function, address, count, tuple(values or ())))

            # UINT16, not REGISTERS: pymodbus 3.13 packs REGISTERS as signed 16-bit.
            simdata = [
                SimData(start, values=values, datatype=DataType.UINT16)
                for start, values in register_runs(image.registers)
            ]
            devices.append(SimDevice(id=unit, simdata=simdata, action=action))
        return devices

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> int:
        from pymodbus.server import ModbusTcpServer

        owner = self

        class CountingServer(ModbusTcpServer):  # type: ignore[misc]
            def callback_new_connection(self) -> Any:
                owner.connections += 1
                return super().callback_new_connection()

        context = self._block_context() if _datablocks_hold_values() else self._sim_devices()
        self._server = CountingServer(context, address=("127.0.0.1", 0))
        await self._server.serve_forever(background=True)  # returns once listening
        listener = self._server.transport
        if not isinstance(listener, asyncio.Server) or not listener.sockets:
            raise RuntimeError("pymodbus server did not start listening")
        self._listener = listener
        self.port = int(listener.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Stop listening and close every client connection (the port is free afterwards)."""
        if self._server is None:
            return
        await self._server.shutdown()
        self._server = None
        if self._listener is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listener.wait_closed(), 2)
            self._listener = None

    # -- the live datastore -----------------------------------------------------------------

    async def _get(self, unit: int, address: int, count: int) -> list[int]:
        if self._contexts:
            return list(self._contexts[unit].getValues(3, address, count))
        return list(await self._server.async_getValues(unit, 3, address, count))

    async def _set(self, unit: int, address: int, values: list[int]) -> None:
        if self._contexts:
            self._contexts[unit].setValues(16, address, values)
        else:
            await self._server.async_setValues(unit, 16, address, values)

    async def snapshot(self, unit: int) -> DeviceImage:
        """The unit's registers as pymodbus' datastore holds them now."""
        layout = self.layouts[unit]
        registers: dict[int, int] = {}
        self._quiet = True
        try:
            for start, values in register_runs(layout.registers):
                current = await self._get(unit, start, len(values))
                assert len(current) == len(values), (start, len(values), len(current))
                registers.update(zip(range(start, start + len(values)), current, strict=True))
        finally:
            self._quiet = False
        return DeviceImage(registers, dict(layout.locations))

    async def set_registers(self, unit: int, registers: Mapping[int, int]) -> None:
        """Change registers in the datastore (only addresses the image has)."""
        missing = set(registers) - set(self.layouts[unit].registers)
        assert not missing, f"unit {unit} has no registers {sorted(missing)}"
        self._quiet = True
        try:
            for start, values in register_runs(registers):
                await self._set(unit, start, values)
        finally:
            self._quiet = False


def assert_close(actual: float | None, expected: float, rel: float = 1e-6) -> None:
    assert actual is not None
    assert math.isclose(actual, expected, rel_tol=rel, abs_tol=1e-9), (actual, expected)
