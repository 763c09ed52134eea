"""The physical check catches a site that does not follow the instructions."""

from __future__ import annotations

import pytest

from ..client_harness import make_harness
from ..server.certs import Credentials, CsipPKI
from ..server.fixtures import ServerFactory
from ..server.state import CsipState
from . import runner
from .physical import LAG_S, KnownDefault, PhysicalCheck
from .procedures import load
from .runner import ProcedureRun
from .site import RATING_W, Sample

T0 = 1_750_000_000.0


def _check(export_cap: float | None, grad: int | None = 600) -> PhysicalCheck:
    check = PhysicalCheck()
    if export_cap is not None:
        check.instructions.defaults["1"] = KnownDefault(
            primacy=0, caps={"export": export_cap}, off=False, set_grad_w=grad
        )
    return check


def _feed(check: PhysicalCheck, exports: list[float], *, load: float = 0.0) -> None:
    for i, export in enumerate(exports):
        generation = export + load
        check.observe(Sample(T0 + i, export, generation, load, RATING_W))


def test_a_site_that_ramps_at_set_grad_w_passes() -> None:
    check = _check(None)
    _feed(check, [5000.0] * 5)
    check.instructions.defaults["1"] = KnownDefault(0, {"export": 0.0}, False, 600)
    rate = 600 / 10000 * RATING_W  # 300 W/s
    exports = [max(0.0, 5000.0 - rate * (i + 1)) for i in range(40)]
    for i, export in enumerate(exports):
        check.observe(Sample(T0 + 5 + i, export, export, 0.0, RATING_W))
    assert not check.violations, check.summary()


def test_a_site_that_keeps_exporting_fails_after_the_lag() -> None:
    check = _check(None)
    _feed(check, [5000.0] * 5)
    check.instructions.defaults["1"] = KnownDefault(0, {"export": 0.0}, False, 600)
    for i in range(40):
        check.observe(Sample(T0 + 5 + i, 5000.0, 5000.0, 0.0, RATING_W))
    assert check.violations
    first = check.violations[0]
    assert first.t - (T0 + 5) >= LAG_S, "the site has LAG_S to react"


def test_an_import_cap_below_the_load_less_solar_is_judged_on_what_solar_can() -> None:
    check = PhysicalCheck()
    check.instructions.defaults["1"] = KnownDefault(0, {"import": 0.0}, False, None)
    for i in range(30):  # 8 kW load, all 5 kW of solar produced: imports 3 kW
        check.observe(Sample(T0 + i, -3000.0, 5000.0, 8000.0, 5000.0))
    assert not check.violations
    assert check.unholdable_s == 29
    curtailing = PhysicalCheck(instructions=check.instructions)
    for i in range(30):  # the same load, but the solar held at 2 kW: a real failure
        curtailing.observe(Sample(T0 + i, -6000.0, 2000.0, 8000.0, 5000.0))
    assert curtailing.violations


def test_a_load_step_gets_the_lag_to_recover() -> None:
    check = _check(1000.0)
    _feed(check, [1000.0] * 20)
    check.load_changed(T0 + 20)
    for i, export in enumerate([1500.0, 1500.0, 1000.0] + [1000.0] * 10):
        check.observe(Sample(T0 + 20 + i, export, 1500.0, 500.0, RATING_W))
    assert not check.violations
    assert check.recovery_s == [2]


async def test_gen_01_with_the_limiter_off_fails_physically(
    csip_server_factory: ServerFactory, csip_pki: CsipPKI, csip_device: Credentials
) -> None:
    """The whole chain: a site that ignores the utility exports above GEN-01's 0 W cap."""
    async with make_harness(
        csip_server_factory, csip_pki, csip_device, state=CsipState()
    ) as harness:
        run = ProcedureRun("GEN-01", load("GEN-01"), harness, follow_utility=False)
        result = await run.run()
    assert result.physical.violations, result.describe()
    assert max(v.value_w for v in result.physical.violations) == pytest.approx(5000.0, abs=60)


def test_an_idle_sample_stands_for_every_second_it_skipped() -> None:
    """An idle step's one sample is counted, and judged, for each of its seconds."""
    check = _check(0.0)
    _feed(check, [0.0] * 20)
    check.observe(Sample(T0 + 34, 0.0, 0.0, 0.0, RATING_W), 15)
    assert check.checked_s == 19 + 15
    assert not check.violations
    check.observe(Sample(T0 + 49, 500.0, 500.0, 0.0, RATING_W), 15)
    assert len(check.violations) == 1, "the window holds only the cap: no lag left to use"
    importing = PhysicalCheck()
    importing.instructions.defaults["1"] = KnownDefault(0, {"import": 0.0}, False, None)
    importing.observe(Sample(T0, -3000.0, 5000.0, 8000.0, 5000.0))
    importing.observe(Sample(T0 + 15, -3000.0, 5000.0, 8000.0, 5000.0), 15)
    assert importing.unholdable_s == 15
    assert not importing.violations


async def test_skipping_idle_time_changes_nothing_the_server_sees(
    csip_server_factory: ServerFactory,
    csip_pki: CsipPKI,
    csip_device: Credentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ALL-25 stepped second by second and with idle steps: the same requests at the same
    times, the same Responses, the same verdicts; and idle steps did skip time."""
    seen = []
    for idle_step_s in (1, runner.IDLE_STEP_S):
        monkeypatch.setattr(runner, "IDLE_STEP_S", idle_step_s)
        async with make_harness(
            csip_server_factory, csip_pki, csip_device, state=CsipState()
        ) as harness:
            run = ProcedureRun("ALL-25", load("ALL-25"), harness)
            result = await run.run()
            t0 = run.begin
            requests = [(r.method, r.path, r.time - t0, r.status) for r in harness.server.requests]
            mrids = [m for p in harness.state.programs.values() for m in p.controls]
            responses = [(mrids.index(r.subject or ""), r.status) for r in harness.state.responses]
        assert result.protocol_passed, result.describe()
        seen.append((requests, responses, result.physical.summary(), run.idle_s / result.elapsed_s))
    (per_second, skipping) = seen
    assert skipping[:3] == per_second[:3]
    assert per_second[3] == 0.0
    assert skipping[3] > 0.15  # 22 % of ALL-25 is idle; most of its time the site ramps
