"""A Modbus TCP server in front of the simulated site, shaped like a Fronius Datamanager.

Inverters answer on units 1..N and the meter on unit 240, all on one port. An inverter of
another family (SolarEdge, Sungrow, Huawei: see :mod:`.families`) answers on its unit with its
vendor's register map instead; a Victron GX answers for its PV on unit 100, its grid meter on
unit 30. A GoodWe inverter answers UDP 8899 at its own loopback address (``goodwe_hosts``),
through the same request handling. The Modbus TCP framing (function codes 3, 4, 6 and 16) is
implemented here on asyncio streams rather than through a pymodbus server: pymodbus's
server-side datastore API changes between the 3.x releases Home Assistant ships (and is
deprecated for 4.0), while the wire protocol does not. Clients are still tested with pymodbus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import Counter, deque
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from .families import FamilyOptions, build_vendor_units
from .goodwe import GoodWeEndpoint, GoodWeUnit, bind
from .physics import SimSite
from .registers import (
    FIRST_INVERTER_UNIT_ID,
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_DATA_VALUE,
    METER_UNIT_ID,
    InverterRegisters,
    MeterRegisters,
)
from .scenario import Scenario, load_scenario
from .solaredge import SolarEdgeUnit
from .vendor import READ_HOLDING, READ_INPUT, VendorUnit

_LOGGER = logging.getLogger(__name__)

ILLEGAL_FUNCTION = 1
SERVER_DEVICE_BUSY = 0x06
GATEWAY_PATH_UNAVAILABLE = 0x0A
GATEWAY_TARGET_FAILED = 0x0B

OfflineMode = Literal["timeout", "exception", "busy"]
WRITE_FUNCTIONS = frozenset({6, 16})
METER_COUNTERS_START_WH = (2_500_000.0, 1_200_000.0)
"""Import and export counters of the simulated meter at start: a meter that has run for years
(a counter at 0 reads as "not implemented" in SunSpec)."""
INVERTER_ENERGY_START_WH = 9_000_000.0
"""Lifetime energy of each simulated inverter at start, for the same reason."""

_MBAP = struct.Struct(">HHHB")
_MAX_READ = 125
_MAX_WRITE = 123


class SimulatedSiteServer:
    """Serve a :class:`SimSite` over Modbus TCP, ticking its physics in the background.

    ``port=0`` picks a free port; read :attr:`port` after :meth:`start`. ``speed``
    runs simulated time faster than the wall clock. ``autostep=False`` freezes time
    so a test can drive it with :meth:`advance`.
    """

    def __init__(
        self,
        scenario: Scenario | str | Path = "default",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        inverter_count: int | None = None,
        tick_s: float = 0.1,
        speed: float = 1.0,
        max_step_s: float = 0.1,
        autostep: bool = True,
        meter_unit_id: int = METER_UNIT_ID,
        first_inverter_unit_id: int = FIRST_INVERTER_UNIT_ID,
        limit_sf: int = -2,
        common_length: int | None = 65,
        meter_counters_start_wh: tuple[float, float] = METER_COUNTERS_START_WH,
        inverter_energy_start_wh: float = INVERTER_ENERGY_START_WH,
        family: str | None = None,
        family_options: FamilyOptions | None = None,
        single_client: bool = False,
    ) -> None:
        """``family`` serves every inverter as that family (else each as its scenario says).

        ``single_client``: a new connection closes the one before it, as a SolarEdge inverter
        or a Huawei SDongle does (one Modbus TCP client at a time).
        """
        if not isinstance(scenario, Scenario):
            scenario = load_scenario(scenario)
        if inverter_count is not None:
            scenario = scenario.with_inverter_count(inverter_count)
        if family is not None:
            scenario = scenario.with_family(family)
        if tick_s <= 0 or speed <= 0 or max_step_s <= 0:
            raise ValueError("tick_s, speed and max_step_s must be > 0")
        self.site = SimSite(scenario)
        self.host = host
        self.port = port
        self.tick_s = tick_s
        self.speed = speed
        self.max_step_s = max_step_s
        self.autostep = autostep
        self.single_client = single_client
        self.knocked_off = 0
        """Connections closed because a newer one came (``single_client``)."""
        self.inverter_units: dict[int, InverterRegisters] = {}
        for index, inverter in enumerate(self.site.inverters):
            if scenario.inverters[index].family != "sunspec":
                continue
            unit_id = first_inverter_unit_id + index
            self.inverter_units[unit_id] = InverterRegisters(
                index + 1,
                inverter,
                unit_id=unit_id,
                limit_sf=limit_sf,
                common_length=common_length,
                energy_start_wh=inverter_energy_start_wh,
            )
        max_power = sum(inv.rated_power_w for inv in self.site.inverters) + 20000.0
        self.vendor_units: dict[int, VendorUnit] = build_vendor_units(
            self.site,
            first_inverter_unit_id=first_inverter_unit_id,
            options=family_options or FamilyOptions(),
            energy_start_wh=inverter_energy_start_wh,
            counters_start_wh=meter_counters_start_wh,
            meter_max_power_w=max_power,
        )
        """Units of the other families, by unit id (see :mod:`.families`)."""
        if meter_unit_id in self.inverter_units or meter_unit_id in self.vendor_units:
            raise ValueError(f"meter unit {meter_unit_id} clashes with an inverter unit")
        if clash := set(self.inverter_units) & set(self.vendor_units):
            raise ValueError(f"unit(s) {sorted(clash)} serve two devices")
        self.meter_unit = MeterRegisters(
            self.site.meter,
            max_power_w=max_power,
            unit_id=meter_unit_id,
            common_length=common_length,
            counters_start_wh=meter_counters_start_wh,
        )
        self.offline: dict[int, OfflineMode] = {}
        self.frozen: set[int] = set()
        """Units whose register image no longer follows the site (see :meth:`freeze`)."""
        self.reply_delay_s: dict[int, float] = {}
        """Per unit: seconds before each answer is sent (a slow device or gateway)."""
        self.write_drops: dict[int, bool] = {}
        """Per unit: drop the connection at its next write (see :meth:`drop_next_write`)."""
        self.read_drops: set[int] = set()
        """Units whose next read closes the connection unanswered."""
        self.writes: deque[tuple[float, int, int, list[int]]] = deque(maxlen=1000)
        self.write_requests: Counter[int] = Counter()
        """Per unit: every write request received (answered, refused or dropped), all time."""
        self._server: asyncio.Server | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._goodwe: list[GoodWeEndpoint] = []

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    @property
    def meter_unit_id(self) -> int:
        """Unit id the meter answers on."""
        return self.meter_unit.unit_id

    @property
    def inverter_unit_ids(self) -> list[int]:
        """Unit ids of the SunSpec inverters, in site order."""
        return list(self.inverter_units)

    @property
    def victron_grid_unit_id(self) -> int | None:
        """Unit id of the Victron GX's grid meter, None when the site has no GX."""
        for unit_id, unit in self.vendor_units.items():
            if unit.family == "victron" and not unit.indices:
                return unit_id
        return None

    @property
    def solaredge_meter_unit_id(self) -> int | None:
        """Unit id of the SolarEdge inverter serving the grid meter as its meter 1, or None."""
        for unit_id, unit in self.vendor_units.items():
            if isinstance(unit, SolarEdgeUnit) and unit.meter is not None:
                return unit_id
        return None

    @property
    def device_units(self) -> list[tuple[str, int]]:
        """(family, unit id) of every controllable device, in unit order.

        Each SunSpec, SolarEdge, Sungrow, Huawei and GoodWe inverter, and a Victron GX for all
        its PV.
        """
        found = [("sunspec", unit) for unit in self.inverter_units]
        found += [
            (unit.family, unit_id)
            for unit_id, unit in self.vendor_units.items()
            if unit.indices  # a GX's grid meter stands for no inverter
        ]
        return sorted(found, key=lambda item: item[1])

    @property
    def goodwe_hosts(self) -> dict[int, str]:
        """Unit id → the loopback address each GoodWe inverter answers on (after start)."""
        return {
            unit_id: unit.host
            for unit_id, unit in self.vendor_units.items()
            if isinstance(unit, GoodWeUnit) and unit.host is not None
        }

    def _goodwe_endpoint(self, unit: GoodWeUnit) -> GoodWeEndpoint:
        unit_id = unit.unit_id

        def count_write() -> None:
            self.write_requests[unit_id] += 1

        return GoodWeEndpoint(
            unit, self.handle_pdu, count_write, lambda: self.reply_delay_s.get(unit_id, 0.0)
        )

    async def start(self) -> None:
        """Listen on host/port (and UDP 8899 for GoodWe) and start the physics clock."""
        if self._server is not None:
            raise RuntimeError("server already started")
        try:
            for unit in self.vendor_units.values():
                if isinstance(unit, GoodWeUnit):
                    endpoint = self._goodwe_endpoint(unit)
                    await bind(endpoint)
                    self._goodwe.append(endpoint)
        except BaseException:
            self._close_goodwe()
            raise
        self._server = await asyncio.start_server(self._serve_client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._tick_task = asyncio.create_task(self._tick_loop(), name="sim-physics")
        _LOGGER.debug("simulated site listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop the clock, drop all clients and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self._close_goodwe()
        tasks = [t for t in (self._tick_task, *self._clients) if t is not None]
        self._tick_task = None
        for writer in list(self._writers):
            writer.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    def _close_goodwe(self) -> None:
        for endpoint in self._goodwe:
            endpoint.close()
        self._goodwe.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- simulation ------------------------------------------------------------------------

    def advance(self, dt: float) -> None:
        """Move simulated time on by ``dt`` seconds and refresh every register image."""
        remaining = dt
        while remaining > 1e-9:
            step = min(self.max_step_s, remaining)
            self.site.step(step)
            remaining -= step
        self.refresh()

    def refresh(self) -> None:
        """Copy the site's state into the register images (frozen units keep theirs)."""
        for unit_id, unit in self.inverter_units.items():
            if unit_id not in self.frozen:
                unit.refresh(self.site.inverters[unit.number - 1])
        if self.meter_unit_id not in self.frozen:
            self.meter_unit.refresh(self.site.meter)
        for unit_id, vendor in self.vendor_units.items():
            if unit_id not in self.frozen:
                vendor.refresh(self.site)

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.tick_s)
            now = loop.time()
            if self.autostep:
                self.advance((now - last) * self.speed)
            last = now

    # --- fault injection -------------------------------------------------------------------

    def set_unit_offline(
        self, unit_id: int, offline: bool = True, *, mode: OfflineMode = "timeout"
    ) -> None:
        """Make a unit stop answering.

        ``mode="timeout"`` sends nothing (the client times out); ``"exception"``
        answers with Modbus exception 11, as a gateway does for a dead device; ``"busy"``
        answers with exception 6 (server device busy).
        """
        self._check_unit(unit_id)
        if offline:
            self.offline[unit_id] = mode
        else:
            self.offline.pop(unit_id, None)

    def freeze(self, unit_id: int, frozen: bool = True) -> None:
        """Keep serving a unit's last values, as a gateway does that lost its link to it.

        The site goes on underneath (the meter's energy counters too); writes still reach
        the inverter. Unfreezing shows the present values again.
        """
        self._check_unit(unit_id)
        if frozen:
            self.frozen.add(unit_id)
        else:
            self.frozen.discard(unit_id)
            self.refresh()

    def drop_next_write(self, unit_id: int, *, applied: bool) -> None:
        """Close the connection when the next write to the unit arrives, without answering.

        ``applied`` says whether the write took effect before the connection went: the client
        cannot tell, which is the point.
        """
        self._check_unit(unit_id)
        self.write_drops[unit_id] = applied

    def drop_next_read(self, unit_id: int) -> None:
        """Close the connection when the next read of the unit arrives, without answering."""
        self._check_unit(unit_id)
        self.read_drops.add(unit_id)

    def _check_unit(self, unit_id: int) -> None:
        if (
            unit_id != self.meter_unit_id
            and unit_id not in self.inverter_units
            and unit_id not in self.vendor_units
        ):
            raise ValueError(f"no unit {unit_id}")

    def registers(self, unit_id: int) -> InverterRegisters | MeterRegisters:
        """The SunSpec register image behind a unit (for assertions; see also vendor_units)."""
        if unit_id == self.meter_unit_id:
            return self.meter_unit
        return self.inverter_units[unit_id]

    def limit_write_pct(self, unit_id: int, address: int, values: list[int]) -> float | None:
        """The limit a logged write set, in % of the device's rating; None if it set none.

        SunSpec: ``WMaxLimPct``; SolarEdge: the dynamic limit; Sungrow: the ratio; Huawei:
        the derating; Victron GX: the maximum feed-in as a share of its PV rating; GoodWe: the
        export limit as a share of its rating.
        """
        if not values:
            return None
        vendor = self.vendor_units.get(unit_id)
        if vendor is not None:
            return vendor.limit_write_pct(address, values)
        sunspec = self.inverter_units.get(unit_id)
        if sunspec is None or address != sunspec.image.point(123, "WMaxLimPct")[0]:
            return None
        return float(values[0] * 10.0**sunspec.limit_sf)

    # --- Modbus TCP ------------------------------------------------------------------------

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        if self.single_client:
            for other in list(self._writers):  # one client at a time: the newcomer wins
                other.close()
                self._writers.discard(other)
                self.knocked_off += 1
        self._writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(_MBAP.size)
                transaction, protocol, length, unit_id = _MBAP.unpack(header)
                if protocol != 0 or not 2 <= length <= 254:
                    break
                pdu = await reader.readexactly(length - 1)
                if pdu and pdu[0] in WRITE_FUNCTIONS:
                    self.write_requests[unit_id] += 1
                if self._drops_connection(unit_id, pdu):
                    break  # the connection goes before the answer does
                response = self.handle_pdu(unit_id, pdu)
                if response is None:
                    continue
                delay = self.reply_delay_s.get(unit_id, 0.0)
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(_MBAP.pack(transaction, 0, len(response) + 1, unit_id) + response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._clients.discard(task)

    def _drops_connection(self, unit_id: int, pdu: bytes) -> bool:
        """Whether this request is the one a drop fault waits for (a dropped write may apply)."""
        function = pdu[0] if pdu else None
        if function in WRITE_FUNCTIONS and unit_id in self.write_drops:
            if self.write_drops.pop(unit_id):
                self.handle_pdu(unit_id, pdu)
            return True
        if function == 3 and unit_id in self.read_drops:
            self.read_drops.discard(unit_id)
            return True
        return False

    def handle_pdu(self, unit_id: int, pdu: bytes) -> bytes | None:
        """Answer one request PDU; None means stay silent."""
        function = pdu[0]
        mode = self.offline.get(unit_id)
        if mode == "timeout":
            return None
        if mode == "exception":
            return _exception(function, GATEWAY_TARGET_FAILED)
        if mode == "busy":
            return _exception(function, SERVER_DEVICE_BUSY)
        vendor = self.vendor_units.get(unit_id)
        if vendor is not None:
            return self._vendor(vendor, unit_id, pdu)
        unit = self.inverter_units.get(unit_id) or (
            self.meter_unit if unit_id == self.meter_unit_id else None
        )
        if unit is None:
            return _exception(function, GATEWAY_PATH_UNAVAILABLE)
        if function == 3:
            return self._read(unit, pdu)
        if function in (6, 16):
            return self._write(unit, unit_id, pdu)
        return _exception(function, ILLEGAL_FUNCTION)

    def _vendor(self, vendor: VendorUnit, unit_id: int, pdu: bytes) -> bytes:
        """Answer a request to a vendor unit (FC3 and FC4 reads, FC6 and FC16 writes)."""
        function = pdu[0]
        if function in (READ_HOLDING, READ_INPUT):
            if len(pdu) != 5:
                return _exception(function, ILLEGAL_DATA_VALUE)
            address, count = struct.unpack(">HH", pdu[1:5])
            if not 1 <= count <= _MAX_READ:
                return _exception(function, ILLEGAL_DATA_VALUE)
            answer = vendor.read(function, address, count)
            if isinstance(answer, int):
                return _exception(function, answer)
            return struct.pack(f">BB{count}H", function, 2 * count, *answer)
        if function not in WRITE_FUNCTIONS:
            return _exception(function, ILLEGAL_FUNCTION)
        parsed = _parse_write(pdu)
        if isinstance(parsed, bytes):
            return parsed
        address, values = parsed
        refused = vendor.write(self.site, address, values)
        if refused is not None:
            return _exception(function, refused)
        self.writes.append((self.site.now, unit_id, address, values))
        if unit_id not in self.frozen:
            vendor.refresh(self.site)
        if function == 6:
            return pdu
        return struct.pack(">BHH", 16, address, len(values))

    def _read(self, unit: InverterRegisters | MeterRegisters, pdu: bytes) -> bytes:
        if len(pdu) != 5:
            return _exception(3, ILLEGAL_DATA_VALUE)
        address, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= _MAX_READ:
            return _exception(3, ILLEGAL_DATA_VALUE)
        if not unit.image.contains(address, count):
            return _exception(3, ILLEGAL_DATA_ADDRESS)
        values = unit.image.read(address, count)
        return struct.pack(f">BB{count}H", 3, 2 * count, *values)

    def _write(self, unit: InverterRegisters | MeterRegisters, unit_id: int, pdu: bytes) -> bytes:
        function = pdu[0]
        parsed = _parse_write(pdu)
        if isinstance(parsed, bytes):
            return parsed
        address, values = parsed
        if not unit.image.contains(address, len(values)):
            return _exception(function, ILLEGAL_DATA_ADDRESS)
        refused = unit.check_write(address, values)
        if refused is not None:
            return _exception(function, refused)
        unit.image.write(address, values)
        self.writes.append((self.site.now, unit_id, address, values))
        if isinstance(unit, InverterRegisters):
            self._apply_controls(unit, address, len(values))
        if function == 6:
            return pdu
        return struct.pack(">BHH", 16, address, len(values))

    def _apply_controls(self, unit: InverterRegisters, address: int, count: int) -> None:
        index = unit.number - 1
        limit, conn = unit.touched(address, count)
        if limit:
            settings = unit.limit_settings()
            self.site.write_limit(
                index,
                limit_pct=settings.limit_pct,
                enabled=settings.enabled,
                revert_s=settings.revert_s,
            )
        if conn:
            conn_settings = unit.conn_settings()
            self.site.write_conn(
                index, connected=conn_settings.connected, revert_s=conn_settings.revert_s
            )
        if unit.unit_id not in self.frozen:
            unit.refresh(self.site.inverters[index])


def _exception(function: int, code: int) -> bytes:
    return bytes((function | 0x80, code))


def _parse_write(pdu: bytes) -> tuple[int, list[int]] | bytes:
    """(address, values) of an FC6 or FC16 request, or the exception answering a bad one."""
    function = pdu[0]
    if function == 6:
        if len(pdu) != 5:
            return _exception(function, ILLEGAL_DATA_VALUE)
        address, value = struct.unpack(">HH", pdu[1:5])
        return address, [value]
    if len(pdu) < 6:
        return _exception(function, ILLEGAL_DATA_VALUE)
    address, count, byte_count = struct.unpack(">HHB", pdu[1:6])
    if not 1 <= count <= _MAX_WRITE or byte_count != 2 * count or len(pdu) != 6 + byte_count:
        return _exception(function, ILLEGAL_DATA_VALUE)
    return address, list(struct.unpack(f">{count}H", pdu[6:]))
