"""``scripts/bench --realtime``: the integration in a real Home Assistant, in real time.

Usage: ``scripts/bench --realtime [--scenario KEY[,KEY…]] [--family F[,F…]|all] [--minutes N]
[--export-limit W] [--json PATH] [--keep]``. Each scenario (and family) starts its own Home
Assistant; expect the minutes asked for plus about a minute of set-up per run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from homeassistant.const import __version__ as ha_version

from ..report import Check
from .hass import INVERTER_STEPS, SITE_ID, HomeAssistant, StateCounter, cpu_seconds
from .scenarios import SCENARIOS, RealtimeScenario
from .score import Figures, Series, checks, ratio, score, scored_drops, step_times
from .site import RealtimeSite, Recording
from .tracker import TrackerInputs, run_tracker

WARMUP_S = 20.0
PROGRESS_EVERY_S = 30.0


def _progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench --realtime",
        description="Run the integration inside a real Home Assistant against the simulated "
        "site in real time, and score it beside the perfect reactive tracker.",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="KEY",
        help=f"run only these ({', '.join(SCENARIOS)}); default: all, about 4 min each",
    )
    parser.add_argument(
        "--family",
        action="append",
        metavar="F",
        help=f"inverter family ({', '.join(INVERTER_STEPS)}, or all); default sunspec",
    )
    parser.add_argument("--minutes", type=float, default=3.0, help="measured minutes (3)")
    parser.add_argument(
        "--export-limit",
        type=float,
        default=None,
        metavar="W",
        help="export limit of the fixed limiter (default: the scenario's, 1500; 0: zero export)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write raw data here")
    parser.add_argument("--keep", action="store_true", help="keep Home Assistant's config dir")
    return parser


async def _busy(cpus: int) -> list[asyncio.subprocess.Process]:
    """Processes that each keep one CPU busy."""
    return [
        await asyncio.create_subprocess_exec(sys.executable, "-c", "while True: pass")
        for _ in range(cpus)
    ]


async def run_one(
    bench: RealtimeScenario,
    minutes: float,
    export_limit: float | None,
    keep: bool,
    family: str = "sunspec",
) -> dict[str, Any]:
    """Run one scenario end to end with the inverter as ``family``; its raw data and figures."""
    scenario = bench.sim()
    limit = export_limit if export_limit is not None else scenario.export_limit_w
    duration = minutes * 60.0
    limit_text = "none" if limit is None else f"{limit:g} W"
    site = RealtimeSite(scenario, limit, family)
    hass = HomeAssistant(keep=keep, log=_progress)
    counter = StateCounter(hass)
    busy: list[asyncio.subprocess.Process] = []
    info: dict[str, Any] = {"config_dir": str(hass.config_dir)}
    await site.start()
    try:
        t0 = time.monotonic()
        _progress(f"{bench.key}: starting Home Assistant {ha_version} in {hass.config_dir}")
        await hass.start()
        _progress(f"{bench.key}: up after {time.monotonic() - t0:.0f} s; onboarding, flows")
        await hass.onboard()
        await hass.configure(
            modbus_port=site.port,
            export_limit_w=limit,
            family=family,
            pv_rating_w=sum(inv.rating_w for inv in scenario.inverters),
            goodwe_host=next(iter(site.server.goodwe_hosts.values()), None),
        )
        await hass.wait_state(f"sensor.{SITE_ID}_control_state", "controlling")
        entities = await hass.entity_ids()
        await counter.start()
        _progress(f"{bench.key}: controlling ({len(entities)} entities); {WARMUP_S:.0f} s warm-up")
        await asyncio.sleep(WARMUP_S)
        busy = await _busy(bench.busy_cpus)
        site.begin_scenario()
        requests_before = dict(site.server.write_requests)
        knocked_before = site.server.knocked_off
        cpu_before = cpu_seconds(hass.pid or 0)
        counter.counting = True
        start_ts = time.time()
        next_progress = PROGRESS_EVERY_S
        while (site.scenario_time or 0.0) < duration:
            await asyncio.sleep(0.2)
            now = site.scenario_time or 0.0
            if now >= next_progress:
                next_progress += PROGRESS_EVERY_S
                last = site.recording.samples[-1]
                writes = sum(site.server.write_requests.values()) - sum(requests_before.values())
                _progress(
                    f"{bench.key}: {now:4.0f}/{duration:.0f} s  export {last.export_w:6.0f} W "
                    f"(limit {limit_text})  writes {writes}  "
                    f"states {sum(counter.counts.values())}"
                )
        counter.counting = False
        end_ts = time.time()
        cpu_after = cpu_seconds(hass.pid or 0)
        requests = {
            unit: n - requests_before.get(unit, 0) for unit, n in site.server.write_requests.items()
        }
        for process in busy:
            process.kill()
            await process.wait()
        busy = []
        entities |= await hass.entity_ids()
        await counter.stop()
        await hass.stop()
        rows = hass.recorder_rows(entities, start_ts, end_ts)
        info.update(
            measured_wall_s=end_ts - start_ts,
            ha_cpu_s=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
            write_requests=requests,
            knocked_off=site.server.knocked_off - knocked_before,
            state_events={k: v for k, v in counter.counts.items() if k in entities},
            recorder_rows=rows,
            entities=sorted(entities),
        )
    except BaseException:
        _progress(f"{bench.key}: failed; Home Assistant's last output:\n{hass.tail()}")
        raise
    finally:
        for process in busy:
            process.kill()
            await process.wait()
        await counter.stop()
        await hass.stop()
        await site.stop()
        hass.cleanup()
    result = _evaluate(bench, scenario.inverters, site.recording, duration, limit, info)
    result["family"] = family
    return result


def _evaluate(
    bench: RealtimeScenario,
    inverters: Any,
    recording: Recording,
    duration: float,
    limit: float | None,
    info: dict[str, Any],
) -> dict[str, Any]:
    samples = [s for s in recording.samples if s.t <= duration + 1e-9]
    scenario = bench.sim()
    loads = [(e.t, e.delta_w) for e in scenario.events if e.type == "load_step"]
    steps = step_times(loads, duration)
    drops = scored_drops(loads, duration)
    ratings = [inv.rating_w for inv in inverters]
    total = sum(ratings)
    run_series = Series(
        times=[s.t for s in samples],
        export_w=[s.export_w for s in samples],
        generation_w=[s.generation_w for s in samples],
        possible_w=[s.possible_w for s in samples],
        export_limit_w=[s.export_limit_w for s in samples],
        setpoint_w=[s.setpoint_w for s in samples],
    )
    tracked = run_tracker(
        TrackerInputs(
            times=run_series.times,
            load_w=[s.load_w for s in samples],
            available_w=[s.available_w for s in samples],
            export_limit_w=run_series.export_limit_w,
            generation_limit_w=[None] * len(samples),
        ),
        ratings,
        [inv.time_constant_s for inv in inverters],
    )
    tracker_series = Series(
        times=tracked.times,
        export_w=tracked.export_w,
        generation_w=tracked.generation_w,
        possible_w=run_series.possible_w,
        export_limit_w=run_series.export_limit_w,
        setpoint_w=tracked.setpoint_w,
    )
    # Inputs that step exactly at a sample (load steps, the load noise's period boundaries) are
    # integrated as steps, as the lock-step bench does for its steps.
    jumps = sorted({t for t, _ in loads} | _noise_jumps(scenario, duration))
    kwargs: dict[str, Any] = {
        "drops": drops,
        "steps": steps,
        "total_rating_w": total,
        "jumps": jumps,
    }
    run = score(run_series, **kwargs)
    floor = score(tracker_series, **kwargs)
    minutes = duration / 60.0
    units = len(ratings)
    requests = info["write_requests"]
    run.write_requests_per_min_per_inverter = (
        sum(n for unit, n in requests.items() if unit != 240) / units / minutes
    )
    limit_writes = [w for w in recording.writes if w.limit_pct is not None and w.t <= duration]
    run.limit_writes_per_min_per_inverter = len(limit_writes) / units / minutes
    hours = info["measured_wall_s"] / 3600.0
    run.state_writes_per_hour = sum(info["state_events"].values()) / hours
    run.recorder_rows_per_hour = info["recorder_rows"] / hours
    run.extra = {
        "late_ticks": float(recording.late_ticks),
        "max_tick_lateness_s": recording.max_lateness_s,
        "ha_cpu_pct": 100.0 * (info["ha_cpu_s"] or 0.0) / info["measured_wall_s"],
    }
    result_checks = checks(run, floor, load_noise=scenario.load_noise is not None)
    return {
        "key": bench.key,
        "title": bench.title,
        "export_limit_w": limit,
        "minutes": minutes,
        "drops": drops,
        "steps": steps,
        "run": asdict(run),
        "tracker": asdict(floor),
        "checks": [asdict(c) for c in result_checks],
        "info": info,
        "raw": {
            "samples": [asdict(s) for s in samples],
            "writes": [asdict(w) for w in recording.writes],
            "tracker_export_w": tracked.export_w,
            "tracker_generation_w": tracked.generation_w,
        },
        "_figures": (run, floor, result_checks),
    }


def _noise_jumps(scenario: Any, duration: float) -> set[float]:
    noise = scenario.load_noise
    if noise is None:
        return set()
    count = int(duration / noise.period_s) + 1
    return {round(k * noise.period_s, 9) for k in range(1, count)}


def _fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def _known_mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _mean(values: list[float | None]) -> str:
    if not values:
        return "– (no drop)"
    mean = _known_mean(values)
    return "never" if mean is None else f"{mean:.1f} s"


def _comply(figures: Figures) -> str:
    if figures.comply_mean_s is None:
        return "– (no drop)"
    never = sum(c is None for c in figures.comply_s)
    text = f"{figures.comply_mean_s:.1f} / {figures.comply_max_s:.1f} s"
    return text + (f" ({never} never)" if never else "")


def print_result(result: dict[str, Any]) -> None:
    """One scenario's figures beside the tracker's, with the ratio and the targets."""
    run, floor, result_checks = result["_figures"]
    limit = result["export_limit_w"]
    print(
        f"## {result['key']} ({result.get('family', 'sunspec')}): {result['title']} — export limit "
        f"{'none' if limit is None else f'{limit:g} W'}, "
        f"{result['minutes']:g} min, {len(result['drops'])} large drops"
    )
    print()
    print("| figure | this run | perfect reactive tracker | ratio |")
    print("| --- | --- | --- | --- |")
    rows: list[tuple[str, str, str, str]] = [
        (
            "energy exported above the limit",
            _fmt(run.energy_above_wh, " Wh"),
            _fmt(floor.energy_above_wh, " Wh"),
            ratio(run.energy_above_wh, floor.energy_above_wh),
        ),
        (
            "worst excess",
            _fmt(run.worst_excess_w, " W", 0),
            _fmt(floor.worst_excess_w, " W", 0),
            ratio(run.worst_excess_w, floor.worst_excess_w),
        ),
        (
            "time above limit + 50 W",
            _fmt(run.above_band_pct, " %", 1),
            _fmt(floor.above_band_pct, " %", 1),
            ratio(run.above_band_pct, floor.above_band_pct),
        ),
        (
            "time to comply after a drop, mean / max",
            _comply(run),
            _comply(floor),
            ratio(run.comply_mean_s, floor.comply_mean_s),
        ),
        (
            "after a drop, first within limit + 50 W (no hold), mean",
            _mean(run.first_within_s),
            _mean(floor.first_within_s),
            ratio(_known_mean(run.first_within_s), _known_mean(floor.first_within_s)),
        ),
        (
            "curtailed beyond need",
            f"{run.curtailed_pct:.2f} % ({run.curtailed_wh:.1f} Wh)",
            f"{floor.curtailed_pct:.2f} % ({floor.curtailed_wh:.1f} Wh)",
            ratio(run.curtailed_pct, floor.curtailed_pct),
        ),
        (
            "direction reversals (total; max per large step)",
            f"{run.reversals}; {run.reversals_max_per_step}",
            f"{floor.reversals}; {floor.reversals_max_per_step}",
            ratio(float(run.reversals), float(floor.reversals)),
        ),
        (
            "Modbus write requests /min/inverter (limit writes)",
            f"{run.write_requests_per_min_per_inverter:.1f} "
            f"({run.limit_writes_per_min_per_inverter:.1f})",
            "600 (every 0.1 s)",
            "–",
        ),
        (
            "state writes /h: state_changed events (recorder rows)",
            f"{run.state_writes_per_hour:.0f} ({run.recorder_rows_per_hour:.0f})",
            "–",
            "–",
        ),
        (
            "Home Assistant CPU; physics ticks late > 0.1 s (max lateness)",
            f"{run.extra['ha_cpu_pct']:.1f} %; {run.extra['late_ticks']:.0f} "
            f"({run.extra['max_tick_lateness_s'] * 1000:.0f} ms)",
            "–",
            "–",
        ),
    ]
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    for check in result_checks:
        verdict = "PASS" if check.passed else "FAIL"
        print(f"- {verdict}: {check.name} {check.value} (target {check.target})")
    if "load_average_before" in result:
        print(
            f"- load average before {result['load_average_before']}, after "
            f"{result['load_average_after']} (2 CPUs shared: real-time figures depend on it)"
        )
    if result.get("kept"):
        print(f"- Home Assistant's config dir (recorder database, log) kept: {result['kept']}")
    print()


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text(encoding="ascii").split()[:3])
    except OSError:
        return "unknown"


async def _main(
    keys: list[str], families: list[str], args: argparse.Namespace
) -> list[dict[str, Any]]:
    results = []
    for family in families:
        for key in keys:
            before = _load()
            _progress(f"scenario {key} ({family}): {SCENARIOS[key].title}; load average {before}")
            result = await run_one(
                SCENARIOS[key], args.minutes, args.export_limit, args.keep, family
            )
            result["load_average_before"] = before
            result["load_average_after"] = _load()
            if args.keep:
                result["kept"] = result["info"]["config_dir"]
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios asked for and print their figures; exit 0 even when a target is missed."""
    parser = _parser()
    args = parser.parse_args(argv)
    keys = [k.strip() for item in args.scenario or [",".join(SCENARIOS)] for k in item.split(",")]
    unknown = [k for k in keys if k not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)} (choose from {', '.join(SCENARIOS)})")
    if args.minutes <= 0:
        parser.error("--minutes must be > 0")
    families = [
        f.strip() for item in args.family or ["sunspec"] for f in item.split(",") if f.strip()
    ]
    if "all" in families:
        families = list(INVERTER_STEPS)
    wrong = [f for f in families if f not in INVERTER_STEPS]
    if wrong:
        parser.error(f"unknown family {', '.join(wrong)} (choose from {', '.join(INVERTER_STEPS)})")
    load_before = _load()
    started = time.perf_counter()
    results = asyncio.run(_main(keys, families, args))
    print("# Dynamic Export real-time benchmark")
    print()
    print(
        f"Method: Home Assistant {ha_version} in a subprocess (recorder on, SQLite), configured "
        "through its flows: a site at 1 s, one inverter of the family named in each heading "
        "(SunSpec, SolarEdge, Sungrow, Huawei, GoodWe over UDP, or a Victron GX for the PV) and "
        "a SunSpec meter "
        "(the GX's grid meter with a GX, the inverter's meter 1 with a SolarEdge) on the "
        "simulated site over Modbus TCP on 127.0.0.1, one "
        "fixed limiter. The site steps every "
        "0.1 s on the wall clock; true values are sampled every 0.1 s. The perfect reactive "
        "tracker replays the same recorded inputs, setting the ideal limit every 0.1 s with no "
        "delay, through the same inverter lag. Time to comply: export within limit + 50 W held "
        "for 5 s after each 3 kW load drop (with at least 20 s of run after it)."
    )
    print()
    for result in results:
        print_result(result)
    all_checks: list[Check] = [c for r in results for c in r["_figures"][2]]
    missed = [c for c in all_checks if not c.passed]
    print(f"Targets: {len(all_checks) - len(missed)} of {len(all_checks)} met")
    print(
        f"Elapsed: {time.perf_counter() - started:.0f} s wall on {os.cpu_count()} CPU(s), "
        f"Python {platform.python_version()}; load average before {load_before}, after "
        f"{_load()} (real-time figures depend on what else the machine does)"
    )
    if args.json is not None:
        payload = {
            "ha_version": ha_version,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load_average_before": load_before,
            "scenarios": [{k: v for k, v in r.items() if k != "_figures"} for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
        print(f"Raw results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
