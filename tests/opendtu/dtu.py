"""A fake OpenDTU: aiohttp on 127.0.0.1 with the web API's response shapes.

Shapes follow the research notes (device-protocols.md §1); values are made up. Two inverters
by default: an HM-800 style (2 inputs, 800 W) and an HMS-2000 style (4 inputs, 2000 W).
Limit commands are acknowledged ``ack_delay_s`` after they are sent, on the DTU's ``clock``
(shared with the code under test, so a 3 s radio delay costs no real time): "Pending" until
then, then "Ok" (or "Failure" with ``fail_acks``). ``firmware`` "new" takes limit types 0-3
(v25.9.11+), "old" takes 0, 1, 256, 257; ``reject_types`` makes types answer 5003.

Faults: ``overrides`` answer a request with a fixed status and body; ``drops`` cut the
connection of the next requests to a (method, path) unanswered and unprocessed,
``drops_after`` carry them out first (the client cannot tell whether a command took effect).
``start`` binds ``port`` (any free one while it is 0), so a stopped DTU comes back where it was.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PASSWORD = "dtu-Secret-7"
HM_SERIAL = "114182912345"
HMS_SERIAL = "116492345678"
MAX_LIMIT = 2250


def _value(v: float, unit: str, decimals: int) -> dict[str, Any]:
    return {"v": v, "u": unit, "d": decimals}


@dataclass
class FakeInverter:
    serial: str
    name: str
    order: int
    max_power: int
    inputs: int
    ac_power: float = 0.0
    temperature: float | None = 34.5
    yield_total_kwh: float = 1234.567
    reachable: bool = True
    producing: bool = True
    limit_relative: float = 100.0
    data_age_ms: int = 2300
    limit_status: str = "Ok"
    ack_at: float | None = None
    pending: tuple[int, float] | None = None
    powered: bool = True

    def common(self) -> dict[str, Any]:
        known = self.max_power > 0
        return {
            "serial": self.serial,
            "name": self.name,
            "order": self.order,
            "data_age": self.data_age_ms // 1000,
            "data_age_ms": self.data_age_ms,
            "poll_enabled": True,
            "reachable": self.reachable,
            "producing": self.producing and self.powered,
            "limit_relative": self.limit_relative,
            "limit_absolute": self.limit_relative * self.max_power / 100 if known else -1,
            "radio_stats": {
                "tx_request": 5120,
                "tx_re_request": 37,
                "rx_success": 5002,
                "rx_fail_nothing": 80,
                "rx_fail_partial": 21,
                "rx_fail_corrupt": 17,
                "rssi": -64,
            },
        }

    def full(self) -> dict[str, Any]:
        entry = self.common()
        dc_each = self.ac_power / 0.955 / self.inputs
        entry["AC"] = {
            "0": {
                "Power": _value(self.ac_power, "W", 1),
                "Voltage": _value(236.4, "V", 1),
                "Current": _value(round(self.ac_power / 236.4, 2), "A", 2),
                "Frequency": _value(50.01, "Hz", 2),
                "PowerFactor": _value(0.998, "", 3),
                "ReactivePower": _value(3.1, "var", 1),
            }
        }
        entry["DC"] = {
            str(i): {
                "name": {"u": f"Panel {i + 1}"},
                "Power": _value(dc_each, "W", 1),
                "Voltage": _value(34.2, "V", 1),
                "Current": _value(round(dc_each / 34.2, 2), "A", 2),
                "YieldDay": _value(812, "Wh", 0),
                "YieldTotal": _value(self.yield_total_kwh / self.inputs, "kWh", 3),
            }
            for i in range(self.inputs)
        }
        inv: dict[str, Any] = {
            "Power DC": _value(dc_each * self.inputs, "W", 1),
            "YieldDay": _value(812 * self.inputs, "Wh", 0),
            "YieldTotal": _value(self.yield_total_kwh, "kWh", 3),
            "Efficiency": _value(95.5, "%", 3),
        }
        if self.temperature is not None:
            inv["Temperature"] = _value(self.temperature, "°C", 1)
        entry["INV"] = {"0": inv}
        entry["events"] = 3
        return entry


def default_inverters() -> dict[str, FakeInverter]:
    return {
        HM_SERIAL: FakeInverter(HM_SERIAL, "Garage HM-800", 0, 800, 2, ac_power=612.3),
        HMS_SERIAL: FakeInverter(
            HMS_SERIAL, "Roof HMS-2000", 1, 2000, 4, ac_power=1534.8, temperature=48.0
        ),
    }


@dataclass
class FakeDtu:
    clock: Callable[[], float]
    password: str = PASSWORD
    allow_readonly: bool = True
    firmware: str = "new"
    reject_types: set[int] = field(default_factory=set)
    ack_delay_s: float = 3.0
    fail_acks: bool = False
    inverters: dict[str, FakeInverter] = field(default_factory=default_inverters)
    overrides: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)  # accepted limit commands
    power_commands: list[dict[str, Any]] = field(default_factory=list)
    drops: dict[tuple[str, str], int] = field(default_factory=dict)
    drops_after: dict[tuple[str, str], int] = field(default_factory=dict)
    port: int = 0
    _runner: web.AppRunner | None = None

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if (m, p) == (method, path))

    def posted_types(self) -> list[Any]:
        """Every limit_type any POST carried (accepted or not)."""
        types = []
        for method, path, form in self.requests:
            if (method, path) == ("POST", "/api/limit/config") and "data" in form:
                with contextlib.suppress(ValueError):
                    types.append(json.loads(form["data"]).get("limit_type"))
        return types

    async def start(self) -> int:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/api/system/status", self._system)
        app.router.add_get("/api/security/authenticate", self._authenticate)
        app.router.add_get("/api/livedata/status", self._livedata)
        app.router.add_get("/api/limit/status", self._limit_status)
        app.router.add_post("/api/limit/config", self._limit_config)
        app.router.add_post("/api/power/config", self._power_config)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- plumbing -----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        form = dict(await request.post()) if request.method == "POST" else dict(request.query)
        self.requests.append((request.method, request.path, {k: str(v) for k, v in form.items()}))
        key = (request.method, request.path)
        if self._take(self.drops, key):
            self._hang_up(request)
        override = self.overrides.get(key)
        if override is not None:
            return web.Response(status=override[0], text=override[1])
        self._advance()
        response = await handler(request)
        if self._take(self.drops_after, key):
            self._hang_up(request)
        return response

    @staticmethod
    def _take(counts: dict[tuple[str, str], int], key: tuple[str, str]) -> bool:
        if counts.get(key, 0) <= 0:
            return False
        counts[key] -= 1
        return True

    @staticmethod
    def _hang_up(request: web.Request) -> None:
        """Cut the connection without an answer (the client sees a disconnect)."""
        assert request.transport is not None
        request.transport.abort()
        raise asyncio.CancelledError

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization")
        if header is None:
            return False
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            login, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return login == "admin" and password == self.password

    def _denied(self, request: web.Request, *, write: bool) -> web.Response | None:
        if self._authorised(request) or (self.allow_readonly and not write):
            return None
        headers = {}
        if "X-Requested-With" not in request.headers:
            headers["WWW-Authenticate"] = 'Basic realm="Login Required"'
        return web.Response(status=401, headers=headers)

    def _advance(self) -> None:
        """Deliver acknowledgements that are due on the DTU's clock."""
        now = self.clock()
        for inv in self.inverters.values():
            if inv.ack_at is None or now < inv.ack_at:
                continue
            inv.ack_at = None
            if self.fail_acks:
                inv.limit_status = "Failure"
                continue
            assert inv.pending is not None
            kind, value = inv.pending
            relative = kind in (1, 3, 257)
            inv.limit_relative = min(100.0, value) if relative else value / inv.max_power * 100
            inv.limit_status = "Ok"

    @staticmethod
    def _answer(code: int, message: str, kind: str = "warning", **extra: Any) -> web.Response:
        return web.json_response({"type": kind, "message": message, "code": code, **extra})

    async def _parse(self, request: web.Request) -> dict[str, Any] | web.Response:
        form = await request.post()
        if "data" not in form:
            return self._answer(1002, "No values found!")
        try:
            data = json.loads(str(form["data"]))
        except ValueError:
            return self._answer(1004, "Failed to parse data!")
        if not isinstance(data, dict):
            return self._answer(1004, "Failed to parse data!")
        return data

    # -- endpoints ----------------------------------------------------------------------------

    async def _system(self, request: web.Request) -> web.Response:
        denied = self._denied(request, write=False)
        if denied is not None:
            return denied
        return web.json_response(
            {
                "hostname": "OpenDTU-5A1B2C",
                "sdkversion": "v4.4.7",
                "cpufreq": 240,
                "heap_total": 280000,
                "config_version": "0.1.28",
                "git_hash": "v25.9.11" if self.firmware == "new" else "v24.11.7",
                "git_branch": "master",
                "pioenv": "generic_esp32s3_usb",
                "uptime": 86400,
                "nrf_configured": True,
                "nrf_connected": True,
                "nrf_pvariant": True,
                "cmt_configured": True,
                "cmt_connected": True,
            }
        )

    async def _authenticate(self, request: web.Request) -> web.Response:
        denied = self._denied(request, write=True)
        if denied is not None:
            return denied
        return self._answer(10002, "Authentication successful!", "success")

    async def _livedata(self, request: web.Request) -> web.Response:
        denied = self._denied(request, write=False)
        if denied is not None:
            return denied
        serial = request.query.get("inv")
        if serial is not None:
            inv = self.inverters.get(serial)
            entries = [inv.full()] if inv is not None else []
        else:
            entries = [inv.common() for inv in self.inverters.values()]
        total = sum(inv.ac_power for inv in self.inverters.values())
        return web.json_response(
            {
                "inverters": entries,
                "total": {
                    "Power": _value(total, "W", 0),
                    "YieldDay": _value(4800, "Wh", 0),
                    "YieldTotal": _value(2469.1, "kWh", 3),
                },
                "hints": {
                    "time_sync": False,
                    "radio_problem": False,
                    "default_password": False,
                    "pin_mapping_issue": False,
                },
            }
        )

    async def _limit_status(self, request: web.Request) -> web.Response:
        denied = self._denied(request, write=False)
        if denied is not None:
            return denied
        return web.json_response(
            {
                serial: {
                    "limit_relative": inv.limit_relative,
                    "max_power": inv.max_power,
                    "limit_set_status": inv.limit_status,
                }
                for serial, inv in self.inverters.items()
            }
        )

    def _type_ok(self, kind: int) -> bool:
        valid = {0, 1, 2, 3} if self.firmware == "new" else {0, 1, 256, 257}
        return kind in valid and kind not in self.reject_types

    async def _limit_config(self, request: web.Request) -> web.Response:
        denied = self._denied(request, write=True)
        if denied is not None:
            return denied
        data = await self._parse(request)
        if isinstance(data, web.Response):
            return data
        serial, kind, value = data.get("serial"), data.get("limit_type"), data.get("limit_value")
        if not (
            isinstance(serial, str) and isinstance(kind, int) and isinstance(value, float | int)
        ):
            return self._answer(1005, "Values are missing!")
        if int(serial, 16) == 0:
            return self._answer(5001, "Serial must be a number > 0!")
        if value > MAX_LIMIT:
            return self._answer(5002, "Limit must between 0 and 2250!", param={"max": MAX_LIMIT})
        if not self._type_ok(kind):
            return self._answer(5003, "Invalid type specified!")
        inv = self.inverters.get(serial)
        if inv is None:
            return self._answer(5004, "Invalid inverter specified!")
        self.commands.append(data)
        inv.pending = (kind, float(value))
        inv.limit_status = "Pending"
        inv.ack_at = self.clock() + self.ack_delay_s
        return self._answer(1001, "Settings saved!", "success")

    async def _power_config(self, request: web.Request) -> web.Response:
        denied = self._denied(request, write=True)
        if denied is not None:
            return denied
        data = await self._parse(request)
        if isinstance(data, web.Response):
            return data
        inv = self.inverters.get(str(data.get("serial")))
        if inv is None:
            return self._answer(11002, "Invalid inverter specified!")
        if not isinstance(data.get("power"), bool):
            return self._answer(1005, "Values are missing!")
        self.power_commands.append(data)
        inv.powered = data["power"]
        return self._answer(1001, "Settings saved!", "success")
