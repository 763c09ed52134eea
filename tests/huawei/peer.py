"""A simulated Huawei SUN2000 behind an SDongle: a Modbus TCP server laid out from the map.

Every register is a holding register at the address Huawei documents (no 1-based offset),
written out here independently of the client's own table. The quirks the client has to live
with:

- **word order**: 32-bit values go high word first.
- **one client at a time**: a new connection drops the one before it, as an SDongle does.
- **slow connect**: a request within ``settle_s`` of the connection opening gets no answer,
  nor one within ``min_gap_s`` of the previous answer.
- **unit id**: only ``unit`` answers (an SDongle user picks 0 or 1); others get exception 11.
- **setting refused**: a derating outside 0-100 % answers exception 3 and changes nothing.
- **persistent settings**: the holding registers survive :meth:`restart`; every write that
  changes the derating counts as a ``flash_write``.

Fault hooks: ``hang`` (no answers), ``reply_delay_s``, ``drop_next`` / ``drop_next_write``
(close before the request is read), ``drop_after_next_write`` (close after the write took
effect, unanswered), ``exceptions``, ``refuse_settings`` (exception 4 to every derating
write),
``frozen`` (the measurements stop moving) and :meth:`start` at the old port after a stop.

Physics: the output follows min(available, derating × Pmax) with a first-order lag.
``output_source`` lets an outer model (a household in the Home Assistant tests) own the output;
the peer then only computes :meth:`ceiling_w`. MPPT_PREDICTED_POWER holds the available power.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
import time
from collections.abc import Callable

from ..sunspec.helpers import FakeModbusServer, Request

UNIT = 1
MODEL = 30000
SERIAL = 30015
RATED = 30073
P_MAX = 30075
ACTIVE_POWER = 32080
STATUS = 32089
ENERGY = 32106
PREDICTED = 42056
DERATING = 40125
CONTROL_MODE = 47415
FEED_GRID_W = 47416

ON_GRID, LIMITED, NO_IRRADIATION = 0x0200, 0x0201, 0xA000


def words_u32(value: int) -> list[int]:
    """High word first, as Huawei sends 32-bit values."""
    value &= 0xFFFF_FFFF
    return [value >> 16, value & 0xFFFF]


def text_words(text: str, count: int) -> list[int]:
    data = text.encode().ljust(2 * count, b"\0")[: 2 * count]
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, 2 * count, 2)]


class HuaweiPeer(FakeModbusServer):
    """One SUN2000 (``unit``) behind an SDongle."""

    def __init__(
        self,
        *,
        model: str = "SUN2000-5KTL-M1",
        serial: str = "HV2150012345",
        rated_w: int = 5000,
        p_max_w: int = 5500,
        available_w: float = 4000.0,
        derating: int = 1000,
        unit: int = UNIT,
        settle_s: float = 0.0,
        min_gap_s: float = 0.0,
        time_constant_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.unit = unit
        self.holding: dict[int, int] = {}
        for offset, word in enumerate(text_words(model, 15) + text_words(serial, 10)):
            self.holding[MODEL + offset] = word
        for address in range(RATED, P_MAX + 2):
            self.holding[address] = 0
        self.holding.update(zip(range(RATED, RATED + 2), words_u32(rated_w), strict=True))
        self.holding.update(zip(range(P_MAX, P_MAX + 2), words_u32(p_max_w), strict=True))
        for address in (*range(ACTIVE_POWER, STATUS + 1), ENERGY, ENERGY + 1):
            self.holding[address] = 0
        self.holding[PREDICTED] = self.holding[PREDICTED + 1] = 0
        self.holding[DERATING] = derating
        self.holding[CONTROL_MODE] = 0
        self.holding[FEED_GRID_W] = self.holding[FEED_GRID_W + 1] = 0
        super().__init__({unit: self.holding})
        self.serial = serial
        self.p_max_w = float(p_max_w)
        self.clock = clock
        self.available_w = available_w
        self.settle_s = settle_s
        self.min_gap_s = min_gap_s
        self.time_constant_s = time_constant_s
        self.output_source: Callable[[], float] | None = None
        self.flash_writes = 0
        self.dropped = 0
        # Fault hooks (the fault matrix): answer late, close instead of answering (before or
        # after the request took effect), serve frozen measurements.
        self.reply_delay_s = 0.0
        self.refuse_settings = False  # every derating write answers exception 4
        self.drop_next_write = 0
        self.drop_after_next_write = 0
        self.frozen = False
        self.kicked = 0  # connections dropped because a newer client connected
        self._output_w = 0.0
        self._energy_wh = 2_345_670.0
        self._last = clock()
        self._connected_at = 0.0
        self._answered_at = -math.inf
        self._current: asyncio.StreamWriter | None = None

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1 (``port``: the one it had, to come back at the same address)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def derating(self) -> int:
        return self.holding[DERATING]

    @property
    def output_w(self) -> float:
        self.advance()
        return self._output_w

    def ceiling_w(self) -> float:
        """What the inverter may produce now (for an outer model that owns the output)."""
        return self.p_max_w * self.derating / 1000.0

    def restart(self) -> None:
        """The inverter restarts: its settings (holding registers) persist."""
        self.advance()
        self._output_w = 0.0

    def derating_writes(self) -> list[Request]:
        return [r for r in self.writes() if r.address == DERATING]

    def advance(self) -> None:
        """Move the simulation to the peer clock's now."""
        now = self.clock()
        dt = max(0.0, now - self._last)
        self._last = now
        if self.output_source is not None:
            self._output_w = self.output_source()
        else:
            ceiling = min(self.available_w, self.ceiling_w())
            alpha = 1.0 - math.exp(-dt / self.time_constant_s) if dt > 0 else 0.0
            self._output_w += (ceiling - self._output_w) * alpha
        self._energy_wh += max(0.0, self._output_w) * dt / 3600.0
        if self.frozen:
            return  # the dongle keeps serving the last measurements
        self._set_u32(ACTIVE_POWER, round(self._output_w))
        self._set_u32(ENERGY, int(self._energy_wh / 10.0))
        self._set_u32(PREDICTED, round(self.available_w))
        limited = self.available_w > self.ceiling_w()
        status = NO_IRRADIATION if self.available_w <= 0 else LIMITED if limited else ON_GRID
        self.holding[STATUS] = status

    def _set_u32(self, address: int, value: int) -> None:
        self.holding[address], self.holding[address + 1] = words_u32(value)

    # -- the Modbus side --------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """FakeModbusServer's loop with the SDongle's manners: one client, slow to start."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        previous, self._current = self._current, writer
        if previous is not None and not previous.is_closing():
            self.kicked += 1
            previous.close()
        self._connected_at = self.clock()
        try:
            while True:
                header = await reader.readexactly(7)
                tid, _pid, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                now = self.clock()
                if now - self._connected_at < self.settle_s or (
                    now - self._answered_at < self.min_gap_s
                ):
                    self.dropped += 1
                    continue
                write = pdu[0] in (6, 16)
                if self.drop_next or (write and self.drop_next_write):
                    if self.drop_next:
                        self.drop_next -= 1
                    else:
                        self.drop_next_write -= 1
                    return  # closed before the request is read
                if self.hang:
                    continue
                if self.reply_delay_s:
                    await asyncio.sleep(self.reply_delay_s)
                reply = self._process(unit, pdu)
                if write and self.drop_after_next_write:
                    self.drop_after_next_write -= 1
                    return  # the write took effect; the answer is lost with the connection
                writer.write(struct.pack(">HHHB", tid, 0, len(reply) + 1, unit) + reply)
                await writer.drain()
                self._answered_at = self.clock()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)

    def _process(self, unit: int, pdu: bytes) -> bytes:
        self.advance()
        function = pdu[0]
        if function in (6, 16) and unit == self.unit:
            if function == 6:
                address, value = struct.unpack(">HH", pdu[1:5])
                values = [value]
            else:
                address, count, _ = struct.unpack(">HHB", pdu[1:6])
                values = list(struct.unpack(f">{count}H", pdu[6 : 6 + 2 * count]))
            if DERATING in range(address, address + len(values)):
                raw = values[DERATING - address]
                if self.refuse_settings:
                    self.requests.append(
                        Request(unit, function, address, len(values), tuple(values))
                    )
                    return bytes([function | 0x80, 4])
                if raw > 1000:  # a negative I16 or above 100 %
                    self.requests.append(
                        Request(unit, function, address, len(values), tuple(values))
                    )
                    return bytes([function | 0x80, 3])
        before = self.derating
        reply = super()._process(unit, pdu)
        if self.derating != before:
            self.flash_writes += 1
        self.advance()
        return reply
