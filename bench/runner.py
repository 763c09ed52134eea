"""Run one scenario in lock-step: real controller, real device clients, simulated site.

The stack is built as the integration builds it (``runtime.async_build_runtime``): one
:class:`ConnectionPool`, a :class:`SunSpecDevice` per unit on the shared connection,
:class:`SunSpecInverter` (60 s revert timeout) and :class:`SunSpecMeter`, fixed limiters,
``Controller(ControllerSettings())`` and ``WritePolicy()`` with their defaults. The only
difference is the clock: the loop and the device clients read the simulator's clock, so
meter ages and ramp rates are in simulated seconds.

Lock-step: simulated time stands still while a control cycle runs. Between cycles the
site is advanced in 0.1 s substeps, and the true (undelayed) site values are sampled
after each substep. Every read and write still goes over Modbus TCP on 127.0.0.1.

``family`` serves the site's inverters as another family (see ``sim/families.py``) and drives
them with that family's client, as the integration's set-up builds it: SolarEdge (EDPC, the
60 s revert timeout as its command timeout; power control already committed, as on an
installed site; the site meter is the first inverter's meter 1, read through it), Sungrow
and Huawei (no revert timer), or one Victron GX for all the PV (ESS maximum feed-in) with
the GX's grid meter as the site meter, or GoodWe ET inverters through the ``goodwe`` library
over UDP 8899 (each at its own loopback address; their export limit, no revert timer). The
WiNet-S and SDongle pacing is left out: it only costs wall time, and
simulated time stands still meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from custom_components.dynamic_export.core.controller import (
    Controller,
    ControllerSettings,
    ControlState,
)
from custom_components.dynamic_export.core.cycle import ControlLoop
from custom_components.dynamic_export.core.devices import Inverter, SiteMeter
from custom_components.dynamic_export.core.write_policy import WritePolicy
from custom_components.dynamic_export.goodwe_inverter.client import GoodWeEtClient
from custom_components.dynamic_export.goodwe_inverter.inverter import GoodWeInverter
from custom_components.dynamic_export.huawei.inverter import HuaweiInverter
from custom_components.dynamic_export.limiters.fixed import FixedLimiter
from custom_components.dynamic_export.sim.families import FamilyOptions
from custom_components.dynamic_export.sim.physics import SimSite
from custom_components.dynamic_export.sim.scenario import FAMILIES, Scenario
from custom_components.dynamic_export.sim.server import SimulatedSiteServer
from custom_components.dynamic_export.solaredge.inverter import SolarEdgeInverter
from custom_components.dynamic_export.solaredge.meter import SolarEdgeMeter
from custom_components.dynamic_export.sungrow.inverter import SungrowInverter
from custom_components.dynamic_export.sunspec.connection import ConnectionPool, ModbusTcpConnection
from custom_components.dynamic_export.sunspec.device import SunSpecDevice
from custom_components.dynamic_export.sunspec.inverter import SunSpecInverter
from custom_components.dynamic_export.sunspec.meter import SunSpecMeter
from custom_components.dynamic_export.victron.inverter import VictronGxInverter
from custom_components.dynamic_export.victron.meter import VictronGridMeter

from .metrics import possible_generation_w
from .scenarios import BenchScenario

HOST = "127.0.0.1"
CONTROL_INTERVAL_S = 1.0
SUBSTEP_S = 0.1
REVERT_TIMEOUT_S = 60.0
WALL_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
GOODWE_TIMEOUT_S = 1.0
"""As the integration's set-up (``GOODWE_TIMEOUT_S``): a request waits 1 s, one retry."""
SUNSPEC = "sunspec"


@dataclass(frozen=True, slots=True)
class Sample:
    """True site values at one instant (after a substep)."""

    t: float
    export_w: float
    generation_w: float
    load_w: float
    available_w: float
    """PV the inverters could convert from now on, each capped at its rating."""
    possible_w: float
    export_limit_w: float | None
    generation_limit_w: float | None


@dataclass(frozen=True, slots=True)
class CycleRecord:
    """One control cycle as the bench saw it."""

    t: float
    wall_s: float
    """Wall-clock time of ``async_run_cycle`` (all its Modbus traffic included)."""
    setpoint_total_w: float
    """Sum of the limits in force in the inverters after the cycle's writes."""
    target_w: float
    constraint: str
    state: str
    inverters_written: int
    errors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One Modbus write request the simulator accepted."""

    t: float
    unit: int
    address: int
    values: tuple[int, ...]
    limit_pct: float | None
    """Decoded WMaxLimPct when the write set it, else None."""


@dataclass(slots=True)
class RunResult:
    """Everything a lock-step run produced."""

    key: str
    inverter_units: list[int]
    ratings_w: dict[int, float]
    family: str = SUNSPEC
    samples: list[Sample] = field(default_factory=list)
    cycles: list[CycleRecord] = field(default_factory=list)
    writes: list[WriteRecord] = field(default_factory=list)
    wall_s: float = 0.0


def _limits(limiters: dict[str, FixedLimiter]) -> tuple[float | None, float | None]:
    """Merged (export, generation) limit: the lowest of the enabled limiters."""
    export: float | None = None
    generation: float | None = None
    for limiter in limiters.values():
        if not limiter.enabled:
            continue
        s = limiter.settings
        if s.export_limit is not None:
            export = s.export_limit if export is None else min(export, s.export_limit)
        if s.generation_limit is not None:
            generation = (
                s.generation_limit if generation is None else min(generation, s.generation_limit)
            )
    return export, generation


def _sample(site: SimSite, limiters: dict[str, FixedLimiter]) -> Sample:
    # The PV each inverter will convert over the next substep (the physics holds it over
    # a step), so an input step at a sample time shows in that sample, as the load does.
    available = sum(
        min(site.scenario.inverter_available_at(i, site.now), inv.rated_power_w)
        for i, inv in enumerate(site.inverters)
    )
    export_limit, generation_limit = _limits(limiters)
    return Sample(
        t=site.now,
        export_w=site.export_w,
        generation_w=site.generation_w,
        load_w=site.load_w,
        available_w=available,
        possible_w=possible_generation_w(available, generation_limit, site.load_w, export_limit),
        export_limit_w=export_limit,
        generation_limit_w=generation_limit,
    )


def _setpoint_total(site: SimSite) -> float:
    return sum(inv.limit_w if inv.connected else 0.0 for inv in site.inverters)


async def _client(
    family: str,
    connection: ModbusTcpConnection,
    unit: int,
    server: SimulatedSiteServer,
    clock: Callable[[], float],
) -> tuple[Inverter, float]:
    """The client the integration builds for a device of ``family``, set up; and its rating."""
    if family == SUNSPEC:
        sunspec = SunSpecInverter(
            SunSpecDevice(connection, unit), revert_timeout_s=REVERT_TIMEOUT_S, clock=clock
        )
        return sunspec, (await sunspec.async_setup()).rated_power_w
    if family == "solaredge":
        solaredge = SolarEdgeInverter(
            connection, unit, revert_timeout_s=REVERT_TIMEOUT_S, clock=clock
        )
        return solaredge, (await solaredge.async_setup()).rated_power_w
    if family.startswith("sungrow"):
        sungrow = SungrowInverter(connection, unit, clock=clock)
        return sungrow, (await sungrow.async_setup()).rated_power_w
    if family == "huawei":
        huawei = HuaweiInverter(connection, unit, clock=clock)
        return huawei, (await huawei.async_setup()).rated_power_w
    if family == "goodwe":
        host = server.goodwe_hosts[unit]
        goodwe = GoodWeInverter(
            GoodWeEtClient(host, timeout_s=GOODWE_TIMEOUT_S, retries=1), clock=clock
        )
        return goodwe, (await goodwe.async_setup()).rated_power_w
    gx_unit = server.vendor_units[unit]
    rating = sum(server.site.inverters[i].rated_power_w for i in gx_unit.indices)
    gx = VictronGxInverter(connection, rated_power_w=rating, clock=clock)
    await gx.async_setup()
    return gx, rating


async def run_scenario(
    bench: BenchScenario,
    *,
    sim: Scenario | None = None,
    duration_s: float | None = None,
    progress: Callable[[str], None] | None = None,
    family: str = SUNSPEC,
) -> RunResult:
    """Run ``bench`` (or another ``sim`` site with its limiters) and record what happened.

    ``family``: serve and drive the site's inverters as that family (see the module doc).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} (one of {', '.join(FAMILIES)})")
    scenario = sim or bench.sim
    if family != SUNSPEC:
        scenario = scenario.with_family(family)
    duration = duration_s if duration_s is not None else scenario.duration_s
    started = time.perf_counter()
    # One physics step per substep: the lag is discretised exactly, so the step size does
    # not change the result, and a substep a hair over 0.1 s is not split (the server
    # would drop the remainder and the clock would drift off the x.x s grid).
    server = SimulatedSiteServer(
        scenario,
        host=HOST,
        port=0,
        autostep=False,
        max_step_s=2 * SUBSTEP_S,
        family_options=FamilyOptions(solaredge_committed=True),
    )
    async with server:
        site = server.site

        def clock() -> float:
            return site.now

        def wall_clock() -> datetime:
            return WALL_EPOCH + timedelta(seconds=site.now)

        pool = ConnectionPool()
        try:
            connection = pool.get(HOST, server.port)
            meter: SiteMeter
            if family == "victron":
                grid_unit = server.victron_grid_unit_id
                assert grid_unit is not None
                grid = VictronGridMeter(connection, grid_unit, clock=clock)
                await grid.async_setup()
                meter = grid
            elif family == "solaredge":  # its meter 1, through the inverter's connection
                se_unit = server.solaredge_meter_unit_id
                assert se_unit is not None
                se_meter = SolarEdgeMeter(connection, se_unit, 1, clock=clock)
                await se_meter.async_setup()
                meter = se_meter
            else:
                sunspec_meter = SunSpecMeter(
                    SunSpecDevice(connection, server.meter_unit_id), clock=clock
                )
                await sunspec_meter.async_setup()
                meter = sunspec_meter
            inverters: dict[str, Inverter] = {}
            ratings: dict[str, float] = {}
            units: dict[str, int] = {}
            for unit_family, unit in server.device_units:
                client, rating = await _client(unit_family, connection, unit, server, clock)
                key = f"inverter {unit}"
                inverters[key], ratings[key], units[key] = client, rating, unit
            limiters = {
                name: FixedLimiter(source=name, settings=controls)
                for name, controls in bench.limiters
            }
            loop = ControlLoop(
                meter=meter,
                inverters=inverters,
                ratings=ratings,
                limiters=list(limiters.values()),
                controller=Controller(ControllerSettings()),
                write_policy=WritePolicy(),
                clock=clock,
                wall_clock=wall_clock,
            )
            result = RunResult(
                key=bench.key,
                inverter_units=list(units.values()),
                ratings_w={units[k]: r for k, r in ratings.items()},
                family=family,
            )
            server.writes.clear()  # set-up only reads, but start from a clean log

            async def cycle() -> None:
                t0 = time.perf_counter()
                snapshot = await loop.async_run_cycle()
                wall = time.perf_counter() - t0
                # The server keeps only its last 1000 writes: move them out every cycle.
                while server.writes:
                    t, unit, address, values = server.writes.popleft()
                    pct = server.limit_write_pct(unit, address, values)
                    result.writes.append(WriteRecord(t, unit, address, tuple(values), pct))
                errors = [f"meter: {snapshot.meter_error}"] if snapshot.meter_error else []
                errors += [
                    f"{key}: {status.error}"
                    for key, status in snapshot.inverters.items()
                    if status.error
                ]
                errors += [f"{k}: {v}" for k, v in snapshot.limiter_errors.items()]
                if snapshot.state is ControlState.FAIL_SAFE:
                    errors.append(f"fail-safe: {snapshot.plan.fail_safe_reason}")
                result.cycles.append(
                    CycleRecord(
                        t=site.now,
                        wall_s=wall,
                        setpoint_total_w=_setpoint_total(site),
                        target_w=snapshot.plan.generation_target_w,
                        constraint=snapshot.plan.constraint.value,
                        state=snapshot.state.value,
                        inverters_written=snapshot.writes,
                        errors=tuple(errors),
                    )
                )

            changes = sorted(bench.changes, key=lambda c: c.t)
            substeps = round(CONTROL_INTERVAL_S / SUBSTEP_S)
            cycles = round(duration / CONTROL_INTERVAL_S)
            result.samples.append(_sample(site, limiters))
            await cycle()
            for k in range(cycles):
                for j in range(1, substeps + 1):
                    # Aim at exact decimal times so steps at x.5 s land on a sample.
                    target = round((k * substeps + j) * SUBSTEP_S, 9)
                    server.advance(target - site.now)
                    while changes and changes[0].t <= site.now + 1e-9:
                        change = changes.pop(0)
                        limiters[change.limiter].set_limit(change.control, change.watts)
                    result.samples.append(_sample(site, limiters))
                await cycle()
                if progress is not None and (k + 1) % 30 == 0:
                    progress(f"{bench.key}: {site.now:.0f}/{duration:.0f} s")
        finally:
            await pool.close()
    result.wall_s = time.perf_counter() - started
    return result
