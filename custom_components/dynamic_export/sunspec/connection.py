"""Modbus transports shared by every unit id behind one host:port or on one serial bus.

A Fronius Datamanager serves several inverters (unit 1, 2, …) and the meter (unit 240) on one
socket and handles one request at a time, so each host:port gets one client and requests are
serialised. An RS-485 bus is the same, only stricter: it is half duplex and RTU frames carry
no transaction id, so all units on a port share one client and one request is on the wire at a
time. Failures close the socket or port; the next request reconnects (or reopens a USB adapter
that came back), so one bad cycle never poisons the next. A late answer is never mistaken for
the reply to a later request: on TCP it arrives on a closed socket (and would carry the wrong
transaction id anyway); RTU frames carry no transaction id, so after an abandoned request the
port stays closed for a quiet time that swallows an answer coming after the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, ModbusBaseClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from ..core.errors import DeviceResponseError, DeviceUnavailableError
from . import library_log
from .errors import ModbusExceptionError

library_log.install()

DEFAULT_PORT = 502
DEFAULT_BAUDRATE = 9600
PARITIES = frozenset({"N", "E", "O"})
STOP_BITS = frozenset({1, 2})
BYTE_SIZES = frozenset({7, 8})
DEFAULT_TIMEOUT_S = 3.0
MAX_READ_REGISTERS = 125  # FC3 limit
MAX_WRITE_REGISTERS = 123  # FC16 limit
LATE_ANSWER_QUIET_S = 0.5
"""RS-485: how long the port stays closed after an abandoned request. An answer that comes
within this time after the timeout is lost with the closed port instead of being read as the
reply to the next request. Short, because every other unit on the bus waits meanwhile."""

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}

type _Call = Callable[[ModbusBaseClient], Awaitable[ModbusPDU]]


def _unit_keyword() -> str:
    """Pymodbus < 3.10 calls the unit id ``slave``; later releases call it ``device_id``."""
    params = inspect.signature(AsyncModbusTcpClient.read_holding_registers).parameters
    return "device_id" if "device_id" in params else "slave"


_UNIT_KEYWORD = _unit_keyword()


class RegisterConnection(Protocol):
    """What a SunSpec device needs from its transport (lets tests and other transports plug in)."""

    async def read_holding_registers(self, unit_id: int, address: int, count: int) -> list[int]:
        """Read ``count`` holding registers (FC3)."""
        ...

    async def write_registers(self, unit_id: int, address: int, values: Sequence[int]) -> None:
        """Write registers (FC16)."""
        ...


def _check_address(address: int, count: int) -> None:
    if count < 1 or address < 0 or address + count > 0x10000:
        raise ValueError(f"register range {address}+{count} is outside 0..65535")


class _PymodbusConnection:
    """One lazily (re)connected pymodbus client, with a per-request timeout.

    Subclasses say how to build the client and how to name the endpoint in messages.
    """

    quiet_after_abandon_s = 0.0
    """Seconds to keep the line closed after an abandoned request (see LATE_ANSWER_QUIET_S)."""

    def __init__(self, *, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._timeout_s = timeout_s
        self._lock = asyncio.Lock()
        self._client: ModbusBaseClient | None = None
        self._lost = asyncio.Event()
        self._quiet_until = 0.0
        self._settle_s = 0.0
        self._gap_s = 0.0
        self._next_request_at = 0.0

    @property
    def timeout_s(self) -> float:
        """Seconds allowed for each request (and for connecting)."""
        return self._timeout_s

    @property
    def endpoint(self) -> str:
        """The endpoint as shown in messages (host:port or serial port)."""
        raise NotImplementedError

    def _new_client(self, trace_connect: Callable[[bool], None]) -> ModbusBaseClient:
        """A pymodbus client that never retries or reconnects on its own (we do)."""
        raise NotImplementedError

    def pace(self, *, settle_after_connect_s: float = 0.0, min_gap_s: float = 0.0) -> None:
        """Slow the connection down for a gateway that needs it (the slowest need wins).

        ``settle_after_connect_s``: wait after each new connection before the first request;
        ``min_gap_s``: keep this gap between one answer and the next request. A Sungrow
        WiNet-S dongle drops or garbles requests that come too soon.
        """
        if settle_after_connect_s < 0 or min_gap_s < 0:
            raise ValueError("pacing times cannot be negative")
        self._settle_s = max(self._settle_s, settle_after_connect_s)
        self._gap_s = max(self._gap_s, min_gap_s)

    async def read_holding_registers(self, unit_id: int, address: int, count: int) -> list[int]:
        """Read holding registers, split into requests of at most 125 registers."""
        return await self._read(unit_id, address, count, input_registers=False)

    async def read_input_registers(self, unit_id: int, address: int, count: int) -> list[int]:
        """Read input registers (FC4), split into requests of at most 125 registers."""
        return await self._read(unit_id, address, count, input_registers=True)

    async def _read(
        self, unit_id: int, address: int, count: int, *, input_registers: bool
    ) -> list[int]:
        _check_address(address, count)
        registers: list[int] = []
        async with self._lock:
            while len(registers) < count:
                start = address + len(registers)
                size = min(MAX_READ_REGISTERS, count - len(registers))
                registers.extend(await self._read_chunk(unit_id, start, size, input_registers))
        return registers

    async def write_registers(self, unit_id: int, address: int, values: Sequence[int]) -> None:
        """Write registers with FC16 (one request; at most 123 registers)."""
        regs = list(values)
        _check_address(address, len(regs))
        if len(regs) > MAX_WRITE_REGISTERS:
            raise ValueError(f"cannot write {len(regs)} registers in one request")
        if any(not 0 <= reg <= 0xFFFF for reg in regs):
            raise ValueError(f"register values must be 0..65535: {regs}")
        kwargs: dict[str, Any] = {_UNIT_KEYWORD: unit_id}
        async with self._lock:
            await self._execute(
                unit_id,
                lambda client: client.write_registers(address, regs, **kwargs),
                f"writing {len(regs)} registers at {address}",
            )

    async def close(self) -> None:
        """Close the socket (a later request reconnects)."""
        async with self._lock:
            self._drop()

    async def _read_chunk(
        self, unit_id: int, address: int, count: int, input_registers: bool = False
    ) -> list[int]:
        kwargs: dict[str, Any] = {_UNIT_KEYWORD: unit_id}
        kind = "input registers" if input_registers else "registers"
        what = f"reading {count} {kind} at {address}"

        def call(client: ModbusBaseClient) -> Awaitable[ModbusPDU]:
            if input_registers:
                return client.read_input_registers(address, count=count, **kwargs)
            return client.read_holding_registers(address, count=count, **kwargs)

        response = await self._execute(unit_id, call, what)
        registers = list(response.registers)
        if len(registers) != count:
            raise DeviceResponseError(
                f"{self._where(unit_id)}: {what}: got {len(registers)} registers"
            )
        return registers

    async def _execute(self, unit_id: int, call: _Call, what: str) -> ModbusPDU:
        """Run one request; must be called with the lock held."""
        with library_log.on_our_behalf():
            client = await self._connected_client()
            wait_s = self._next_request_at - asyncio.get_running_loop().time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)  # a paced gateway (see pace)
            try:
                request = asyncio.ensure_future(call(client))
            except ModbusException as err:
                # Closed while we waited (settling or pacing): a gateway that serves one
                # client dropped us for another. Pymodbus refuses at once; reconnect next time.
                self._drop()
                raise DeviceUnavailableError(f"{self._where(unit_id)}: {what}: {err}") from err
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                (request, lost), timeout=self._timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not request.done():
                # Abandoned (timeout, or our caller was cancelled): close the socket so a
                # late answer cannot reach the cancelled request (pymodbus 3.8 then fails
                # inside the event loop's data_received), nor a later one.
                self._drop()
                self._hold_quiet()
            request.cancel()
            lost.cancel()
            await asyncio.gather(request, lost, return_exceptions=True)
            self._next_request_at = asyncio.get_running_loop().time() + self._gap_s
        where = self._where(unit_id)
        if request not in done:
            self._drop()
            reason = "connection lost" if lost in done else f"no response in {self._timeout_s:g} s"
            raise DeviceUnavailableError(f"{where}: {what}: {reason}")
        try:
            response = request.result()
        except ModbusException as err:
            self._drop()
            self._hold_quiet()  # a garbled answer may have more bytes coming
            raise DeviceUnavailableError(f"{where}: {what}: {err}") from err
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            raise ModbusExceptionError(f"{where}: {what}: Modbus exception {code} ({name})", code)
        return response

    def _hold_quiet(self) -> None:
        if self.quiet_after_abandon_s > 0:
            loop = asyncio.get_running_loop()
            self._quiet_until = loop.time() + self.quiet_after_abandon_s

    async def _connected_client(self) -> ModbusBaseClient:
        if self._client is not None and self._client.connected and not self._lost.is_set():
            return self._client
        self._drop()
        wait_s = self._quiet_until - asyncio.get_running_loop().time()
        if wait_s > 0:
            await asyncio.sleep(wait_s)  # with the lock held: nothing goes on the line
        lost = asyncio.Event()

        def trace_connect(connected: bool) -> None:
            if not connected:
                lost.set()

        client = self._new_client(trace_connect)
        try:
            async with asyncio.timeout(self._timeout_s + 1):
                connected = await client.connect()
        except Exception as err:
            # OSError and ModbusException, but also termios.error from a serial port that
            # rejects the line settings: whatever stops the connect, the device is unusable.
            client.close()
            detail = f": {err}" if str(err) else ""
            raise DeviceUnavailableError(f"cannot connect to {self.endpoint}{detail}") from err
        if not connected:
            client.close()
            raise DeviceUnavailableError(f"cannot connect to {self.endpoint}")
        if self._settle_s > 0:
            await asyncio.sleep(self._settle_s)  # a paced gateway (see pace)
        self._client = client
        self._lost = lost
        return client

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _where(self, unit_id: int) -> str:
        return f"{self.endpoint} unit {unit_id}"


class ModbusTcpConnection(_PymodbusConnection):
    """All units behind one host:port."""

    def __init__(
        self, host: str, port: int = DEFAULT_PORT, *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        """Create the connection; no socket is opened until the first request."""
        super().__init__(timeout_s=timeout_s)
        self._host = host
        self._port = port

    @property
    def host(self) -> str:
        """Host name or address."""
        return self._host

    @property
    def port(self) -> int:
        """TCP port."""
        return self._port

    @property
    def endpoint(self) -> str:
        """host:port."""
        return f"{self._host}:{self._port}"

    def __repr__(self) -> str:
        """Show the endpoint."""
        return f"ModbusTcpConnection({self._host}:{self._port})"

    def _new_client(self, trace_connect: Callable[[bool], None]) -> ModbusBaseClient:
        # retries=0 and reconnect_delay=0: we own retrying and reconnecting.
        return AsyncModbusTcpClient(
            self._host,
            port=self._port,
            timeout=self._timeout_s,
            retries=0,
            reconnect_delay=0,
            trace_connect=trace_connect,
        )


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """Line settings of an RS-485/RS-232 bus; every device on the bus must use the same."""

    baudrate: int = DEFAULT_BAUDRATE
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8

    def __post_init__(self) -> None:
        """Reject settings a UART cannot use, before any port is opened."""
        if self.baudrate <= 0:
            raise ValueError(f"baud rate {self.baudrate} must be positive")
        if self.parity not in PARITIES:
            raise ValueError(f"parity {self.parity!r} must be one of N, E, O")
        if self.stopbits not in STOP_BITS:
            raise ValueError(f"stop bits {self.stopbits} must be 1 or 2")
        if self.bytesize not in BYTE_SIZES:
            raise ValueError(f"byte size {self.bytesize} must be 7 or 8")

    def __str__(self) -> str:
        """The usual short form, e.g. 9600 8N1."""
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"


def _serial_client(
    port: str, settings: SerialSettings, timeout_s: float, trace_connect: Callable[[bool], None]
) -> ModbusBaseClient:
    """An RTU client; only keywords this pymodbus release accepts are passed.

    3.8 through 3.12 take the same constructor keywords; the unit keyword of requests (slave vs
    device_id) is handled per request. Filtering keeps a later rename from breaking set-up.
    """
    wanted: dict[str, Any] = {
        "framer": FramerType.RTU,
        "baudrate": settings.baudrate,
        "bytesize": settings.bytesize,
        "parity": settings.parity,
        "stopbits": settings.stopbits,
        "timeout": timeout_s,
        "retries": 0,
        "reconnect_delay": 0,
        "trace_connect": trace_connect,
    }
    accepted = inspect.signature(AsyncModbusSerialClient.__init__).parameters
    return AsyncModbusSerialClient(
        port, **{key: value for key, value in wanted.items() if key in accepted}
    )


class ModbusSerialConnection(_PymodbusConnection):
    """All units on one serial port (Modbus RTU), one request on the bus at a time.

    A USB adapter that is unplugged closes the port (DeviceUnavailableError); each later
    request tries to reopen it, so the bus comes back by itself when the adapter does.
    """

    quiet_after_abandon_s = LATE_ANSWER_QUIET_S

    def __init__(
        self,
        port: str,
        settings: SerialSettings | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Create the connection; the port is not opened until the first request."""
        super().__init__(timeout_s=timeout_s)
        if not port.strip():
            raise ValueError("serial port must not be empty")
        self._port = port.strip()
        self._settings = settings or SerialSettings()

    @property
    def port(self) -> str:
        """Serial device path (or pyserial URL)."""
        return self._port

    @property
    def settings(self) -> SerialSettings:
        """Line settings."""
        return self._settings

    @property
    def endpoint(self) -> str:
        """The serial port."""
        return self._port

    def __repr__(self) -> str:
        """Show the port and line settings."""
        return f"ModbusSerialConnection({self._port} {self._settings})"

    def _new_client(self, trace_connect: Callable[[bool], None]) -> ModbusBaseClient:
        return _serial_client(self._port, self._settings, self._timeout_s, trace_connect)

    @contextlib.asynccontextmanager
    async def async_suspend(self) -> AsyncIterator[None]:
        """Close the port and keep requests waiting until the block ends.

        The port is opened exclusively, so this is how another client (a set-up check at new
        line settings) gets to use it meanwhile; the next request reopens it.
        """
        async with self._lock:
            self._drop()
            yield


class ConnectionPool:
    """Hands out one connection per host:port, or per serial port, so devices share it."""

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Create an empty pool; ``timeout_s`` applies to connections it creates."""
        self._timeout_s = timeout_s
        self._connections: dict[tuple[str, int], ModbusTcpConnection] = {}
        self._serial: dict[str, ModbusSerialConnection] = {}

    def get(self, host: str, port: int = DEFAULT_PORT) -> ModbusTcpConnection:
        """The shared connection for host:port (created on first use)."""
        key = (host.strip().lower(), port)
        connection = self._connections.get(key)
        if connection is None:
            connection = ModbusTcpConnection(host.strip(), port, timeout_s=self._timeout_s)
            self._connections[key] = connection
        return connection

    def get_serial(
        self, port: str, settings: SerialSettings | None = None
    ) -> ModbusSerialConnection:
        """The shared connection for a serial port (created on first use).

        Every device on a bus must use the bus' line settings, so asking for the same port
        with different settings is a configuration error, not a second bus.
        """
        settings = settings or SerialSettings()
        key = port.strip()
        connection = self._serial.get(key)
        if connection is None:
            connection = ModbusSerialConnection(key, settings, timeout_s=self._timeout_s)
            self._serial[key] = connection
        elif connection.settings != settings:
            raise ValueError(
                f"serial port {key} is already used at {connection.settings}, not {settings}"
            )
        return connection

    async def close(self) -> None:
        """Close every connection."""
        connections: list[_PymodbusConnection] = [
            *self._connections.values(),
            *self._serial.values(),
        ]
        self._connections.clear()
        self._serial.clear()
        for connection in connections:
            await connection.close()
