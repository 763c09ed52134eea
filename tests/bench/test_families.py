"""Every inverter family of the simulator, driven by its own client, meets scenario (a)'s targets.

Lock-step, so exact and machine-independent: a change in a family's client (or in its simulated
device) that costs control quality fails here.
"""

from __future__ import annotations

import pytest

from bench.report import evaluate
from bench.runner import run_scenario
from bench.scenarios import all_scenarios


@pytest.fixture(autouse=True)
def _loopback(socket_enabled: None) -> None:
    """The scenarios talk Modbus TCP to the simulator on 127.0.0.1."""


@pytest.mark.parametrize("family", ["solaredge", "sungrow_sg", "sungrow_sh", "huawei", "victron"])
async def test_load_drop_with_export_limit_per_family(family: str) -> None:
    """(a) per family: comply within 4.5 s, ≤ 0.75 Wh above the limit, writes only on change."""
    bench = all_scenarios()["a"]
    run = await run_scenario(bench, family=family)
    result = evaluate(bench, run)
    assert run.family == family
    assert result.cycles_with_errors == 0
    (drop,) = [s for s in result.steps if s.drop_target]
    assert drop.time_to_comply_s is not None
    assert drop.time_to_comply_s <= 4.5
    assert drop.excess_wh <= 0.75
    assert result.curtailment_pct < 2.0
    assert result.limit_writes > 0  # the family's limit register was written and recognised
    assert result.limit_writes_per_min_per_inverter <= 12
    assert result.steady_changes == 0
    assert all(check.passed for check in result.checks)
