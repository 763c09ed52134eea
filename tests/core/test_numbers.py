"""One rule for what counts as a number in device and entity data."""

from __future__ import annotations

import math

import pytest

from custom_components.dynamic_export.core.numbers import finite_number


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0.0), (1500, 1500.0), (-2.5, -2.5), (1e6, 1e6)],
)
def test_finite_ints_and_floats_are_numbers(value: object, expected: float) -> None:
    result = finite_number(value)
    assert result == expected
    assert type(result) is float


@pytest.mark.parametrize(
    "value",
    [True, False, math.nan, math.inf, -math.inf, "12", None, [1], {"v": 1}],
)
def test_bools_non_finite_and_other_types_are_not(value: object) -> None:
    assert finite_number(value) is None
