"""Each reference procedure that applies to the site, run end to end (see runner.py)."""

from __future__ import annotations

import logging
import time

import pytest

from ..client_harness import make_harness
from ..server.certs import Credentials, CsipPKI
from ..server.fixtures import ServerFactory
from ..server.state import CsipState
from .procedures import all_ids, load, not_applicable
from .runner import ProcedureRun

APPLICABLE = [pid for pid in all_ids() if not_applicable(pid) is None]


@pytest.mark.parametrize("pid", APPLICABLE)
async def test_procedure(
    pid: str,
    csip_server_factory: ServerFactory,
    csip_pki: CsipPKI,
    csip_device: Credentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    began = time.process_time()
    async with make_harness(
        csip_server_factory, csip_pki, csip_device, state=CsipState()
    ) as harness:
        with caplog.at_level(logging.INFO, "custom_components.dynamic_export"):
            result = await ProcedureRun(pid, load(pid), harness).run()
    print(pid, result.describe(), f"cpu {time.process_time() - began:.2f} s")
    loud = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("custom_components.dynamic_export") and r.levelno >= logging.WARNING
    ]
    print("\n".join(loud[:10]))
    assert result.protocol_passed, result.describe()
    assert not result.physical.violations, result.describe()
