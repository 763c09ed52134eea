"""The control cycle over fake devices: order, faults, monitor-only and writes."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from custom_components.dynamic_export.core import cycle as cycle_module
from custom_components.dynamic_export.core.controller import (
    Constraint,
    Controller,
    ControllerSettings,
    ControlState,
    FailSafeReason,
)
from custom_components.dynamic_export.core.controls import Controls, ControlType
from custom_components.dynamic_export.core.cycle import ControlLoop, CycleSnapshot
from custom_components.dynamic_export.core.errors import (
    CredentialsRejectedError,
    DeviceResponseError,
    DeviceUnavailableError,
)
from custom_components.dynamic_export.core.limiter import Limiter
from custom_components.dynamic_export.core.write_policy import WritePolicy
from custom_components.dynamic_export.limiters.fixed import FixedLimiter

from .fakes import FakeSite, RecordingLimiter

WALL = datetime(2025, 3, 1, 2, 30, tzinfo=UTC)
TIMEOUT = 0.05


def make_loop(
    site: FakeSite,
    *limiters: Limiter,
    control_enabled: bool = True,
    settings: ControllerSettings | None = None,
    with_meter: bool = True,
    controller: Controller | None = None,
) -> ControlLoop:
    return ControlLoop(
        meter=site.meter if with_meter else None,
        inverters=site.inverters,
        ratings=site.ratings,
        limiters=list(limiters),
        controller=controller or Controller(settings),
        write_policy=WritePolicy(),
        control_enabled=control_enabled,
        clock=site.clock,
        wall_clock=lambda: WALL,
        device_timeout_s=TIMEOUT,
    )


def export_limit(watts: float | None, source: str = "fixed") -> FixedLimiter:
    return FixedLimiter(source, Controls(export_limit=watts))


def two_inverter_site(load_w: float = 2000.0) -> FakeSite:
    site = FakeSite(load_w=load_w)
    site.add_inverter("a", 6000.0)
    site.add_inverter("b", 3000.0)
    return site


async def run(loop: ControlLoop, site: FakeSite, cycles: int, step: float = 1.0) -> CycleSnapshot:
    snapshot = None
    for _ in range(cycles):
        site.clock.advance(step)
        snapshot = await loop.async_run_cycle()
    assert snapshot is not None
    return snapshot


def pcts(snapshot: CycleSnapshot) -> dict[str, float]:
    return {k: c.limit_pct for k, c in snapshot.plan.commands.items()}


# --- the normal cycle ------------------------------------------------------------


async def test_cycle_runs_measure_limits_merge_controller_write_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = two_inverter_site()
    real_merge = cycle_module.merge_requests

    def spy_merge(requests):  # type: ignore[no-untyped-def]
        site.log.append("merge")
        return real_merge(requests)

    class SpyController(Controller):
        def compute(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            site.log.append("compute")
            return super().compute(*args, **kwargs)

    monkeypatch.setattr(cycle_module, "merge_requests", spy_merge)
    limiter = RecordingLimiter("rec", Controls(export_limit=0.0), log=site.log)
    loop = make_loop(site, limiter, controller=SpyController())
    snapshot = await loop.async_run_cycle()

    log = site.log
    reads = [i for i, e in enumerate(log) if e.startswith("read")]
    writes = [i for i, e in enumerate(log) if e.startswith("write")]
    assert sorted(e for e in log if e.startswith("read")) == ["read a", "read b", "read meter"]
    assert len(writes) == 2
    assert max(reads) < log.index("limiter rec") < log.index("merge") < log.index("compute")
    assert log.index("compute") < min(writes)
    assert limiter.asked == [WALL]
    assert snapshot.merged.export_limit == 0.0
    assert snapshot.merged.source(ControlType.EXPORT_LIMIT) == "rec"


async def test_cycle_controls_export_and_reports_everything() -> None:
    site = two_inverter_site(load_w=2000.0)
    loop = make_loop(site, export_limit(0.0))
    first = await run(loop, site, 1)
    # Unlimited at first: 9 kW made, 7 kW exported; curtail to the 2 kW load at once.
    assert first.state is ControlState.CONTROLLING
    assert first.plan.generation_target_w == pytest.approx(2000.0)
    assert first.plan.over_export_limit is True
    assert pcts(first) == pytest.approx({"a": 200 / 9, "b": 200 / 9})
    assert first.writes == 2
    assert all(status.wrote and status.available for status in first.inverters.values())
    assert first.inverters["a"].command == first.plan.commands["a"]
    assert first.meter is not None
    assert first.meter.grid_power_w == pytest.approx(-7000.0)
    assert first.meter_error is None
    assert first.requests[0].source == "fixed"
    assert first.limiter_errors == {}
    assert first.write_errors == {}
    assert first.control_enabled is True
    assert first.time == site.clock.now
    assert first.wall_time == WALL
    assert first.duration_s == 0.0
    # The next cycle sees the curtailed site: zero export, nothing new to write.
    second = await run(loop, site, 1)
    assert site.export_w == pytest.approx(0.0)
    assert second.plan.over_export_limit is False
    assert second.writes == 0
    assert not any(status.wrote for status in second.inverters.values())
    assert second.inverters["a"].command == first.plan.commands["a"]


async def test_load_rise_ramps_generation_up() -> None:
    site = FakeSite(load_w=0.0)
    site.add_inverter("a", 10_000.0)
    loop = make_loop(site, export_limit(0.0))
    await run(loop, site, 2)
    assert site.generation_w == pytest.approx(0.0)
    site.load_w = 8000.0
    snapshot = await run(loop, site, 1)
    assert snapshot.plan.constraint is Constraint.RAMP
    assert site.generation_w == pytest.approx(2500.0)
    await run(loop, site, 3)
    assert site.generation_w == pytest.approx(8000.0)
    assert site.export_w == pytest.approx(0.0)


async def test_reported_rating_replaces_the_configured_one() -> None:
    site = FakeSite(load_w=0.0)
    site.add_inverter("a", 8000.0)
    loop = make_loop(site, export_limit(None))
    loop.ratings["a"] = 5000.0
    await loop.async_run_cycle()
    assert loop.ratings["a"] == 8000.0


# --- monitor-only and switching control ---------------------------------------


async def test_monitor_only_computes_but_never_writes() -> None:
    site = two_inverter_site()
    loop = make_loop(site, export_limit(0.0), control_enabled=False)
    assert loop.control_enabled is False
    for _ in range(5):
        snapshot = await run(loop, site, 1)
        assert snapshot.state is ControlState.MONITOR_ONLY
        assert snapshot.control_enabled is False
        assert snapshot.writes == 0
        assert snapshot.plan.generation_target_w == pytest.approx(2000.0)
        assert snapshot.inverters["a"].command is None
    assert [e for e in site.log if not e.startswith("read")] == []
    assert all(inv.releases == 0 and not inv.applied for inv in site.inverters.values())


async def test_switching_control_off_releases_once() -> None:
    site = two_inverter_site()
    loop = make_loop(site, export_limit(0.0))
    await run(loop, site, 2)
    loop.set_control_enabled(False)
    loop.set_control_enabled(False)  # no change, no second release
    for _ in range(4):
        snapshot = await run(loop, site, 1)
        assert snapshot.state is ControlState.MONITOR_ONLY
        assert snapshot.writes == 0
    assert {k: inv.releases for k, inv in site.inverters.items()} == {"a": 1, "b": 1}
    assert all(len(inv.applied) == 1 for inv in site.inverters.values())
    # Released: the inverters produce freely again.
    assert site.generation_w == pytest.approx(9000.0)


async def test_switching_control_back_on_writes_again() -> None:
    site = two_inverter_site()
    loop = make_loop(site, export_limit(0.0))
    await run(loop, site, 2)
    loop.set_control_enabled(False)
    await run(loop, site, 1)
    loop.set_control_enabled(True)
    assert loop.control_enabled is True
    snapshot = await run(loop, site, 1)
    assert snapshot.writes == 2
    assert snapshot.state is ControlState.CONTROLLING
    assert {k: inv.releases for k, inv in site.inverters.items()} == {"a": 1, "b": 1}
    assert site.export_w == pytest.approx(0.0, abs=1e-6)


async def test_switching_back_on_rewrites_even_if_the_inverter_hides_its_limit() -> None:
    # The released inverter does not report its limit, so only forgetting what
    # was written before makes the loop write again.
    site = two_inverter_site()
    for inv in site.inverters.values():
        inv.reports_limit = False
    loop = make_loop(site, export_limit(0.0))
    await run(loop, site, 2)
    loop.set_control_enabled(False)
    await run(loop, site, 1)
    assert site.export_w == pytest.approx(7000.0)
    loop.set_control_enabled(True)
    snapshot = await run(loop, site, 1)
    assert snapshot.writes == 2
    assert site.export_w == pytest.approx(0.0, abs=1e-6)


async def test_switching_on_ramps_from_present_output() -> None:
    # Monitor-only with no limit: the computed target climbs to the rating while
    # the sun gives 3 kW. Switching control on starts again from what is produced.
    site = FakeSite(load_w=0.0)
    site.add_inverter("a", 10_000.0, 3000.0)
    loop = make_loop(site, control_enabled=False)
    snapshot = await run(loop, site, 5)
    assert snapshot.plan.generation_target_w == pytest.approx(10_000.0)
    loop.set_control_enabled(True)
    snapshot = await run(loop, site, 1)
    assert snapshot.plan.generation_target_w == pytest.approx(5500.0)
    assert site.inverters["a"].applied[-1].limit_pct == pytest.approx(55.0)


async def test_failed_release_is_reported_and_retried() -> None:
    site = two_inverter_site()
    loop = make_loop(site, export_limit(0.0))
    await run(loop, site, 1)
    site.inverters["b"].release_fault.error = DeviceUnavailableError("link down")
    loop.set_control_enabled(False)
    snapshot = await run(loop, site, 1)
    assert snapshot.write_errors == {"b": "link down"}
    assert snapshot.inverters["b"].error == "link down"
    site.inverters["b"].release_fault.error = None
    snapshot = await run(loop, site, 1)
    assert snapshot.write_errors == {}
    await run(loop, site, 3)
    assert site.inverters["b"].releases == 1
    assert site.inverters["a"].releases == 2  # best effort: all are released again


async def test_close_hands_back_inverters_without_a_revert_timer_and_stops_writing() -> None:
    site = two_inverter_site()
    site.inverters["b"]._revert_timeout_s = 0.0  # e.g. a Home Assistant number
    loop = make_loop(site, export_limit(0.0))
    await run(loop, site, 1)
    assert await loop.async_close() == {}
    assert site.inverters["a"].releases == 0  # its own timer drops our limit
    assert site.inverters["b"].releases == 1
    assert not site.inverters["b"].limit_enabled
    writes = sum(len(inv.applied) for inv in site.inverters.values())
    await run(loop, site, 3)
    assert sum(len(inv.applied) for inv in site.inverters.values()) == writes


async def test_close_waits_for_a_running_cycle() -> None:
    site = two_inverter_site()
    site.inverters["b"]._revert_timeout_s = 0.0
    loop = make_loop(site, export_limit(0.0))
    await run(loop, site, 1)
    site.log.clear()
    cycle = asyncio.ensure_future(loop.async_run_cycle())
    await asyncio.sleep(0)
    await loop.async_close()
    await cycle
    assert site.log.index("release b") > max(
        i for i, line in enumerate(site.log) if line.startswith("read")
    )


# --- limiters ------------------------------------------------------------------


async def test_disabled_limiter_is_not_asked() -> None:
    site = two_inverter_site()
    off = RecordingLimiter("off", Controls(export_limit=0.0), enabled=False)
    fixed_off = FixedLimiter("fixed_off", Controls(generation_limit=0.0), enabled=False)
    loop = make_loop(site, off, fixed_off)
    snapshot = await run(loop, site, 1)
    assert off.asked == []
    assert snapshot.requests == ()
    assert snapshot.merged.export_limit is None
    assert snapshot.merged.generation_limit is None


async def test_failing_limiter_is_reported_and_the_cycle_goes_on() -> None:
    site = two_inverter_site()
    broken = RecordingLimiter("broken", error=ZoneInfoLikeError("bad tz"))
    loop = make_loop(site, broken, export_limit(0.0))
    for _ in range(3):
        snapshot = await run(loop, site, 1)
        assert "bad tz" in snapshot.limiter_errors["broken"]
        assert [r.source for r in snapshot.requests] == ["fixed"]
    assert len(broken.asked) == 3
    assert site.export_w == pytest.approx(0.0, abs=1e-6)


class ZoneInfoLikeError(Exception):
    """A limiter bug, unrelated to devices."""


async def test_fixed_limiter_change_takes_effect_next_cycle() -> None:
    site = two_inverter_site(load_w=1000.0)
    limiter = export_limit(3000.0)
    loop = make_loop(site, limiter)
    await run(loop, site, 2)
    assert site.export_w == pytest.approx(3000.0)
    limiter.set_limit(ControlType.EXPORT_LIMIT, 500.0)
    await run(loop, site, 1)
    assert site.export_w == pytest.approx(500.0)


# --- device faults ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (DeviceUnavailableError("connection refused"), "connection refused"),
        (DeviceResponseError(), "DeviceResponseError"),
        (RuntimeError("boom"), "unexpected error"),
        (None, f"no answer within {TIMEOUT:g} s"),
    ],
)
async def test_failing_inverter_is_unavailable_others_still_controlled(
    fault: Exception | None, message: str
) -> None:
    site = two_inverter_site(load_w=5000.0)
    loop = make_loop(site, export_limit(0.0))
    broken = site.inverters["b"]
    if fault is None:
        broken.read_fault.hang = True
    else:
        broken.read_fault.error = fault
    snapshot = await run(loop, site, 1)
    assert snapshot.inverters["b"].available is False
    assert snapshot.inverters["b"].reading is None
    assert message in (snapshot.inverters["b"].error or "")
    assert snapshot.inverters["a"].available is True
    assert set(snapshot.plan.commands) == {"a"}
    assert snapshot.inverters["a"].wrote
    assert not broken.applied
    # "a" alone carries the export limit (the meter sees b's 3 kW).
    await run(loop, site, 2)
    assert site.export_w == pytest.approx(0.0, abs=1e-6)
    assert site.inverters["a"].output_w == pytest.approx(2000.0)


async def test_refused_credentials_are_named_until_the_device_takes_them() -> None:
    """A person must act on a refused password: the snapshot says which devices refuse."""
    site = two_inverter_site(load_w=5000.0)
    loop = make_loop(site, export_limit(0.0))
    site.inverters["b"].read_fault.error = CredentialsRejectedError("password refused")
    assert site.meter is not None
    site.meter.fault.error = CredentialsRejectedError("password refused")
    snapshot = await run(loop, site, 1)
    assert snapshot.credentials_rejected == {"b", "meter"}
    assert "password refused" in (snapshot.inverters["b"].error or "")
    # Another fault is not a credentials problem; an answer clears it.
    site.inverters["b"].read_fault.error = DeviceUnavailableError("timeout")
    site.meter.fault.error = None
    snapshot = await run(loop, site, 1)
    assert snapshot.credentials_rejected == {"b"}  # not known to be fixed until it answers
    site.inverters["b"].read_fault.error = None
    snapshot = await run(loop, site, 1)
    assert snapshot.credentials_rejected == frozenset()


async def test_hanging_write_is_reported() -> None:
    site = two_inverter_site()
    site.inverters["a"].apply_fault.hang = True
    loop = make_loop(site, export_limit(0.0))
    snapshot = await run(loop, site, 1)
    assert snapshot.write_errors == {"a": f"no answer within {TIMEOUT:g} s"}
    assert snapshot.inverters["b"].wrote


async def test_failed_write_is_reported_and_retried_next_cycle() -> None:
    site = two_inverter_site()
    loop = make_loop(site, export_limit(0.0))
    site.inverters["a"].apply_fault.error = DeviceResponseError("illegal data value")
    snapshot = await run(loop, site, 1)
    assert snapshot.write_errors == {"a": "illegal data value"}
    assert snapshot.inverters["a"].error == "illegal data value"
    assert snapshot.inverters["a"].available is False
    assert not snapshot.inverters["a"].wrote
    assert snapshot.inverters["a"].command is None
    assert loop.write_policy.last_command("a") is None
    assert snapshot.inverters["b"].wrote
    assert snapshot.writes == 1
    # The same command is retried though it did not change.
    site.inverters["a"].apply_fault.error = None
    snapshot = await run(loop, site, 1)
    assert snapshot.inverters["a"].wrote
    assert snapshot.write_errors == {}
    assert site.inverters["a"].applied


async def test_failed_write_forgets_what_was_written_before() -> None:
    site = two_inverter_site(load_w=2000.0)
    loop = make_loop(site, export_limit(0.0))
    await run(loop, site, 2)
    assert loop.write_policy.last_command("a") is not None
    site.load_w = 5000.0
    site.inverters["a"].apply_fault.error = DeviceUnavailableError("timeout")
    snapshot = await run(loop, site, 1)
    assert snapshot.write_errors == {"a": "timeout"}
    # What the inverter now holds is unknown: nothing is claimed to be in force.
    assert loop.write_policy.last_command("a") is None
    assert snapshot.inverters["a"].command is None
    assert snapshot.inverters["b"].command == snapshot.plan.commands["b"]
    site.inverters["a"].apply_fault.error = None
    snapshot = await run(loop, site, 1)
    assert snapshot.inverters["a"].wrote
    assert snapshot.write_errors == {}
    assert site.inverters["a"].applied


async def test_cycle_never_raises_when_every_device_fails() -> None:
    site = two_inverter_site()
    site.meter.fault.error = RuntimeError("meter bug")
    for inv in site.inverters.values():
        inv.read_fault.error = DeviceUnavailableError("down")
    loop = make_loop(site, export_limit(0.0))
    snapshot = await run(loop, site, 3)
    assert snapshot.state is ControlState.FAIL_SAFE
    assert (
        snapshot.plan.fail_safe_reason is FailSafeReason.METER_UNAVAILABLE
    )  # configured, never answered
    assert snapshot.meter is None
    assert "meter bug" in (snapshot.meter_error or "")
    assert snapshot.plan.commands == {}
    assert snapshot.writes == 0


async def test_inverter_coming_back_is_controlled_again(caplog: pytest.LogCaptureFixture) -> None:
    site = two_inverter_site()
    loop = make_loop(site, export_limit(0.0))
    site.inverters["b"].read_fault.error = DeviceUnavailableError("down")
    with caplog.at_level(logging.INFO):
        await run(loop, site, 3)
        site.inverters["b"].read_fault.error = None
        snapshot = await run(loop, site, 1)
    assert snapshot.inverters["b"].available
    assert snapshot.inverters["b"].wrote
    # Logged once when it failed and once when it came back, not every cycle.
    assert sum("b unavailable" in r.message for r in caplog.records) == 1
    assert sum("b is back" in r.message for r in caplog.records) == 1


# --- the meter and fail-safe -------------------------------------------------------


async def test_meter_failing_beyond_max_age_goes_fail_safe(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Load 3 kW, export limit 1 kW: 4 kW of generation while the meter works.
    site = two_inverter_site(load_w=3000.0)
    loop = make_loop(site, export_limit(1000.0))
    snapshot = await run(loop, site, 2)
    assert site.generation_w == pytest.approx(4000.0)
    last_good = snapshot.meter

    site.meter.fault.error = DeviceUnavailableError("meter offline")
    with caplog.at_level(logging.INFO):
        # Within max age: the last reading is still used, nothing increases.
        for _ in range(5):
            snapshot = await run(loop, site, 1)
            assert snapshot.state is ControlState.CONTROLLING
            assert snapshot.meter == last_good
            assert snapshot.meter_error == "meter offline"
        snapshot = await run(loop, site, 1)
    assert snapshot.state is ControlState.FAIL_SAFE
    assert snapshot.plan.fail_safe_reason is FailSafeReason.METER_UNAVAILABLE
    assert snapshot.plan.generation_target_w == pytest.approx(1000.0)
    # The export-limit level, split by rating, is written.
    assert pcts(snapshot) == pytest.approx({"a": 100 / 9, "b": 100 / 9})
    assert snapshot.writes == 2
    assert site.inverters["a"].applied[-1].limit_pct == pytest.approx(100 / 9)
    assert site.generation_w == pytest.approx(1000.0)
    assert sum("Fail-safe" in r.message for r in caplog.records) == 1
    assert sum("meter unavailable" in r.message for r in caplog.records) == 1

    # It stays there, without rewriting, while the meter is away.
    for _ in range(3):
        snapshot = await run(loop, site, 1)
        assert snapshot.state is ControlState.FAIL_SAFE
        assert snapshot.writes == 0

    site.meter.fault.error = None
    caplog.clear()
    with caplog.at_level(logging.INFO):
        snapshot = await run(loop, site, 1)
    assert snapshot.state is ControlState.CONTROLLING
    assert any("resumed" in r.message for r in caplog.records)
    assert any("meter is back" in r.message for r in caplog.records)
    await run(loop, site, 3)
    assert site.generation_w == pytest.approx(4000.0)


async def test_hanging_meter_is_reported() -> None:
    site = two_inverter_site()
    site.meter.fault.hang = True
    loop = make_loop(site, export_limit(0.0))
    snapshot = await run(loop, site, 1)
    assert snapshot.meter_error == f"no answer within {TIMEOUT:g} s"
    assert snapshot.state is ControlState.FAIL_SAFE
    assert snapshot.plan.generation_target_w == 0.0
    assert all(status.available for status in snapshot.inverters.values())


async def test_fail_safe_in_monitor_only_is_still_reported() -> None:
    site = two_inverter_site()
    loop = make_loop(site, export_limit(0.0), control_enabled=False, with_meter=False)
    snapshot = await run(loop, site, 1)
    assert snapshot.state is ControlState.FAIL_SAFE
    assert snapshot.writes == 0


async def test_no_meter_configured_is_fail_safe_at_export_limit() -> None:
    site = two_inverter_site(load_w=5000.0)
    loop = make_loop(site, export_limit(1500.0), with_meter=False)
    snapshot = await run(loop, site, 1)
    assert snapshot.state is ControlState.FAIL_SAFE
    assert snapshot.plan.fail_safe_reason is FailSafeReason.NO_METER
    assert snapshot.meter is None
    assert snapshot.meter_error is None
    assert site.generation_w == pytest.approx(1500.0)


@pytest.mark.parametrize(
    ("limit", "said"),
    [
        (1500.0, "generation is held to 1500 W, the export limit with no load"),
        (None, "no export limit applies, nothing is limited"),
    ],
)
async def test_no_meter_configured_is_said_once_as_information(
    caplog: pytest.LogCaptureFixture, limit: float | None, said: str
) -> None:
    """A site being set up (inverter added before the meter) is not a fault to warn of."""
    site = two_inverter_site(load_w=5000.0)
    loop = make_loop(site, export_limit(limit), with_meter=False)
    with caplog.at_level(logging.INFO):
        await run(loop, site, 3)
    lines = [r for r in caplog.records if "meter" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in lines] == [
        (logging.INFO, f"No site meter is configured: {said} until one is added")
    ]


async def test_over_export_limit_writes_small_decreases() -> None:
    site = FakeSite(load_w=5000.0)
    site.add_inverter("a", 10_000.0)
    loop = make_loop(site, export_limit(0.0))
    await run(loop, site, 3)
    assert site.export_w == pytest.approx(0.0, abs=1e-6)
    # The load drops by 0.5 % of the rating: within the deadband, but the site is
    # now exporting above its limit, so the decrease is written.
    site.load_w = 4950.0
    snapshot = await run(loop, site, 1)
    assert snapshot.plan.over_export_limit
    assert snapshot.writes == 1
    # Back at the limit, less the margin the load's move taught (half its typical change).
    margin = 0.5 * loop.controller.load_noise.sigma_w
    assert 0.0 < margin < 10.0
    assert site.export_w == pytest.approx(-margin, abs=1e-6)
    # A small rise is not written.
    site.load_w = 5000.0
    snapshot = await run(loop, site, 1)
    assert snapshot.writes == 0


# --- steady state --------------------------------------------------------------


@pytest.mark.parametrize("shaded", [False, True])
async def test_steady_site_only_writes_to_refresh(shaded: bool) -> None:
    site = FakeSite(load_w=3000.0)
    site.add_inverter("a", 5000.0, 1000.0 if shaded else None, revert_timeout_s=60.0)
    site.add_inverter("b", 5000.0, revert_timeout_s=60.0)
    loop = make_loop(site, export_limit(0.0))
    await run(loop, site, 5)
    start = site.clock.now
    written_at: list[float] = []
    for _ in range(100):
        snapshot = await run(loop, site, 1)
        if snapshot.writes:
            assert snapshot.writes == 2
            written_at.append(site.clock.now - start)
    # Only to refresh, every 30 s (half the 60 s revert timer) after the first
    # write, which was 4 s before ``start``.
    assert written_at == [26.0, 56.0, 86.0]
    if shaded:
        # The shaded inverter keeps a small share, the other carries the rest.
        assert site.inverters["a"].limit_pct == pytest.approx(25.0)
        assert site.inverters["b"].limit_pct == pytest.approx(35.0)


async def test_steady_site_without_revert_timer_never_rewrites() -> None:
    site = FakeSite(load_w=3000.0)
    site.add_inverter("a", 5000.0, revert_timeout_s=0.0)
    loop = make_loop(site, export_limit(0.0))
    await run(loop, site, 5)
    writes_before = len(site.inverters["a"].applied)
    await run(loop, site, 200)
    assert len(site.inverters["a"].applied) == writes_before


async def test_reverted_inverter_is_rewritten() -> None:
    site = FakeSite(load_w=3000.0)
    site.add_inverter("a", 5000.0)
    loop = make_loop(site, export_limit(0.0))
    await run(loop, site, 3)
    site.inverters["a"].revert()
    snapshot = await run(loop, site, 1)
    assert snapshot.writes == 1
    assert site.inverters["a"].limit_enabled


# --- safety: overlapping cycles, never-read inverters ----------------------------------


async def test_cycles_asked_for_at_once_run_one_after_the_other() -> None:
    """An action's refresh next to the timer's: read, write, then read, write — never mixed."""
    site = two_inverter_site()
    site.inverters.pop("b")
    loop = make_loop(site, export_limit(0.0))
    site.inverters["a"].read_fault.delay_s = 0.01
    await asyncio.gather(loop.async_run_cycle(), loop.async_run_cycle())
    steps = [line.split()[0] for line in site.log if not line.endswith("meter")]
    assert steps in (["read", "write", "read"], ["read", "write", "read", "write"])


async def test_inverter_never_read_counts_at_its_stored_rating() -> None:
    """Down since start-up: the rating known from before (store or user) still holds it."""
    site = two_inverter_site(load_w=0.0)
    site.inverters["b"].read_fault.error = DeviceUnavailableError("down")
    loop = ControlLoop(
        meter=site.meter,
        inverters=site.inverters,
        ratings={"b": 3000.0},  # a's rating comes from its first read
        limiters=[FixedLimiter("fixed", Controls(generation_limit=5000.0))],
        controller=Controller(ControllerSettings(ramp_up_pct_per_s=100.0)),
        write_policy=WritePolicy(),
        clock=site.clock,
        wall_clock=lambda: WALL,
        device_timeout_s=TIMEOUT,
    )
    snapshot = await run(loop, site, 3)
    assert snapshot.plan.generation_target_w == pytest.approx(2000.0)


async def test_inverter_never_read_without_any_rating_holds_the_others_at_zero() -> None:
    site = two_inverter_site(load_w=0.0)
    site.inverters["b"].read_fault.error = DeviceUnavailableError("down")
    learnt: list[tuple[str, float]] = []
    loop = ControlLoop(
        meter=site.meter,
        inverters=site.inverters,
        ratings={"b": 0.0},  # what set-up used to pass when the first read failed
        limiters=[FixedLimiter("fixed", Controls(generation_limit=5000.0))],
        controller=Controller(ControllerSettings(ramp_up_pct_per_s=100.0)),
        write_policy=WritePolicy(),
        clock=site.clock,
        wall_clock=lambda: WALL,
        device_timeout_s=TIMEOUT,
        on_rating=lambda key, watts: learnt.append((key, watts)),
    )
    snapshot = await run(loop, site, 3)
    assert snapshot.plan.generation_target_w == 0.0
    assert site.inverters["a"].output_w == 0.0  # b may be producing up to any rating
    assert "rating never read" in (snapshot.inverters["b"].error or "")
    assert learnt == [("a", 6000.0)]
    site.inverters["b"].read_fault.error = None
    snapshot = await run(loop, site, 3)
    assert learnt == [("a", 6000.0), ("b", 3000.0)]
    assert snapshot.plan.generation_target_w == pytest.approx(5000.0)


async def test_steady_limit_on_a_stepped_device_is_written_once() -> None:
    """A device that rounds the limit down to whole percent is not rewritten every cycle."""
    site = FakeSite(load_w=1000.0)
    inverter = site.add_inverter("a", 5000.0, revert_timeout_s=0.0)
    inverter.limit_step_pct = 1.0
    loop = ControlLoop(
        meter=site.meter,
        inverters=site.inverters,
        ratings=site.ratings,
        limiters=[FixedLimiter("fixed", Controls(generation_limit=2030.0))],
        controller=Controller(ControllerSettings(ramp_up_pct_per_s=100.0)),
        write_policy=WritePolicy(deadband_pct=0.5),
        clock=site.clock,
        wall_clock=lambda: WALL,
        device_timeout_s=TIMEOUT,
    )
    await run(loop, site, 3)
    writes = len(inverter.applied)
    assert inverter.limit_pct == 40.0  # 40.6 % asked, 40 % held
    await run(loop, site, 20)
    assert len(inverter.applied) == writes


async def test_inverter_refusing_writes_is_made_up_for_by_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its writes fail while its reads work: the others are turned down so export holds."""
    site = FakeSite(load_w=1000.0)
    site.add_inverter("a", 4000.0)
    stuck = site.add_inverter("b", 3000.0)
    stuck.limit_enabled, stuck.limit_pct = True, 50.0
    stuck.apply_fault.error = DeviceResponseError("illegal function")
    loop = make_loop(site, export_limit(1500.0))
    with caplog.at_level(logging.INFO):
        await run(loop, site, 10)
        assert site.export_w <= 1500.0 + 1.0
        assert stuck.output_w == 1500.0  # it kept its own limit throughout
        stuck.apply_fault.error = None
        await run(loop, site, 10)
    assert site.export_w <= 1500.0 + 1.0
    assert stuck.limit_pct != 50.0  # it takes limits again
    # One line when it starts refusing and one when it stops, not one per cycle, and no
    # "unavailable"/"is back" flapping: its reads worked throughout.
    assert caplog.text.count("does not take its limit") == 1
    assert caplog.text.count("takes its limit again") == 1
    assert "unavailable" not in caplog.text


async def test_failing_limiter_keeps_its_last_limits(caplog: pytest.LogCaptureFixture) -> None:
    """Dropping a limiter that raises would lift its limits: its last answer stands."""
    site = two_inverter_site()
    flaky = RecordingLimiter("flaky", Controls(export_limit=500.0))
    loop = make_loop(site, flaky)
    await run(loop, site, 3)
    flaky.error = ZoneInfoLikeError("bad tz")
    with caplog.at_level(logging.INFO):
        for _ in range(5):
            snapshot = await run(loop, site, 1)
            assert snapshot.merged.export_limit == 500.0
            assert "last limits kept" in snapshot.limiter_errors["flaky"]
        flaky.error = None
        flaky.answer = Controls(export_limit=800.0)
        snapshot = await run(loop, site, 1)
    assert snapshot.merged.export_limit == 800.0
    assert snapshot.limiter_errors == {}
    assert caplog.text.count("Limiter flaky failed") == 1  # once per streak, not per cycle
    assert "Limiter flaky works again" in caplog.text


async def test_site_devices_is_a_read_only_copy_of_what_the_loop_knows() -> None:
    """The ratings learnt so far (also of an inverter that stopped answering) and capability."""
    site = two_inverter_site()
    loop = ControlLoop(
        meter=site.meter,
        inverters=site.inverters,
        ratings={"b": 3000.0},  # a's rating comes from its first read
        limiters=[],
        controller=Controller(),
        write_policy=WritePolicy(),
        clock=site.clock,
        wall_clock=lambda: WALL,
        device_timeout_s=TIMEOUT,
    )
    before = loop.site_devices()
    assert dict(before.ratings) == {"b": 3000.0}
    assert before.capability.rated_w == 3000.0
    site.inverters["b"].read_fault.error = DeviceUnavailableError("down")
    await run(loop, site, 1)
    after = loop.site_devices()
    assert dict(after.ratings) == {"a": 6000.0, "b": 3000.0}
    assert after.capability.rated_w == 9000.0
    assert after.capability.inverters == 2
    assert after.capability.has_meter
    assert dict(before.ratings) == {"b": 3000.0}  # a copy: later cycles leave it alone
    with pytest.raises(TypeError):
        after.ratings["a"] = 0.0  # type: ignore[index]
