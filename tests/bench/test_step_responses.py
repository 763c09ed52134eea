"""The tuned controller's step responses, through the real client and simulated site.

Runs benchmark scenarios in lock-step (simulated time), so the results are exact and
independent of machine speed: a change in controller behaviour that breaks one of the
issue's targets fails here, before anyone runs the benchmark.
"""

from __future__ import annotations

import pytest

from bench.report import ScenarioResult, evaluate
from bench.runner import run_scenario
from bench.scenarios import all_scenarios


@pytest.fixture(autouse=True)
def _loopback(socket_enabled: None) -> None:
    """The scenarios talk Modbus TCP to the simulator on 127.0.0.1."""


async def _run(key: str) -> ScenarioResult:
    bench = all_scenarios()[key]
    return evaluate(bench, await run_scenario(bench))


async def test_load_drop_with_export_limit() -> None:
    """(a): comply within 4.5 s, ≤ 0.75 Wh above the limit, little curtailment, few writes."""
    result = await _run("a")
    assert result.cycles_with_errors == 0
    (drop,) = [s for s in result.steps if s.drop_target]
    assert drop.time_to_comply_s is not None
    assert drop.time_to_comply_s <= 4.5
    assert drop.excess_wh <= 0.75
    assert drop.worst_excess_w == pytest.approx(1400, abs=60)  # the inverter lag, no more
    assert drop.reversals <= 1  # at most the one-cycle undershoot that lands the cut
    rise = next(s for s in result.steps if not s.drop_target)
    assert rise.excess_wh == 0  # more load never pushes export over the limit
    assert result.curtailment_pct < 2.0
    assert result.limit_writes_per_min_per_inverter <= 12
    assert result.steady_changes == 0
    assert all(check.passed for check in result.checks)


async def test_zero_export_through_clouds() -> None:
    """(b): clouds cause no export and no writes beyond the revert refresh."""
    result = await _run("b")
    assert result.export_excess_wh == pytest.approx(0, abs=0.01)
    assert result.curtailment_pct < 2.0
    assert result.limit_writes_per_min_per_inverter <= 12
    assert result.steady_changes == 0
    assert all(check.passed for check in result.checks)


async def test_generation_limit_step() -> None:
    """(c): a generation limit cut from 5 to 1 kW is followed faster than the inverters' lag."""
    result = await _run("c")
    cut = result.steps[0]
    assert cut.quantity == "generation"
    assert cut.time_to_comply_s is not None
    # 0.5 s to notice + ln(4000/50) = 4.4 s of lag without the undershoot that lands the cut.
    assert cut.time_to_comply_s <= 3.5
    assert cut.reversals <= 1  # that undershoot
    assert result.export_excess_wh == 0


async def test_slow_inverters_and_late_meter_do_not_oscillate() -> None:
    """(e): 5 s inverters and a 2 s meter delay settle with at most 2 reversals per step."""
    result = await _run("e")
    assert all(step.reversals <= 2 for step in result.steps)
    drop = result.steps[0]
    assert drop.time_to_comply_s is not None
    assert drop.time_to_comply_s < 16.7  # faster than the lag alone would allow
    assert result.steady_changes == 0
