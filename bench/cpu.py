"""(f) CPU time per control cycle, with in-memory devices and over Modbus TCP on loopback.

The in-memory run drives the real :class:`ControlLoop` (controller, merge, allocation,
write policy) with fake devices whose async methods return readings built before the
timing starts, so only the loop's own work is timed. The readings change every cycle
and never report back what was written, so most cycles write to every inverter: the
busy case, an upper bound for a calm site.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from custom_components.dynamic_export.core.controller import Controller, ControllerSettings
from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.core.cycle import ControlLoop
from custom_components.dynamic_export.core.devices import Inverter
from custom_components.dynamic_export.core.measurements import (
    InverterCommand,
    InverterReading,
    MeterReading,
)
from custom_components.dynamic_export.core.write_policy import WritePolicy
from custom_components.dynamic_export.limiters.fixed import FixedLimiter

from .metrics import median, percentile
from .runner import run_scenario
from .scenarios import scenario_a

INVERTER_COUNTS = (1, 10, 50)
DEFAULT_CYCLES = {1: 5000, 10: 5000, 50: 2000}
WARMUP_CYCLES = 200
LOOPBACK_SECONDS = 60.0
STATES = 61  # distinct inverter readings per inverter, cycled (prime: no alignment)
RATINGS_W = (3000.0, 5000.0, 8200.0, 10000.0)


@dataclass(frozen=True, slots=True)
class CpuResult:
    """Timing of one inverter count."""

    inverters: int
    cycles: int
    median_ms: float
    p99_ms: float
    writes_per_cycle: float
    """Mean number of inverters written per cycle (the busy case: close to all)."""
    loopback_median_ms: float | None = None
    loopback_p99_ms: float | None = None
    loopback_cycles: int = 0


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _FakeMeter:
    def __init__(self, readings: list[MeterReading]) -> None:
        self.readings = readings
        self.index = 0

    async def async_read(self) -> MeterReading:
        return self.readings[self.index]


class _FakeInverter:
    def __init__(self, readings: list[InverterReading]) -> None:
        self.readings = readings
        self.index = 0
        self.applied = 0

    @property
    def revert_timeout_s(self) -> float:
        return 60.0

    @property
    def supports_connect(self) -> bool:
        return True

    @property
    def limit_step_pct(self) -> float:
        return 0.0

    async def async_read(self) -> InverterReading:
        return self.readings[self.index % len(self.readings)]

    async def async_apply(self, command: InverterCommand) -> None:
        self.applied += 1

    async def async_release(self) -> None:
        return None


async def time_in_memory(count: int, cycles: int, *, seed: int = 1) -> CpuResult:
    """Median and p99 wall time of ``async_run_cycle`` with ``count`` fake inverters."""
    rng = random.Random(seed)
    ratings = [RATINGS_W[i % len(RATINGS_W)] for i in range(count)]
    total = sum(ratings)
    fakes: dict[str, _FakeInverter] = {}
    for i, rating in enumerate(ratings):
        readings = [
            InverterReading(
                timestamp=0.0,
                ac_power_w=rating * rng.uniform(0.1, 0.9),
                rated_power_w=rating,
                limit_pct=rng.uniform(30.0, 100.0),
                limit_enabled=True,
                connected=True,
                status="mppt",
                lifetime_energy_wh=1e6,
            )
            for _ in range(STATES)
        ]
        fakes[f"inverter {i + 1}"] = _FakeInverter(readings)
    total_cycles = WARMUP_CYCLES + cycles
    meter = _FakeMeter(
        [
            MeterReading(
                timestamp=float(k),
                grid_power_w=total * rng.uniform(-0.3, 0.1),
                import_energy_wh=1e5,
                export_energy_wh=1e5,
            )
            for k in range(total_cycles)
        ]
    )
    clock = _Clock()
    inverters: dict[str, Inverter] = dict(fakes)
    loop = ControlLoop(
        meter=meter,
        inverters=inverters,
        ratings={key: ratings[i] for i, key in enumerate(fakes)},
        limiters=[FixedLimiter(source="export limit", settings=Controls(export_limit=1500.0))],
        controller=Controller(ControllerSettings()),
        write_policy=WritePolicy(),
        clock=clock,
    )
    durations: list[float] = []
    written = 0
    for k in range(total_cycles):
        clock.now = float(k)
        meter.index = k
        for fake in fakes.values():
            fake.index = k
        started = time.perf_counter()
        snapshot = await loop.async_run_cycle()
        elapsed = time.perf_counter() - started
        if k >= WARMUP_CYCLES:
            durations.append(elapsed)
            written += snapshot.writes
    return CpuResult(
        inverters=count,
        cycles=cycles,
        median_ms=1000.0 * median(durations),
        p99_ms=1000.0 * percentile(durations, 99),
        writes_per_cycle=written / cycles,
    )


async def time_loopback(count: int, seconds: float = LOOPBACK_SECONDS) -> tuple[float, float, int]:
    """(median ms, p99 ms, cycles) of full cycles over Modbus TCP on 127.0.0.1.

    Site (a) with its 10 kW split over ``count`` inverters, run in lock-step for
    ``seconds`` (it includes the 3 kW load drop at 30.5 s).
    """
    bench = scenario_a()
    result = await run_scenario(bench, sim=bench.sim.with_inverter_count(count), duration_s=seconds)
    walls = [c.wall_s for c in result.cycles]
    return 1000.0 * median(walls), 1000.0 * percentile(walls, 99), len(walls)


async def run_cpu(cycles: dict[int, int] | None = None) -> list[CpuResult]:
    """(f): in-memory timing for 1, 10 and 50 inverters, plus loopback for information."""
    results: list[CpuResult] = []
    for count in INVERTER_COUNTS:
        n = (cycles or DEFAULT_CYCLES).get(count, DEFAULT_CYCLES[count])
        memory = await time_in_memory(count, n)
        loop_median, loop_p99, loop_cycles = await time_loopback(count)
        results.append(
            CpuResult(
                inverters=memory.inverters,
                cycles=memory.cycles,
                median_ms=memory.median_ms,
                p99_ms=memory.p99_ms,
                writes_per_cycle=memory.writes_per_cycle,
                loopback_median_ms=loop_median,
                loopback_p99_ms=loop_p99,
                loopback_cycles=loop_cycles,
            )
        )
    return results
