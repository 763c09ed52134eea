"""Test peers for the other device kinds, with physics so the control loop has a site to hold.

- :class:`DtuPeer`: the fake OpenDTU (tests/opendtu/dtu.py) on the wall clock, with its ~3 s
  radio acknowledgement, an optional answer delay, and inverters whose output follows the
  acknowledged limit with a first-order lag.
- :class:`SiteGateway`: the fake Powerwall gateway (tests/powerwall/gateway.py) whose site,
  solar and load powers come from a live model at each request.
- :class:`RtuBridge`: the simulated SunSpec site (sim/server.py) answering Modbus RTU frames on
  a pseudo-terminal, behind a symlinked port that can be unplugged and plugged in again.
- :class:`PeerSite`: a household load plus generators, ticking in real time; it reports grid
  power (+import/−export) and records export for the assertions.
- :class:`EntitySite`: two inverters seen through Home Assistant entities (power sensors and
  number entities that limit them) and a grid power sensor, on a :class:`PeerSite`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT
from homeassistant.core import HomeAssistant

from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from ..opendtu.dtu import FakeDtu
from ..powerwall.gateway import Gateway


@dataclass
class Sample:
    """The peer site at one moment (seconds since start, export and generation in W)."""

    t: float
    export_w: float
    generation_w: float


@dataclass
class Generator:
    """A PV inverter: output follows min(available, ceiling) with a first-order lag."""

    available_w: float
    ceiling: Callable[[], float]
    time_constant_s: float = 1.0
    output_w: float = 0.0

    def step(self, dt: float) -> None:
        target = max(0.0, min(self.available_w, self.ceiling()))
        alpha = 1.0 - math.exp(-dt / self.time_constant_s)
        self.output_w += (target - self.output_w) * alpha


@dataclass
class PeerSite:
    """Load and generators; ``sinks`` get grid power (+import) after each tick."""

    load_w: float
    generators: list[Generator] = field(default_factory=list)
    sinks: list[Callable[[float], None]] = field(default_factory=list)
    before_tick: list[Callable[[], None]] = field(default_factory=list)
    tick_s: float = 0.05
    samples: list[Sample] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _task: asyncio.Task[None] | None = None

    @property
    def t(self) -> float:
        return time.monotonic() - self.started

    @property
    def generation_w(self) -> float:
        return sum(g.output_w for g in self.generators)

    @property
    def grid_power_w(self) -> float:
        return self.load_w - self.generation_w

    def start(self) -> None:
        self.started = time.monotonic()
        self.tick(0.0)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def tick(self, dt: float) -> None:
        for hook in self.before_tick:
            hook()
        for generator in self.generators:
            generator.step(dt)
        grid = self.grid_power_w
        for sink in self.sinks:
            sink(grid)
        self.samples.append(Sample(self.t, -grid, self.generation_w))

    def window(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.t < end]

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            self.tick(now - last)
            last = now


async def run_until(site: PeerSite, t: float) -> None:
    """Wait until the peer site's clock reaches ``t`` seconds."""
    await asyncio.sleep(max(0.0, t - site.t))


def seconds_over(samples: list[Sample], limit_w: float) -> float:
    """Total time the export spent above ``limit_w`` (sample spacing as weights)."""
    total = 0.0
    for before, after in itertools.pairwise(samples):
        if before.export_w > limit_w:
            total += after.t - before.t
    return total


# --- OpenDTU ---------------------------------------------------------------------------------


class DtuPeer(FakeDtu):
    """The fake OpenDTU on the wall clock, with an answer delay and output physics."""

    delay_s: float = 0.0
    site: PeerSite | None = None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return await super()._middleware(request, handler)

    def attach(self, site: PeerSite, available: dict[str, float]) -> None:
        """Drive the DTU's inverters from ``site``: output follows the acknowledged limit."""
        self.site = site
        site.before_tick.append(self._advance)  # deliver acknowledgements that are due
        for serial, watts in available.items():
            inverter = self.inverters[serial]

            def ceiling(inv: Any = inverter) -> float:
                if not inv.powered:
                    return 0.0
                return inv.max_power * min(inv.limit_relative, 100.0) / 100.0

            generator = Generator(watts, ceiling, output_w=inverter.ac_power)
            site.generators.append(generator)

            def mirror(_grid: float, inv: Any = inverter, gen: Generator = generator) -> None:
                inv.ac_power = round(gen.output_w, 1)

            site.sinks.append(mirror)


def dtu_peer() -> DtuPeer:
    return DtuPeer(time.monotonic)


# --- Powerwall -------------------------------------------------------------------------------


class SiteGateway(Gateway):
    """The fake gateway, reporting a live model's powers at each request."""

    grid: Callable[[], float] | None = None
    solar: Callable[[], float] | None = None
    load: Callable[[], float] | None = None

    async def _pre(self, request: web.Request) -> web.Response | None:
        for name, source in (("site", self.grid), ("solar", self.solar), ("load", self.load)):
            if source is not None and isinstance(self.aggregates.get(name), dict):
                self.aggregates[name]["instant_power"] = round(source(), 1)
        return await super()._pre(request)

    def follow_sim(self, sim: SimulatedSiteServer) -> None:
        """Report the simulated site's grid meter, generation and load."""
        self.grid = lambda: sim.site.meter.reported_power_w
        self.solar = lambda: sim.site.generation_w
        self.load = lambda: sim.site.load_w

    def follow(self, site: PeerSite) -> None:
        """Report a peer site's grid power, generation and load."""
        self.grid = lambda: site.grid_power_w
        self.solar = lambda: site.generation_w
        self.load = lambda: site.load_w


# --- SunSpec over RS-485 ---------------------------------------------------------------------


def _crc16(frame: bytes) -> bytes:
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


class RtuBridge:
    """The simulated site's units answering Modbus RTU on a pty; ``path`` is the client's port.

    Units that are not on the bus stay silent, as on a real RS-485 line. ``unplug`` closes the
    pty and removes the symlink (a USB adapter pulled out); ``plug_in`` makes a new one.

    Faults beyond the simulated site's own (offline units, frozen images): ``reply_delay_s``
    answers a unit late, with the values it had when asked; ``unplug_at_write`` pulls the
    adapter out when a write to the unit arrives (after applying it, or not).
    """

    def __init__(self, sim: SimulatedSiteServer, directory: Path) -> None:
        self.sim = sim
        self.path = str(directory / "ttyRS485")
        self.frames = 0
        self.reply_delay_s: dict[int, float] = {}
        """Per unit: seconds before its answer goes on the line."""
        self.unplug_at_write: dict[int, bool] = {}
        """Per unit, once: unplug when its next write arrives; the value says if it applies."""
        self.late_frames = 0
        """Answers that went on the line after a delay (for the assertions)."""
        self._loop = asyncio.get_running_loop()
        self._pty: tuple[int, int] | None = None
        self._buffer = b""
        self.plug_in()

    @property
    def plugged(self) -> bool:
        return self._pty is not None

    def plug_in(self) -> None:
        assert self._pty is None
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._pty = (master, slave)
        self._buffer = b""
        self._loop.add_reader(master, self._receive)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.symlink(os.ttyname(slave), self.path)

    def unplug(self) -> None:
        assert self._pty is not None
        master, slave = self._pty
        self._pty = None
        self._loop.remove_reader(master)
        os.unlink(self.path)
        os.close(master)  # the client's open port now fails with EIO
        os.close(slave)

    def close(self) -> None:
        if self._pty is not None:
            self.unplug()

    def _receive(self) -> None:
        assert self._pty is not None
        with contextlib.suppress(BlockingIOError, OSError):
            self._buffer += os.read(self._pty[0], 4096)
        while (frame := self._next_frame()) is not None:
            self._answer(frame)

    def _next_frame(self) -> bytes | None:
        data = self._buffer
        if len(data) < 8:
            return None
        function = data[1]
        if function in (3, 6):
            length = 8
        elif function == 16:
            if len(data) < 7:
                return None
            length = 9 + data[6]
        else:
            self._buffer = b""  # unknown function: resynchronise on the next request
            return None
        if len(data) < length:
            return None
        frame, self._buffer = data[:length], data[length:]
        if _crc16(frame[:-2]) != frame[-2:]:
            self._buffer = b""
            return None
        return frame

    def _answer(self, frame: bytes) -> None:
        unit = frame[0]
        if unit != self.sim.meter_unit_id and unit not in self.sim.inverter_units:
            return  # nobody at this address on the bus
        if frame[1] in (6, 16) and unit in self.unplug_at_write:
            if self.unplug_at_write.pop(unit):
                self.sim.handle_pdu(unit, frame[1:-2])
            self.unplug()
            return
        response = self.sim.handle_pdu(unit, frame[1:-2])
        if response is None or self._pty is None:
            return
        body = bytes((unit,)) + response
        delay = self.reply_delay_s.get(unit, 0.0)
        if delay > 0:
            self._loop.call_later(delay, self._send_late, body)
            return
        self.frames += 1
        os.write(self._pty[0], body + _crc16(body))

    def _send_late(self, body: bytes) -> None:
        if self._pty is None:
            return  # unplugged meanwhile
        self.frames += 1
        self.late_frames += 1
        with contextlib.suppress(OSError):
            os.write(self._pty[0], body + _crc16(body))


W_LIMIT = "input_number.pv1_limit"
"""The first entity inverter's limit, in W."""
PCT_LIMIT = "number.pv2_limit"
"""The second entity inverter's limit, in % (a template number over ``PCT_BACKING``)."""
PCT_BACKING = "input_number.pv2_limit_backing"
PV1_POWER = "sensor.pv1_power"
PV2_POWER = "sensor.pv2_power"
GRID = "sensor.grid_power"
POWER = {"device_class": "power"}


def set_power(hass: HomeAssistant, entity_id: str, value: Any, unit: str | None = "W") -> None:
    """Report a power sensor's state (``unit`` None: a sensor without a unit)."""
    attributes: dict[str, Any] = {**POWER}
    if unit is not None:
        attributes[ATTR_UNIT_OF_MEASUREMENT] = unit
    hass.states.async_set(entity_id, str(value), attributes)


class EntitySite:
    """Two entity inverters and a grid sensor driven by a small physics model."""

    def __init__(self, hass: HomeAssistant, load_w: float) -> None:
        self.hass = hass
        self.report_grid = True
        self.gen1 = Generator(2600.0, lambda: self._number(W_LIMIT), 0.8)
        self.gen2 = Generator(2400.0, lambda: self._number(PCT_BACKING) * 3000.0 / 100.0, 0.8)
        self.site = PeerSite(load_w=load_w, generators=[self.gen1, self.gen2], tick_s=0.1)
        self.site.sinks.append(self._publish)

    def _number(self, entity_id: str) -> float:
        """The limit in force; an unavailable number leaves the inverter where it was."""
        state = self.hass.states.get(entity_id)
        try:
            return float(state.state) if state is not None else 0.0
        except ValueError:
            return self.gen1.output_w if entity_id == W_LIMIT else self.gen2.output_w

    def _publish(self, grid_w: float) -> None:
        set_power(self.hass, PV1_POWER, round(self.gen1.output_w, 1))
        set_power(self.hass, PV2_POWER, round(self.gen2.output_w / 1000.0, 4), "kW")
        if self.report_grid:
            # Export shown as positive, in kW: the meter subentry says so.
            set_power(self.hass, GRID, round(-grid_w / 1000.0, 4), "kW")
