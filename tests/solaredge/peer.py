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
- **meters in the inverter's unit**: each :class:`PeerMeter` is chained after model 103 as a
  common model (L=65) and a meter model 201-204, laid out from pysunspec2's model definitions;
  so meter 1's common block lands at 40121, meter 2's at 40295, meter 3's at 40469. A meter
  reports ``W`` positive for export, as SolarEdge's grid meters do, and counts energy in
  ``TotWhImp`` / ``TotWhExp``; :meth:`PeerMeter.freeze` keeps serving its last values,
  ``PeerMeter.silent`` leaves reads of its blocks unanswered, ``PeerMeter.refuse`` answers
  them with that exception code and ``PeerMeter.drop_next_read`` closes the connection at the
  next one, while the inverter's own registers answer as before.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..sunspec.helpers import (
    FakeModbusServer,
    Request,
    build_image,
    common_values,
    spec_encode,
    spec_length,
    spec_points,
)

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

# Meters chained in the inverter's unit: where each one's common block starts (0-based).
METER_COMMON = (40121, 40295, 40469)
METER_MODEL = "SE-MTR-3Y-400V-A"
METER_SERIAL = "606C0FFE"
GRID_OPTION = "Export+Import"

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
class PeerMeter:
    """A meter wired to the inverter: its grid power (+import) and its energy counters.

    ``source`` (when set) gives the grid power at each request, else ``grid_w`` is used.
    ``model_id`` is 201-204, ``option`` the meter function set on the inverter.
    """

    option: str = GRID_OPTION
    model_id: int = 203
    serial: str = METER_SERIAL
    manufacturer: str = "SolarEdge"
    version: str = "3.18"
    grid_w: float = 0.0
    source: Callable[[], float] | None = None
    energy_sf: int = 0
    import_wh: float = 50_000.0
    export_wh: float = 80_000.0
    frozen: bool = False
    silent: bool = False
    """Reads touching the meter's blocks go unanswered (the inverter answers the rest)."""
    refuse: int | None = None
    """An exception code reads touching the meter's blocks are answered with."""
    drop_next_read: bool = False
    """The next read of the meter's blocks closes the connection unanswered."""
    common_address: int = 0
    """Where the meter's common block starts in the peer's map (set by the peer)."""
    address: int = 0
    """The meter model's ID register in the peer's map (set by the peer)."""
    registers: dict[int, int] = field(default_factory=dict, repr=False)

    def freeze(self, frozen: bool = True) -> None:
        """Keep serving the last values while the site goes on (counters keep counting)."""
        self.frozen = frozen

    def touched_by(self, pdu: bytes) -> bool:
        """Whether a request (any function) touches the meter's common block or model."""
        if len(pdu) < 5:
            return False
        address, count = struct.unpack(">HH", pdu[1:5])
        end = self.address + 2 + spec_length(self.model_id)
        return address < end and self.common_address < address + count

    def common(self) -> dict[str, Any]:
        values = common_values(self.manufacturer, METER_MODEL, self.serial)
        return {**values, "Opt": self.option, "Vr": self.version}

    def write(self, point: str, value: Any) -> None:
        """Encode one point of the meter model in place (pysunspec2's encoders)."""
        spec = spec_points(self.model_id)[point]
        for offset, word in enumerate(spec_encode(spec, value)):
            self.registers[self.address + spec.offset + offset] = word

    def advance(self, dt: float) -> None:
        grid = self.source() if self.source is not None else self.grid_w
        self.import_wh += max(0.0, grid) * dt / 3600.0
        self.export_wh += max(0.0, -grid) * dt / 3600.0
        if self.frozen:
            return
        for name, value in meter_values(grid, self.import_wh, self.export_wh, self.energy_sf):
            self.write(name, value)


def meter_values(
    grid_w: float, import_wh: float, export_wh: float, energy_sf: int = 0
) -> list[tuple[str, Any]]:
    """Raw int+SF points of a three-phase grid meter; SolarEdge's sign: W + export."""
    export_w = -grid_w
    scale = 10.0**energy_sf
    return [
        ("W", round(export_w)),
        ("WphA", round(export_w / 3)),
        ("WphB", round(export_w / 3)),
        ("WphC", round(export_w - 2 * round(export_w / 3))),
        ("W_SF", 0),
        ("VAR", round(export_w * 0.1)),
        ("VAR_SF", 0),
        ("PhV", 2301),
        ("PhVphA", 2300),
        ("PhVphB", 2302),
        ("PhVphC", 2301),
        ("V_SF", -1),
        ("Hz", 5001),
        ("Hz_SF", -2),
        ("TotWhImp", int(import_wh / scale)),
        ("TotWhExp", int(export_wh / scale)),
        ("TotWh_SF", energy_sf),
    ]


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
        meters: Sequence[PeerMeter] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        models: list[Any] = [
            (1, common_values(manufacturer, MODEL, serial), 65),
            (103, _inverter_values(0.0, 0)),
        ]
        for meter in meters:
            models.append((1, meter.common(), 65))
            models.append((meter.model_id, {}))
        image = build_image(models, SUNSPEC_BASE)
        self.meters = list(meters)
        for number, meter in enumerate(self.meters, start=1):
            # Laid out by the spec's lengths, the blocks land where SolarEdge documents them.
            common_at = METER_COMMON[number - 1]
            assert (image.registers[common_at], image.registers[common_at + 1]) == (1, 65)
            meter.common_address = common_at
            meter.address = common_at + 2 + 65
            assert image.registers[meter.address + 1] == spec_length(meter.model_id)
            meter.registers = image.registers
            meter.advance(0.0)
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
        self.peak_clients = 0
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
    def current_output_w(self) -> float:
        """The output as of the last :meth:`advance` (for a meter source: no recursion)."""
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
        for meter in self.meters:
            meter.advance(dt)
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

    def reset_client_counts(self) -> None:
        """Count clients from now on (a site reload closes and reopens its connection, and
        the peer may see the new one before the old one's close: that is no second client)."""
        self.peak_clients = len(self._writers)
        self.knocked_off = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # How many clients were connected at once, counting the newcomer before it knocks
        # the others off (``max_open_connections`` counts after, so it is always 1).
        self.peak_clients = max(self.peak_clients, len(self._writers) + 1)
        for other in list(self._writers):  # one Modbus leader: the newcomer wins
            other.close()
            self._writers.discard(other)
            self.knocked_off += 1
        self.max_open_connections = max(self.max_open_connections, len(self._writers) + 1)
        await super()._handle(reader, writer)

    def _unanswered(self, unit: int, pdu: bytes) -> bool:
        """A read of a silent meter's blocks gets no answer."""
        return any(meter.silent and meter.touched_by(pdu) for meter in self.meters)

    def _process(self, unit: int, pdu: bytes) -> bytes:
        self.advance()
        function = pdu[0]
        address, values = 0, []
        if self.busy is not None:
            return bytes([function | 0x80, self.busy])
        for meter in self.meters:
            if meter.refuse is not None and meter.touched_by(pdu):
                return bytes([function | 0x80, meter.refuse])
            if meter.drop_next_read and function == 3 and meter.touched_by(pdu):
                meter.drop_next_read = False
                raise ConnectionResetError("the peer drops the connection mid-read")
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
