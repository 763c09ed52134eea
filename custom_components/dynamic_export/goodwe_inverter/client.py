"""The ``goodwe`` library behind a small typed surface that is the same on goodwe 0.3 and 0.4.

Home Assistant pins the library for its own GoodWe integration (0.3.6 in 2025.4, 0.4.10 in
2026.10), so the manifest accepts that whole range and this module hides the difference: 0.4
takes a port (8899 selects its UDP transport), 0.3 always talks UDP to 8899.

Nothing here blocks the event loop: each request is an asyncio datagram endpoint whose
retries are ``call_later`` timers (both versions; checked by tests/goodwe_inverter, which keep
a ticker running while the peer answers slowly). The library's own retry loop is bounded
again by a deadline here, so a cycle never waits longer than ``(retries + 1) × timeout``
plus a second. Every library error becomes a DeviceError.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import goodwe  # type: ignore[import-untyped]
from goodwe.exceptions import (  # type: ignore[import-untyped]
    InverterError,
    RequestRejectedException,
)

from ..core.errors import (
    DeviceResponseError,
    DeviceUnavailableError,
    InvalidDeviceDataError,
)
from .errors import NotGoodWeEtError

GOODWE_UDP_PORT = 8899
EXPORT_ENABLED = "grid_export"
"""Setting 47509: 1 = the inverter holds export at ``EXPORT_LIMIT`` (with its own meter)."""
EXPORT_LIMIT = "grid_export_limit"
"""Setting 47510: the export limit in W (unsigned 16-bit)."""
MAX_RATED_POWER_W = 100_000.0
METER_OK = 1
"""``meter_comm_status`` (36004) when the inverter hears its meter."""


@dataclass(frozen=True, slots=True)
class EtIdentity:
    """What the device-info block (35000-35032) says."""

    serial_number: str
    model_name: str
    rated_power_w: float
    firmware: str | None


@dataclass(frozen=True, slots=True)
class EtRuntime:
    """The values the site uses from one runtime read (running data and meter blocks)."""

    ac_power_w: float
    """The inverter's AC output (35138, total inverter power)."""
    export_w: float
    """Power at the inverter's own meter, + export (35140)."""
    lifetime_energy_wh: float | None
    meter_ok: bool


def _number(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidDeviceDataError(f"the inverter reports no usable {key} ({value!r})")
    return float(value)


class GoodWeEtClient:
    """One ET-family inverter at ``host`` (UDP 8899, address 0xF7), through the library."""

    def __init__(self, host: str, *, timeout_s: float = 1.0, retries: int = 1) -> None:
        """``timeout_s`` per request try, ``retries`` further tries after a lost answer."""
        if not host or not host.strip():
            raise ValueError("host must not be blank")
        if not math.isfinite(timeout_s) or not 0.05 <= timeout_s <= 10:
            raise ValueError("timeout_s must be 0.05-10 s")
        if not 0 <= retries <= 5:
            raise ValueError("retries must be 0-5")
        self._host = host.strip()
        self._timeout_s = float(timeout_s)
        self._retries = retries
        self._deadline_s = (retries + 1) * self._timeout_s + 1.0
        self._inverter: Any = None
        self.requests = 0  # library calls made (diagnostics, tests)

    @property
    def host(self) -> str:
        """The inverter's address."""
        return self._host

    def _make(self) -> Any:
        """A library ET object; 0.4 takes the port (8899 = UDP), 0.3 has none."""
        params = inspect.signature(goodwe.ET.__init__).parameters
        kwargs: dict[str, Any] = {"comm_addr": 0, "timeout": self._timeout_s}
        kwargs["retries"] = self._retries
        if "port" in params:
            kwargs["port"] = GOODWE_UDP_PORT
        return goodwe.ET(self._host, **kwargs)

    async def _call[T](self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        self.requests += 1
        try:
            async with asyncio.timeout(self._deadline_s):
                return await call()
        except RequestRejectedException as err:
            raise DeviceResponseError(
                f"GoodWe at {self._host}: {what} refused ({err.message or 'no reason'})"
            ) from err
        except InverterError as err:
            detail = getattr(err, "message", "") or type(err).__name__
            raise DeviceUnavailableError(f"GoodWe at {self._host}: {what}: {detail}") from err
        except TimeoutError as err:
            raise DeviceUnavailableError(
                f"GoodWe at {self._host}: no answer to {what} in {self._deadline_s:g} s"
            ) from err
        except OSError as err:
            raise DeviceUnavailableError(f"GoodWe at {self._host}: {what}: {err}") from err
        except ValueError as err:  # goodwe 0.4: a setting the inverter does not have
            raise DeviceResponseError(f"GoodWe at {self._host}: {what}: {err}") from err

    async def async_identify(self) -> EtIdentity:
        """Read the device-info block; a device that refuses it is not an ET inverter."""
        inverter = self._make()
        try:
            await self._call("reading the device info", inverter.read_device_info)
        except DeviceResponseError as err:
            raise NotGoodWeEtError(f"{err} (not a GoodWe ET/EH/BT/BH inverter?)") from err
        serial = str(inverter.serial_number or "").strip()
        rating = inverter.rated_power
        if not serial:
            raise NotGoodWeEtError(f"GoodWe at {self._host}: no serial number in the device info")
        if isinstance(rating, bool) or not isinstance(rating, int | float):
            raise InvalidDeviceDataError(f"GoodWe at {self._host}: rating {rating!r}")
        if not 0 < rating <= MAX_RATED_POWER_W:
            raise InvalidDeviceDataError(f"GoodWe at {self._host}: implausible rating {rating} W")
        self._inverter = inverter
        firmware = str(inverter.firmware).strip() if inverter.firmware else None
        return EtIdentity(serial, str(inverter.model_name or "").strip(), float(rating), firmware)

    async def _ready(self) -> Any:
        if self._inverter is None:
            await self.async_identify()
        return self._inverter

    async def async_runtime(self) -> EtRuntime:
        """Output, export at the inverter's meter, energy and the meter's state."""
        inverter = await self._ready()
        data = await self._call("reading the runtime data", inverter.read_runtime_data)
        if not isinstance(data, Mapping):
            raise InvalidDeviceDataError(f"GoodWe at {self._host}: runtime data {data!r}")
        energy: float | None = None
        raw = data.get("e_total")
        if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
            energy = float(raw) * 1000.0 if raw >= 0 else None  # kWh
        return EtRuntime(
            ac_power_w=_number(data, "total_inverter_power"),
            export_w=_number(data, "active_power"),
            lifetime_energy_wh=energy,
            meter_ok=data.get("meter_comm_status") == METER_OK,
        )

    async def async_read_setting(self, setting: str) -> int:
        """One setting as a whole number (the export switch or the limit)."""
        inverter = await self._ready()
        value = await self._call(f"reading {setting}", lambda: inverter.read_setting(setting))
        if isinstance(value, bool) or not isinstance(value, int):
            raise DeviceResponseError(f"GoodWe at {self._host}: {setting} reads {value!r}")
        return int(value)

    async def async_write_setting(self, setting: str, value: int) -> None:
        """Write one setting; the value is checked by the caller against what it may hold."""
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            raise ValueError(f"{setting}: {value!r} does not fit a 16-bit register")
        inverter = await self._ready()
        await self._call(
            f"writing {setting} = {value}", lambda: inverter.write_setting(setting, value)
        )
