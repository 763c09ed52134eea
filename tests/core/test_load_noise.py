"""Learning the load's cycle-to-cycle noise."""

from __future__ import annotations

import math
import random

import pytest

from custom_components.dynamic_export.core.load_noise import LoadNoise


def feed(noise: LoadNoise, loads: list[float], *, every_s: float = 1.0) -> float:
    for index, load in enumerate(loads):
        noise.update(load, 100.0 + index * every_s)
    return noise.sigma_w


def household(seconds: int, sigma_change_w: float, *, seed: int = 3) -> list[float]:
    """A load taking random 1 s changes of deviation ``sigma_change_w`` (a random walk)."""
    rng = random.Random(seed)
    load, loads = 3000.0, []
    for _ in range(seconds):
        load += rng.gauss(0.0, sigma_change_w)
        loads.append(load)
    return loads


def test_a_still_load_has_no_noise() -> None:
    assert feed(LoadNoise(), [2000.0] * 50) == 0.0


def test_learns_the_typical_one_second_change() -> None:
    sigma = feed(LoadNoise(), household(600, 90.0))
    assert sigma == pytest.approx(90.0, rel=0.25)


def test_longer_cycles_give_the_same_figure() -> None:
    # Sampling the same random walk every 4 s sees changes twice as large.
    every_second = household(2400, 90.0)
    sigma = feed(LoadNoise(), every_second[::4], every_s=4.0)
    assert sigma == pytest.approx(90.0, rel=0.25)


def test_appliance_steps_are_not_noise() -> None:
    noise = LoadNoise()
    quiet = household(300, 30.0)
    before = feed(noise, quiet)
    # A kettle: +2.4 kW, held, then off again.
    kettle = [load + 2400.0 for load in household(60, 30.0, seed=5)]
    after = feed(noise, [*quiet, *kettle, *quiet])
    assert after == pytest.approx(before, rel=0.3)
    assert after < 45.0


def test_gaps_and_bad_values_teach_nothing() -> None:
    noise = LoadNoise(initial_sigma_w=40.0)
    noise.update(1000.0, 0.0)
    noise.update(1500.0, 30.0)  # control was off for 30 s
    noise.update(math.nan, 31.0)
    noise.update(1400.0, 30.0)  # the same instant again
    assert noise.sigma_w == 40.0
    noise.reset()
    noise.update(0.0, 32.0)  # a new series: no change to learn from yet
    assert noise.sigma_w == 40.0
