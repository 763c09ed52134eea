"""Modbus TCP transport shared by every unit id behind one host:port.

A Fronius Datamanager serves several inverters (unit 1, 2, …) and the meter (unit 240) on one
socket and handles one request at a time, so each host:port gets one client and requests are
serialised. Failures close the socket; the next request reconnects, so one bad cycle never
poisons the next.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from ..core.errors import DeviceResponseError, DeviceUnavailableError
from .errors import ModbusExceptionError

DEFAULT_PORT = 502
DEFAULT_TIMEOUT_S = 3.0
MAX_READ_REGISTERS = 125  # FC3 limit
MAX_WRITE_REGISTERS = 123  # FC16 limit

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

type _Call = Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]


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


class ModbusTcpConnection:
    """One lazily (re)connected pymodbus client, with a per-request timeout."""

    def __init__(
        self, host: str, port: int = DEFAULT_PORT, *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        """Create the connection; no socket is opened until the first request."""
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._host = host
        self._port = port
        self._timeout_s = timeout_s
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | None = None
        self._lost = asyncio.Event()

    @property
    def host(self) -> str:
        """Host name or address."""
        return self._host

    @property
    def port(self) -> int:
        """TCP port."""
        return self._port

    @property
    def timeout_s(self) -> float:
        """Seconds allowed for each request (and for connecting)."""
        return self._timeout_s

    def __repr__(self) -> str:
        """Show the endpoint."""
        return f"ModbusTcpConnection({self._host}:{self._port})"

    async def read_holding_registers(self, unit_id: int, address: int, count: int) -> list[int]:
        """Read holding registers, split into requests of at most 125 registers."""
        _check_address(address, count)
        registers: list[int] = []
        async with self._lock:
            while len(registers) < count:
                start = address + len(registers)
                size = min(MAX_READ_REGISTERS, count - len(registers))
                registers.extend(await self._read_chunk(unit_id, start, size))
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

    async def _read_chunk(self, unit_id: int, address: int, count: int) -> list[int]:
        kwargs: dict[str, Any] = {_UNIT_KEYWORD: unit_id}
        what = f"reading {count} registers at {address}"
        response = await self._execute(
            unit_id,
            lambda client: client.read_holding_registers(address, count=count, **kwargs),
            what,
        )
        registers = list(response.registers)
        if len(registers) != count:
            raise DeviceResponseError(
                f"{self._where(unit_id)}: {what}: got {len(registers)} registers"
            )
        return registers

    async def _execute(self, unit_id: int, call: _Call, what: str) -> ModbusPDU:
        """Run one request; must be called with the lock held."""
        client = await self._connected_client()
        request = asyncio.ensure_future(call(client))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                (request, lost), timeout=self._timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            request.cancel()
            lost.cancel()
            await asyncio.gather(request, lost, return_exceptions=True)
        where = self._where(unit_id)
        if request not in done:
            self._drop()
            reason = "connection lost" if lost in done else f"no response in {self._timeout_s:g} s"
            raise DeviceUnavailableError(f"{where}: {what}: {reason}")
        try:
            response = request.result()
        except ModbusException as err:
            self._drop()
            raise DeviceUnavailableError(f"{where}: {what}: {err}") from err
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            raise ModbusExceptionError(f"{where}: {what}: Modbus exception {code} ({name})", code)
        return response

    async def _connected_client(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected and not self._lost.is_set():
            return self._client
        self._drop()
        lost = asyncio.Event()

        def trace_connect(connected: bool) -> None:
            if not connected:
                lost.set()

        # retries=0 and reconnect_delay=0: we own retrying and reconnecting.
        client = AsyncModbusTcpClient(
            self._host,
            port=self._port,
            timeout=self._timeout_s,
            retries=0,
            reconnect_delay=0,
            trace_connect=trace_connect,
        )
        try:
            async with asyncio.timeout(self._timeout_s + 1):
                connected = await client.connect()
        except (TimeoutError, OSError, ModbusException) as err:
            client.close()
            raise DeviceUnavailableError(f"cannot connect to {self._host}:{self._port}") from err
        if not connected:
            client.close()
            raise DeviceUnavailableError(f"cannot connect to {self._host}:{self._port}")
        self._client = client
        self._lost = lost
        return client

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _where(self, unit_id: int) -> str:
        return f"{self._host}:{self._port} unit {unit_id}"


class ConnectionPool:
    """Hands out one connection per host:port so all units behind a gateway share it."""

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Create an empty pool; ``timeout_s`` applies to connections it creates."""
        self._timeout_s = timeout_s
        self._connections: dict[tuple[str, int], ModbusTcpConnection] = {}

    def get(self, host: str, port: int = DEFAULT_PORT) -> ModbusTcpConnection:
        """The shared connection for host:port (created on first use)."""
        key = (host.strip().lower(), port)
        connection = self._connections.get(key)
        if connection is None:
            connection = ModbusTcpConnection(host.strip(), port, timeout_s=self._timeout_s)
            self._connections[key] = connection
        return connection

    async def close(self) -> None:
        """Close every connection."""
        connections = list(self._connections.values())
        self._connections.clear()
        for connection in connections:
            await connection.close()
