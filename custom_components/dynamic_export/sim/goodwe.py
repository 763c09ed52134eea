"""A simulated GoodWe ET-family (hybrid) inverter and its meter, over Modbus RTU in UDP on 8899.

The ``goodwe`` library (what ``goodwe_inverter`` drives) sends a Modbus RTU frame to address
0xF7 in a UDP datagram to port 8899 and expects the answer framed as ``AA 55``, the address,
the function, the body and the CRC-16 of everything after ``AA 55``. Laid out from GoodWe's ET
register map: device info at 35000 (rating 35001, serial 35003, model 35011), running data at
35100 (inverter output 35138, power at the meter 35140, + export; energy 35191, 0.1 kWh),
the meter block at 36000 (36004: 1 while the inverter hears its meter), settings from 45000
with the **export limit** switch at 47509 and the limit in W at 47510. Unknown addresses
answer exception 2, a switch other than 0/1 exception 3.

Port 8899 is fixed by the protocol (goodwe 0.3 cannot use another), so every simulated
inverter binds its own loopback address (127.x.y.z; all of 127/8 is loopback on Linux, other
systems need an alias): either ``<prefix>.<n>`` for site inverter n, or a free random one.

Physics (the same site as the other families): the inverter's meter sees the site's grid
power (what the site meter reports, delay and noise included). With export limit on, the
inverter curtails itself every ``loop_s`` so that export stays at or below the limit: its
ceiling becomes its output plus its share (by rating, among the site's GoodWe inverters with
the limit on) of the room left under the limit. Like the simulated Victron GX it reads the
true export at once, so it holds the limit better than a real inverter measuring through its
meter; the period is an assumption (GoodWe does not document it). While the meter is silent
(``meter_ok`` False) the ceiling stays where it was. The settings persist: :meth:`restart`
keeps them, and every write that changes one counts as a ``flash_write``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
from collections.abc import Callable, Sequence

from .physics import SimInverter, SimSite
from .vendor import ILLEGAL_DATA_VALUE, VendorUnit, text_words, u16

PORT = 8899
ADDRESS = 0xF7
HEADER = b"\xaa\x55"
DEFAULT_LOOP_S = 0.5
"""How often the inverter moves its ceiling to hold the export limit (an assumption)."""

DEVICE_INFO = 35000
RATED_POWER = 35001
SERIAL_AT = 35003  # 8 registers, ASCII
MODEL_AT = 35011  # 5 registers, ASCII
FIRMWARE_AT = 35021  # 6 registers
ARM_FIRMWARE_AT = 35027  # 6 registers
TIMESTAMP = 35100  # 3 registers: year - 2000, month, day, hour, minute, second
PPV1 = 35105  # U32 W (high word first): PV string 1, all of the simulated panels
TOTAL_INVERTER_POWER = 35138  # S16 W
ACTIVE_POWER = 35140  # S16 W at the meter, + export
WORK_MODE = 35187
E_TOTAL = 35191  # U32 (high word first), 0.1 kWh
METER_COMM_STATUS = 36004
METER_ACTIVE_POWER_TOTAL = 36008  # S16 W, + export
EXPORT_SWITCH = 47509
EXPORT_LIMIT = 47510
BLOCKS = ((35000, 35032), (35100, 35224), (36000, 36124), (45000, 47999))
"""The register ranges an ET inverter answers (inclusive)."""


def crc16(data: bytes) -> bytes:
    """Modbus CRC-16, low byte first (both directions of the protocol use it)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def _ascii(text: str, count: int) -> list[int]:
    """Text padded with spaces, as GoodWe pads its serial and model (not NUL like SunSpec)."""
    return text_words(text.ljust(2 * count), count)


class GoodWeUnit(VendorUnit):
    """One ET inverter with its meter, standing for site inverter ``index``.

    ``group`` is shared by the site's GoodWe units: each holds its share of the room under
    its limit by rating among those with the limit on (they all see the same grid power).
    """

    family = "goodwe"

    def __init__(
        self,
        unit_id: int,
        index: int,
        inverter: SimInverter,
        group: list[GoodWeUnit],
        *,
        energy_start_wh: float = 0.0,
        loop_s: float = DEFAULT_LOOP_S,
        host: str | None = None,
    ) -> None:
        super().__init__(unit_id, (index,))
        if loop_s <= 0:
            raise ValueError("loop_s must be > 0")
        self.rating_w = inverter.rated_power_w
        if not 0 < self.rating_w <= 0x7FFF:
            raise ValueError(f"a GoodWe rating must be 1-32767 W, got {self.rating_w:g}")
        self.group = group
        group.append(self)
        self.energy_start_wh = energy_start_wh
        self.loop_s = loop_s
        self.host = host
        """The loopback address it answers on (set when it is bound)."""
        for low, high in BLOCKS:
            self.holding.define(low, high - low + 1)
        bank = self.holding
        kw = round(self.rating_w / 1000)
        self.serial = f"9{kw:04d}ETU{index + 1:08d}"[:16]
        bank.write(DEVICE_INFO, [1, round(self.rating_w), 1])
        bank.write(SERIAL_AT, _ascii(self.serial, 8))
        bank.write(MODEL_AT, _ascii(f"GW{kw}K-ET", 5))
        bank.write(FIRMWARE_AT, _ascii("04029-05-S11", 6))
        bank.write(ARM_FIRMWARE_AT, _ascii("02041-19-S00", 6))
        bank.write(TIMESTAMP, [(26 << 8) | 1, (1 << 8) | 12, 0])  # 2026-01-01 12:00:00
        bank.write(WORK_MODE, [1])
        self.allow_writes(EXPORT_SWITCH)
        self.allow_writes(EXPORT_LIMIT)
        self.meter_ok = True
        self.flash_writes = 0
        """Writes that changed a setting (GoodWe keeps them in non-volatile memory)."""
        self.restarts = 0
        self.ceiling_w: float | None = None
        """The output ceiling the export limit set last (None: not limiting)."""
        self._since_loop_s = loop_s  # act at the first step

    # --- settings -------------------------------------------------------------------------

    @property
    def export_switch(self) -> int:
        """1 while the inverter holds export at :attr:`export_limit_w`."""
        return self.holding.values[EXPORT_SWITCH]

    @property
    def export_limit_w(self) -> int:
        """The export limit (W)."""
        return self.holding.values[EXPORT_LIMIT]

    def set_export_limit(self, *, switch: int, limit_w: int) -> None:
        """Settings an installer made in the app (not counted as flash writes of ours)."""
        if switch not in (0, 1) or not 0 <= limit_w <= 0xFFFF:
            raise ValueError(f"export switch {switch} / limit {limit_w} W out of range")
        self.holding.write(EXPORT_SWITCH, [switch])
        self.holding.write(EXPORT_LIMIT, [limit_w])
        self._since_loop_s = self.loop_s

    def check_write(self, address: int, values: list[int]) -> int | None:
        """The switch takes 0 or 1 only."""
        touched = address <= EXPORT_SWITCH < address + len(values)
        if touched and values[EXPORT_SWITCH - address] not in (0, 1):
            return ILLEGAL_DATA_VALUE
        return None

    def write(self, site: SimSite, address: int, values: Sequence[int]) -> int | None:
        """Store a client's write; one that changes a setting is a flash write."""
        before = (
            self.holding.read(address, len(values))
            if self.holding.contains(address, len(values))
            else None
        )
        refused = super().write(site, address, values)
        if refused is None and before != list(values):
            self.flash_writes += 1
        return refused

    def written(self, site: SimSite, address: int, values: list[int]) -> None:
        """A new setting takes effect at the next step (no wait for the loop's turn)."""
        self._since_loop_s = self.loop_s

    def limit_write_pct(self, address: int, values: Sequence[int]) -> float | None:
        """A write of the export limit, as its share of the rating (capped at 100 %)."""
        if address <= EXPORT_LIMIT < address + len(values):
            return min(100.0, 100.0 * values[EXPORT_LIMIT - address] / self.rating_w)
        return None

    def restart(self, site: SimSite) -> None:
        """The inverter restarts: its output starts from zero, the settings persist."""
        self.restarts += 1
        site.inverters[self.indices[0]].output_w = 0.0
        self._since_loop_s = self.loop_s

    # --- behaviour ------------------------------------------------------------------------

    def step(self, site: SimSite, dt: float) -> None:
        """Every ``loop_s``: the ceiling that holds export at the limit (see the module doc)."""
        self._since_loop_s += dt
        if self._since_loop_s + 1e-9 < self.loop_s:
            return
        self._since_loop_s = 0.0
        inverter = site.inverters[self.indices[0]]
        if self.export_switch != 1:
            self.ceiling_w = None
            inverter.limit_enabled = False
            return
        if not self.meter_ok:
            return  # nothing to measure export by: the last ceiling stays
        holding = [unit for unit in self.group if unit.export_switch == 1]
        share = self.rating_w / sum(unit.rating_w for unit in holding)
        room = self.export_limit_w - site.export_w
        ceiling = max(0.0, min(self.rating_w, inverter.output_w + share * room))
        self.ceiling_w = ceiling
        inverter.limit_pct = 100.0 * ceiling / self.rating_w
        inverter.limit_enabled = True
        inverter.limit_revert_s = 0.0

    def refresh(self, site: SimSite) -> None:
        """Output, power at the meter (+ export, as the site meter reports it), energy."""
        inverter = site.inverters[self.indices[0]]
        export = -site.meter.reported_power_w
        bank = self.holding
        bank.write(TOTAL_INVERTER_POWER, [u16(round(inverter.output_w))])
        bank.write(ACTIVE_POWER, [u16(round(export))])
        bank.write(METER_ACTIVE_POWER_TOTAL, [u16(round(export))])
        bank.write(METER_COMM_STATUS, [1 if self.meter_ok else 0])
        tenths = int((self.energy_start_wh + inverter.lifetime_energy_wh) // 100) & 0xFFFF_FFFF
        bank.write(E_TOTAL, [tenths >> 16, tenths & 0xFFFF])
        watts = max(0, round(inverter.output_w))
        bank.write(PPV1, [watts >> 16, watts & 0xFFFF])
        # Its clock runs on the site's, from 2026-01-01 12:00:00, so a live inverter's data
        # is seen to move (what the client's frozen-data check looks for).
        clock = 12 * 3600 + int(site.now)
        days, second = divmod(clock, 86400)
        hour, rest = divmod(second, 3600)
        minute, second = divmod(rest, 60)
        bank.write(
            TIMESTAMP, [(26 << 8) | 1, ((1 + days % 28) << 8) | hour, (minute << 8) | second]
        )


# --- the network -----------------------------------------------------------------------------

PduHandler = Callable[[int, bytes], bytes | None]
"""``(unit id, request PDU) -> answer PDU`` (None: stay silent), as the Modbus TCP server has."""


def frame_length(frame: bytes) -> int:
    """How long an RTU request starting like ``frame`` must be (FC16 carries a byte count)."""
    if len(frame) > 6 and frame[1] == 16:
        return 9 + frame[6]
    return 8


class GoodWeEndpoint(asyncio.DatagramProtocol):
    """UDP 8899 on one loopback address, answering for one :class:`GoodWeUnit`.

    Requests go through ``handler`` (the site server's own), so offline, slow and frozen
    faults, the write log and the write counts work as for a Modbus TCP unit.
    """

    def __init__(
        self,
        unit: GoodWeUnit,
        handler: PduHandler,
        on_write: Callable[[], None],
        delay_s: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.unit = unit
        self._handler = handler
        self._on_write = on_write
        self._delay_s = delay_s
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport the answers go out on."""
        assert isinstance(transport, asyncio.DatagramTransport)
        self._transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        """Answer a valid frame for 0xF7; anything else is dropped, as on the line."""
        answer = self.answer(data)
        if answer is None or self._transport is None:
            return
        delay = self._delay_s()
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._send, answer, addr)
        else:
            self._send(answer, addr)

    def answer(self, frame: bytes) -> bytes | None:
        """The datagram answering ``frame``, or None."""
        if len(frame) < 8 or frame[:2] == HEADER:
            return None  # too short, or the AA55 protocol of older families: not spoken here
        if len(frame) != frame_length(frame) or crc16(frame[:-2]) != frame[-2:]:
            return None
        if frame[0] != ADDRESS:
            return None
        pdu = frame[1:-2]
        if pdu[0] in (6, 16):
            self._on_write()
        body = self._handler(self.unit.unit_id, pdu)
        if body is None:
            return None
        head = bytes((ADDRESS,)) + body
        return HEADER + head + crc16(head)

    def _send(self, answer: bytes, addr: tuple[str | object, int]) -> None:
        if self._transport is not None:
            with contextlib.suppress(OSError):
                self._transport.sendto(answer, addr)

    def close(self) -> None:
        """Stop answering and release the address."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def goodwe_host(prefix: str | None, index: int) -> str | None:
    """The address of site inverter ``index`` under ``prefix`` (``127.0.88`` → 127.0.88.1…)."""
    if prefix is None:
        return None
    host = f"{prefix}.{index + 1}"
    parts = host.split(".")
    if len(parts) != 4 or parts[0] != "127" or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(f"GoodWe address {host!r} is not a 127.x.y.z loopback address")
    return host


async def bind(endpoint: GoodWeEndpoint) -> None:
    """Listen on UDP 8899 at the unit's host, or at a free random 127.x.y.z if it has none."""
    loop = asyncio.get_running_loop()
    unit = endpoint.unit
    if unit.host is not None:
        await loop.create_datagram_endpoint(lambda: endpoint, local_addr=(unit.host, PORT))
        return
    rng = random.Random()
    for _ in range(50):
        host = f"127.{rng.randint(1, 254)}.{rng.randint(1, 254)}.{rng.randint(2, 254)}"
        try:
            await loop.create_datagram_endpoint(lambda: endpoint, local_addr=(host, PORT))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            continue
        unit.host = host
        return
    raise RuntimeError("no free loopback address for UDP port 8899")
