"""Every inverter family of the simulator, driven by its own client, meets scenario (a)'s targets.

Lock-step, so exact and machine-independent: a change in a family's client (or in its simulated
device) that costs control quality fails here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bench.report import evaluate
from bench.runner import GOODWE_TIMEOUT_S, run_scenario
from bench.scenarios import all_scenarios
from tests.sim.test_goodwe import allow_loopback_range


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


@pytest.fixture
async def goodwe_loopback(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """GoodWe inverters answer UDP 8899 on their own 127.x.y.z; goodwe 0.3 leaves 1 s timers."""
    allow_loopback_range(monkeypatch)
    yield
    await asyncio.sleep(GOODWE_TIMEOUT_S + 0.1)  # they only close the library's sockets


@pytest.mark.usefixtures("goodwe_loopback")
async def test_load_drop_with_export_limit_goodwe() -> None:
    """(a) with the site's PV on one 10 kW GoodWe ET (one inverter, its own meter): same targets.

    Through the goodwe library over UDP, the export limit translated by GoodWeInverter.
    """
    bench = all_scenarios()["a"]
    run = await run_scenario(bench, sim=bench.sim.with_inverter_count(1), family="goodwe")
    result = evaluate(bench, run)
    assert run.family == "goodwe"
    assert run.ratings_w == {1: 10000.0}
    assert result.cycles_with_errors == 0
    (drop,) = [s for s in result.steps if s.drop_target]
    assert drop.time_to_comply_s is not None
    assert drop.time_to_comply_s <= 4.5
    assert drop.excess_wh <= 0.75
    assert result.curtailment_pct < 2.0
    assert result.limit_writes > 0
    assert result.limit_writes_per_min_per_inverter <= 12
    assert result.steady_changes == 0
    assert all(check.passed for check in result.checks)


@pytest.mark.usefixtures("goodwe_loopback")
@pytest.mark.xfail(
    strict=True,
    reason="two GoodWe inverters on one meter: each translates its share of the target into an "
    "export limit as if the other's output stood still, so a cut leaves both limits too high "
    "(here 1550 W each for the site's 1500 W; on (b) 1500 W each for zero export) and, the "
    "command being unchanged, nothing rewrites them",
)
async def test_load_drop_with_export_limit_two_goodwe_on_one_meter() -> None:
    """(a) as the other families run it, two 5 kW GoodWe ETs seeing the same grid power."""
    bench = all_scenarios()["a"]
    run = await run_scenario(bench, family="goodwe")
    result = evaluate(bench, run)
    assert result.cycles_with_errors == 0
    assert all(check.passed for check in result.checks)
