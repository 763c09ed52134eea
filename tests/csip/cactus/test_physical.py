"""The physical check catches a site that does not follow the instructions."""

from __future__ import annotations

import pytest

from ..client_harness import make_harness
from ..server.certs import Credentials, CsipPKI
from ..server.fixtures import ServerFactory
from ..server.state import CsipState
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
