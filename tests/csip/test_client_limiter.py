"""CsipLimiter: the Limiter protocol, opting out, the background task, status flags."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from custom_components.dynamic_export.core.controls import Controls, ControlType
from custom_components.dynamic_export.core.limiter import Limiter
from custom_components.dynamic_export.csip.client import CsipClient
from custom_components.dynamic_export.csip.config import CsipConfig, split_dcap_url
from custom_components.dynamic_export.csip.limiter import CsipLimiter
from custom_components.dynamic_export.csip.registration import pin_matches
from custom_components.dynamic_export.csip.selection import Source

from .client_harness import MEASUREMENTS, Harness

RECEIVED, STARTED, COMPLETED, OPTED_OUT, OPTED_IN = 1, 2, 3, 4, 5


async def cycle(h: Harness, limiter: CsipLimiter, seconds: float = 0) -> Controls:
    h.clock.advance(seconds)
    await limiter.async_tick(h.clock(), MEASUREMENTS)
    await limiter.client.run_due()
    return limiter.controls(h.clock())


async def test_limiter_protocol(h: Harness) -> None:
    control = h.state.add_control("1", duration=300, op_mod_exp_lim_w=800)
    limiter = CsipLimiter("CSIP-AUS", h.client())
    as_limiter: Limiter = limiter
    assert as_limiter.source == "CSIP-AUS"
    assert as_limiter.enabled
    controls = await cycle(h, limiter)
    assert controls.export_limit == 800.0
    status = limiter.status()
    assert status.active_control is not None
    assert status.active_control.mrid == control.mrid
    assert status.contributions[ControlType.EXPORT_LIMIT].source is Source.CONTROL
    assert status.contributions[ControlType.EXPORT_LIMIT].value == 800.0
    assert status.applied == controls
    plain = json.loads(json.dumps(status.as_dict()))
    assert plain["comms"] == "ok"
    assert plain["active_controls"][0]["controls"]["export_limit"] == 800.0
    assert plain["contributions"]["export_limit"]["source"] == "control"
    assert plain["certificate_expiring"] is False


async def test_disabled_limiter_asks_nothing_and_opts_out(h: Harness) -> None:
    """Switched off: no controls, running events opted out, later ones too, no 2/3 after."""
    running = h.state.add_control("1", duration=300, op_mod_exp_lim_w=800)
    later = h.state.add_control("1", start=h.now() + 400, duration=300, op_mod_exp_lim_w=700)
    limiter = CsipLimiter("CSIP-AUS", h.client())
    await cycle(h, limiter)
    limiter.enabled = False
    assert limiter.controls(h.clock()) == Controls()
    await cycle(h, limiter, 10)
    assert h.state.response_statuses(running.mrid) == [RECEIVED, STARTED, OPTED_OUT]
    await cycle(h, limiter, 390)
    assert h.state.response_statuses(later.mrid) == [RECEIVED, OPTED_OUT]
    assert limiter.status().opted_out
    assert limiter.status().applied == Controls()
    await cycle(h, limiter, 600)
    assert h.state.response_statuses(running.mrid) == [RECEIVED, STARTED, OPTED_OUT]
    assert h.state.response_statuses(later.mrid) == [RECEIVED, OPTED_OUT]
    limiter.enabled = True
    assert (await cycle(h, limiter)).export_limit == 1500.0


async def test_control_switched_off_opts_out(h: Harness) -> None:
    """Monitor-only (control off for the site) is an opt-out too; the limiter still answers."""
    running = h.state.add_control("1", duration=600, op_mod_exp_lim_w=800)
    limiter = CsipLimiter("CSIP-AUS", h.client())
    await cycle(h, limiter)
    h.clock.advance(5)
    await limiter.async_tick(h.clock(), replace(MEASUREMENTS, control_enabled=False))
    await limiter.client.run_due()
    assert h.state.response_statuses(running.mrid) == [RECEIVED, STARTED, OPTED_OUT]
    assert limiter.controls(h.clock()).export_limit == 800.0


async def test_limiter_switched_on_again_opts_back_in(h: Harness) -> None:
    """Back on during an event: "opted in", and its end is answered "completed" again; off
    once more: "opted out" once more. An event that began while off is opted in too."""
    running = h.state.add_control("1", duration=600, op_mod_exp_lim_w=800)
    later = h.state.add_control("1", start=h.now() + 700, duration=300, op_mod_exp_lim_w=700)
    limiter = CsipLimiter("CSIP-AUS", h.client())
    await cycle(h, limiter)
    limiter.enabled = False
    await cycle(h, limiter, 10)
    limiter.enabled = True
    assert (await cycle(h, limiter, 10)).export_limit == 800.0
    assert h.state.response_statuses(running.mrid) == [RECEIVED, STARTED, OPTED_OUT, OPTED_IN]
    limiter.enabled = False
    await cycle(h, limiter, 10)
    limiter.enabled = True
    await cycle(h, limiter, 10)
    assert h.state.response_statuses(running.mrid) == [
        RECEIVED,
        STARTED,
        OPTED_OUT,
        OPTED_IN,
        OPTED_OUT,
        OPTED_IN,
    ]
    await cycle(h, limiter, 600)
    assert h.state.response_statuses(running.mrid)[-1] == COMPLETED
    limiter.enabled = False
    await cycle(h, limiter, 100)
    assert h.state.response_statuses(later.mrid) == [RECEIVED, OPTED_OUT]
    limiter.enabled = True
    await cycle(h, limiter, 10)
    await cycle(h, limiter, 300)
    assert h.state.response_statuses(later.mrid) == [RECEIVED, OPTED_OUT, OPTED_IN, COMPLETED]
    assert not limiter.status().opted_out
    h.assert_documents_valid()


async def test_control_switched_on_again_opts_back_in(h: Harness) -> None:
    """The site's control switch works the same way: off opts out, on opts back in."""
    running = h.state.add_control("1", duration=600, op_mod_exp_lim_w=800)
    limiter = CsipLimiter("CSIP-AUS", h.client())
    await cycle(h, limiter)
    off = replace(MEASUREMENTS, control_enabled=False)
    h.clock.advance(5)
    await limiter.async_tick(h.clock(), off)
    await limiter.client.run_due()
    await cycle(h, limiter, 5)
    assert h.state.response_statuses(running.mrid) == [RECEIVED, STARTED, OPTED_OUT, OPTED_IN]


async def test_opted_out_before_a_restart_is_opted_back_in(h: Harness) -> None:
    """Left while off, then restarted with control on: the event is opted back in."""
    running = h.state.add_control("1", duration=600, op_mod_exp_lim_w=800)
    first = CsipLimiter("CSIP-AUS", h.client())
    await cycle(h, first)
    first.enabled = False
    await cycle(h, first, 10)
    saved = json.loads(json.dumps(first.to_dict()))
    await first.async_stop()
    second = CsipLimiter("CSIP-AUS", h.client(restore=saved))
    await cycle(h, second, 10)
    assert h.state.response_statuses(running.mrid) == [RECEIVED, STARTED, OPTED_OUT, OPTED_IN]


async def test_background_task_runs_and_stops(h: Harness) -> None:
    """async_run polls on its own, reacts to wake(), and async_stop ends it promptly."""
    client = h.client()
    limiter = CsipLimiter("CSIP-AUS", client)
    await limiter.async_tick(h.clock(), MEASUREMENTS)
    task = asyncio.create_task(limiter.async_run())

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(200):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the background task did not get there within 2 s")

    await until(lambda: bool(h.server.requests_to("/mup", "POST")))
    before = len(h.server.requests_to("/derp", "GET"))
    h.clock.advance(300)
    client.wake()
    await until(lambda: len(h.server.requests_to("/derp", "GET")) > before)
    await limiter.async_stop()
    assert task.done()


async def test_from_dict_and_status_flags(h: Harness) -> None:
    """from_dict builds a working client; the certificate's expiry raises a flag."""
    first = h.client()
    await h.run(first)
    base, href = split_dcap_url(h.server.url)
    late = datetime(9999, 12, 15, tzinfo=UTC)
    restored = CsipClient.from_dict(
        first.to_dict(),
        first.transport,
        first.identity,
        CsipConfig(dcap_href=href, pen=1),
        clock=lambda: late,
    )
    assert restored.schedule.defaults.export_limit == 1500.0
    status = restored.status()
    assert status.certificate_expiring
    assert not first.status().certificate_expiring
    assert base == h.server.base_url


def test_helpers() -> None:
    assert split_dcap_url("https://utility.example:8443/api/v2/dcap") == (
        "https://utility.example:8443",
        "/api/v2/dcap",
    )
    with pytest.raises(ValueError, match="https"):
        split_dcap_url("http://utility.example/dcap")
    assert pin_matches(111115, 111115)
    assert pin_matches(11111, 111115)
    assert not pin_matches(111114, 111115)
