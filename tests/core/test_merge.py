"""Merging limiter requests: the most restrictive value wins each control."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.core.controls import (
    BOOLEAN_CONTROLS,
    WATT_CONTROLS,
    Controls,
    ControlType,
    LimitRequest,
)
from custom_components.dynamic_export.core.merge import MergedControls, merge_requests


def req(source: str, **controls: bool | float | None) -> LimitRequest:
    return LimitRequest(source, Controls(**controls))  # type: ignore[arg-type]


def test_empty_input_is_permissive() -> None:
    merged = merge_requests([])
    assert merged.connect is True
    assert merged.energize is True
    for control in WATT_CONTROLS:
        assert merged.get(control) is None
        assert merged.source(control) is None
    assert merged.sources == {}


def test_requests_with_no_opinion_leave_defaults() -> None:
    merged = merge_requests([req("a"), req("b")])
    assert merged == MergedControls()
    assert merged.sources == {}


@pytest.mark.parametrize("control", BOOLEAN_CONTROLS)
@pytest.mark.parametrize("order", ["false_first", "false_last"])
def test_false_wins_over_true(control: ControlType, order: str) -> None:
    requests = [req("yes", **{control.value: True}), req("no", **{control.value: False})]
    if order == "false_first":
        requests.reverse()
    merged = merge_requests(requests)
    assert merged.get(control) is False
    assert merged.source(control) == "no"


@pytest.mark.parametrize("control", BOOLEAN_CONTROLS)
def test_true_alone_is_recorded(control: ControlType) -> None:
    merged = merge_requests([req("a"), req("b", **{control.value: True})])
    assert merged.get(control) is True
    assert merged.source(control) == "b"


@pytest.mark.parametrize("control", BOOLEAN_CONTROLS)
@pytest.mark.parametrize("value", [True, False])
def test_boolean_tie_keeps_first(control: ControlType, value: bool) -> None:
    merged = merge_requests(
        [req("first", **{control.value: value}), req("second", **{control.value: value})]
    )
    assert merged.get(control) is value
    assert merged.source(control) == "first"


@pytest.mark.parametrize("control", WATT_CONTROLS)
@pytest.mark.parametrize(
    ("values", "winner", "expected"),
    [
        ([5000.0, 3000.0, 4000.0], "s1", 3000.0),
        ([1000.0, 3000.0, 2000.0], "s0", 1000.0),
        ([9000.0, 8000.0, 0.0], "s2", 0.0),
    ],
)
def test_lowest_watts_win(
    control: ControlType, values: list[float], winner: str, expected: float
) -> None:
    merged = merge_requests([req(f"s{i}", **{control.value: v}) for i, v in enumerate(values)])
    assert merged.get(control) == expected
    assert merged.source(control) == winner


@pytest.mark.parametrize("control", WATT_CONTROLS)
def test_watt_tie_keeps_first(control: ControlType) -> None:
    merged = merge_requests(
        [
            req("big", **{control.value: 7000.0}),
            req("first", **{control.value: 2000.0}),
            req("second", **{control.value: 2000.0}),
        ]
    )
    assert merged.get(control) == 2000.0
    assert merged.source(control) == "first"


@pytest.mark.parametrize("control", WATT_CONTROLS)
def test_negative_watts_clamp_to_zero(control: ControlType) -> None:
    merged = merge_requests(
        [req("a", **{control.value: 1500.0}), req("neg", **{control.value: -300.0})]
    )
    assert merged.get(control) == 0.0
    assert merged.source(control) == "neg"


def test_negative_watts_alone_clamp_to_zero() -> None:
    merged = merge_requests([req("neg", export_limit=-1.0)])
    assert merged.export_limit == 0.0


def test_negative_and_zero_tie_keeps_first() -> None:
    # Both ask for "nothing"; after clamping they are equal, so the first stays.
    merged = merge_requests([req("zero", export_limit=0.0), req("neg", export_limit=-50.0)])
    assert merged.export_limit == 0.0
    assert merged.source(ControlType.EXPORT_LIMIT) == "zero"


def test_unset_fields_do_not_override_set_ones() -> None:
    merged = merge_requests(
        [
            req("csip", export_limit=1500.0, connect=False),
            req("user", generation_limit=4000.0),
            req("empty"),
        ]
    )
    assert merged.export_limit == 1500.0
    assert merged.generation_limit == 4000.0
    assert merged.import_limit is None
    assert merged.load_limit is None
    assert merged.connect is False
    assert merged.energize is True
    assert merged.sources == {
        ControlType.EXPORT_LIMIT: "csip",
        ControlType.CONNECT: "csip",
        ControlType.GENERATION_LIMIT: "user",
    }


def test_each_control_records_its_own_winner() -> None:
    merged = merge_requests(
        [
            req("a", export_limit=1000.0, generation_limit=9000.0, energize=True),
            req("b", export_limit=2000.0, generation_limit=3000.0, energize=False),
            req("c", import_limit=500.0, load_limit=800.0, connect=True),
        ]
    )
    assert merged.sources == {
        ControlType.EXPORT_LIMIT: "a",
        ControlType.GENERATION_LIMIT: "b",
        ControlType.ENERGIZE: "b",
        ControlType.IMPORT_LIMIT: "c",
        ControlType.LOAD_LIMIT: "c",
        ControlType.CONNECT: "c",
    }
    assert (merged.connect, merged.energize) == (True, False)


def test_integer_watts_become_floats() -> None:
    merged = merge_requests([req("a", export_limit=1500)])
    assert isinstance(merged.export_limit, float)


def test_merge_accepts_any_iterable() -> None:
    merged = merge_requests(r for r in [req("a", export_limit=10.0)])
    assert merged.export_limit == 10.0


def test_controls_helpers() -> None:
    controls = Controls(export_limit=5.0, connect=False)
    assert controls.get(ControlType.EXPORT_LIMIT) == 5.0
    assert controls.get(ControlType.CONNECT) is False
    assert controls.as_dict() == {
        "connect": False,
        "energize": None,
        "export_limit": 5.0,
        "generation_limit": None,
        "import_limit": None,
        "load_limit": None,
    }
    assert not controls.is_empty
    assert Controls().is_empty
    # Field names and control names are interchangeable.
    assert set(Controls().as_dict()) == {c.value for c in ControlType}


@pytest.mark.parametrize("nan_first", [True, False])
def test_nan_watts_count_as_zero_whatever_the_order(nan_first: bool) -> None:
    requests = [req("nan", export_limit=float("nan")), req("real", export_limit=2000.0)]
    if not nan_first:
        requests.reverse()
    merged = merge_requests(requests)
    assert merged.export_limit == 0.0
    assert merged.source(ControlType.EXPORT_LIMIT) == "nan"
