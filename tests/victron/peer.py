"""A simulated Victron GX with ESS: a Modbus TCP server laid out from Victron's register list.

Units as on a GX (dbus_modbustcp): 100 holds ``system``, ``settings`` and ``hub4`` (device
instance 0); the grid meter (``com.victronenergy.grid``) sits at its device instance
(``GRID_UNIT``, 30 here). The quirks the client has to live with:

- **services per unit**: an address of a service that is not at the unit answers exception
  10 (gateway path unavailable); an address outside the list answers 2, as does a write to
  a read-only register (and every write while ``read_only``, the GX's own setting).
- **word order**: 32-bit values high word first; 2706 holds the feed-in limit in 100 W units,
  2722 (newer firmware, ``wide``) the same setting in W; both are views of one setting.
- **no timeout**: the feed-in limit is a persistent setting; it stays in force whatever
  happens to the client (there is no fallback to show, only persistence).

Faults for the fault matrix, beyond the server's own (``hang``, ``exceptions``,
``response_delay``): ``unit_errors`` answers every request to a unit with an exception (the
GX lost that service: 10 or 11; busy: 6); :meth:`freeze_meter` keeps serving the grid
meter's last values while the site goes on; :meth:`drop_next_write` closes the connection
when a write to an address arrives, after applying it or not; :meth:`start` takes a port, so
a GX can come back where it was.

Physics (the GX's ESS loop): with a maximum feed-in ``cap`` >= 0 the PV may produce at most
``load + cap``; with -1 all that is available. The PV follows that ceiling with a first-order
lag. ``output_source`` lets an outer model own the PV output (a household in the Home
Assistant tests); the peer then only computes :meth:`ceiling_w`.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
from collections.abc import Callable

from ..sunspec.helpers import FakeModbusServer, Request

SYSTEM_UNIT = 100
GRID_UNIT = 30
GX_SERIAL = "c0619ab1d2e3"
METER_SERIAL = "BY12345"

PV_ON_OUTPUT = 808
PV_ON_GRID = 811
CONSUMPTION = 817
SYSTEM_GRID = 820
DC_PV = 850
MAX_FEED_IN_100W = 2706
LIMITER_ACTIVE = 2709
MAX_FEED_IN_W = 2722
HUB4_MODE = 2902

GRID_POWER = 2600
GRID_SERIAL = 2609
GRID_VOLTAGE = 2616
GRID_ENERGY = 2634

READ_ONLY = {PV_ON_OUTPUT + i for i in range(15)} | {DC_PV, LIMITER_ACTIVE, 800}
SYSTEM_ADDRESSES = {
    *range(800, 806),
    *range(808, 823),
    DC_PV,
    2700,
    MAX_FEED_IN_100W,
    LIMITER_ACTIVE,
    MAX_FEED_IN_W,
    MAX_FEED_IN_W + 1,
    HUB4_MODE,
}
GRID_ADDRESSES = {*range(2600, 2616), *range(2616, 2622), *range(2634, 2638)}


def words_of(text: str, count: int) -> list[int]:
    raw = text.encode("ascii").ljust(2 * count, b"\x00")
    return list(struct.unpack(f">{count}H", raw))


def s16(value: int) -> int:
    return value & 0xFFFF


class GxPeer(FakeModbusServer):
    """One GX with ESS, a grid meter and PV that follows the feed-in limit with a lag."""

    def __init__(
        self,
        *,
        available_w: float = 4000.0,
        load_w: float = 500.0,
        max_feed_in_w: int = -1,
        wide: bool = True,
        ess_mode: int = 1,
        ess_running: bool = True,
        phases: int = 3,
        energy_totals: bool = True,
        energy_step_wh: int = 10,
        time_constant_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        system: dict[int, int] = dict.fromkeys(SYSTEM_ADDRESSES, 0)
        self.known = SYSTEM_ADDRESSES | GRID_ADDRESSES
        if not energy_totals:
            self.known = self.known - set(range(GRID_ENERGY, GRID_ENERGY + 4))
        if not wide:  # older firmware: 2722 is not in its list at all
            del system[MAX_FEED_IN_W], system[MAX_FEED_IN_W + 1]
            self.known = self.known - {MAX_FEED_IN_W, MAX_FEED_IN_W + 1}
        if not ess_running:
            del system[LIMITER_ACTIVE]  # no hub4 service
        grid: dict[int, int] = dict.fromkeys(GRID_ADDRESSES, 0)
        if not energy_totals:  # older firmware: no 2634-2637 in its list
            for address in range(GRID_ENERGY, GRID_ENERGY + 4):
                del grid[address]
        super().__init__({SYSTEM_UNIT: system, GRID_UNIT: grid})
        self.system = system
        self.grid = grid
        self.wide = wide
        self.clock = clock
        self.available_w = available_w
        self.load_w = load_w
        self.time_constant_s = time_constant_s
        self.phases = phases
        self.energy_step_wh = energy_step_wh
        """How often the totals move: 10 Wh (their resolution) or coarser, as some meters."""
        self.read_only = False
        self.output_source: Callable[[], float] | None = None
        self.load_source: Callable[[], float] | None = None
        self._output_w = 0.0
        self._import_wh = 1_000_000.0
        self._export_wh = 500_000.0
        self._last = clock()
        self.meter_frozen = False
        self.unit_errors: dict[int, int] = {}
        """Unit -> exception code every request to it is answered with."""
        self.write_drops: dict[int, bool] = {}
        """Address -> applied: the next write there closes the connection unanswered."""
        self.dropped: list[tuple[int, bool]] = []
        """Writes that closed the connection: (address, whether it took effect)."""
        self.max_feed_in_w = max_feed_in_w
        system.update(zip(range(800, 806), words_of(GX_SERIAL, 6), strict=True))
        system[HUB4_MODE] = ess_mode
        grid.update(
            zip(range(GRID_SERIAL, GRID_SERIAL + 7), words_of(METER_SERIAL, 7), strict=True)
        )
        for phase in range(3):
            grid[GRID_VOLTAGE + 2 * phase] = 2300 if phase < phases else 0
        self.advance()

    # -- the setting ------------------------------------------------------------------------

    @property
    def max_feed_in_w(self) -> int:
        """The maximum feed-in in force (W; -1 no limit)."""
        if self.wide:
            high, low = self.system[MAX_FEED_IN_W], self.system[MAX_FEED_IN_W + 1]
            value = high << 16 | low
            return value - (1 << 32) if value & 0x8000_0000 else value
        raw = self.system[MAX_FEED_IN_100W]
        value = raw - 0x10000 if raw & 0x8000 else raw
        return -1 if value < 0 else value * 100

    @max_feed_in_w.setter
    def max_feed_in_w(self, watts: int) -> None:
        self.system[MAX_FEED_IN_100W] = s16(-1 if watts < 0 else round(watts / 100))
        if self.wide:
            raw = watts & 0xFFFF_FFFF
            self.system[MAX_FEED_IN_W] = raw >> 16
            self.system[MAX_FEED_IN_W + 1] = raw & 0xFFFF

    def feed_in_writes(self) -> list[Request]:
        return [r for r in self.writes() if r.address in (MAX_FEED_IN_W, MAX_FEED_IN_100W)]

    # -- faults -----------------------------------------------------------------------------

    async def start(self, port: int = 0) -> int:
        """Listen on ``port`` (0: any free one)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def freeze_meter(self, frozen: bool = True) -> None:
        """Serve the grid meter's last power and energy (the site goes on underneath).

        The system service's grid power (820-822) is a copy of the meter's, so it stands
        still too; the PV values stay live.
        """
        self.advance()
        self.meter_frozen = frozen
        self.advance()

    def drop_next_write(self, address: int, *, applied: bool) -> None:
        """Close the connection unanswered at the next write to ``address``.

        ``applied`` says whether the write took effect first: the client cannot tell.
        """
        self.write_drops[address] = applied

    # -- physics ----------------------------------------------------------------------------

    @property
    def load(self) -> float:
        return self.load_source() if self.load_source is not None else self.load_w

    def ceiling_w(self) -> float:
        """What the ESS loop lets the PV produce now."""
        cap = self.max_feed_in_w
        if cap < 0:
            return self.available_w
        return min(self.available_w, max(0.0, self.load + cap))

    @property
    def output_w(self) -> float:
        self.advance()
        return self._output_w

    @property
    def export_w(self) -> float:
        self.advance()
        return self._output_w - self.load

    def advance(self) -> None:
        """Move the simulation to the clock's now and publish it in the registers."""
        now = self.clock()
        dt = max(0.0, now - self._last)
        self._last = now
        if self.output_source is not None:
            self._output_w = self.output_source()
        else:
            alpha = 1.0 - math.exp(-dt / self.time_constant_s) if dt > 0 else 0.0
            self._output_w += (self.ceiling_w() - self._output_w) * alpha
        load = self.load
        grid_w = load - self._output_w
        if grid_w >= 0:
            self._import_wh += grid_w * dt / 3600.0
        else:
            self._export_wh += -grid_w * dt / 3600.0
        share = 1.0 / self.phases
        for phase in range(3):
            on = phase < self.phases
            # Half the PV is AC-coupled on the output, half on the input; none is DC.
            self.system[PV_ON_OUTPUT + phase] = round(self._output_w * share / 2) if on else 0
            self.system[PV_ON_GRID + phase] = round(self._output_w * share / 2) if on else 0
            self.system[CONSUMPTION + phase] = round(load * share) if on else 0
            if not self.meter_frozen:  # the system service copies the grid meter's power
                self.system[SYSTEM_GRID + phase] = s16(round(grid_w * share)) if on else 0
                self.grid[GRID_POWER + phase] = s16(round(grid_w * share)) if on else 0
        if LIMITER_ACTIVE in self.system:
            self.system[LIMITER_ACTIVE] = int(self.ceiling_w() < self.available_w - 1)
        for offset, wh in ((0, self._import_wh), (2, self._export_wh)):
            if GRID_ENERGY not in self.grid or self.meter_frozen:
                break
            raw = int(wh // self.energy_step_wh) * self.energy_step_wh // 10  # 0.01 kWh
            self.grid[GRID_ENERGY + offset] = raw >> 16
            self.grid[GRID_ENERGY + offset + 1] = raw & 0xFFFF

    # -- the Modbus side --------------------------------------------------------------------

    def _process(self, unit: int, pdu: bytes) -> bytes:
        self.advance()
        function = pdu[0]
        if function in (3, 6, 16):
            address, count = struct.unpack(">HH", pdu[1:5])
            if function == 6:
                count = 1
            if unit in self.unit_errors:
                self.requests.append(Request(unit, function, address, count))
                return bytes([function | 0x80, self.unit_errors[unit]])
            if function in (6, 16) and address in self.write_drops:
                applied = self.write_drops.pop(address)
                self.dropped.append((address, applied))
                if applied:
                    self._process(unit, pdu)
                raise ConnectionResetError("the peer drops the connection mid-write")
            addresses = range(address, address + count)
            image = self.units.get(unit)
            missing = image is not None and any(a not in image for a in addresses)
            if missing and all(a in self.known for a in addresses):
                # Registered, but its service is not at this unit.
                self.requests.append(Request(unit, function, address, count))
                return bytes([function | 0x80, 10])
            if function in (6, 16) and (self.read_only or any(a in READ_ONLY for a in addresses)):
                self.requests.append(Request(unit, function, address, count))
                return bytes([function | 0x80, 2])
        reply = super()._process(unit, pdu)
        if function in (6, 16) and reply[0] == function:
            address = struct.unpack(">H", pdu[1:3])[0]
            if address == MAX_FEED_IN_100W and self.wide:
                # One setting, two views: 2706 changes 2722 too.
                raw = self.system[MAX_FEED_IN_100W]
                value = raw - 0x10000 if raw & 0x8000 else raw
                self.max_feed_in_w = -1 if value < 0 else value * 100
            elif address == MAX_FEED_IN_W:
                self.max_feed_in_w = self.max_feed_in_w  # keep 2706 in step
            self.advance()
        return reply
