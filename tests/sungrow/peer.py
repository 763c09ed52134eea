"""A simulated Sungrow SG or SH inverter: a Modbus TCP server laid out from Sungrow's map.

Sungrow documents registers from 1; here every register is placed at its doc number minus 1
(the wire address), written out independently of the client's own table. Two banks, as on the
inverter: input registers (measurements, FC4 only) and holding registers (settings, FC3/6/16).
The quirks the client has to live with:

- **word order**: 32-bit values go low word first.
- **WiNet-S pacing**: a request that comes within ``settle_s`` of the connection opening, or
  within ``min_gap_s`` of the previous answer, is dropped without an answer.
- **slow apply**: a new ratio reads back (and limits the output) only ``apply_s`` after the
  write; until then the old one is in force.
- **setting refused**: a switch other than 0xAA/0x55 or a ratio above 100 % answers Modbus
  exception 4 ("setting failed") and changes nothing.
- **persistent settings**: the holding registers survive :meth:`restart`; every write that
  changes one counts as a ``flash_write``.

Fault hooks: ``hang`` (no answers), ``reply_delay_s``, ``drop_next`` / ``drop_next_write``
(close before the request is read), ``drop_after_next_write`` (close after the write took
effect, unanswered), ``exceptions``, ``refuse_settings`` (exception 4 to every limitation
write),
``frozen`` (the measurements stop moving) and :meth:`start` at the old port after a stop.

Physics: with the switch on (0xAA) the output may reach ratio × rating, otherwise the rating;
the output follows min(available, ceiling) with a first-order lag. ``output_source`` lets an
outer model (a household in the Home Assistant tests) own the output; the peer then only
computes :meth:`ceiling_w`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..sunspec.helpers import FakeModbusServer, Request

UNIT = 1


def at(doc: int) -> int:
    """The wire address of Sungrow doc register ``doc``."""
    return doc - 1


# Input registers (doc numbers).
SERIAL_DOC = 4990
DEVICE_TYPE_DOC = 5000
NOMINAL_POWER_DOC = 5001
DAILY_ENERGY_DOC = 5003
TOTAL_ENERGY_DOC = 5004
SG_ACTIVE_POWER_DOC = 5031
SH_ACTIVE_POWER_DOC = 13034
# Holding registers (doc numbers).
SG_SWITCH_DOC, SG_RATIO_DOC = 5007, 5008
SH_SWITCH_DOC, SH_RATIO_DOC = 13089, 13090
SH_FEED_IN_DOC = 13074  # export limit in W: present, never used by the client

ON, OFF = 0xAA, 0x55


@dataclass(frozen=True)
class Variant:
    """One modelled inverter."""

    family: str
    device_type: int
    nominal_tenth_kw: int
    serial: str
    active_power_doc: int
    switch_doc: int
    ratio_doc: int
    energy_wh_per_count: float


SG = Variant(
    "sg", 0x2603, 50, "A2260300001", SG_ACTIVE_POWER_DOC, SG_SWITCH_DOC, SG_RATIO_DOC, 1000
)
SH = Variant(
    "sh", 0x0E03, 100, "A2350415770", SH_ACTIVE_POWER_DOC, SH_SWITCH_DOC, SH_RATIO_DOC, 100
)


def words_u32(value: int) -> list[int]:
    """Low word first, as Sungrow sends 32-bit values."""
    value &= 0xFFFF_FFFF
    return [value & 0xFFFF, value >> 16]


def text_words(text: str, count: int) -> list[int]:
    data = text.encode().ljust(2 * count, b"\0")[: 2 * count]
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, 2 * count, 2)]


class SungrowPeer(FakeModbusServer):
    """One Sungrow inverter (unit 1) of ``variant``."""

    def __init__(
        self,
        variant: Variant = SG,
        *,
        available_w: float = 4000.0,
        switch: int = OFF,
        ratio: int = 1000,
        settle_s: float = 0.0,
        min_gap_s: float = 0.0,
        apply_s: float = 0.0,
        time_constant_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.variant = variant
        self.holding: dict[int, int] = {
            at(variant.switch_doc): switch,
            at(variant.ratio_doc): ratio,
        }
        if variant.family == "sh":
            self.holding[at(SH_FEED_IN_DOC)] = 0
        super().__init__({UNIT: self.holding})
        self.inputs: dict[int, int] = {}
        for offset, word in enumerate(text_words(variant.serial, 10)):
            self.inputs[at(SERIAL_DOC) + offset] = word
        for doc in range(DEVICE_TYPE_DOC, SG_ACTIVE_POWER_DOC + 2):
            self.inputs[at(doc)] = 0
        self.inputs[at(DEVICE_TYPE_DOC)] = variant.device_type
        self.inputs[at(NOMINAL_POWER_DOC)] = variant.nominal_tenth_kw
        if variant.active_power_doc != SG_ACTIVE_POWER_DOC:
            for doc in range(variant.active_power_doc, variant.active_power_doc + 2):
                self.inputs[at(doc)] = 0
        self.clock = clock
        self.available_w = available_w
        self.settle_s = settle_s
        self.min_gap_s = min_gap_s
        self.apply_s = apply_s
        self.time_constant_s = time_constant_s
        self.output_source: Callable[[], float] | None = None
        self.flash_writes = 0
        self.dropped = 0
        # Fault hooks (the fault matrix): answer late, close instead of answering (before or
        # after the request took effect), serve frozen measurements.
        self.reply_delay_s = 0.0
        self.refuse_settings = False  # every write to the limitation answers exception 4
        self.drop_next_write = 0
        self.drop_after_next_write = 0
        self.frozen = False
        self._pending: tuple[int, float] | None = None  # (ratio, applies at)
        self._in_force_ratio = ratio
        self._output_w = 0.0
        self._energy_wh = 1_234_000.0
        self._last = clock()
        self._connected_at = 0.0
        self._answered_at = -math.inf

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1 (``port``: the one it had, to come back at the same address)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def rating_w(self) -> float:
        return self.variant.nominal_tenth_kw * 100.0

    @property
    def switch(self) -> int:
        return self.holding[at(self.variant.switch_doc)]

    @property
    def ratio(self) -> int:
        """The ratio register as a client reads it (the old one until a new one applies)."""
        self.advance()
        return self.holding[at(self.variant.ratio_doc)]

    @property
    def output_w(self) -> float:
        self.advance()
        return self._output_w

    def ceiling_w(self) -> float:
        """What the inverter may produce now (for an outer model that owns the output)."""
        self.advance()
        if self.switch != ON:
            return self.rating_w
        return self.rating_w * self._in_force_ratio / 1000.0

    def restart(self) -> None:
        """The inverter restarts: its settings (holding registers) persist."""
        self.advance()
        self._output_w = 0.0

    @property
    def limit_addresses(self) -> set[int]:
        """The wire addresses of the power limitation (switch and ratio)."""
        return {at(self.variant.switch_doc), at(self.variant.ratio_doc)}

    def limit_writes(self) -> list[Request]:
        """Writes to the power limitation (switch or ratio)."""
        return [r for r in self.writes() if r.address in self.limit_addresses]

    def advance(self) -> None:
        """Move the simulation to the peer clock's now."""
        now = self.clock()
        dt = max(0.0, now - self._last)
        self._last = now
        if self._pending is not None and now >= self._pending[1]:
            self.holding[at(self.variant.ratio_doc)] = self._pending[0]
            self._in_force_ratio = self._pending[0]
            self._pending = None
        if self.output_source is not None:
            self._output_w = self.output_source()
        else:
            ceiling = min(self.available_w, self.ceiling_w_now())
            alpha = 1.0 - math.exp(-dt / self.time_constant_s) if dt > 0 else 0.0
            self._output_w += (ceiling - self._output_w) * alpha
        self._energy_wh += max(0.0, self._output_w) * dt / 3600.0
        if self.frozen:
            return  # the dongle keeps serving the last measurements
        self._set_u32(self.variant.active_power_doc, round(self._output_w))
        self._set_u32(TOTAL_ENERGY_DOC, int(self._energy_wh / self.variant.energy_wh_per_count))

    def ceiling_w_now(self) -> float:
        if self.switch != ON:
            return self.rating_w
        return self.rating_w * self._in_force_ratio / 1000.0

    def _set_u32(self, doc: int, value: int) -> None:
        low, high = words_u32(value)
        self.inputs[at(doc)] = low
        self.inputs[at(doc) + 1] = high

    # -- the Modbus side --------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """FakeModbusServer's loop, with WiNet-S pacing: early requests get no answer."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
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
        if function == 4:
            address, count = struct.unpack(">HH", pdu[1:5])
            self.requests.append(Request(unit, 4, address, count))
            if unit != UNIT:
                return bytes([0x84, 11])
            addresses = range(address, address + count)
            for a in addresses:
                if (unit, a) in self.exceptions:
                    return bytes([0x84, self.exceptions[(unit, a)]])
            if not 1 <= count <= 125 or any(a not in self.inputs for a in addresses):
                return bytes([0x84, 2])
            data = b"".join(self.inputs[a].to_bytes(2, "big") for a in addresses)
            return bytes([4, len(data)]) + data
        if function in (6, 16) and unit == UNIT:
            refused = self._refuse(function, pdu)
            if refused is not None:
                return refused
        before = dict(self.holding)
        reply = super()._process(unit, pdu)
        ratio_address = at(self.variant.ratio_doc)
        for address, value in self.holding.items():
            if before[address] != value:
                self.flash_writes += 1
        if self.holding[ratio_address] != before[ratio_address]:
            new = self.holding[ratio_address]
            self.holding[ratio_address] = before[ratio_address]  # reads back old until applied
            self._pending = (new, self.clock() + self.apply_s)
            self.advance()
        return reply

    def _refuse(self, function: int, pdu: bytes) -> bytes | None:
        """Exception 4 for a value the inverter cannot take."""
        if function == 6:
            address, value = struct.unpack(">HH", pdu[1:5])
            values = [value]
        else:
            address, count, _ = struct.unpack(">HHB", pdu[1:6])
            values = list(struct.unpack(f">{count}H", pdu[6 : 6 + 2 * count]))
        for offset, value in enumerate(values):
            target = address + offset
            if self.refuse_settings and target in self.limit_addresses:
                self.requests.append(Request(UNIT, function, address, len(values), tuple(values)))
                return bytes([function | 0x80, 4])
            if target == at(self.variant.switch_doc) and value not in (ON, OFF):
                return bytes([function | 0x80, 4])
            if target == at(self.variant.ratio_doc) and value > 1000:
                return bytes([function | 0x80, 4])
        return None
