"""HTTP client for one OpenDTU: Basic auth, form-encoded commands, error codes.

The DTU is an ESP32 that handles few connections, so one client per DTU is shared by all its
inverters and requests are serialised. /api/limit/status covers every inverter at once, so a
recent answer is reused (``max_age_s``) instead of asking once per inverter.

Commands are POSTed form-encoded as ``data=<JSON>`` and answered with HTTP 200 even on
error: the JSON ``type``/``code`` say whether it worked (1001 success; 1002/1004/1005 bad
request; 5001-5004 and 11001/11002 bad limit or power command).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from yarl import URL

from ..core.errors import DeviceResponseError, DeviceUnavailableError, InvalidDeviceDataError
from .data import (
    InverterLiveData,
    InverterSummary,
    LimitStatus,
    SystemStatus,
    parse_inverter_list,
    parse_limit_status,
    parse_livedata,
    parse_system_status,
)
from .errors import (
    InvalidPasswordError,
    LimitTypeUnsupportedError,
    OpenDtuApiError,
    UnknownInverterError,
)
from .limits import LimitType

DEFAULT_PORT = 80
DEFAULT_TIMEOUT_S = 3.0
USERNAME = "admin"  # OpenDTU's only user
HTTP_OK = 200
HTTP_UNAUTHORIZED = 401
HTTP_TOO_MANY = 429  # the DTU is out of memory for this request
CODE_SUCCESS = 1001
CODE_LIMIT_TYPE = 5003
UNKNOWN_INVERTER_CODES = frozenset({5004, 11002})
CODE_TEXT = {
    1002: "no data sent",
    1004: "the DTU could not parse the command",
    1005: "values are missing",
    5001: "serial must not be 0",
    5002: "limit out of range",
    5003: "limit type not supported by this firmware",
    5004: "unknown inverter",
    11001: "serial must not be 0",
    11002: "unknown inverter",
}


def basic_authorization(user: str, password: str) -> str:
    """An HTTP Basic ``Authorization`` value (RFC 7617).

    Built here because aiohttp 3.14 deprecates both ``BasicAuth`` and ``auth=``, while
    its replacement, ``encode_basic_auth``, does not exist in aiohttp 3.11 (HA 2025.4).
    """
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class OpenDtuClient:
    """One DTU; share it between the inverter adapters of that DTU."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        host: str,
        password: str,
        *,
        port: int = DEFAULT_PORT,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Bind to a DTU; nothing is sent until the first call."""
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._session = session
        self._host = host.strip()
        self._port = port
        self._headers = {"Authorization": basic_authorization(USERNAME, password)}
        self._timeout_s = timeout_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._limits: tuple[float, dict[str, LimitStatus]] | None = None

    @property
    def host(self) -> str:
        """DTU host name or address."""
        return self._host

    @property
    def port(self) -> int:
        """HTTP port."""
        return self._port

    async def async_system_status(self) -> SystemStatus:
        """Firmware version and host name (/api/system/status)."""
        return parse_system_status(await self._get("/api/system/status"))

    async def async_check_password(self) -> None:
        """Check the password without changing anything.

        Reads are open to anyone by default, so only an endpoint that always needs the
        password (/api/security/authenticate) can tell a wrong one.
        """
        await self._get("/api/security/authenticate")

    async def async_inverters(self) -> list[InverterSummary]:
        """Every inverter the DTU knows (/api/livedata/status)."""
        return parse_inverter_list(await self._get("/api/livedata/status"))

    async def async_livedata(self, serial: str) -> InverterLiveData:
        """One inverter's values; the channels need ``?inv=`` since OpenDTU v24.2.12."""
        payload = await self._get("/api/livedata/status", params={"inv": serial})
        return parse_livedata(payload, serial)

    async def async_limit_status(
        self, *, max_age_s: float = 0.0, since: float | None = None
    ) -> tuple[float, dict[str, LimitStatus]]:
        """Limits of all inverters and when they were fetched.

        An earlier answer is reused if it was asked for at most ``max_age_s`` ago, or at or
        after ``since``: the inverters of one DTU read in one cycle pass the cycle's start,
        so they share one answer however slowly the DTU replies. The time is taken before
        the request, so a command sent after it is never mistaken for one this answer
        already covers; a command also drops the answer kept.
        """
        if (cached := self._fresh(max_age_s, since)) is not None:
            return cached
        async with self._lock:
            if (cached := self._fresh(max_age_s, since)) is not None:
                return cached
            fetched_at = self._clock()
            payload = await self._request("GET", "/api/limit/status")
            self._limits = (fetched_at, parse_limit_status(payload))
            return self._limits

    def _fresh(
        self, max_age_s: float, since: float | None
    ) -> tuple[float, dict[str, LimitStatus]] | None:
        cached = self._limits
        if cached is None:
            return None
        asked_at = cached[0]
        if self._clock() - asked_at <= max_age_s or (since is not None and asked_at >= since):
            return cached
        return None

    async def async_set_limit(self, serial: str, limit_type: LimitType, value: float) -> None:
        """Send a non-persistent limit (W for ABSOLUTE, % for RELATIVE)."""
        try:
            kind = LimitType(limit_type)
        except ValueError as err:
            raise ValueError(
                f"refusing limit type {limit_type!r}: only 0 and 1 (non-persistent)"
            ) from err
        await self._command(
            "/api/limit/config",
            {"serial": serial, "limit_type": int(kind), "limit_value": value},
        )

    async def async_set_power(self, serial: str, *, on: bool) -> None:
        """Switch the inverter's output on or off."""
        await self._command("/api/power/config", {"serial": serial, "power": on})

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        async with self._lock:
            return await self._request("GET", path, params=params)

    async def _command(self, path: str, body: dict[str, Any]) -> None:
        async with self._lock:
            self._limits = None  # the next status read must come after this command
            answer = await self._request("POST", path, form={"data": json.dumps(body)})
        if not isinstance(answer, dict):
            raise InvalidDeviceDataError(f"OpenDTU {self._host}: {path}: answer is not an object")
        code = answer.get("code")
        if answer.get("type") == "success" and code == CODE_SUCCESS:
            return
        code = code if isinstance(code, int) else None
        text = CODE_TEXT.get(code or 0) or str(answer.get("message") or "rejected")
        message = f"OpenDTU {self._host}: {path} for {body.get('serial')}: {text} (code {code})"
        if code == CODE_LIMIT_TYPE:
            raise LimitTypeUnsupportedError(message, code)
        if code in UNKNOWN_INVERTER_CODES:
            raise UnknownInverterError(message, code)
        raise OpenDtuApiError(message, code)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
    ) -> Any:
        """Must be called with the lock held."""
        url = URL.build(scheme="http", host=self._host, port=self._port, path=path)
        where = f"OpenDTU {self._host}: {path}"
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                data=form,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                allow_redirects=False,
            ) as response:
                status = response.status
                body = await response.read()
        except TimeoutError as err:
            raise DeviceUnavailableError(f"{where}: no answer in {self._timeout_s:g} s") from err
        except (aiohttp.ClientError, OSError) as err:
            raise DeviceUnavailableError(f"{where}: {err}") from err
        if status == HTTP_UNAUTHORIZED:
            raise InvalidPasswordError(f"OpenDTU {self._host}: the admin password was refused")
        if status == HTTP_TOO_MANY:
            raise DeviceUnavailableError(f"{where}: the DTU is busy (HTTP 429)")
        if status != HTTP_OK:
            raise DeviceResponseError(f"{where}: HTTP {status}")
        try:
            return json.loads(body)
        except ValueError as err:
            raise InvalidDeviceDataError(f"{where}: the answer is not JSON") from err
