"""A silent inverter is asked less often, so it does not hold up every cycle."""

from __future__ import annotations

import time
from itertools import pairwise

from custom_components.dynamic_export.core.controller import Controller
from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.core.cycle import ControlLoop
from custom_components.dynamic_export.core.silence import SilenceBackoff
from custom_components.dynamic_export.core.write_policy import WritePolicy
from custom_components.dynamic_export.limiters.fixed import FixedLimiter

from .fakes import FakeSite

TIMEOUT = 0.05
SLOW = TIMEOUT / 2


def test_slow_failures_back_off_to_the_cap() -> None:
    backoff = SilenceBackoff(slow_failure_s=1.0, max_delay_s=10.0)
    now = 0.0
    asked_at = []
    while now < 60.0:
        if backoff.due("a", now):
            asked_at.append(now)
            backoff.record("a", now, error="no answer", took_s=3.0)
        else:
            assert backoff.waiting_error("a") == "no answer"
        now += 1.0
    assert asked_at[:6] == [0.0, 1.0, 3.0, 7.0, 15.0, 25.0]
    gaps = [b - a for a, b in pairwise(asked_at[4:])]
    assert set(gaps) == {10.0}


def test_fast_failures_and_answers_are_asked_every_time() -> None:
    backoff = SilenceBackoff(slow_failure_s=1.0)
    backoff.record("a", 0.0, error="connection refused", took_s=0.01)
    assert backoff.due("a", 0.0)
    backoff.record("a", 0.0, error="no answer", took_s=3.0)
    backoff.record("a", 1.0, error="no answer", took_s=3.0)
    assert not backoff.due("a", 2.0)
    backoff.record("a", 3.0, error=None, took_s=3.5)  # a slow answer is still an answer
    assert backoff.due("a", 3.0)


def _loop(site: FakeSite, slow_failure_s: float = SLOW) -> ControlLoop:
    return ControlLoop(
        meter=site.meter,
        inverters=site.inverters,
        ratings=site.ratings,
        limiters=[FixedLimiter("fixed", Controls(export_limit=0.0))],
        controller=Controller(),
        write_policy=WritePolicy(),
        clock=site.clock,
        device_timeout_s=TIMEOUT,
        slow_failure_s=slow_failure_s,
    )


async def test_a_silent_inverter_holds_up_few_cycles() -> None:
    """Cycles wait for a silent inverter only when it is asked: 1, 2, 4, 8, then 10 s apart."""
    site = FakeSite(load_w=5000.0)
    site.add_inverter("a", 6000.0)
    site.add_inverter("b", 3000.0)
    loop = _loop(site)
    site.inverters["b"].read_fault.hang = True
    held_up = []
    for second in range(40):
        site.clock.advance(1.0)
        started = time.monotonic()
        snapshot = await loop.async_run_cycle()
        if time.monotonic() - started >= TIMEOUT:
            held_up.append(second)
        assert not snapshot.inverters["b"].available
        assert snapshot.inverters["b"].error == f"no answer within {TIMEOUT:g} s"
        assert snapshot.inverters["a"].available
    assert held_up == [0, 1, 3, 7, 15, 25, 35]

    # Back: noticed when next asked, at most 10 s later, and asked every cycle again.
    site.inverters["b"].read_fault.hang = False
    back_after = None
    for second in range(1, 12):
        site.clock.advance(1.0)
        snapshot = await loop.async_run_cycle()
        if snapshot.inverters["b"].available:
            back_after = second
            break
    assert back_after is not None
    assert back_after <= 10
    for _ in range(3):
        site.clock.advance(1.0)
        assert (await loop.async_run_cycle()).inverters["b"].available


async def test_a_failure_faster_than_the_threshold_is_asked_every_cycle() -> None:
    site = FakeSite(load_w=5000.0)
    site.add_inverter("a", 6000.0)
    loop = _loop(site, slow_failure_s=1.0)  # the 50 ms timeout is then a fast failure
    site.inverters["a"].read_fault.hang = True
    held_up = 0
    for _ in range(5):
        site.clock.advance(1.0)
        started = time.monotonic()
        await loop.async_run_cycle()
        held_up += time.monotonic() - started >= TIMEOUT
    assert held_up == 5
