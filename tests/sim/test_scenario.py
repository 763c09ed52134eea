"""Scenario files: built-ins load, inputs evaluate as described, bad files are refused clearly."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from custom_components.dynamic_export.sim.scenario import (
    Event,
    Profile,
    Scenario,
    builtin_scenarios,
    load_scenario,
)

VALID: dict[str, Any] = {
    "duration_s": 100,
    "inverters": [{"rating_w": 5000}, {"rating_w": 3000, "time_constant_s": 2}],
    "pv_available_w": [[0, 0], [50, 8000], [100, 8000]],
    "load_w": 500,
    "events": [
        {"t": 60, "type": "load_step", "delta_w": 3000},
        {"t": 20, "type": "pv_step", "delta_w": -1000},
        {"t": 70, "type": "cloud", "duration_s": 10, "depth": 0.5, "ramp_s": 2},
        {"t": 90, "type": "shade", "inverter": 1, "factor": 0.25},
    ],
}


def test_builtins_load() -> None:
    assert {"default", "load_steps", "cloudy"} <= set(builtin_scenarios())
    for name in builtin_scenarios():
        scenario = load_scenario(name)
        assert scenario.name == name
        assert scenario.description


def test_default_scenario_loops_and_has_a_3kw_drop() -> None:
    scenario = load_scenario("default")
    assert scenario.repeat
    assert len(scenario.inverters) == 2
    assert 5500 <= scenario.pv_at(0) <= 6500
    drops = [e for e in scenario.events if e.type == "load_step" and e.delta_w <= -3000]
    assert drops
    t = drops[0].t
    assert scenario.load_at(t + 1) == pytest.approx(scenario.load_at(t - 1) - 3000)
    assert scenario.load_at(t + 1 + scenario.duration_s) == pytest.approx(scenario.load_at(t + 1))


def test_load_steps_scenario_matches_the_export_limit_test() -> None:
    scenario = load_scenario("load_steps")
    assert scenario.export_limit_w == 1500
    assert scenario.meter_delay_s == 2.0
    assert not scenario.repeat
    assert scenario.pv_at(10) == 6000
    assert scenario.load_at(29.9) - scenario.load_at(30.1) == pytest.approx(3000)
    assert scenario.load_at(90.1) - scenario.load_at(89.9) == pytest.approx(3000)


def test_cloudy_scenario_has_fast_transients() -> None:
    scenario = load_scenario("cloudy")
    clouds = [e for e in scenario.events if e.type == "cloud"]
    assert len(clouds) >= 5
    assert all(e.ramp_s <= 1 for e in clouds)
    first = clouds[0]
    assert scenario.cloud_factor_at(first.t + first.ramp_s) == pytest.approx(1 - first.depth)


def test_inputs_evaluate() -> None:
    scenario = Scenario.from_dict(VALID)
    assert scenario.pv_at(25) == pytest.approx(4000 - 1000)
    assert scenario.load_at(59) == 500
    assert scenario.load_at(60) == 3500
    assert scenario.share_of(0) == pytest.approx(5 / 8)
    assert scenario.cloud_factor_at(71) == pytest.approx(0.75)  # half-way up the ramp
    assert scenario.cloud_factor_at(75) == pytest.approx(0.5)
    assert scenario.cloud_factor_at(80) == 1.0
    assert scenario.inverter_available_at(1, 95) == pytest.approx(7000 * 3 / 8 * 0.25)
    assert scenario.inverter_available_at(0, 95) == pytest.approx(7000 * 5 / 8)
    assert scenario.load_at(1000) == 3500  # not repeating: holds the end


def test_profile_steps_and_holds() -> None:
    profile = Profile(((0.0, 100.0), (10.0, 200.0), (10.0, 500.0), (20.0, 500.0)))
    assert profile.at(-1) == 100.0
    assert profile.at(5) == 150.0
    assert profile.at(9.999) == pytest.approx(200.0, abs=0.1)
    assert profile.at(10) == 500.0
    assert profile.at(99) == 500.0


def test_cloud_without_ramp_is_a_square() -> None:
    cloud = Event(t=10.0, type="cloud", duration_s=5.0, depth=0.8)
    assert cloud.cloud_factor(10.5) == pytest.approx(0.2)
    assert cloud.cloud_factor(15.0) == 1.0


def test_with_inverter_count_splits_the_rating() -> None:
    scenario = Scenario.from_dict(VALID).with_inverter_count(4)
    assert [inv.rating_w for inv in scenario.inverters] == [2000.0] * 4
    assert not any(e.type == "shade" for e in scenario.events)
    with pytest.raises(ValueError, match="inverter count"):
        scenario.with_inverter_count(0)


def _broken(path: list[str | int], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["duration_s"], KeyError, r"duration_s is required"),
        (["duration_s"], 0, r"duration_s must be > 0"),
        (["duration_s"], "long", r"duration_s must be a finite number"),
        (["inverters"], [], r"inverters must be a non-empty list"),
        (["inverters", 0, "rating_w"], -1, r"inverters\[0\]\.rating_w must be > 0"),
        (["inverters", 1, "availability"], 1.5, r"inverters\[1\]\.availability must be <= 1"),
        (["inverters", 0, "colour"], "red", r"inverters\[0\]: unknown field\(s\) 'colour'"),
        (["pv_available_w"], KeyError, r"pv_available_w is required"),
        (["pv_available_w"], [[0, 1], [10, 2], [5, 3]], r"pv_available_w\[2\]: times must not"),
        (["load_w"], [[0, -5]], r"load_w\[0\] power must be >= 0"),
        (["load_w"], [[0]], r"load_w\[0\] must be a \[t, W\] pair"),
        (["events", 0, "type"], "eclipse", r"events\[0\]\.type must be one of"),
        (["events", 0, "t"], 101, r"events\[0\]\.t must be <= 100"),
        (["events", 2, "depth"], 2, r"events\[2\]\.depth must be <= 1"),
        (["events", 3, "inverter"], 2, r"events\[3\]\.inverter must be <= 1"),
        (["events", 1, "factor"], 1, r"events\[1\]: unknown field\(s\) 'factor'"),
        (["repeat"], "yes", r"repeat must be true or false"),
        (["meter_delay_s"], -1, r"meter_delay_s must be >= 0"),
        (["speed"], 3, r"unknown field\(s\) 'speed'"),
    ],
)
def test_validation_errors(path: list[str | int], value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scenario.from_dict(_broken(path, value), name="bad")


def test_error_names_the_scenario() -> None:
    with pytest.raises(ValueError, match=r"scenario 'bad'\.duration_s"):
        Scenario.from_dict(_broken(["duration_s"], -1), name="bad")


def test_load_from_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(VALID), encoding="utf-8")
    scenario = load_scenario(path)
    assert scenario.name == "mine"
    assert len(scenario.inverters) == 2


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown scenario 'nope' \(built-in: .*default"):
        load_scenario("nope")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_scenario(bad)
    with pytest.raises(ValueError, match="cannot read"):
        load_scenario(tmp_path / "missing.json")
    not_object = tmp_path / "list.json"
    not_object.write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match="must be an object"):
        load_scenario(not_object)
