"""Frozen meter values told apart from live ones by the energy counters (core.frozen)."""

from __future__ import annotations

import math

import pytest

from custom_components.dynamic_export.core.frozen import (
    MIN_STILL_S,
    FrozenCounterCheck,
    float32_step,
)

START_IMPORT = 2_500_000.0
START_EXPORT = 1_200_000.0


class Meter:
    """A meter read once a second: power (+import), counters rounded to ``resolution``."""

    def __init__(self, power_w: float, *, resolution_wh: float = 1.0) -> None:
        self.power_w = power_w
        self.resolution_wh = resolution_wh
        self.now = 0.0
        self.imported = START_IMPORT
        self.exported = START_EXPORT
        self.frozen = False
        self.shown = self._counters()
        self.check = FrozenCounterCheck()

    def _counters(self) -> tuple[float, float]:
        step = self.resolution_wh
        return (math.floor(self.imported / step) * step, math.floor(self.exported / step) * step)

    def run(self, seconds: float, dt: float = 1.0) -> list[float | None]:
        """Advance, reading every ``dt``; the check's verdict at each read."""
        verdicts = []
        for _ in range(round(seconds / dt)):
            self.now += dt
            energy = self.power_w * dt / 3600.0
            if energy >= 0:
                self.imported += energy
            else:
                self.exported -= energy
            if not self.frozen:
                self.shown = self._counters()
            verdicts.append(self.read())
        return verdicts

    def read(self) -> float | None:
        return self.check.observe(self.now, self.power_w, *self.shown, self.resolution_wh)


@pytest.mark.parametrize("power_w", [-9000.0, -1500.0, -30.0, 0.0, 30.0, 800.0, 20000.0])
def test_live_counters_are_never_frozen(power_w: float) -> None:
    meter = Meter(power_w)
    assert not any(meter.run(3600.0))


def test_frozen_at_1_kw_is_found_once_13_wh_went_uncounted() -> None:
    meter = Meter(1000.0)
    meter.run(60.0)
    assert meter.check.armed
    meter.frozen = True
    moved_at = meter.check.moved_at
    verdicts = meter.run(60.0)
    first = next(i for i, v in enumerate(verdicts) if v is not None)
    # 3 steps of 1 Wh + 10 Wh = 13 Wh; at 1 kW that is 46.8 s after the last move.
    frozen_at = meter.now - 60.0 + first + 1
    assert moved_at is not None
    assert frozen_at - moved_at == pytest.approx(47.0, abs=1.0)
    assert verdicts[first] == moved_at
    assert all(v == moved_at for v in verdicts[first:])


def test_frozen_at_high_power_waits_the_still_time() -> None:
    meter = Meter(20000.0)
    meter.run(20.0)
    meter.frozen = True
    moved_at = meter.check.moved_at
    assert moved_at is not None
    verdicts = meter.run(20.0)
    first = next(i for i, v in enumerate(verdicts) if v is not None)
    assert meter.now - 20.0 + first + 1 - moved_at == MIN_STILL_S


def test_coarse_counters_need_a_bigger_margin() -> None:
    """A 10 Wh counter (scale factor 1) needs 3 x 10 + 10 = 40 Wh: 72 s at 2 kW."""
    meter = Meter(-2000.0, resolution_wh=10.0)
    meter.run(120.0)
    assert meter.check.armed
    meter.frozen = True
    moved_at = meter.check.moved_at
    assert moved_at is not None
    verdicts = meter.run(120.0)
    first = next(i for i, v in enumerate(verdicts) if v is not None)
    assert meter.now - 120.0 + first + 1 - moved_at == pytest.approx(73.0, abs=1.5)


def test_recovers_when_the_counters_move_again() -> None:
    meter = Meter(5000.0)
    meter.run(20.0)
    meter.frozen = True
    assert meter.run(30.0)[-1] is not None
    assert meter.check.frozen
    meter.frozen = False
    assert meter.run(1.0) == [None]
    assert not meter.check.frozen
    assert meter.check.still_wh == 0.0


def test_a_second_freeze_is_found_after_recovery() -> None:
    """The big jump at recovery does not count as keeping up; the next normal move does."""
    meter = Meter(5000.0)
    meter.run(20.0)
    meter.frozen = True
    meter.run(30.0)
    meter.frozen = False
    meter.run(1.0)
    assert not meter.check.armed
    meter.run(5.0)
    assert meter.check.armed
    meter.frozen = True
    verdicts = meter.run(20.0)
    assert verdicts[-1] is not None


def test_counters_that_never_move_are_not_judged() -> None:
    """Dead (or frozen-since-start) counters look the same: the meter is left alone."""
    meter = Meter(5000.0)
    meter.frozen = True
    assert not any(meter.run(3600.0))
    assert not meter.check.armed


def test_counters_that_update_rarely_are_not_judged() -> None:
    """A meter that updates its counters every 15 s never shows two moves within 10 s."""
    meter = Meter(5000.0)
    verdicts: list[float | None] = []
    for _ in range(120):
        meter.frozen = True
        verdicts += meter.run(14.0)
        meter.frozen = False
        verdicts += meter.run(1.0)
    assert not any(verdicts)
    assert not meter.check.armed


def test_a_missing_counter_is_not_expected_to_move() -> None:
    """Exporting with no export counter: the still import counter proves nothing."""
    check = FrozenCounterCheck()
    for t in range(20):  # armed on import first
        check.observe(float(t), 3000.0, START_IMPORT + t, None, 1.0)
    verdicts = [check.observe(20.0 + t, -5000.0, START_IMPORT + 20, None, 1.0) for t in range(600)]
    assert not any(verdicts)
    assert check.still_wh == 0.0


def test_a_gap_between_reads_adds_at_most_ten_seconds() -> None:
    """Unreachable for an hour: the energy of the gap is not known, so it is not counted."""
    check = FrozenCounterCheck()
    for t in range(20):
        check.observe(float(t), 1000.0, START_IMPORT + t * 0.28, START_EXPORT, 1.0)
    still = check.still_wh
    check.observe(3620.0, 1000.0, *(START_IMPORT + 19 * 0.28, START_EXPORT), 1.0)
    assert check.still_wh - still <= 1000.0 * 10 / 3600 + 1e-9
    assert not check.frozen


def test_power_crossing_zero_counts_nothing_for_that_step() -> None:
    check = FrozenCounterCheck()
    check.observe(0.0, 2000.0, START_IMPORT, START_EXPORT, 1.0)
    check.observe(1.0, -2000.0, START_IMPORT, START_EXPORT, 1.0)
    assert check.still_wh == 0.0
    check.observe(2.0, -2000.0, START_IMPORT, START_EXPORT, 1.0)
    assert check.still_wh == pytest.approx(2000.0 / 3600.0)


def test_the_clock_going_back_counts_nothing() -> None:
    check = FrozenCounterCheck()
    check.observe(100.0, 2000.0, START_IMPORT, START_EXPORT, 1.0)
    check.observe(50.0, 2000.0, START_IMPORT, START_EXPORT, 1.0)
    assert check.still_wh == 0.0


def test_margin() -> None:
    check = FrozenCounterCheck()
    assert check.margin_wh(1.0) == 13.0
    assert check.margin_wh(10.0) == 40.0
    assert check.margin_wh(0.0) == 10.0


@pytest.mark.parametrize(
    ("value", "step"),
    [
        (1.0, 2.0**-23),
        (16_777_216.0, 2.0),  # 2**24 Wh: float32 counts in 2 Wh steps from here
        (16_777_215.0, 1.0),
        (50_000_000.0, 4.0),
        (-3.0, 2.0**-22),
        (0.0, 0.0),
        (math.inf, 0.0),
    ],
)
def test_float32_step(value: float, step: float) -> None:
    assert float32_step(value) == step
