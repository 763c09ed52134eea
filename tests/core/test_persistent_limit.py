"""The write-only-on-change policy of a persistent limit register, on a fake clock."""

from __future__ import annotations

import math

import pytest

from custom_components.dynamic_export.core.persistent_limit import (
    DEFAULT_STEP_PCT,
    FULL,
    REWRITE_AFTER_S,
    RISE_STEPS,
    PersistentLimit,
    ratio_value,
)

from .fakes import FakeClock

REGISTER = 40125


@pytest.mark.parametrize(
    ("pct", "step", "raw"),
    [
        (47.9, 2.0, 460),  # rounded down to the step
        (48.0, 2.0, 480),
        (100.0, 2.0, 1000),
        (150.0, 2.0, 1000),  # clamped
        (-5.0, 2.0, 0),
        (33.3, 0.1, 333),
        (99.99, 3.0, 990),
        (0.29999999999, 0.1, 3),  # float noise below a step boundary is not a step
    ],
)
def test_ratio_value_rounds_down_and_clamps(pct: float, step: float, raw: int) -> None:
    assert ratio_value(pct, step) == raw


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_ratio_value_refuses_what_is_not_a_number(bad: float) -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        ratio_value(bad, 2.0)


@pytest.mark.parametrize("bad", [True, "50", None])
def test_ratio_value_refuses_other_types(bad: object) -> None:
    with pytest.raises(TypeError):
        ratio_value(bad, 2.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("step", [0.0, 0.09, 10.5, math.nan])
def test_step_outside_0_1_to_10_is_refused(step: float) -> None:
    with pytest.raises(ValueError, match="step_pct"):
        PersistentLimit(step)


def test_falls_are_held_at_once_rises_only_past_one_and_a_half_steps() -> None:
    policy: PersistentLimit[int] = PersistentLimit(clock=FakeClock())
    assert policy.step_pct == DEFAULT_STEP_PCT == 2.0
    held = 500  # 50.0 %
    assert policy.to_hold(45.0, policy.rounded(45.0), held) == 440  # a fall: at once
    # A rise to 52.9 % rounds to 52 %, but 52.9 < 50 + 1.5 × 2: the held 50 % stays.
    assert policy.to_hold(52.9, policy.rounded(52.9), held) == held
    assert policy.to_hold(53.0, policy.rounded(53.0), held) == 520  # 50 + RISE_STEPS × 2
    assert RISE_STEPS == 1.5
    # 100 % (no limit) is never held back: the device is released from our limit at once.
    assert policy.to_hold(100.0, policy.rounded(100.0), 990) == FULL
    # Nothing enforced (None: e.g. a switch that is off): any value is taken as it is.
    assert policy.to_hold(52.9, policy.rounded(52.9), None) == 520


def test_a_command_wavering_across_a_step_boundary_holds_one_value() -> None:
    policy: PersistentLimit[int] = PersistentLimit(clock=FakeClock())
    held = policy.rounded(50.1)
    seen = set()
    for pct in (50.1, 51.9, 52.1, 51.8, 52.4, 50.2, 52.9):
        held = policy.to_hold(pct, policy.rounded(pct), held)
        seen.add(held)
    assert seen == {500}


def test_the_same_value_is_not_rewritten_within_a_minute() -> None:
    clock = FakeClock()
    policy: PersistentLimit[int] = PersistentLimit(clock=clock)
    assert not policy.recently_written(REGISTER, 500)
    policy.written(REGISTER, 500)
    assert policy.recently_written(REGISTER, 500)
    assert not policy.recently_written(REGISTER, 480)  # another value: write it
    assert not policy.recently_written(REGISTER + 1, 500)  # another register
    clock.advance(REWRITE_AFTER_S - 0.1)
    assert policy.recently_written(REGISTER, 500)
    clock.advance(0.1)
    assert not policy.recently_written(REGISTER, 500)
    policy.written(REGISTER, 480)  # the last value is what counts
    assert not policy.recently_written(REGISTER, 500)


def test_the_baseline_is_kept_once_reported_and_dropped_when_handed_back() -> None:
    reported: list[int | None] = []
    policy: PersistentLimit[int] = PersistentLimit(on_baseline=reported.append, clock=FakeClock())
    assert policy.baseline is None
    policy.keep_baseline(900)
    policy.keep_baseline(440)  # what we wrote ourselves is never the installer's setting
    assert policy.baseline == 900
    assert reported == [900]
    policy.written(REGISTER, 440)
    policy.handed_back()
    assert policy.baseline is None
    assert reported == [900, None]
    assert not policy.recently_written(REGISTER, 440)  # the next limit starts over


def test_a_stored_baseline_is_kept_from_the_start() -> None:
    reported: list[int | None] = []
    policy: PersistentLimit[int] = PersistentLimit(
        baseline=1000, on_baseline=reported.append, clock=FakeClock()
    )
    policy.keep_baseline(0)  # found after a crash: our own 0 %, not the installer's
    assert policy.baseline == 1000
    assert reported == []
