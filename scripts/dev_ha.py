"""Drive the development Home Assistant of ``scripts/develop`` from outside, as a user would.

``site``: add the development site through the same REST flows the UI uses (once; nothing
happens when a Dynamic Export site exists). ``screenshot``: log in headless Chromium and save
a screenshot of a page, e.g. the shipped dashboard for the README.

Run with the venv's Python (it needs aiohttp), while ``scripts/develop`` runs:
    .venv/bin/python scripts/dev_ha.py site --sim-port 5020
    .venv/bin/python scripts/dev_ha.py screenshot /dynamic-export/site docs/images/dashboard.png
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

USER = os.environ.get("DEVELOP_USER", "dev")
PASSWORD = os.environ.get("DEVELOP_PASSWORD", "dev")


class DevHA:
    """A logged-in client of the development Home Assistant."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        """Keep the session and the base URL (``http://localhost:8123``)."""
        self.session = session
        self.url = url.rstrip("/")
        self.tokens: dict[str, Any] = {}

    async def wait_up(self, within_s: float) -> None:
        """Wait until the HTTP API answers (Home Assistant takes a while to start)."""
        deadline = time.monotonic() + within_s
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                # A page that needs no login (a request to the API without one is logged).
                async with self.session.get(f"{self.url}/manifest.json") as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                raise SystemExit(f"Home Assistant did not answer on {self.url} in {within_s} s")
            await asyncio.sleep(1)

    async def login(self) -> None:
        """Log in with the development user through the login flow, as the frontend does."""
        client_id = f"{self.url}/"
        flow = await self._post(
            "/auth/login_flow",
            {
                "client_id": client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": f"{client_id}?auth_callback=1",
            },
        )
        result = await self._post(
            f"/auth/login_flow/{flow['flow_id']}",
            {"username": USER, "password": PASSWORD, "client_id": client_id},
        )
        if result.get("type") != "create_entry":
            raise SystemExit(f"login as {USER!r} failed: {result.get('errors')}")
        async with self.session.post(
            f"{self.url}/auth/token",
            data={
                "grant_type": "authorization_code",
                "code": result["result"],
                "client_id": client_id,
            },
        ) as resp:
            resp.raise_for_status()
            self.tokens = await resp.json()

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {}
        if self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens['access_token']}"
        async with self.session.post(f"{self.url}{path}", json=body, headers=headers) as resp:
            data: dict[str, Any] = await resp.json()
            if resp.status >= 400:
                raise SystemExit(f"POST {path}: {resp.status} {data}")
            return data

    async def get(self, path: str) -> Any:
        """GET a JSON resource of the API."""
        headers = {"Authorization": f"Bearer {self.tokens['access_token']}"}
        async with self.session.get(f"{self.url}{path}", headers=headers) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def flow(self, base: str, handler: Any, *steps: dict[str, Any]) -> dict[str, Any]:
        """Run a config or subentry flow through ``steps`` (a menu step names its choice)."""
        result = await self._post(base, {"handler": handler})
        for step in steps:
            result = await self._post(f"{base}/{result['flow_id']}", step)
            if result.get("errors"):
                raise SystemExit(f"{handler}: {result['step_id']}: {result['errors']}")
        if result["type"] != "create_entry":
            raise SystemExit(f"{handler}: ended with {result}")
        return result


async def add_site(ha: DevHA, sim_port: int) -> None:
    """The development site: inverters on units 1 and 2, the meter on 240, 1500 W export."""
    entries = await ha.get("/api/config/config_entries/entry?domain=dynamic_export")
    if entries:
        print(f"dev_ha: a Dynamic Export site exists ({entries[0]['title']}); not adding one")
        return
    result = await ha.flow(
        "/api/config/config_entries/flow",
        "dynamic_export",
        {"name": "Home", "control_interval": 1, "control_enabled": True},
    )
    entry_id = result["result"]["entry_id"]
    subentries = "/api/config/config_entries/subentries/flow"
    address = {"host": "127.0.0.1", "port": sim_port}
    for unit in (1, 2):
        await ha.flow(
            subentries,
            [entry_id, "inverter"],
            {"next_step_id": "sunspec_tcp"},
            {**address, "unit_id": unit},
        )
    await ha.flow(
        subentries,
        [entry_id, "meter"],
        {"next_step_id": "sunspec_tcp"},
        {**address, "unit_id": 240, "invert": False},
    )
    await ha.flow(
        subentries,
        [entry_id, "fixed_limiter"],
        {"name": "Network limit", "export_limit": 1500, "connect": True, "energize": True},
    )
    print("dev_ha: added site Home: inverters 1 and 2, meter 240, Network limit 1500 W export")


class Chromium:
    """Headless Chromium driven over its DevTools protocol (one page)."""

    def __init__(self, session: aiohttp.ClientSession, width: int, height: int) -> None:
        """Remember the window size; ``start`` launches the browser."""
        self.session = session
        self.width = width
        self.height = height
        self.ids = itertools.count(1)
        self.profile = tempfile.mkdtemp(prefix="dev-ha-chromium-")
        self.proc: asyncio.subprocess.Process | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def start(self) -> None:
        """Launch Chromium and attach to its page."""
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if binary is None:
            raise SystemExit("dev_ha: no chromium on PATH (Debian: apt-get install chromium)")
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            f"--window-size={self.width},{self.height}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        port = None
        while port is None:
            line = (await asyncio.wait_for(self.proc.stderr.readline(), 30)).decode()
            if not line:
                raise SystemExit("dev_ha: chromium exited before it listened")
            if match := re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line):
                port = int(match.group(1))
        async with self.session.get(f"http://127.0.0.1:{port}/json") as resp:
            targets = await resp.json(content_type=None)
        page = next(t for t in targets if t["type"] == "page")
        self.ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.send("Page.enable")
        # The page gets the whole size asked for (a headless window keeps some for itself).
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and wait for its answer (events in between are skipped)."""
        assert self.ws is not None
        call_id = next(self.ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json(timeout=60)
            if message.get("id") == call_id:
                if "error" in message:
                    raise SystemExit(f"dev_ha: {method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    async def stop(self) -> None:
        """Close the page and end the browser this object started."""
        if self.ws is not None:
            await self.ws.close()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


async def screenshot(
    ha: DevHA,
    page: str,
    width: int,
    height: int,
    wait_s: float,
    steps: list[str],
) -> bytes:
    """Open ``page`` logged in (the frontend's stored tokens) and take a PNG of it.

    ``steps`` are done one after the other before it is taken, each followed by a pause:
    ``click:X,Y`` (e.g. to open a menu), ``type:TEXT`` (into the focused field),
    ``key:NAME`` (Tab, Enter, Backspace, Escape, ArrowDown, ArrowUp), ``selectall`` (of the
    focused field), ``js:EXPRESSION`` (its value is printed), ``wait:SECONDS``.
    """
    browser = Chromium(ha.session, width, height)
    await browser.start()
    try:
        stored = {
            **ha.tokens,
            "hassUrl": ha.url,
            "clientId": f"{ha.url}/",
            "expires": int(time.time() * 1000) + ha.tokens["expires_in"] * 1000,
        }
        # localStorage belongs to the origin: open a page of it, store the tokens, go on.
        await browser.send("Page.navigate", url=f"{ha.url}/manifest.json")
        await asyncio.sleep(1)
        await browser.send(
            "Runtime.evaluate",
            expression=f"localStorage.setItem('hassTokens', {json.dumps(json.dumps(stored))})",
        )
        await browser.send("Page.navigate", url=f"{ha.url}{page}")
        await asyncio.sleep(wait_s)
        where = await browser.send("Runtime.evaluate", expression="location.href")
        print(f"dev_ha: the page is at {where['result'].get('value')}")
        for step in steps:
            await _do(browser, step)
        # The viewport as shown: dialogs live in the top layer, which a clip beyond the
        # viewport leaves out.
        shot = await browser.send("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"])
    finally:
        await browser.stop()


KEY_CODES = {"Tab": 9, "Enter": 13, "Backspace": 8, "Escape": 27, "ArrowDown": 40, "ArrowUp": 38}


async def _do(browser: Chromium, step: str) -> None:
    """One step of a screenshot's script (see ``screenshot``)."""
    action, _, arg = step.partition(":")
    if action == "click":
        x, y = (int(v) for v in arg.split(","))
        await browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for event in ("mousePressed", "mouseReleased"):
            await browser.send(
                "Input.dispatchMouseEvent",
                type=event,
                x=x,
                y=y,
                button="left",
                buttons=1 if event == "mousePressed" else 0,
                clickCount=1,
            )
    elif action == "type":
        await browser.send("Input.insertText", text=arg)
    elif action == "key":
        code = KEY_CODES[arg]
        for event in ("rawKeyDown", "keyUp"):
            await browser.send(
                "Input.dispatchKeyEvent",
                type=event,
                key=arg,
                code=arg,
                windowsVirtualKeyCode=code,
                nativeVirtualKeyCode=code,
            )
    elif action == "selectall":  # of the focused field, so that typing replaces it
        await browser.send(
            "Input.dispatchKeyEvent", type="rawKeyDown", key="a", commands=["selectAll"]
        )
        await browser.send("Input.dispatchKeyEvent", type="keyUp", key="a")
    elif action == "js":
        result = await browser.send("Runtime.evaluate", expression=arg, returnByValue=True)
        print(f"dev_ha: {arg} -> {result['result'].get('value')!r}")
    elif action == "wait":
        await asyncio.sleep(float(arg))
        return
    else:
        raise SystemExit(f"dev_ha: unknown step {step!r}")
    await asyncio.sleep(1.5)


def save(out: Path, data: bytes) -> None:
    """Write a file, making its folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)


async def main(argv: list[str]) -> None:
    """Parse the command line and run the command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    port = os.environ.get("DEVELOP_HA_PORT", "8123")
    parser.add_argument("--url", default=f"http://localhost:{port}")
    parser.add_argument("--wait", type=float, default=180, help="seconds to wait for HA to start")
    commands = parser.add_subparsers(dest="command", required=True)
    site = commands.add_parser("site", help="add the development site through the flows")
    site.add_argument("--sim-port", type=int, default=int(os.environ.get("SIM_PORT", "5020")))
    shot = commands.add_parser("screenshot", help="save a screenshot of a page, logged in")
    shot.add_argument("page", help="path of the page, e.g. /dynamic-export/site")
    shot.add_argument("out", type=Path)
    shot.add_argument("--size", default="1600x1300", help="window size WIDTHxHEIGHT")
    shot.add_argument("--settle", type=float, default=20, help="seconds to let the page draw")
    shot.add_argument("--click", action="append", default=[], help="X,Y to click first")
    shot.add_argument(
        "--step",
        action="append",
        default=[],
        help="click:X,Y, type:TEXT, key:NAME, selectall, js:EXPR or wait:S, in order",
    )
    args = parser.parse_args(argv)

    # The threaded resolver: the venv's aiodns need not match what aiohttp expects.
    connector = aiohttp.TCPConnector(resolver=aiohttp.ThreadedResolver())
    async with aiohttp.ClientSession(connector=connector) as session:
        ha = DevHA(session, args.url)
        await ha.wait_up(args.wait)
        await ha.login()
        if args.command == "site":
            await add_site(ha, args.sim_port)
        else:
            width, height = (int(x) for x in args.size.split("x"))
            steps = [f"click:{c}" for c in args.click] + args.step
            png = await screenshot(ha, args.page, width, height, args.settle, steps)
            save(args.out, png)
            print(f"dev_ha: saved {args.out} ({width}x{height}) of {ha.url}{args.page}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
