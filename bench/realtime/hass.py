"""A real Home Assistant in a subprocess, onboarded and configured over its REST/websocket API.

A fresh temporary config directory each run: http on a free loopback port, the recorder on
(SQLite), the API and websocket, and this integration symlinked into ``custom_components``.
The site, its inverter, meter and fixed limiter are added through the integration's own
config and subentry flows, as a user would in the UI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "dynamic_export"
SITE_NAME = "Bench"
SITE_ID = "bench"
CLIENT_NAME = "rtbench"

CONFIGURATION = """\
# Written by scripts/bench --realtime: the smallest Home Assistant that runs the integration
# with its entities recorded (recorder on, SQLite).
homeassistant:
  name: rtbench
  latitude: -34.93
  longitude: 138.6
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: AUD
  country: AU
http:
  server_host: 127.0.0.1
  server_port: {port}
recorder:
  db_url: "sqlite:///{db}"
onboarding:
config:
api:
websocket_api:
logger:
  default: warning
  logs:
    custom_components.dynamic_export: info
"""


INVERTER_STEPS: dict[str, tuple[str, dict[str, Any]]] = {
    "sunspec": ("sunspec_tcp", {"unit_id": 1}),
    "solaredge": ("solaredge", {"unit_id": 1}),
    "sungrow_sg": ("sungrow", {"unit_id": 1}),
    "sungrow_sh": ("sungrow", {"unit_id": 1}),
    "huawei": ("huawei", {"unit_id": 1}),
    "victron": ("victron_gx", {}),  # with the PV rating
    "goodwe": ("goodwe", {}),  # the address only: UDP 8899 at the inverter's own 127.x.y.z
}
"""Per inverter family: the subentry flow's connection kind and its answers (with the address)."""
METER_TRIES = 5
"""Tries of the meter's connection test (a SolarEdge one fails while the site reconnects)."""


class HassError(RuntimeError):
    """Home Assistant did not start or refused a step of the set-up."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by process ``pid`` (Linux), None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class HomeAssistant:
    """One Home Assistant process and an authenticated session to it."""

    def __init__(self, *, keep: bool = False, log: Callable[[str], None] = print) -> None:
        self.config_dir = Path(tempfile.mkdtemp(prefix="rtbench-ha-"))
        self.keep = keep
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db = self.config_dir / "home-assistant_v2.db"
        self.process: asyncio.subprocess.Process | None = None
        self.session: aiohttp.ClientSession | None = None
        self.token = ""
        self.entry_id = ""
        self._log = log
        self._logfile: Any = None

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self, timeout_s: float = 180.0) -> None:
        """Write the config, start ``hass`` and wait until its HTTP API answers."""
        (self.config_dir / "configuration.yaml").write_text(
            CONFIGURATION.format(port=self.port, db=self.db), encoding="utf-8"
        )
        custom = self.config_dir / "custom_components"
        custom.mkdir()
        (custom / DOMAIN).symlink_to(REPO / "custom_components" / DOMAIN)
        self._logfile = (self.config_dir / "hass.out").open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "homeassistant",
            "--config",
            str(self.config_dir),
            "--skip-pip",
            stdout=self._logfile,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self.session = aiohttp.ClientSession()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise HassError(f"hass exited with {self.process.returncode}: {self.tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with self.session.get(f"{self.base}/api/onboarding") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.5)
        raise HassError(f"Home Assistant did not answer within {timeout_s:.0f} s: {self.tail()}")

    async def stop(self) -> None:
        """Stop Home Assistant (SIGTERM, so the recorder writes its queue) and close up."""
        if self.session is not None:
            await self.session.close()
            self.session = None
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 90.0)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._logfile is not None:
            self._logfile.close()
            self._logfile = None

    def cleanup(self) -> None:
        """Remove the config dir unless it is to be kept."""
        if not self.keep:
            shutil.rmtree(self.config_dir, ignore_errors=True)

    def tail(self, lines: int = 15) -> str:
        """The last lines of Home Assistant's output."""
        with contextlib.suppress(OSError):
            text = (self.config_dir / "hass.out").read_text(encoding="utf-8", errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    @property
    def pid(self) -> int | None:
        """Process id of Home Assistant."""
        return None if self.process is None else self.process.pid

    # --- REST --------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, payload: Any = None, *, auth: bool = True
    ) -> Any:
        assert self.session is not None
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        async with self.session.request(
            method, f"{self.base}{path}", json=payload, headers=headers
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise HassError(f"{method} {path}: HTTP {resp.status}: {text[:500]}")
            return json.loads(text) if text else None

    async def onboard(self) -> None:
        """Create the owner user over the onboarding API and get a long-lived token."""
        assert self.session is not None
        client_id = f"{self.base}/"
        result = await self._request(
            "POST",
            "/api/onboarding/users",
            {
                "name": "Bench",
                "username": "bench",
                "password": "bench-password-" + os.urandom(6).hex(),
                "client_id": client_id,
                "language": "en",
            },
            auth=False,
        )
        form = {
            "grant_type": "authorization_code",
            "code": result["auth_code"],
            "client_id": client_id,
        }
        async with self.session.post(f"{self.base}/auth/token", data=form) as resp:
            if resp.status != 200:
                raise HassError(f"token: HTTP {resp.status}: {await resp.text()}")
            self.token = (await resp.json())["access_token"]
        async with self.websocket() as ws:
            await ws.send_json(
                {
                    "id": 1,
                    "type": "auth/long_lived_access_token",
                    "client_name": CLIENT_NAME,
                    "lifespan": 30,
                }
            )
            reply = await ws.receive_json()
            if not reply.get("success"):
                raise HassError(f"long-lived token refused: {reply}")
            self.token = reply["result"]

    @contextlib.asynccontextmanager
    async def websocket(self) -> Any:
        """An authenticated websocket connection."""
        assert self.session is not None
        async with self.session.ws_connect(f"{self.base}/api/websocket") as ws:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self.token})
            reply = await ws.receive_json()
            if reply.get("type") != "auth_ok":
                raise HassError(f"websocket auth failed: {reply}")
            yield ws

    async def _flow(self, base: str, handler: Any, steps: list[dict[str, Any]]) -> Any:
        """Start a flow and answer its steps in order; returns the final result."""
        result = await self._request("POST", base, {"handler": handler})
        for answer in steps:
            if result.get("type") not in ("form", "menu"):
                raise HassError(f"flow {handler}: expected a form, got {result}")
            result = await self._request("POST", f"{base}/{result['flow_id']}", answer)
            if result.get("errors"):
                raise HassError(f"flow {handler}: step {result.get('step_id')}: {result}")
        if result.get("type") != "create_entry":
            raise HassError(f"flow {handler} did not create an entry: {result}")
        return result

    async def configure(
        self,
        *,
        modbus_port: int,
        export_limit_w: float | None,
        family: str = "sunspec",
        pv_rating_w: float = 6000.0,
        goodwe_host: str | None = None,
    ) -> None:
        """Add the site (1 s interval), the inverter, the meter and the fixed limiter.

        ``family``: the inverter's connection kind (each unit 1; a Victron GX for all the PV,
        rated ``pv_rating_w``, with its grid meter, unit 30, as the site meter; a SolarEdge
        inverter with its meter 1 as the site meter, through the same client; a GoodWe at
        ``goodwe_host``); the other families keep the simulated SunSpec meter (unit 240).
        """
        created = await self._flow(
            "/api/config/config_entries/flow",
            DOMAIN,
            [{"name": SITE_NAME, "control_interval": 1, "control_enabled": True}],
        )
        self.entry_id = created["result"]["entry_id"]
        sub = "/api/config/config_entries/subentries/flow"
        address = {"host": "127.0.0.1", "port": modbus_port}
        kind, inverter = INVERTER_STEPS[family]
        answers: dict[str, Any] = {**address, **inverter}
        if family == "victron":
            answers = {**address, "rated_power": pv_rating_w}
        if family == "goodwe":
            if goodwe_host is None:
                raise HassError("a GoodWe inverter needs the address it answers on")
            answers = {"host": goodwe_host}
        await self._flow(
            sub,
            [self.entry_id, "inverter"],
            [{"next_step_id": kind}, answers],
        )
        meter: dict[str, Any] = {"unit_id": 240, "invert": False}
        meter_kind = "sunspec_tcp"
        if family == "victron":
            meter_kind, meter = "victron_gx", {"unit_id": 30}
        if family == "solaredge":  # its meter 1, read through the inverter's own connection
            meter_kind, meter = "solaredge", {"unit_id": 1, "meter_number": 1}
        if family == "solaredge":
            # Its meter's connection test reads through the loaded site's one client; while
            # the site still sets the inverter up (the commit) it would open a second one.
            await self._wait_loaded()
        for attempt in range(METER_TRIES):
            try:
                await self._flow(
                    sub,
                    [self.entry_id, "meter"],
                    [{"next_step_id": meter_kind}, {**address, **meter}],
                )
                break
            except HassError as err:
                if "cannot_connect" not in str(err) or attempt == METER_TRIES - 1:
                    raise
                self._log(f"the meter's connection test failed ({attempt + 1}); again")
                await asyncio.sleep(3.0)
        limits: dict[str, Any] = {"name": "Export limit", "connect": True, "energize": True}
        if export_limit_w is not None:
            limits["export_limit"] = export_limit_w
        await self._flow(sub, [self.entry_id, "fixed_limiter"], [limits])

    async def _wait_loaded(self, timeout_s: float = 120.0) -> None:
        """Wait until the site's entry is loaded again after a subentry was added."""
        await asyncio.sleep(1.0)  # the reload a new subentry starts
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            entries = await self._request(
                "GET", f"/api/config/config_entries/entry?domain={DOMAIN}"
            )
            if any(e["entry_id"] == self.entry_id and e["state"] == "loaded" for e in entries):
                return
            await asyncio.sleep(0.5)
        raise HassError(f"the site did not load again within {timeout_s:.0f} s: {self.tail()}")

    async def state(self, entity_id: str) -> str | None:
        """The state of ``entity_id`` (None while it does not exist)."""
        try:
            result = await self._request("GET", f"/api/states/{entity_id}")
        except HassError:
            return None
        return str(result["state"])

    async def wait_state(self, entity_id: str, wanted: str, timeout_s: float = 120.0) -> None:
        """Wait until ``entity_id`` shows ``wanted``."""
        deadline = time.monotonic() + timeout_s
        seen = None
        while time.monotonic() < deadline:
            seen = await self.state(entity_id)
            if seen == wanted:
                return
            await asyncio.sleep(0.5)
        raise HassError(f"{entity_id} is {seen!r}, not {wanted!r}: {self.tail()}")

    async def entity_ids(self) -> set[str]:
        """This integration's entities, from the entity registry."""
        async with self.websocket() as ws:
            await ws.send_json({"id": 1, "type": "config/entity_registry/list"})
            reply = await ws.receive_json()
        return {e["entity_id"] for e in reply["result"] if e.get("platform") == DOMAIN}

    def recorder_rows(self, entity_ids: set[str], start_ts: float, end_ts: float) -> int:
        """Rows the recorder wrote to ``states`` for ``entity_ids`` in [start_ts, end_ts)."""
        if not entity_ids or not self.db.exists():
            return 0
        with contextlib.closing(sqlite3.connect(self.db)) as db:
            rows = db.execute(
                "SELECT states_meta.entity_id, COUNT(*) FROM states JOIN states_meta "
                "ON states.metadata_id = states_meta.metadata_id "
                "WHERE states.last_updated_ts >= ? AND states.last_updated_ts < ? "
                "GROUP BY states_meta.entity_id",
                (start_ts, end_ts),
            ).fetchall()
        count = sum(n for entity_id, n in rows if entity_id in entity_ids)
        return int(count)


class StateCounter:
    """Counts ``state_changed`` events per entity over a websocket subscription."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.hass = hass
        self.counts: dict[str, int] = {}
        self.counting = False
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Subscribe; counting starts with :attr:`counting` set."""
        self._task = asyncio.create_task(self._listen(), name="rtbench-states")
        await asyncio.wait_for(self._ready.wait(), 30.0)

    async def stop(self) -> None:
        """Unsubscribe."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen(self) -> None:
        async with self.hass.websocket() as ws:
            await ws.send_json({"id": 1, "type": "subscribe_events", "event_type": "state_changed"})
            await ws.receive_json()
            self._ready.set()
            while True:
                message = await ws.receive_json()
                if not self.counting or message.get("type") != "event":
                    continue
                entity_id = message["event"]["data"]["entity_id"]
                self.counts[entity_id] = self.counts.get(entity_id, 0) + 1
