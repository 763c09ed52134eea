"""Site physics: inverters that obey limits with a lag, and a meter that sees the result.

Pure and deterministic: time only moves when :meth:`SimSite.step` is called, so the
same code runs under the real-time Modbus server and in faster-than-real-time
benchmarks.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .scenario import Scenario

GRID_VOLTAGE_V = 230.0
GRID_FREQUENCY_HZ = 50.0


@dataclass(slots=True)
class SimInverter:
    """One inverter and the state of its SunSpec model-123 controls.

    ``limit_pct`` is a share of ``rated_power_w`` (WMax). A revert time of 0
    means the setting stays until written again.
    """

    rated_power_w: float
    time_constant_s: float = 1.0
    output_w: float = 0.0
    available_w: float = 0.0
    lifetime_energy_wh: float = 0.0
    connected: bool = True
    limit_pct: float = 100.0
    limit_enabled: bool = False
    limit_revert_s: float = 0.0
    conn_revert_s: float = 0.0
    last_limit_write_s: float | None = None
    last_conn_write_s: float | None = None

    @property
    def limit_w(self) -> float:
        """The output ceiling set by the limit controls alone."""
        if not self.limit_enabled:
            return self.rated_power_w
        return self.rated_power_w * self.limit_pct / 100.0

    @property
    def throttled(self) -> bool:
        """True while an enabled limit below 100 % is in force."""
        return self.connected and self.limit_enabled and self.limit_pct < 100.0

    def ceiling_w(self, available_w: float) -> float:
        """What the inverter would settle at with ``available_w`` of PV."""
        if not self.connected:
            return 0.0
        return max(0.0, min(available_w, self.rated_power_w, self.limit_w))

    def settle(self, available_w: float) -> None:
        """Jump straight to steady state (used when a run starts)."""
        self.available_w = available_w
        self.output_w = self.ceiling_w(available_w)

    def apply_reverts(self, now: float) -> None:
        """Drop settings whose revert timer has run out at time ``now``."""
        if (
            self.limit_enabled
            and self.limit_revert_s > 0
            and self.last_limit_write_s is not None
            and now - self.last_limit_write_s >= self.limit_revert_s
        ):
            self.limit_enabled = False
        if (
            not self.connected
            and self.conn_revert_s > 0
            and self.last_conn_write_s is not None
            and now - self.last_conn_write_s >= self.conn_revert_s
        ):
            self.connected = True

    def step(self, dt: float, available_w: float) -> None:
        """Advance ``dt`` seconds with ``available_w`` of PV held over the step.

        Output follows the ceiling as a first-order lag, discretised exactly, so
        the result does not depend on the step size. Opening the grid relay
        (disconnect) cuts output at once.
        """
        self.available_w = available_w
        previous = self.output_w
        ceiling = self.ceiling_w(available_w)
        if not self.connected or self.time_constant_s <= 0:
            self.output_w = ceiling
            energy_ws = ceiling * dt
        else:
            alpha = 1.0 - math.exp(-dt / self.time_constant_s)
            self.output_w = previous + (ceiling - previous) * alpha
            # Exact integral of the lag's output over the step.
            energy_ws = ceiling * dt + (previous - ceiling) * self.time_constant_s * alpha
        self.lifetime_energy_wh += energy_ws / 3600.0

    def write_limit(
        self,
        now: float,
        *,
        limit_pct: float | None = None,
        enabled: bool | None = None,
        revert_s: float | None = None,
    ) -> None:
        """A client wrote the limit controls; any such write restarts the revert timer."""
        if limit_pct is not None:
            self.limit_pct = min(max(limit_pct, 0.0), 100.0)
        if enabled is not None:
            self.limit_enabled = enabled
        if revert_s is not None:
            self.limit_revert_s = max(revert_s, 0.0)
        self.last_limit_write_s = now

    def write_conn(
        self, now: float, *, connected: bool | None = None, revert_s: float | None = None
    ) -> None:
        """A client wrote the connect controls; restarts the reconnect timer."""
        if connected is not None:
            self.connected = connected
        if revert_s is not None:
            self.conn_revert_s = max(revert_s, 0.0)
        self.last_conn_write_s = now


@dataclass(slots=True)
class SimMeter:
    """The grid meter: +import/−export, reporting what it measured ``delay_s`` ago."""

    delay_s: float = 0.0
    grid_power_w: float = 0.0
    import_energy_wh: float = 0.0
    export_energy_wh: float = 0.0
    _history: deque[tuple[float, float]] = field(default_factory=deque, repr=False)

    def record(
        self, now: float, grid_power_w: float, dt: float = 0.0, noise_w: float = 0.0
    ) -> None:
        """Store the true grid power at ``now`` and count energy over the last ``dt``.

        ``noise_w`` is the meter's measurement error at ``now``: it is in what the meter
        reports, not in the true power or the energy counters.
        """
        if dt > 0:
            energy = (self.grid_power_w + grid_power_w) / 2.0 * dt / 3600.0
            if energy >= 0:
                self.import_energy_wh += energy
            else:
                self.export_energy_wh -= energy
        self.grid_power_w = grid_power_w
        self._history.append((now, grid_power_w + noise_w))
        cutoff = now - self.delay_s
        while len(self._history) > 1 and self._history[1][0] <= cutoff:
            self._history.popleft()

    @property
    def reported_power_w(self) -> float:
        """What the meter shows now: the newest sample at least ``delay_s`` old."""
        if not self._history:
            return self.grid_power_w
        return self._history[0][1]


class SimSite:
    """A site built from a scenario: inverters, a household load and a grid meter."""

    def __init__(self, scenario: Scenario, *, start_s: float = 0.0) -> None:
        self.scenario = scenario
        self.now = start_s
        self.inputs_from_s: float | None = None
        """When set: the scenario's time 0 falls at this site time, and its inputs hold their
        time-0 values until then (a real-time run lets its controller settle first)."""
        self.inverters = [
            SimInverter(rated_power_w=spec.rating_w, time_constant_s=spec.time_constant_s)
            for spec in scenario.inverters
        ]
        self.meter = SimMeter(delay_s=scenario.meter_delay_s)
        self.step_hooks: list[Callable[[SimSite, float], None]] = []
        """Device behaviour that acts on its own time (a fallback timer, a ramp, a GX's PV
        limiter): called with the site and ``dt`` at the start of every step, before the
        inverters move."""
        for index, inverter in enumerate(self.inverters):
            inverter.settle(scenario.inverter_available_at(index, start_s))
        self.load_w = scenario.load_at(start_s)
        self.meter.record(
            start_s, self.load_w - self.generation_w, noise_w=scenario.meter_noise_at(start_s)
        )

    def input_time(self, now: float) -> float:
        """The time the scenario's inputs are taken at for site time ``now``."""
        if self.inputs_from_s is None:
            return now
        return max(0.0, now - self.inputs_from_s)

    @property
    def generation_w(self) -> float:
        """Total inverter output now."""
        return sum(inv.output_w for inv in self.inverters)

    @property
    def available_w(self) -> float:
        """Total PV the inverters could use now if nothing limited them."""
        return sum(inv.available_w for inv in self.inverters)

    @property
    def grid_power_w(self) -> float:
        """True grid power now (+import/−export), without the meter's delay."""
        return self.meter.grid_power_w

    @property
    def export_w(self) -> float:
        """True export now (negative while importing)."""
        return -self.meter.grid_power_w

    def step(self, dt: float) -> None:
        """Advance the whole site by ``dt`` seconds."""
        if dt <= 0:
            return
        inputs_at = self.input_time(self.now)
        for hook in self.step_hooks:
            hook(self, dt)
        for index, inverter in enumerate(self.inverters):
            inverter.apply_reverts(self.now)
            inverter.step(dt, self.scenario.inverter_available_at(index, inputs_at))
        self.now += dt
        for inverter in self.inverters:
            inverter.apply_reverts(self.now)
        inputs_at = self.input_time(self.now)
        self.load_w = self.scenario.load_at(inputs_at)
        self.meter.record(
            self.now, self.load_w - self.generation_w, dt, self.scenario.meter_noise_at(inputs_at)
        )

    def run(self, duration_s: float, dt: float = 0.1) -> None:
        """Step repeatedly for ``duration_s`` seconds (the last step may be shorter)."""
        end = self.now + duration_s
        while self.now < end - 1e-9:
            self.step(min(dt, end - self.now))

    def write_limit(
        self,
        index: int,
        *,
        limit_pct: float | None = None,
        enabled: bool | None = None,
        revert_s: float | None = None,
    ) -> None:
        """Apply a client's write to inverter ``index``'s limit controls, now."""
        self.inverters[index].write_limit(
            self.now, limit_pct=limit_pct, enabled=enabled, revert_s=revert_s
        )

    def write_conn(
        self, index: int, *, connected: bool | None = None, revert_s: float | None = None
    ) -> None:
        """Apply a client's write to inverter ``index``'s connect controls, now."""
        self.inverters[index].write_conn(self.now, connected=connected, revert_s=revert_s)

    def status_line(self) -> str:
        """One human-readable line describing the site now."""
        parts = [
            f"t={self.now:7.1f}s",
            f"pv={self.available_w:6.0f}W",
            f"load={self.load_w:6.0f}W",
            f"grid={self.meter.reported_power_w:+6.0f}W",
        ]
        for number, inv in enumerate(self.inverters, start=1):
            if not inv.connected:
                limit = "off"
            elif inv.limit_enabled:
                limit = f"{inv.limit_pct:.0f}%"
            else:
                limit = "-"
            parts.append(f"inv{number}={inv.output_w:5.0f}W lim={limit}")
        return " ".join(parts)
