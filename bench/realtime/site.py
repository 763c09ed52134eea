"""The simulated site on the wall clock, with a recording of what truly happened.

Physics steps on an exact 0.1 s grid of site time, each step taken when the wall clock reaches
it (a late tick catches up step by step, so the grid never drifts and a busy machine shows as
lateness, not as a changed physics). After every step the true values are sampled, and the
server's write log is drained, so nothing is lost however long the run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from custom_components.dynamic_export.sim.families import FamilyOptions
from custom_components.dynamic_export.sim.scenario import Scenario
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from ..metrics import possible_generation_w

STEP_S = 0.1


@dataclass(frozen=True, slots=True)
class Sample:
    """True site values at one instant of scenario time (after a physics step)."""

    t: float
    export_w: float
    generation_w: float
    load_w: float
    available_w: tuple[float, ...]
    """Per inverter: PV it could convert over the next step if unlimited (before its rating)."""
    possible_w: float
    export_limit_w: float | None
    setpoint_w: float
    """Sum of the limits in force in the inverters."""


@dataclass(frozen=True, slots=True)
class Write:
    """One write request the simulator accepted (scenario time)."""

    t: float
    unit: int
    address: int
    values: tuple[int, ...]
    limit_pct: float | None


@dataclass(slots=True)
class Recording:
    """Everything the site saw from the scenario's start on."""

    samples: list[Sample] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    late_ticks: int = 0
    max_lateness_s: float = 0.0


class RealtimeSite:
    """Serve ``scenario`` over Modbus TCP and step it in real time.

    ``family`` serves the inverters as that family (``sim/families.py``); a SolarEdge inverter
    starts with power control not yet committed, so the integration's set-up commits it once,
    and serves one Modbus client at a time (inverter and meter share the site's one).
    """

    def __init__(
        self, scenario: Scenario, export_limit_w: float | None, family: str | None = None
    ) -> None:
        self.export_limit_w = export_limit_w
        self.server = SimulatedSiteServer(
            scenario,
            host="127.0.0.1",
            port=0,
            autostep=False,
            family=family,
            family_options=FamilyOptions(),
            single_client=family == "solaredge",  # as the inverter: a newcomer knocks one off
        )
        self.scenario = self.server.site.scenario
        self.recording = Recording()
        self._task: asyncio.Task[None] | None = None
        self._recording = False

    @property
    def port(self) -> int:
        """The Modbus TCP port (after :meth:`start`)."""
        return self.server.port

    @property
    def scenario_time(self) -> float | None:
        """Seconds since the scenario started, None before."""
        start = self.server.site.inputs_from_s
        return None if start is None else self.server.site.now - start

    async def start(self) -> None:
        """Listen and start the physics clock; inputs hold their time-0 values for now."""
        await self.server.start()
        self.server.site.inputs_from_s = 1e9
        self._task = asyncio.create_task(self._ticks(), name="rtbench-physics")

    def begin_scenario(self) -> None:
        """Let the scenario's time 0 be now (on the step grid) and record from here on."""
        site = self.server.site
        site.inputs_from_s = round(site.now, 9)
        self.server.writes.clear()
        self._recording = True
        self._sample()

    async def stop(self) -> None:
        """Stop the clock and the server."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.server.stop()

    async def _ticks(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        step = 0
        while True:
            step += 1
            due = start + step * STEP_S
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            late = loop.time() - due
            if late > STEP_S:
                self.recording.late_ticks += 1
            self.recording.max_lateness_s = max(self.recording.max_lateness_s, late)
            site = self.server.site
            site.step(round(step * STEP_S, 9) - site.now)
            self.server.refresh()
            if self._recording:
                self._drain_writes()
                self._sample()

    def _drain_writes(self) -> None:
        start = self.server.site.inputs_from_s or 0.0
        while self.server.writes:
            t, unit, address, values = self.server.writes.popleft()
            pct = self.server.limit_write_pct(unit, address, values)
            self.recording.writes.append(
                Write(round(t - start, 9), unit, address, tuple(values), pct)
            )

    def _sample(self) -> None:
        site = self.server.site
        inputs_at = site.input_time(site.now)
        available = tuple(
            self.scenario.inverter_available_at(i, inputs_at) for i in range(len(site.inverters))
        )
        capped = sum(
            min(a, inv.rated_power_w) for a, inv in zip(available, site.inverters, strict=True)
        )
        self.recording.samples.append(
            Sample(
                t=round(site.now - (site.inputs_from_s or 0.0), 9),
                export_w=site.export_w,
                generation_w=site.generation_w,
                load_w=site.load_w,
                available_w=available,
                possible_w=possible_generation_w(capped, None, site.load_w, self.export_limit_w),
                export_limit_w=self.export_limit_w,
                setpoint_w=sum(inv.limit_w if inv.connected else 0.0 for inv in site.inverters),
            )
        )
