"""A simulated SolarEdge inverter: a Modbus TCP server laid out from SolarEdge's register map.

The SunSpec part is laid out from SolarEdge's SunSpec document, which numbers registers from
1 (``40001`` is the first register of ``SunS``); on the wire every number is one less. The
power-control registers come from the power-control technical note, whose hex addresses are
already the wire addresses. The quirks the client has to live with:

- **word order**: SolarEdge's own 32-bit values (0xF000 and up) go low word first; the SunSpec
  registers stay big-endian. The encoding here is written independently of the client's.
- **one client at a time**: a new connection knocks the open one off, as a second Modbus
  leader does on a real inverter.
- **slow commit**: writing 1 to 0xF100 applies the pending committed settings after
  ``commit_s`` (5-10 s on an inverter); meanwhile the register reads back the 1 written.
  ``commit_result`` (e.g. 0xF104) makes the commit fail naming that register.
- **RAM vs flash**: the EDPC registers (0xF300 up) are lost by :meth:`restart`, the committed
  ones (0xF104, 0xF142) survive it.

Faults for the fault matrix, beyond the server's own (``hang``, ``exceptions``,
``response_delay``): ``busy`` answers every request with that exception code,
``write_exceptions`` refuses writes to an address (reads of it still answer); :meth:`freeze`
keeps serving the last SunSpec values while the inverter goes on underneath;
:meth:`drop_next_write` closes the connection when a write to an address arrives, after
applying it or not; :meth:`start` takes a port, so a peer can come back where it was (or
first appear at a port its client already knows).

Physics: EDPC applies only once power control is committed (0xF142 = 1, 0xF104 = 4) and
0xF300 = 1. Its limit is 0xF322 (% of 0xF30C) until the command timeout (0xF310) passes
without a write to 0xF322; then the fallback (0xF312) applies. The limit moves at the ramp
rates (%/min; -1 = at once; 5 %/min by default) and the output follows min(available, limit)
with a first-order lag. ``output_source`` lets an outer model (a household in the Home
Assistant tests) own the output instead; the peer then only computes :meth:`ceiling_w`.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..sunspec.helpers import FakeModbusServer, Request, build_image, common_values

UNIT = 1
SERIAL = "7E1A2B3C"
MODEL = "SE5000H-RW000BNN4"
RATING_W = 5000.0
DEFAULT_COMMIT_S = 6.0
DEFAULT_RAMP_PCT_PER_MIN = 5.0
DEFAULT_TIMEOUT_S = 60
DEFAULT_FALLBACK_PCT = 100.0

# SunSpec, as SolarEdge documents it (1-based) -> wire address.
DOC_SUNSPEC_ID = 40001
SUNSPEC_BASE = DOC_SUNSPEC_ID - 1

# Power-control registers (hex in the technical note = wire address).
F_RRCR = 0xF000
F_ACTIVE_POWER_LIMIT = 0xF001
F_COMMIT = 0xF100
F_RESTORE = 0xF101
F_REACTIVE_CONFIG = 0xF104
F_ADV_PWR_CTRL_EN = 0xF142
F_EDPC_ENABLE = 0xF300
F_MAX_ACTIVE_POWER = 0xF304
F_PREFERENCE = 0xF308
F_ACTIVE_POWER_BASE = 0xF30C
F_TIMEOUT = 0xF310
F_FALLBACK = 0xF312
F_RAMP_UP = 0xF318
F_RAMP_DOWN = 0xF31A
F_DYNAMIC_LIMIT = 0xF322
EDPC_END = 0xF324


def le_float(value: float) -> list[int]:
    """A float32 as SolarEdge sends it: low word, then high word."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [low, high]


def le_float_value(words: list[int]) -> float:
    low, high = words
    return float(struct.unpack(">f", struct.pack(">HH", high, low))[0])


def le_u32(value: int) -> list[int]:
    return [value & 0xFFFF, value >> 16]


def le_u32_value(words: list[int]) -> int:
    return words[0] | words[1] << 16


def le_i32_value(words: list[int]) -> int:
    value = le_u32_value(words)
    return value - (1 << 32) if value & 0x8000_0000 else value


@dataclass
class Commit:
    """A commit in progress: it ends at ``done_at`` (peer clock)."""

    done_at: float


class SolarEdgePeer(FakeModbusServer):
    """One SolarEdge inverter (unit 1) with SunSpec 1 + 103 and the power-control registers."""

    def __init__(
        self,
        *,
        available_w: float = 4000.0,
        committed: bool = False,
        commit_s: float = DEFAULT_COMMIT_S,
        manufacturer: str = "SolarEdge ",
        serial: str = SERIAL,
        time_constant_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        image = build_image(
            [
                (1, common_values(manufacturer, MODEL, serial), 65),
                (103, _inverter_values(0.0, 0)),
            ],
            SUNSPEC_BASE,
        )
        self.image = image
        super().__init__({UNIT: image})
        self.registers = image.registers
        self.clock = clock
        self.available_w = available_w
        self.commit_s = commit_s
        self.commit_result = 0
        self.time_constant_s = time_constant_s
        self.output_source: Callable[[], float] | None = None
        self.committing: Commit | None = None
        self.max_open_connections = 0
        self.knocked_off = 0
        self._output_w = 0.0
        self._energy_wh = 1_000_000.0
        self._limit_pct = 100.0  # the limit in force after ramping
        self._last = clock()
        self._last_command = self._last
        self.fallback_active = False
        self.frozen = False
        self.busy: int | None = None
        """An exception code every request is answered with (None: answer normally)."""
        self.write_exceptions: dict[int, int] = {}
        """Address -> exception code for writes there."""
        self.refused: list[int] = []
        """Addresses of the writes refused so far (they are not in ``writes()``)."""
        self.write_drops: dict[int, bool] = {}
        """Address -> applied: the next write there closes the connection unanswered."""
        self.dropped: list[tuple[int, bool]] = []
        """Writes that closed the connection: (address, whether it took effect)."""
        for address in range(0xF000, 0xF004):
            self.registers[address] = 0
        self.registers[F_ACTIVE_POWER_LIMIT] = 100
        self.registers[F_COMMIT] = 0
        self.registers[F_RESTORE] = 0
        for address in range(F_REACTIVE_CONFIG, F_REACTIVE_CONFIG + 2):
            self.registers[address] = 0
        for address in range(0xF140, 0xF144):
            self.registers[address] = 0
        self.registers.update(dict(zip(range(0xF140, 0xF142), le_float(100.0), strict=True)))
        self.committed_enable = 1 if committed else 0
        self.committed_config = 4 if committed else 0
        self._set(F_ADV_PWR_CTRL_EN, le_u32(self.committed_enable))
        self._set(F_REACTIVE_CONFIG, le_u32(self.committed_config))
        self.restart()

    # -- register helpers -------------------------------------------------------------------

    def _set(self, address: int, words: list[int]) -> None:
        for offset, word in enumerate(words):
            self.registers[address + offset] = word

    def _get(self, address: int, count: int = 2) -> list[int]:
        return [self.registers[address + i] for i in range(count)]

    def float_at(self, address: int) -> float:
        return le_float_value(self._get(address))

    @property
    def power_control_committed(self) -> bool:
        """What the last successful commit put in force (written values wait for a commit)."""
        return self.committed_enable == 1 and self.committed_config == 4

    @property
    def edpc_enabled(self) -> bool:
        return self.registers[F_EDPC_ENABLE] == 1

    @property
    def timeout_s(self) -> int:
        return le_u32_value(self._get(F_TIMEOUT))

    @property
    def last_command_at(self) -> float:
        """Peer time of the last write that restarted the command timeout."""
        return self._last_command

    @property
    def output_w(self) -> float:
        self.advance()
        return self._output_w

    @property
    def limit_pct(self) -> float:
        """The limit in force now (after ramping), in % of the rating."""
        self.advance()
        return self._limit_pct

    def restart(self) -> None:
        """The inverter restarts: RAM (EDPC) settings are back at their defaults."""
        for address in range(F_EDPC_ENABLE, EDPC_END):
            self.registers[address] = 0
        self._set(F_MAX_ACTIVE_POWER, le_float(RATING_W))
        self._set(F_ACTIVE_POWER_BASE, le_float(RATING_W))
        self._set(F_TIMEOUT, le_u32(DEFAULT_TIMEOUT_S))
        self._set(F_FALLBACK, le_float(DEFAULT_FALLBACK_PCT))
        self._set(F_RAMP_UP, le_float(DEFAULT_RAMP_PCT_PER_MIN))
        self._set(F_RAMP_DOWN, le_float(DEFAULT_RAMP_PCT_PER_MIN))
        self._set(F_DYNAMIC_LIMIT, le_float(100.0))
        self.fallback_active = False

    def writes_to(self, address: int) -> list[Request]:
        return [r for r in self.writes() if r.address == address]

    async def start(self, port: int = 0) -> int:
        """Listen on ``port`` (0: any free one)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def freeze(self, frozen: bool = True) -> None:
        """Keep serving the last output, energy and status (the inverter itself goes on)."""
        self.frozen = frozen
        self.advance()

    def drop_next_write(self, address: int, *, applied: bool) -> None:
        """Close the connection unanswered at the next write to ``address``.

        ``applied`` says whether the write took effect first: the client cannot tell.
        """
        self.write_drops[address] = applied

    # -- physics ----------------------------------------------------------------------------

    def _target_pct(self, now: float) -> float:
        """The limit EDPC asks for now (before ramping)."""
        if not (self.power_control_committed and self.edpc_enabled):
            self.fallback_active = False
            return 100.0
        if now - self._last_command > self.timeout_s:
            self.fallback_active = True
            pct = self.float_at(F_FALLBACK)
        else:
            self.fallback_active = False
            pct = self.float_at(F_DYNAMIC_LIMIT)
        base = self.float_at(F_ACTIVE_POWER_BASE)
        return min(100.0, max(0.0, pct)) * base / RATING_W

    def ceiling_w(self) -> float:
        """What the inverter may produce now (for an outer model that owns the output)."""
        self.advance()
        return RATING_W * self._limit_pct / 100.0

    def advance(self) -> None:
        """Move the simulation to the peer clock's now."""
        now = self.clock()
        dt = max(0.0, now - self._last)
        self._last = now
        if self.committing is not None and now >= self.committing.done_at:
            self._finish_commit()
        target = self._target_pct(now)
        rising = target > self._limit_pct
        rate = self.float_at(F_RAMP_UP if rising else F_RAMP_DOWN)
        if rate < 0 or not math.isfinite(rate):
            self._limit_pct = target
        else:
            step = rate / 60.0 * dt
            if rising:
                self._limit_pct = min(target, self._limit_pct + step)
            else:
                self._limit_pct = max(target, self._limit_pct - step)
        if self.output_source is not None:
            self._output_w = self.output_source()
        else:
            ceiling = min(self.available_w, RATING_W * self._limit_pct / 100.0)
            alpha = 1.0 - math.exp(-dt / self.time_constant_s) if dt > 0 else 0.0
            self._output_w += (ceiling - self._output_w) * alpha
        self._energy_wh += self._output_w * dt / 3600.0
        if self.frozen:
            return
        throttled = self.available_w > RATING_W * self._limit_pct / 100.0
        values = _inverter_values(self._output_w, int(self._energy_wh), 5 if throttled else 4)
        for name in ("W", "WH", "St"):
            self.image.write(103, name, values[name])

    def _finish_commit(self) -> None:
        self.committing = None
        if self.commit_result:
            # A rejected commit leaves the settings in force as they were.
            self.registers[F_COMMIT] = self.commit_result
            self._set(F_ADV_PWR_CTRL_EN, le_u32(self.committed_enable))
            self._set(F_REACTIVE_CONFIG, le_u32(self.committed_config))
        else:
            self.registers[F_COMMIT] = 0
            self.committed_enable = le_i32_value(self._get(F_ADV_PWR_CTRL_EN))
            self.committed_config = le_i32_value(self._get(F_REACTIVE_CONFIG))

    # -- the Modbus side --------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for other in list(self._writers):  # one Modbus leader: the newcomer wins
            other.close()
            self._writers.discard(other)
            self.knocked_off += 1
        self.max_open_connections = max(self.max_open_connections, len(self._writers) + 1)
        await super()._handle(reader, writer)

    def _process(self, unit: int, pdu: bytes) -> bytes:
        self.advance()
        function = pdu[0]
        address, values = 0, []
        if self.busy is not None:
            return bytes([function | 0x80, self.busy])
        if function == 16:
            address, count, _ = struct.unpack(">HHB", pdu[1:6])
            values = list(struct.unpack(f">{count}H", pdu[6 : 6 + 2 * count]))
            if address in self.write_exceptions:
                self.refused.append(address)
                return bytes([function | 0x80, self.write_exceptions[address]])
            if address in self.write_drops:
                applied = self.write_drops.pop(address)
                self.dropped.append((address, applied))
                if applied:
                    self._process(unit, pdu)
                raise ConnectionResetError("the peer drops the connection mid-write")
        reply = super()._process(unit, pdu)
        if function == 16 and reply[0] == 16:
            if address == F_COMMIT and values == [1]:
                self.committing = Commit(self.clock() + self.commit_s)
            if address == F_DYNAMIC_LIMIT:
                self._last_command = self.clock()
            if address == F_EDPC_ENABLE and values == [1]:
                self._last_command = self.clock()
            self.advance()
        return reply


def _inverter_values(w: float, wh: int, st: int = 4) -> dict[str, int]:
    """Model 103 values for a three-phase output of ``w`` watts (int+SF, as SolarEdge)."""
    amps = round(w / 230 / 3 * 100)
    return {
        "A": amps * 3,
        "AphA": amps,
        "AphB": amps,
        "AphC": amps,
        "A_SF": -2,
        "PhVphA": 2300,
        "PhVphB": 2300,
        "PhVphC": 2300,
        "V_SF": -1,
        "W": round(w),
        "W_SF": 0,
        "Hz": 5000,
        "Hz_SF": -2,
        "WH": wh,
        "WH_SF": 0,
        "St": st,
    }
