"""The physical site a procedure runs against: simulated physics under the real control core.

One SunSpec-like inverter and a grid meter over :class:`~sim.physics.SimSite`, read and
written in process (no Modbus: a ten-minute procedure must cost a second or two of CPU),
controlled by the real :class:`~core.cycle.ControlLoop` with the CSIP limiter as its only
limiter, exactly as the Home Assistant layer wires it: each cycle merges the limiter's
controls into setpoints, then feeds the limiter the cycle's measurements.

The test load the procedures' instructions attach is the household load of the simulated
site; :meth:`PhysicalSite.set_load` changes it at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from custom_components.dynamic_export.core.controller import Controller, ControllerSettings
from custom_components.dynamic_export.core.cycle import ControlLoop, CycleSnapshot
from custom_components.dynamic_export.core.measurements import (
    InverterCommand,
    InverterReading,
    MeterReading,
)
from custom_components.dynamic_export.core.write_policy import WritePolicy
from custom_components.dynamic_export.csip.limiter import CsipLimiter
from custom_components.dynamic_export.csip.telemetry import measurements_from_cycle
from custom_components.dynamic_export.sim.physics import (
    GRID_FREQUENCY_HZ,
    GRID_VOLTAGE_V,
    SimSite,
)
from custom_components.dynamic_export.sim.scenario import InverterSpec, Profile, Scenario

RATING_W = 5000.0
"""The inverter's rating: what ``maxExportW`` and ``maxImportW`` resolve to (setMaxW)."""
REVERT_S = 60.0
SUBSTEPS = 10
"""Physics steps per control cycle (0.1 s each)."""
SITE_VAR = 300.0
"""Reactive power the household draws (var), so the meter has some to report."""
INVERTER_VAR = -150.0


@dataclass(frozen=True, slots=True)
class Sample:
    """The true site at one second (after the physics step, before the cycle)."""

    t: float
    """Seconds on the fake clock (Unix time)."""
    export_w: float
    generation_w: float
    load_w: float
    available_w: float


class _Meter:
    """The site meter, read in process."""

    def __init__(self, site: SimSite, clock: PhysicalClock) -> None:
        self._site = site
        self._clock = clock

    async def async_read(self) -> MeterReading:
        power = float(round(self._site.meter.reported_power_w))
        return MeterReading(
            timestamp=self._clock.monotonic(),
            grid_power_w=power,
            phase_power_w=(power, None, None),
            voltage_v=GRID_VOLTAGE_V,
            frequency_hz=GRID_FREQUENCY_HZ,
            reactive_power_var=SITE_VAR,
            phase_voltage_v=(GRID_VOLTAGE_V, None, None),
        )


class _Inverter:
    """Inverter 0 of the simulated site, read and written in process."""

    revert_timeout_s = REVERT_S
    supports_connect = True
    limit_step_pct = 0.0

    def __init__(self, site: SimSite, clock: PhysicalClock) -> None:
        self._site = site
        self._clock = clock
        self.isolated = False
        """The tester opened its AC isolator: off the grid whatever it is told."""

    async def async_read(self) -> InverterReading:
        inv = self._site.inverters[0]
        if not inv.connected:
            status = "off"
        elif inv.throttled:
            status = "throttled"
        elif inv.output_w < 1.0 and inv.available_w < 1.0:
            status = "sleeping"  # no PV: a SunSpec inverter says St=2
        else:
            status = "mppt"
        return InverterReading(
            timestamp=self._clock.monotonic(),
            ac_power_w=float(round(inv.output_w)),  # SunSpec W: whole watts (W_SF 0)
            rated_power_w=inv.rated_power_w,
            limit_pct=inv.limit_pct,
            limit_enabled=inv.limit_enabled,
            connected=inv.connected,
            status=status,
            lifetime_energy_wh=inv.lifetime_energy_wh,
            reactive_power_var=INVERTER_VAR if inv.output_w > 0 else 0.0,
            phase_voltage_v=(GRID_VOLTAGE_V + 1.0, None, None),
            frequency_hz=GRID_FREQUENCY_HZ,
        )

    async def async_apply(self, command: InverterCommand) -> None:
        self._site.write_limit(0, limit_pct=command.limit_pct, enabled=True, revert_s=REVERT_S)
        connected = command.connect and not self.isolated
        self._site.write_conn(0, connected=connected, revert_s=REVERT_S)

    async def async_release(self) -> None:
        self._site.write_limit(0, enabled=False)
        self._site.write_conn(0, connected=not self.isolated)


class PhysicalClock:
    """The fake clock's time as the control loop wants it."""

    def __init__(self, now: float) -> None:
        self.t = now

    def monotonic(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


class PhysicalSite:
    """PV (``pv_w`` available), one inverter, a load, and the control loop over them."""

    def __init__(self, limiter: CsipLimiter, *, start: float, pv_w: float, load_w: float):
        scenario = Scenario(
            name="cactus",
            duration_s=1.0,
            inverters=(InverterSpec(rating_w=RATING_W, time_constant_s=1.0),),
            pv_available_w=Profile.constant(pv_w),
            load_w=Profile.constant(load_w),
        )
        self.sim = SimSite(scenario, start_s=0.0)
        self.clock = PhysicalClock(start)
        self._start = start
        self.limiter = limiter
        self.pv_w = pv_w
        self.inverter = _Inverter(self.sim, self.clock)
        self.meter = _Meter(self.sim, self.clock)
        self.loop = self._loop(limiter)
        self.samples: list[Sample] = []
        self.last: CycleSnapshot | None = None

    def _loop(self, limiter: CsipLimiter) -> ControlLoop:
        return ControlLoop(
            meter=self.meter,
            inverters={"inverter": self.inverter},
            ratings={"inverter": RATING_W},
            limiters=[limiter],
            controller=Controller(ControllerSettings()),
            write_policy=WritePolicy(),
            clock=self.clock.monotonic,
            wall_clock=self.clock.wall,
        )

    def restart(self, limiter: CsipLimiter) -> None:
        """Home Assistant restarted: a new loop and limiter; the inverter keeps its last
        limit on its revert timer meanwhile."""
        self.limiter = limiter
        self.loop = self._loop(limiter)

    def set_load(self, watts: float) -> None:
        """The test load changes now (held until changed again)."""
        self.sim.scenario = replace(self.sim.scenario, load_w=Profile.constant(watts))
        self.sim.load_w = watts

    def set_pv(self, watts: float) -> None:
        """The PV (the DER's power source) gives ``watts`` from now on."""
        self.sim.scenario = replace(self.sim.scenario, pv_available_w=Profile.constant(watts))

    def isolate(self, isolated: bool) -> None:
        """The tester opens (True) or closes the inverter's AC isolator."""
        self.inverter.isolated = isolated
        self.sim.write_conn(0, connected=not isolated, revert_s=0.0)

    def advance(self, seconds: float, *, settled: bool = False) -> None:
        """Physics for ``seconds`` (in 0.1 s steps), then one sample of the true site.

        ``settled``: PV, load and the inverter's commands hold over the whole time, so one
        step does (the inverter's lag is discretised exactly, whatever the step)."""
        steps = 1 if settled else max(1, round(seconds * SUBSTEPS))
        for _ in range(steps):
            self.sim.step(seconds / steps)
        self.clock.t += seconds
        self.samples.append(
            Sample(
                t=self.clock.t,
                export_w=self.sim.export_w,
                generation_w=self.sim.generation_w,
                load_w=self.sim.load_w,
                available_w=min(self.sim.available_w, RATING_W),
            )
        )

    async def cycle(self) -> CycleSnapshot:
        """One control cycle, then the limiter is told what it measured (as in HA)."""
        snapshot = await self.loop.async_run_cycle()
        devices = self.loop.site_devices()
        measurements = measurements_from_cycle(
            snapshot, devices.ratings, capability=devices.capability
        )
        await self.limiter.async_tick(snapshot.wall_time, measurements)
        self.last = snapshot
        return snapshot
