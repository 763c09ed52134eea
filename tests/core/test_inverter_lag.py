"""Learning the inverters' lag from the cuts, and commanding cuts that land in one cycle."""

from __future__ import annotations

import math

import pytest

from custom_components.dynamic_export.core.inverter_lag import MAX_UNDERSHOOT, InverterLag


def lagged(output_w: float, limit_w: float, tau_s: float, dt: float = 1.0) -> float:
    """A first-order inverter: the output after ``dt`` seconds under ``limit_w``."""
    return limit_w + (output_w - limit_w) * math.exp(-dt / tau_s)


def cut_and_read(lag: InverterLag, tau_s: float, t: float, output: float, target: float) -> float:
    commanded = lag.command(target, output, t, cycle_s=1.0, min_cut_w=0.0)
    after = lagged(output, commanded, tau_s)
    lag.observe(after, t + 1.0)
    return after


@pytest.mark.parametrize("tau_s", [0.5, 1.0, 2.0])
def test_the_first_cut_teaches_the_lag_the_next_one_lands(tau_s: float) -> None:
    lag = InverterLag()
    assert lag.time_constant_s is None
    # Unknown lag: the first cut is commanded at the target and lands late.
    after = cut_and_read(lag, tau_s, 0.0, 6000.0, 3000.0)
    assert after > 3000.0 + 100.0
    assert lag.time_constant_s == pytest.approx(tau_s, rel=0.01)
    # Known lag: the next cut is commanded deeper and the output is at the target a cycle on.
    after = cut_and_read(lag, tau_s, 10.0, 6000.0, 3000.0)
    undershoot_allowed = MAX_UNDERSHOOT * 3000.0
    if math.exp(-1.0 / tau_s) / (1 - math.exp(-1.0 / tau_s)) * 3000.0 <= undershoot_allowed:
        assert after == pytest.approx(3000.0, abs=1.0)
    else:  # a slow inverter: as deep as allowed, and closer than without
        assert 3000.0 < after < lagged(6000.0, 3000.0, tau_s)


def test_small_cuts_and_rises_are_commanded_as_they_are() -> None:
    lag = InverterLag()
    cut_and_read(lag, 1.0, 0.0, 6000.0, 3000.0)
    assert lag.command(5800.0, 6000.0, 5.0, cycle_s=1.0, min_cut_w=0.0) == 5800.0  # < 300 W
    assert lag.command(5000.0, 6000.0, 5.0, cycle_s=1.0, min_cut_w=1500.0) == 5000.0  # noise
    assert lag.command(6500.0, 6000.0, 5.0, cycle_s=1.0, min_cut_w=0.0) == 6500.0  # a rise


def test_never_below_zero() -> None:
    lag = InverterLag()
    cut_and_read(lag, 2.0, 0.0, 6000.0, 3000.0)
    assert lag.command(200.0, 6000.0, 5.0, cycle_s=1.0, min_cut_w=0.0) == 0.0


def test_a_cloud_during_the_cut_teaches_a_fast_inverter_not_a_slow_one() -> None:
    """Output falling for another reason only makes the lag look shorter: less undershoot."""
    lag = InverterLag()
    lag.command(3000.0, 6000.0, 0.0, cycle_s=1.0, min_cut_w=0.0)
    lag.observe(1000.0, 1.0)  # the sun went too: below the limit
    assert lag.time_constant_s == 0.0
    assert lag.command(3000.0, 6000.0, 5.0, cycle_s=1.0, min_cut_w=0.0) == 3000.0


def test_late_or_missing_readings_teach_nothing() -> None:
    lag = InverterLag()
    lag.command(3000.0, 6000.0, 0.0, cycle_s=1.0, min_cut_w=0.0)
    lag.observe(4000.0, 30.0)  # half a minute later: not one cycle
    assert lag.time_constant_s is None
    lag.command(3000.0, 6000.0, 40.0, cycle_s=1.0, min_cut_w=0.0)
    lag.reset()  # control went off
    lag.observe(4000.0, 41.0)
    assert lag.time_constant_s is None
    lag.observe(4000.0, 42.0)  # nothing in flight
    assert lag.time_constant_s is None


@pytest.mark.parametrize("tau_s", [5.0, 30.0])
def test_slow_or_dead_time_inverters_are_not_driven_deeper(tau_s: float) -> None:
    """A device that barely moved in a cycle may act later, all at once: no undershoot."""
    lag = InverterLag()
    cut_and_read(lag, tau_s, 0.0, 6000.0, 3000.0)
    assert lag.command(3000.0, 6000.0, 10.0, cycle_s=1.0, min_cut_w=0.0) == 3000.0


def test_a_dead_time_device_does_not_look_fast_when_an_earlier_cut_lands() -> None:
    """OpenDTU acts ~3 s after a command: the cuts asked meanwhile must not teach the lag."""
    lag = InverterLag()
    output = 6000.0
    for t in range(4):  # the target stays 3 kW; nothing moves for 3 s, then all at once
        lag.command(3000.0, output, float(t), cycle_s=1.0, min_cut_w=0.0)
        output = 6000.0 if t < 2 else 3000.0
        lag.observe(output, t + 1.0)
    assert lag.time_constant_s is not None
    assert lag.time_constant_s > 3.0
    # A later cut is therefore commanded at its target, not deeper.
    assert lag.command(2000.0, 3000.0, 30.0, cycle_s=1.0, min_cut_w=0.0) == 2000.0
