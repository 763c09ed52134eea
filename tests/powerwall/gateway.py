"""A fake Powerwall 2 gateway: aiohttp over HTTPS with a self-signed certificate.

Response shapes follow the field lists in the research notes (device-protocols.md §3); the
values are made up. Knobs: ``stopped`` (502 with an empty body, like a stopped sitemaster),
``overrides`` (path -> raw status and body), ``delay_s``, ``expire_tokens()``,
``set_cookie`` (token only in the body), ``lock_after`` failed logins (then 429),
``drops`` (path -> how many of the next requests lose their connection unanswered), and
``replace_certificate()`` (a new self-signed certificate on the same port). ``stop()`` then
``start()`` is the same gateway coming back: same port, same certificate.

Time: the gateway has its own wall ``clock``, which dates its answers (the HTTP Date header)
and its meters' ``last_communication_time`` (``heard_lag_s`` before the answer, like a meter
polled a moment ago). ``freeze()`` keeps that time where it is (frozen meter data); setting
``last_heard`` serves any text instead (``"0001-01-01T00:00:00Z"``, garbage); ``thaw()``
goes back to live times.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PASSWORD = "7QX2B"
DIN = "1232100-00-E--TG0123456789AB"
GATEWAY_ZONE = datetime.timezone(datetime.timedelta(hours=10))  # it reports local times


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def rfc3339_ns(moment: datetime.datetime) -> str:
    """The gateway's form: local time, nanosecond digits, offset (e.g. ...03.123456789+10:00)."""
    text = moment.astimezone(GATEWAY_ZONE).isoformat(timespec="microseconds")
    return f"{text[:-6]}789{text[-6:]}"


def self_signed(directory: Path, name: str) -> tuple[Path, Path, str]:
    """Write a new self-signed certificate and key; returns their paths and its fingerprint."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "teg")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return cert_path, key_path, ":".join(digest[i : i + 2] for i in range(0, 64, 2)).upper()


def _meter(power: float, *, imported: float, exported: float, meters: int | None) -> dict:
    obj: dict[str, Any] = {
        "last_communication_time": "2025-01-15T11:02:03.123456789+10:00",
        "instant_power": power,
        "instant_reactive_power": -120.5,
        "instant_apparent_power": abs(power) + 20.0,
        "frequency": 50.02,
        "energy_exported": exported,
        "energy_imported": imported,
        "instant_average_voltage": 241.3,
        "instant_average_current": abs(power) / 241.3,
        "i_a_current": 0,
        "i_b_current": 0,
        "i_c_current": 0,
        "last_phase_voltage_communication_time": "0001-01-01T00:00:00Z",
        "last_phase_power_communication_time": "0001-01-01T00:00:00Z",
        "last_phase_energy_communication_time": "0001-01-01T00:00:00Z",
        "timeout": 1500000000,
        "instant_total_current": abs(power) / 241.3,
    }
    if meters is not None:
        obj["num_meters_aggregated"] = meters
    return obj


def aggregates(
    site: float = -2300.0, solar: float = 5100.0, battery: float = -1500.0, load: float = 1300.0
) -> dict[str, Any]:
    """Export 2.3 kW while charging 1.5 kW from 5.1 kW of solar (signs as the gateway's)."""
    return {
        "site": _meter(site, imported=8123456.5, exported=4567890.25, meters=1),
        "battery": _meter(battery, imported=2345678.0, exported=2123456.0, meters=2),
        "load": _meter(load, imported=9876543.0, exported=0, meters=None),
        "solar": _meter(solar, imported=812.0, exported=12345678.0, meters=1),
    }


def site_meter(phases: int = 3) -> list[dict[str, Any]]:
    readings: dict[str, Any] = _meter(-2300.0, imported=8123456.5, exported=4567890.25, meters=None)
    readings.update(
        {
            "v_l1n": 240.1,
            "v_l2n": 239.4 if phases == 3 else 0.31,
            "real_power_a": -1100.0 if phases == 3 else -2300.0,
            "reactive_power_a": -40.0,
            "serial_number": "VAH4810AB1234",
            "version": "fa0c1ad02efda3",
        }
    )
    if phases == 3:
        readings.update(
            {
                "v_l3n": 241.0,
                "real_power_b": -700.0,
                "real_power_c": -500.0,
                "reactive_power_b": -30.0,
                "reactive_power_c": -20.0,
            }
        )
    return [
        {
            "id": 0,
            "location": "site",
            "type": "synchrometerX",
            "cts": [True, phases == 3, phases == 3, False],
            "inverted": [False, False, False, False],
            "connection": {
                "short_id": "1232100-00-E--TG0123456789AB",
                "device_serial": "VAH4810AB1234",
                "https_conf": {},
            },
            "Cached_readings": readings,
        }
    ]


@dataclass
class Gateway:
    """The fake gateway's state; ``start`` serves it on 127.0.0.1."""

    directory: Path
    password: str = PASSWORD
    aggregates: dict[str, Any] = field(default_factory=aggregates)
    site: list[dict[str, Any]] = field(default_factory=site_meter)
    soe: float = 67.25
    stopped: bool = False
    set_cookie: bool = True
    lock_after: int = 5
    delay_s: float = 0.0
    overrides: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    peers: set[tuple[str, int]] = field(default_factory=set)  # client ends of connections
    tokens: set[str] = field(default_factory=set)
    logins: int = 0
    failed_logins: int = 0
    fingerprint: str = ""
    port: int = 0
    clock: Callable[[], datetime.datetime] = _utcnow
    heard_lag_s: float = 0.3
    date_header: bool = True  # False: an unusable Date (aiohttp always sends one)
    last_heard: str | None = None  # served verbatim as every meter's last_communication_time
    drops: dict[str, int] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _certificate: tuple[int, Path, Path] | None = None
    _generation: int = 0

    def heard_now(self) -> str:
        """The live last_communication_time: the meters were heard ``heard_lag_s`` ago."""
        return rfc3339_ns(self.clock() - datetime.timedelta(seconds=self.heard_lag_s))

    def freeze(self) -> str:
        """Keep serving the present last_communication_time (the meter data stops updating)."""
        self.last_heard = self.heard_now()
        return self.last_heard

    def thaw(self) -> None:
        """Live last_communication_time again."""
        self.last_heard = None

    @property
    def login_attempts(self) -> int:
        return sum(1 for method, path, _ in self.requests if path == "/api/login/Basic")

    def count(self, path: str) -> int:
        return sum(1 for _, p, _ in self.requests if p == path)

    def expire_tokens(self) -> None:
        self.tokens.clear()

    async def start(self) -> int:
        if self._certificate is None or self._certificate[0] != self._generation:
            cert, key, self.fingerprint = self_signed(self.directory, f"gw{self._generation}")
            self._certificate = (self._generation, cert, key)
        _, cert, key = self._certificate
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        app = web.Application()
        app.router.add_post("/api/login/Basic", self._login)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/meters/aggregates", self._json(self._aggregates))
        app.router.add_get("/api/meters/site", self._json(lambda: self.site))
        app.router.add_get("/api/system_status/soe", self._json(lambda: {"percentage": self.soe}))
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = int(server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def replace_certificate(self) -> str:
        """Serve a new self-signed certificate on the same port (a replaced gateway)."""
        await self.stop()
        self._generation += 1
        await self.start()
        return self.fingerprint

    def _date(self) -> str:
        if not self.date_header:
            return "-"
        return format_datetime(self.clock().astimezone(datetime.UTC), usegmt=True)

    def _aggregates(self) -> Any:
        if not isinstance(self.aggregates, dict):
            return self.aggregates  # a test's malformed answer
        heard = self.heard_now() if self.last_heard is None else self.last_heard
        return {
            name: {**meter, "last_communication_time": heard}
            if isinstance(meter, dict) and "last_communication_time" in meter
            else meter
            for name, meter in self.aggregates.items()
        }

    async def _pre(self, request: web.Request) -> web.Response | None:
        self.requests.append((request.method, request.path, request.cookies.get("AuthCookie")))
        assert request.transport is not None
        self.peers.add(request.transport.get_extra_info("peername")[:2])
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.drops.get(request.path, 0) > 0:
            self.drops[request.path] -= 1
            request.transport.abort()  # no answer: the client sees a disconnect
            raise asyncio.CancelledError
        override = self.overrides.get(request.path)
        if override is not None:
            return web.Response(status=override[0], body=override[1])
        return None

    async def _login(self, request: web.Request) -> web.Response:
        early = await self._pre(request)
        if early is not None:
            return early
        body = await request.json()
        if self.failed_logins >= self.lock_after:
            return web.json_response({"code": 429, "error": "Too many requests"}, status=429)
        if body.get("username") != "customer" or body.get("password") != self.password:
            self.failed_logins += 1
            return web.json_response(
                {"code": 401, "error": "bad credentials", "message": "Login Error"}, status=401
            )
        token = secrets.token_urlsafe(48)
        self.tokens.add(token)
        self.logins += 1
        response = web.json_response(
            {
                "email": body.get("email", ""),
                "firstname": "Tesla",
                "lastname": "Energy",
                "roles": ["Home_Owner"],
                "token": token,
                "provider": "Basic",
                "loginTime": "2025-01-15T11:00:00.5+10:00",
            }
        )
        if self.set_cookie:
            response.set_cookie("AuthCookie", token)
            response.set_cookie("UserRecord", "eyJlbWFpbCI6IiJ9")
        return response

    async def _status(self, request: web.Request) -> web.Response:
        early = await self._pre(request)
        if early is not None:
            return early
        return web.json_response(
            {
                "din": DIN,
                "start_time": "2025-01-02 08:00:00 +1000",
                "up_time_seconds": "300h1m2.5s",
                "is_new": False,
                "version": "24.36.2 46990655",
                "git_hash": "46990655a4b3f2c1",
                "commission_count": 3,
                "device_type": "teg",
                "sync_type": "v2.1",
                "leader": "",
                "followers": None,
                "cellular_disabled": False,
            }
        )

    def _json(self, payload: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            early = await self._pre(request)
            if early is not None:
                return early
            if request.cookies.get("AuthCookie") not in self.tokens:
                return web.json_response(
                    {"code": 401, "error": "token expired", "message": "Invalid token"},
                    status=401,
                )
            if self.stopped:
                return web.Response(status=502, body=b"")  # sitemaster stopped
            return web.Response(
                body=json.dumps(payload()),
                content_type="application/json",
                headers={"Date": self._date()},
            )

        return handler
