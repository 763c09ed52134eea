"""HTTPS client for the Powerwall 2 gateway's local API.

The gateway only speaks HTTPS, with a self-signed certificate no CA can vouch for. Instead of
switching verification off, the certificate's SHA-256 fingerprint seen at set-up is pinned
(trust on first use): aiohttp checks it on every new connection, and a different certificate
raises :class:`CertificateChangedError` rather than sending the password to an impostor.

Login is ``POST /api/login/Basic`` as user "customer"; the token comes back in the
``AuthCookie`` cookie (and in the body) and is sent as a Cookie header. A 401/403 means the
token expired: log in again and retry once. A refused password blocks further logins for a
while, because the gateway locks the account after repeated failures.

The aggregates keep the answer's HTTP Date: it is the gateway's own clock, the one its
``last_communication_time`` values come from, so their age can be told without trusting
that the gateway's and our clocks agree.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from yarl import URL

from ..core.errors import DeviceResponseError, DeviceUnavailableError, InvalidDeviceDataError
from .data import (
    Aggregates,
    GatewayStatus,
    SitePhases,
    parse_aggregates,
    parse_site_meter,
    parse_soe,
    parse_status,
)
from .errors import (
    CertificateChangedError,
    GatewayStoppedError,
    InvalidPasswordError,
    LoginThrottledError,
    NotPowerwallError,
)

DEFAULT_PORT = 443
DEFAULT_TIMEOUT_S = 2.0
USERNAME = "customer"
AUTH_COOKIE = "AuthCookie"
LOGIN_BACKOFF_S = 60.0  # after a refused password; the gateway locks out repeated failures
HTTP_OK = 200
HTTP_UNAUTHORIZED = frozenset({401, 403})
HTTP_TOO_MANY = 429
HTTP_BAD_GATEWAY = 502  # sitemaster stopped
HTTP_NOT_FOUND = frozenset({404, 405})
SHA256_BYTES = 32
# No certificate hashes to all zeros, so pinning this makes aiohttp report the real one.
_UNMATCHABLE = aiohttp.Fingerprint(bytes(SHA256_BYTES))


def format_fingerprint(digest: bytes) -> str:
    """The usual display form, e.g. ``AB:CD:...`` (32 bytes of SHA-256)."""
    return ":".join(f"{byte:02X}" for byte in digest)


def normalise_fingerprint(text: str) -> str:
    """Accept a SHA-256 fingerprint with or without colons, in any case; raise ValueError."""
    return format_fingerprint(_digest(text))


def _digest(text: str) -> bytes:
    cleaned = text.strip().replace(":", "").replace(" ", "")
    try:
        digest = bytes.fromhex(cleaned)
    except ValueError as err:
        raise ValueError(f"fingerprint {text!r} is not hexadecimal") from err
    if len(digest) != SHA256_BYTES:
        raise ValueError(f"fingerprint {text!r} is not a SHA-256 digest (32 bytes)")
    return digest


def _url(host: str, port: int, path: str) -> URL:
    return URL.build(scheme="https", host=host.strip(), port=port, path=path)


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)


async def async_fetch_fingerprint(
    session: aiohttp.ClientSession,
    host: str,
    *,
    port: int = DEFAULT_PORT,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> str:
    """The SHA-256 fingerprint of the certificate the gateway presents now.

    For set-up (to pin) and for a repair flow (to show what changed). Nothing is sent but
    the TLS handshake: pinning an unmatchable digest stops aiohttp right after it.
    """
    try:
        async with session.get(
            _url(host, port, "/"), ssl=_UNMATCHABLE, timeout=_timeout(timeout_s)
        ):
            pass
    except aiohttp.ServerFingerprintMismatch as err:
        return format_fingerprint(err.got)
    except TimeoutError as err:
        raise DeviceUnavailableError(f"Powerwall {host}: no answer in {timeout_s:g} s") from err
    except (aiohttp.ClientError, OSError) as err:
        raise DeviceUnavailableError(f"Powerwall {host}: cannot connect: {err}") from err
    raise NotPowerwallError(f"{host}:{port} presented no TLS certificate")


def _http_date(value: str | None) -> datetime | None:
    """An HTTP Date header as an aware time; None if missing or unusable."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.utcoffset() is not None else None


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    body: bytes
    token: str | None
    date: datetime | None = None


class PowerwallClient:
    """One gateway: pinned HTTPS, login and JSON GETs. Share one per gateway."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        host: str,
        password: str,
        *,
        fingerprint: str,
        port: int = DEFAULT_PORT,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Bind to a gateway; ``fingerprint`` is the certificate pinned at set-up."""
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._session = session
        self._host = host.strip()
        self._port = port
        self._password = password
        self._fingerprint = normalise_fingerprint(fingerprint)
        # One Fingerprint object: aiohttp keys pooled connections by it, so keep-alive works.
        self._ssl = aiohttp.Fingerprint(_digest(fingerprint))
        self._timeout_s = timeout_s
        self._clock = clock
        self._token: str | None = None
        self._login_lock = asyncio.Lock()
        self._login_refused: DeviceResponseError | None = None
        self._login_retry_at = 0.0
        self.logins = 0  # successful logins, for diagnostics

    @property
    def host(self) -> str:
        """Gateway host name or address."""
        return self._host

    @property
    def fingerprint(self) -> str:
        """The pinned certificate fingerprint."""
        return self._fingerprint

    async def async_login(self) -> None:
        """Log in now (set-up uses this to check the password)."""
        async with self._login_lock:
            await self._login()

    async def async_get_json(self, path: str) -> Any:
        """GET a JSON document, logging in first and once more if the token expired."""
        return self._json(await self._get(path), path)

    async def _get(self, path: str) -> _Response:
        for attempt in range(2):
            token = await self._current_token()
            response = await self._send("GET", path, headers={"Cookie": f"{AUTH_COOKIE}={token}"})
            if response.status not in HTTP_UNAUTHORIZED:
                break
            if attempt == 0:
                await self._refresh_token(token)
        return response

    async def async_status(self) -> GatewayStatus:
        """Identity (/api/status)."""
        return parse_status(await self.async_get_json("/api/status"))

    async def async_aggregates(self) -> Aggregates:
        """Site, solar, battery and load power (/api/meters/aggregates), with the gateway's time."""
        path = "/api/meters/aggregates"
        response = await self._get(path)
        return parse_aggregates(self._json(response, path), gateway_time=response.date)

    async def async_site_meter(self) -> SitePhases | None:
        """Per-phase site meter values (/api/meters/site)."""
        return parse_site_meter(await self.async_get_json("/api/meters/site"))

    async def async_soe(self) -> float:
        """Battery state of energy in % (/api/system_status/soe)."""
        return parse_soe(await self.async_get_json("/api/system_status/soe"))

    async def _current_token(self) -> str:
        async with self._login_lock:
            if self._token is None:
                await self._login()
            assert self._token is not None
            return self._token

    async def _refresh_token(self, rejected: str) -> None:
        """Log in again unless a concurrent request already replaced the rejected token."""
        async with self._login_lock:
            if self._token == rejected:
                self._token = None
                await self._login()

    async def _login(self) -> None:
        """Must be called with the login lock held."""
        if self._login_refused is not None and self._clock() < self._login_retry_at:
            raise self._login_refused
        body = {
            "username": USERNAME,
            "email": "",
            "password": self._password,
            "force_sm_off": False,
        }
        response = await self._send("POST", "/api/login/Basic", json_body=body)
        refused: DeviceResponseError | None = None
        if response.status in HTTP_UNAUTHORIZED:
            refused = InvalidPasswordError(f"Powerwall {self._host}: the password was refused")
        elif response.status == HTTP_TOO_MANY:
            refused = LoginThrottledError(
                f"Powerwall {self._host}: too many failed logins; the gateway is refusing them"
            )
        if refused is not None:
            self._login_refused = refused
            self._login_retry_at = self._clock() + LOGIN_BACKOFF_S
            raise refused
        if response.status in HTTP_NOT_FOUND:
            raise NotPowerwallError(f"{self._host} has no Powerwall login (/api/login/Basic)")
        payload = self._json(response, "/api/login/Basic")
        token = response.token
        if token is None and isinstance(payload, dict) and isinstance(payload.get("token"), str):
            token = payload["token"]
        if not token:
            raise NotPowerwallError(f"{self._host}: the login answer carries no token")
        self._token = token
        self._login_refused = None
        self.logins += 1

    async def _send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> _Response:
        try:
            async with self._session.request(
                method,
                _url(self._host, self._port, path),
                headers=headers,
                json=json_body,
                ssl=self._ssl,
                timeout=_timeout(self._timeout_s),
                allow_redirects=False,
            ) as response:
                body = await response.read()
                cookie = response.cookies.get(AUTH_COOKIE)
                return _Response(
                    response.status,
                    body,
                    cookie.value if cookie else None,
                    _http_date(response.headers.get("Date")),
                )
        except aiohttp.ServerFingerprintMismatch as err:
            seen = format_fingerprint(err.got)
            raise CertificateChangedError(
                f"Powerwall {self._host}: the certificate changed (pinned {self._fingerprint}, "
                f"now {seen}); accept the new one only if the gateway was replaced or reset",
                pinned=self._fingerprint,
                seen=seen,
            ) from err
        except TimeoutError as err:
            raise DeviceUnavailableError(
                f"Powerwall {self._host}: {path}: no answer in {self._timeout_s:g} s"
            ) from err
        except (aiohttp.ClientError, OSError) as err:
            raise DeviceUnavailableError(f"Powerwall {self._host}: {path}: {err}") from err

    def _json(self, response: _Response, path: str) -> Any:
        where = f"Powerwall {self._host}: {path}"
        if response.status == HTTP_BAD_GATEWAY:
            raise GatewayStoppedError(f"{where}: gateway stopped (HTTP 502); no meter data")
        if response.status != HTTP_OK:
            raise DeviceResponseError(f"{where}: HTTP {response.status}")
        try:
            return json.loads(response.body)
        except ValueError as err:
            raise InvalidDeviceDataError(f"{where}: the answer is not JSON") from err
