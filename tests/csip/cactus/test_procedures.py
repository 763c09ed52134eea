"""Each reference procedure that applies to the site, run end to end (see runner.py).

A run passes when every criterion of the procedure passes, nothing unknown was met, the
site followed every instruction physically as ``conformance.EXPECTED`` says, and the
integration logged no WARNING or ERROR but those the procedure itself provokes.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from ..client_harness import make_harness
from ..server.certs import Credentials, CsipPKI
from ..server.fixtures import ServerFactory
from ..server.state import CsipState
from .conformance import EXPECTED, HELD, HELD_AS_SOLAR_CAN, NO_CAP, Expected
from .physical import LAG_S, PhysicalCheck
from .procedures import all_ids, load, not_applicable
from .runner import ProcedureRun

INTEGRATION = "custom_components.dynamic_export"


def physical_result(check: PhysicalCheck) -> str:
    """The physical result in the conformance table's words."""
    if check.violations:
        return check.summary()
    if check.unholdable_s:
        return HELD_AS_SOLAR_CAN
    return HELD if check.tightest else NO_CAP


def _params() -> list[object]:
    out: list[object] = []
    for pid in all_ids():
        if not_applicable(pid) is not None:
            continue
        defect = EXPECTED[pid].defect if pid in EXPECTED else None
        marks = [pytest.mark.xfail(strict=True, reason=defect)] if defect else []
        out.append(pytest.param(pid, marks=marks, id=pid))
    return out


@pytest.mark.parametrize("pid", _params())
async def test_procedure(
    pid: str,
    csip_server_factory: ServerFactory,
    csip_pki: CsipPKI,
    csip_device: Credentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    expected = EXPECTED[pid]
    loop = asyncio.get_running_loop()
    debug = loop.get_debug()
    loop.set_debug(debug and expected.loop_debug)
    try:
        await _run(pid, expected, csip_server_factory, csip_pki, csip_device, caplog)
    finally:
        loop.set_debug(debug)


async def _run(
    pid: str,
    expected: Expected,
    csip_server_factory: ServerFactory,
    csip_pki: CsipPKI,
    csip_device: Credentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    began = time.process_time()
    async with make_harness(
        csip_server_factory, csip_pki, csip_device, state=CsipState()
    ) as harness:
        with caplog.at_level(logging.INFO, INTEGRATION):
            result = await ProcedureRun(pid, load(pid), harness).run()
    cpu = time.process_time() - began
    report = f"{pid} ({cpu:.1f} s CPU)\n{result.describe()}"
    assert result.protocol_passed, report
    assert physical_result(result.physical) == expected.physical, report
    assert all(s <= LAG_S for s in result.physical.recovery_s), report
    if expected.never_imports:
        assert result.physical.max_import_w <= 0.0, report
    loud = [
        f"{r.levelname} {r.getMessage()}"
        for r in caplog.records
        if r.name.startswith(INTEGRATION) and r.levelno >= logging.WARNING
    ]
    unexpected = [line for line in loud if not any(w in line for w in expected.warnings)]
    assert not unexpected, f"{report}\nlog lines: {unexpected}"
