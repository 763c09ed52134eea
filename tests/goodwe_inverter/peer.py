"""A simulated GoodWe ET-family inverter answering the Modbus-over-UDP protocol on port 8899.

Written from GoodWe's ET register map as the goodwe library documents it (device info at
35000, running data at 35100, the meter block at 36000, settings from 45000 with the export
switch at 47509 and the limit in W at 47510), independently of the library's own code:

- **requests** are Modbus RTU frames (address 0xF7, function 3/6/16, CRC-16 low byte first)
  in UDP datagrams to port 8899; a frame for another address is not answered.
- **answers** start with 0xAA 0x55, then the address, the function and the body, and end with
  the CRC-16 of everything after the 0xAA 0x55; a refused request answers function | 0x80 and
  the exception code (2: no such register, 3: a value the setting cannot hold).
- **the export limit** persists: it survives :meth:`restart`, and every write that changes a
  setting counts as a ``flash_write``.
- faults: ``drop`` answers nothing to the next requests (UDP loses them), ``reply_delay_s``
  answers late, ``exceptions`` refuses a register.

Port 8899 is fixed by the protocol (goodwe 0.3 cannot use another), so each peer binds its
own loopback address (127.x.y.z) and parallel test runs never collide.

Physics: with the export limit on, the inverter curtails itself so that export at its meter
stays at the limit: its output may reach min(rating, load + limit), otherwise the rating.
``output_source`` and ``load_source`` let an outer model (the household of the Home Assistant
tests) own output and load; the peer then only computes :meth:`ceiling_w`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
from collections.abc import Callable
from dataclasses import dataclass

PORT = 8899
ADDRESS = 0xF7
SERIAL = "95000ETU00000001"
MODEL = "GW5K-ET"

DEVICE_INFO = 35000  # 33 registers
RATED_POWER = 35001
AC_OUTPUT_TYPE = 35002
SERIAL_AT = 35003  # 8 registers, ASCII
MODEL_AT = 35011  # 5 registers, ASCII
FIRMWARE_AT = 35021  # 6 registers
ARM_FIRMWARE_AT = 35027  # 6 registers
TIMESTAMP = 35100  # 3 registers: year - 2000, month, day, hour, minute, second
TOTAL_INVERTER_POWER = 35138  # S16 W
ACTIVE_POWER = 35140  # S16 W at the meter, + export
BATTERY_MODE = 35184  # 0: no battery
WORK_MODE = 35187
E_TOTAL = 35191  # U32, 0.1 kWh
METER_COMM_STATUS = 36004  # 1: the inverter hears its meter
METER_ACTIVE_POWER_TOTAL = 36008  # S16 W, + export
EXPORT_SWITCH = 47509
EXPORT_LIMIT = 47510

BLOCKS = ((35000, 35032), (35100, 35224), (36000, 36124), (45000, 47999))
"""Register ranges that exist; anything else answers exception 2."""
WRITABLE = (EXPORT_SWITCH, EXPORT_LIMIT)


_LOOPBACK_HOSTS = {"127.0.0.1"}


def _allow(host: str) -> None:
    """Let the client reach ``host``: pytest-socket (from the HA plugin) allows 127.0.0.1 only."""
    _LOOPBACK_HOSTS.add(host)
    try:
        import pytest_socket  # only where the plugin is installed
    except ImportError:
        return
    pytest_socket.socket_allow_hosts(sorted(_LOOPBACK_HOSTS), allow_unix_socket=True)


def crc16(data: bytes) -> bytes:
    """Modbus CRC-16, low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def _text(text: str, registers: int) -> list[int]:
    raw = text.encode("ascii").ljust(2 * registers, b" ")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 2 * registers, 2)]


def _s16(value: float) -> int:
    return round(value) & 0xFFFF


@dataclass
class Request:
    """One request as the peer saw it (``value``: the count for reads)."""

    function: int
    address: int
    value: int


class GoodWeEtPeer(asyncio.DatagramProtocol):
    """One ET inverter with its meter; see the module docstring."""

    def __init__(
        self,
        *,
        rating_w: int = 5000,
        serial: str = SERIAL,
        export_switch: int = 0,
        export_limit_w: int = 0,
        meter_ok: bool = True,
        available_w: float = 4000.0,
        load_w: float = 500.0,
    ) -> None:
        self.rating_w = rating_w
        self.serial = serial
        self.available_w = available_w
        self.load_w = load_w
        self.output_source: Callable[[], float] | None = None
        self.load_source: Callable[[], float] | None = None
        self.registers: dict[int, int] = {}
        self.requests: list[Request] = []
        self.flash_writes = 0
        self.drop = 0
        self.reply_delay_s = 0.0
        self.exceptions: dict[int, int] = {}
        self.host = ""
        self._transport: asyncio.DatagramTransport | None = None
        self._set(DEVICE_INFO, [1, rating_w, 1])
        self._set(SERIAL_AT, _text(serial, 8))
        self._set(MODEL_AT, _text(MODEL, 5))
        self._set(FIRMWARE_AT, _text("04029-05-S11", 6))
        self._set(ARM_FIRMWARE_AT, _text("02041-19-S00", 6))
        self._set(TIMESTAMP, [(26 << 8) | 12, (7 << 8) | 10, 0])  # 2026-12-07 10:00:00
        self.registers[BATTERY_MODE] = 0
        self.registers[WORK_MODE] = 1
        self._set(E_TOTAL, [123_456 >> 16, 123_456 & 0xFFFF])  # 12,345.6 kWh
        self.registers[METER_COMM_STATUS] = 1 if meter_ok else 0
        self.registers[EXPORT_SWITCH] = export_switch
        self.registers[EXPORT_LIMIT] = export_limit_w

    def _set(self, address: int, values: list[int]) -> None:
        for offset, value in enumerate(values):
            self.registers[address + offset] = value

    # --- the inverter ---------------------------------------------------------------------

    @property
    def export_switch(self) -> int:
        return self.registers[EXPORT_SWITCH]

    @property
    def export_limit_w(self) -> int:
        return self.registers[EXPORT_LIMIT]

    def load_now(self) -> float:
        return self.load_source() if self.load_source is not None else self.load_w

    def ceiling_w(self) -> float:
        """What the inverter may produce now: the rating, or what holds export at the limit."""
        if self.export_switch == 1:
            return max(0.0, min(float(self.rating_w), self.load_now() + self.export_limit_w))
        return float(self.rating_w)

    def output_w(self) -> float:
        if self.output_source is not None:
            return self.output_source()
        return min(self.available_w, self.ceiling_w())

    def restart(self) -> None:
        """The inverter restarts: settings persist, the output starts from zero."""
        self.requests.clear()

    def limit_writes(self) -> list[Request]:
        return [r for r in self.requests if r.function in (6, 16)]

    def _refresh(self) -> None:
        output = self.output_w()
        export = output - self.load_now()
        self.registers[TOTAL_INVERTER_POWER] = _s16(output)
        self.registers[ACTIVE_POWER] = _s16(export)
        self.registers[METER_ACTIVE_POWER_TOTAL] = _s16(export)

    # --- the network ------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(50):
            host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
            try:
                await loop.create_datagram_endpoint(lambda: self, local_addr=(host, PORT))
            except OSError as err:
                if err.errno != errno.EADDRINUSE:
                    raise
                continue
            self.host = host
            _allow(host)
            return
        raise RuntimeError("no free loopback address for port 8899")

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            await asyncio.sleep(0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self._transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        answer = self._answer(data)
        if answer is None:
            return
        if self.drop > 0:
            self.drop -= 1
            return
        if self.reply_delay_s > 0:
            asyncio.get_running_loop().call_later(self.reply_delay_s, self._send, answer, addr)
            return
        self._send(answer, addr)

    def _send(self, answer: bytes, addr: tuple[str | object, int]) -> None:
        if self._transport is not None:
            with contextlib.suppress(OSError):
                self._transport.sendto(answer, addr)

    def _answer(self, frame: bytes) -> bytes | None:
        if len(frame) < 8 or frame[:2] == b"\xaa\x55":
            return None  # too short, or the AA55 discovery protocol: not spoken here
        function = frame[1]
        length = 9 + frame[6] if function == 16 and len(frame) > 6 else 8
        if len(frame) != length or crc16(frame[:-2]) != frame[-2:]:
            return None
        if frame[0] != ADDRESS:
            return None  # another address on the line
        address = int.from_bytes(frame[2:4], "big")
        value = int.from_bytes(frame[4:6], "big")
        self.requests.append(Request(function, address, value))
        if function == 3:
            body = self._read(address, value)
        elif function == 6:
            body = self._write(address, [value])
        elif function == 16:
            data = frame[7:-2]
            words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
            body = self._write(address, words, multi=value)
        else:
            body = bytes((function | 0x80, 1))
        head = bytes((ADDRESS,)) + body
        return b"\xaa\x55" + head + crc16(head)

    def _exists(self, address: int, count: int) -> bool:
        return any(lo <= address and address + count - 1 <= hi for lo, hi in BLOCKS)

    def _read(self, address: int, count: int) -> bytes:
        if not 1 <= count <= 125 or not self._exists(address, count):
            return bytes((0x83, 2))
        refused = [
            self.exceptions[a] for a in range(address, address + count) if a in self.exceptions
        ]
        if refused:
            return bytes((0x83, refused[0]))
        self._refresh()
        payload = b"".join(
            self.registers.get(a, 0).to_bytes(2, "big") for a in range(address, address + count)
        )
        return bytes((3, len(payload))) + payload

    def _write(self, address: int, words: list[int], multi: int | None = None) -> bytes:
        function = 6 if multi is None else 16
        targets = range(address, address + len(words))
        if any(a not in WRITABLE for a in targets):
            return bytes((function | 0x80, 2))
        if address in self.exceptions:
            return bytes((function | 0x80, self.exceptions[address]))
        if EXPORT_SWITCH in targets and words[EXPORT_SWITCH - address] not in (0, 1):
            return bytes((function | 0x80, 3))
        for a, word in zip(targets, words, strict=True):
            if self.registers.get(a) != word:
                self.flash_writes += 1
            self.registers[a] = word
        echo = words[0] if multi is None else len(words)
        return bytes((function,)) + address.to_bytes(2, "big") + echo.to_bytes(2, "big")
