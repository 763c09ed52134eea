"""The controller: limits and measurements in, one command per inverter out."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.core.allocation import headroom_w
from custom_components.dynamic_export.core.controller import (
    OVER_LIMIT_TOLERANCE_W,
    Constraint,
    Controller,
    ControllerSettings,
    ControlState,
    FailSafeReason,
)
from custom_components.dynamic_export.core.controls import ControlType
from custom_components.dynamic_export.core.load_noise import LoadNoise
from custom_components.dynamic_export.core.measurements import (
    InverterCommand,
    InverterReading,
    MeterReading,
)
from custom_components.dynamic_export.core.merge import MergedControls

NOW = 500.0


def meter(grid_w: float, *, at: float = NOW) -> MeterReading:
    return MeterReading(timestamp=at, grid_power_w=grid_w)


def reading(
    output_w: float,
    rating_w: float = 10_000.0,
    *,
    limit_pct: float | None = None,
    at: float = NOW,
) -> InverterReading:
    return InverterReading(
        timestamp=at,
        ac_power_w=output_w,
        rated_power_w=rating_w,
        limit_pct=limit_pct,
        limit_enabled=limit_pct is not None,
        connected=True,
    )


def no_ramp() -> Controller:
    """A controller whose ramp never binds, to test the target on its own."""
    return Controller(ControllerSettings(ramp_up_pct_per_s=1e9))


def test_default_settings() -> None:
    settings = Controller().settings
    assert settings.meter_max_age_s == 5.0
    assert settings.ramp_up_pct_per_s == 25.0


# --- the generation target -------------------------------------------------------


def test_target_is_output_plus_room_under_export_limit() -> None:
    # 6 kW produced, 4 kW exported, 1 kW allowed: curtail by 3 kW.
    plan = Controller().compute(
        MergedControls(export_limit=1000.0),
        meter(-4000.0),
        {"a": reading(6000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.state is ControlState.CONTROLLING
    assert plan.generation_target_w == pytest.approx(3000.0)
    assert plan.constraint is Constraint.EXPORT_LIMIT
    assert plan.load_w == pytest.approx(2000.0)
    assert plan.commands == {"a": InverterCommand(connect=True, limit_pct=pytest.approx(30.0))}


def test_target_rises_while_importing() -> None:
    # 2 kW produced, 1 kW imported, 500 W export allowed: 3.5 kW.
    plan = no_ramp().compute(
        MergedControls(export_limit=500.0),
        meter(1000.0),
        {"a": reading(2000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(3500.0)
    assert plan.constraint is Constraint.EXPORT_LIMIT


def test_zero_export_limit() -> None:
    plan = Controller().compute(
        MergedControls(export_limit=0.0),
        meter(-1500.0),
        {"a": reading(4000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(2500.0)


def test_target_capped_by_generation_limit() -> None:
    plan = no_ramp().compute(
        MergedControls(export_limit=5000.0, generation_limit=4000.0),
        meter(-1000.0),
        {"a": reading(2000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(4000.0)
    assert plan.constraint is Constraint.GENERATION_LIMIT
    assert plan.commands["a"].limit_pct == pytest.approx(40.0)


def test_target_capped_by_sum_of_ratings() -> None:
    plan = no_ramp().compute(
        MergedControls(export_limit=50_000.0),
        meter(-1000.0),
        {"a": reading(3000.0, 6000.0), "b": reading(1000.0, 4000.0)},
        {"a": 6000.0, "b": 4000.0},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(10_000.0)
    assert plan.constraint is Constraint.RATING
    assert {k: c.limit_pct for k, c in plan.commands.items()} == {"a": 100.0, "b": 100.0}


def test_no_limits_means_full_rating() -> None:
    plan = no_ramp().compute(
        MergedControls(), meter(0.0), {"a": reading(1000.0)}, {"a": 10_000.0}, NOW
    )
    assert plan.generation_target_w == pytest.approx(10_000.0)
    assert plan.constraint is Constraint.RATING
    assert plan.unenforced == {}
    assert plan.over_export_limit is False


def test_target_never_below_zero() -> None:
    # Exporting far more than the inverters produce (uncontrolled generation):
    # the best the inverters can do is nothing.
    plan = Controller().compute(
        MergedControls(export_limit=0.0),
        meter(-5000.0),
        {"a": reading(1000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.generation_target_w == 0.0
    assert plan.commands["a"].limit_pct == 0.0


def test_generation_limit_of_zero() -> None:
    plan = Controller().compute(
        MergedControls(generation_limit=0.0),
        meter(0.0),
        {"a": reading(3000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.generation_target_w == 0.0
    assert plan.constraint is Constraint.GENERATION_LIMIT


def test_negative_inverter_output_counts_as_zero() -> None:
    # At night an inverter may draw a few watts; that is load, not generation.
    plan = Controller().compute(
        MergedControls(export_limit=0.0),
        meter(300.0),
        {"a": reading(-20.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.load_w == pytest.approx(300.0)


@pytest.mark.parametrize(
    ("grid_w", "over"), [(-1500.0, True), (-1000.0, False), (-200.0, False), (800.0, False)]
)
def test_over_export_limit(grid_w: float, over: bool) -> None:
    plan = Controller().compute(
        MergedControls(export_limit=1000.0),
        meter(grid_w),
        {"a": reading(5000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.over_export_limit is over


def test_not_over_without_export_limit() -> None:
    plan = Controller().compute(
        MergedControls(), meter(-9000.0), {"a": reading(9000.0)}, {"a": 10_000.0}, NOW
    )
    assert plan.over_export_limit is False


# --- import and load limits ------------------------------------------------------


def test_load_limit_is_always_reported_unenforced() -> None:
    plan = Controller().compute(
        MergedControls(load_limit=3000.0),
        meter(0.0),
        {"a": reading(1000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert ControlType.LOAD_LIMIT in plan.unenforced
    assert plan.unenforced[ControlType.LOAD_LIMIT]


def test_load_limit_reported_in_fail_safe_too() -> None:
    plan = Controller().compute(
        MergedControls(load_limit=3000.0), None, {"a": reading(1000.0)}, {"a": 10_000.0}, NOW
    )
    assert ControlType.LOAD_LIMIT in plan.unenforced


def test_import_limit_that_holds_is_not_reported() -> None:
    # Load 3 kW, 1 kW produced, 2 kW imported; import limit 2.5 kW is met.
    plan = no_ramp().compute(
        MergedControls(import_limit=2500.0, export_limit=0.0),
        meter(2000.0),
        {"a": reading(1000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.unenforced == {}
    assert plan.generation_target_w == pytest.approx(3000.0)


def test_import_limit_beyond_rating_is_reported() -> None:
    # Load 8 kW, import limit 2 kW: needs 6 kW of generation, only 5 kW rated.
    plan = no_ramp().compute(
        MergedControls(import_limit=2000.0),
        meter(5000.0),
        {"a": reading(3000.0, 5000.0)},
        {"a": 5000.0},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(5000.0)
    assert plan.constraint is Constraint.RATING
    assert "6000" in plan.unenforced[ControlType.IMPORT_LIMIT]


def test_import_limit_beyond_generation_limit_is_reported() -> None:
    plan = no_ramp().compute(
        MergedControls(import_limit=2000.0, generation_limit=4000.0),
        meter(5000.0),
        {"a": reading(3000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(4000.0)
    assert plan.constraint is Constraint.GENERATION_LIMIT
    assert ControlType.IMPORT_LIMIT in plan.unenforced


def test_import_limit_in_fail_safe_is_reported() -> None:
    plan = Controller().compute(
        MergedControls(import_limit=2000.0), None, {"a": reading(3000.0)}, {"a": 10_000.0}, NOW
    )
    assert plan.state is ControlState.FAIL_SAFE
    assert ControlType.IMPORT_LIMIT in plan.unenforced


def test_import_limit_is_a_floor_under_the_ramp() -> None:
    # Curtailed to nothing (no load, zero export), then 6 kW of load arrives.
    controller = Controller()
    merged = MergedControls(export_limit=0.0, import_limit=1000.0)
    first = controller.compute(merged, meter(0.0), {"a": reading(0.0)}, {"a": 10_000.0}, NOW)
    assert first.generation_target_w == 0.0
    plan = controller.compute(
        merged,
        meter(6000.0, at=NOW + 1),
        {"a": reading(0.0, at=NOW + 1)},
        {"a": 10_000.0},
        NOW + 1,
    )
    # The ramp alone would allow 2.5 kW (import 3.5 kW); the import limit needs 5 kW.
    assert plan.generation_target_w == pytest.approx(5000.0)
    assert plan.constraint is Constraint.IMPORT_LIMIT
    assert plan.unenforced == {}


def test_import_floor_never_exceeds_what_limits_allow() -> None:
    controller = Controller()
    merged = MergedControls(generation_limit=3000.0, import_limit=1000.0)
    controller.compute(merged, meter(0.0), {"a": reading(0.0)}, {"a": 10_000.0}, NOW)
    plan = controller.compute(
        merged,
        meter(8000.0, at=NOW + 1),
        {"a": reading(0.0, at=NOW + 1)},
        {"a": 10_000.0},
        NOW + 1,
    )
    assert plan.generation_target_w == pytest.approx(3000.0)
    assert ControlType.IMPORT_LIMIT in plan.unenforced


# --- ramping ---------------------------------------------------------------------


def test_first_cycle_ramps_from_present_output() -> None:
    plan = Controller().compute(
        MergedControls(), meter(0.0), {"a": reading(2000.0)}, {"a": 10_000.0}, NOW
    )
    # 25 %/s of 10 kW over the assumed first second: 2.5 kW above 2 kW.
    assert plan.generation_target_w == pytest.approx(4500.0)
    assert plan.constraint is Constraint.RAMP


def test_increase_bounded_by_elapsed_time() -> None:
    controller = Controller()
    merged = MergedControls(export_limit=0.0)
    # Curtailed: 1 kW load, 1 kW produced.
    first = controller.compute(merged, meter(0.0), {"a": reading(1000.0)}, {"a": 10_000.0}, NOW)
    assert first.generation_target_w == pytest.approx(1000.0)
    # Load jumps to 9 kW; after 0.5 s the target may rise by 1.25 kW only.
    second = controller.compute(
        merged, meter(8000.0, at=NOW + 0.5), {"a": reading(1000.0)}, {"a": 10_000.0}, NOW + 0.5
    )
    assert second.generation_target_w == pytest.approx(2250.0)
    assert second.constraint is Constraint.RAMP
    # 2 s later it may rise by 5 kW more.
    third = controller.compute(
        merged, meter(6750.0, at=NOW + 2.5), {"a": reading(2250.0)}, {"a": 10_000.0}, NOW + 2.5
    )
    assert third.generation_target_w == pytest.approx(7250.0)
    assert third.constraint is Constraint.RAMP
    # And then it reaches the limit.
    fourth = controller.compute(
        merged, meter(1750.0, at=NOW + 3.5), {"a": reading(7250.0)}, {"a": 10_000.0}, NOW + 3.5
    )
    assert fourth.generation_target_w == pytest.approx(9000.0)
    assert fourth.constraint is Constraint.EXPORT_LIMIT


def test_inverter_answering_again_is_not_cut_below_its_output() -> None:
    """An inverter that did not answer was never told the target planned without it: when
    it answers again, producing 4 kW, the ramp starts above that, not at the 0 W planned."""
    controller = Controller()
    merged = MergedControls(export_limit=1500.0)
    ratings = {"a": 10_000.0}
    controller.compute(merged, meter(-1500.0), {"a": reading(4000.0)}, ratings, NOW)
    silent = controller.compute(merged, meter(-1500.0, at=NOW + 1), {"a": None}, ratings, NOW + 1)
    assert silent.generation_target_w == 0.0  # nothing answered: nothing to plan for
    back = controller.compute(
        merged, meter(-1500.0, at=NOW + 2), {"a": reading(4000.0)}, ratings, NOW + 2
    )
    assert back.generation_target_w >= 4000.0 - 250.0  # the export limit's margin at most
    assert back.constraint is Constraint.EXPORT_LIMIT


def test_ramp_rate_is_a_setting() -> None:
    controller = Controller(ControllerSettings(ramp_up_pct_per_s=10.0))
    plan = controller.compute(
        MergedControls(), meter(0.0), {"a": reading(0.0)}, {"a": 10_000.0}, NOW
    )
    assert plan.generation_target_w == pytest.approx(1000.0)


def test_ramp_uses_available_rating_only() -> None:
    plan = Controller().compute(
        MergedControls(),
        meter(0.0),
        {"a": reading(0.0, 4000.0), "b": None},
        {"a": 4000.0, "b": 6000.0},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(1000.0)


def test_no_time_elapsed_means_no_increase() -> None:
    controller = Controller()
    controller.compute(MergedControls(), meter(0.0), {"a": reading(0.0)}, {"a": 10_000.0}, NOW)
    again = controller.compute(
        MergedControls(), meter(0.0), {"a": reading(0.0)}, {"a": 10_000.0}, NOW
    )
    assert again.generation_target_w == pytest.approx(2500.0)


def test_clock_going_backwards_does_not_decrease_or_jump() -> None:
    controller = Controller()
    controller.compute(MergedControls(), meter(0.0), {"a": reading(0.0)}, {"a": 10_000.0}, NOW)
    plan = controller.compute(
        MergedControls(), meter(0.0, at=NOW - 10), {"a": reading(0.0)}, {"a": 10_000.0}, NOW - 10
    )
    assert plan.generation_target_w == pytest.approx(2500.0)


def test_huge_decrease_applies_at_once() -> None:
    controller = no_ramp()
    merged_free = MergedControls()
    first = controller.compute(
        merged_free, meter(-9000.0), {"a": reading(10_000.0)}, {"a": 10_000.0}, NOW
    )
    assert first.generation_target_w == pytest.approx(10_000.0)
    plan = controller.compute(
        MergedControls(export_limit=0.0),
        meter(-9000.0, at=NOW + 0.01),
        {"a": reading(10_000.0)},
        {"a": 10_000.0},
        NOW + 0.01,
    )
    assert plan.generation_target_w == pytest.approx(1000.0)
    assert plan.constraint is Constraint.EXPORT_LIMIT
    assert plan.commands["a"].limit_pct == pytest.approx(10.0)


def test_reset_forgets_previous_target() -> None:
    controller = Controller()
    controller.compute(
        MergedControls(export_limit=0.0), meter(0.0), {"a": reading(0.0)}, {"a": 10_000.0}, NOW
    )
    controller.reset()
    plan = controller.compute(
        MergedControls(),
        meter(0.0, at=NOW + 100),
        {"a": reading(6000.0)},
        {"a": 10_000.0},
        NOW + 100,
    )
    # Ramps from present output over one second, not from 0 over 100 s.
    assert plan.generation_target_w == pytest.approx(8500.0)


# --- split among inverters ------------------------------------------------------


def test_split_by_rating() -> None:
    plan = Controller().compute(
        MergedControls(export_limit=0.0),
        meter(-4500.0),
        {"a": reading(6000.0, 6000.0), "b": reading(3000.0, 3000.0)},
        {"a": 6000.0, "b": 3000.0},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(4500.0)
    assert plan.commands["a"].limit_pct == pytest.approx(50.0)
    assert plan.commands["b"].limit_pct == pytest.approx(50.0)


def test_shaded_inverter_does_not_hold_others_back() -> None:
    # "a" is allowed 100 % but makes 1 kW; "b" makes its full 5 kW, 2 kW is
    # exported, the limit is 0: the target is 4 kW and "b" carries most of it.
    plan = Controller().compute(
        MergedControls(export_limit=0.0),
        meter(-2000.0),
        {"a": reading(1000.0, 5000.0, limit_pct=100.0), "b": reading(5000.0, 5000.0)},
        {"a": 5000.0, "b": 5000.0},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(4000.0)
    share_a = 5000.0 * plan.commands["a"].limit_pct / 100
    share_b = 5000.0 * plan.commands["b"].limit_pct / 100
    assert share_a == pytest.approx(1000.0 + headroom_w(5000.0))
    assert share_a + share_b == pytest.approx(4000.0)


def test_nobody_held_below_what_they_could_do() -> None:
    # Target beyond what both shaded inverters make: each gets at least its
    # output plus headroom, and the shares still add up to the target.
    controller = no_ramp()
    plan = controller.compute(
        MergedControls(),
        meter(0.0),
        {
            "a": reading(1000.0, 5000.0, limit_pct=100.0),
            "b": reading(800.0, 5000.0, limit_pct=100.0),
        },
        {"a": 5000.0, "b": 5000.0},
        NOW,
    )
    assert plan.commands["a"].limit_pct == 100.0
    assert plan.commands["b"].limit_pct == 100.0


def test_zero_rated_inverter_gets_zero_percent() -> None:
    plan = Controller().compute(
        MergedControls(), meter(0.0), {"a": reading(0.0, 0.0)}, {"a": 0.0}, NOW
    )
    assert plan.commands["a"].limit_pct == 0.0


# --- connect and energize --------------------------------------------------------


def test_connect_false_disconnects_with_zero_target() -> None:
    plan = Controller().compute(
        MergedControls(connect=False, export_limit=5000.0),
        meter(0.0),
        {"a": reading(3000.0), "b": reading(3000.0)},
        {"a": 10_000.0, "b": 10_000.0},
        NOW,
    )
    assert plan.generation_target_w == 0.0
    assert plan.constraint is Constraint.CONNECT
    assert plan.commands == {
        "a": InverterCommand(connect=False, limit_pct=0.0),
        "b": InverterCommand(connect=False, limit_pct=0.0),
    }


def test_energize_false_stops_the_inverters() -> None:
    """Ceasing to energize is not a 0 % limit: the inverters stop, as when disconnected."""
    plan = Controller().compute(
        MergedControls(energize=False), meter(0.0), {"a": reading(3000.0)}, {"a": 10_000.0}, NOW
    )
    assert plan.generation_target_w == 0.0
    assert plan.constraint is Constraint.ENERGIZE
    assert plan.commands == {"a": InverterCommand(connect=False, limit_pct=0.0)}


def test_connect_false_wins_over_energize_false() -> None:
    plan = Controller().compute(
        MergedControls(energize=False, connect=False),
        meter(0.0),
        {"a": reading(3000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.constraint is Constraint.CONNECT
    assert plan.commands["a"] == InverterCommand(connect=False, limit_pct=0.0)


def test_after_disconnect_ramps_up_from_zero() -> None:
    controller = Controller()
    controller.compute(
        MergedControls(connect=False), meter(0.0), {"a": reading(0.0)}, {"a": 10_000.0}, NOW
    )
    plan = controller.compute(
        MergedControls(), meter(0.0, at=NOW + 1), {"a": reading(0.0)}, {"a": 10_000.0}, NOW + 1
    )
    assert plan.generation_target_w == pytest.approx(2500.0)
    assert plan.commands["a"].connect is True


# --- fail-safe -------------------------------------------------------------------


def test_no_meter_is_fail_safe() -> None:
    plan = no_ramp().compute(
        MergedControls(export_limit=2000.0), None, {"a": reading(8000.0)}, {"a": 10_000.0}, NOW
    )
    assert plan.state is ControlState.FAIL_SAFE
    assert plan.fail_safe_reason is FailSafeReason.NO_METER
    assert plan.generation_target_w == pytest.approx(2000.0)
    assert plan.load_w is None
    assert plan.over_export_limit is False


@pytest.mark.parametrize(
    ("meter_fresh", "reason"),
    [(True, FailSafeReason.METER_STALE), (False, FailSafeReason.METER_UNAVAILABLE)],
)
def test_old_meter_reading_is_fail_safe(meter_fresh: bool, reason: FailSafeReason) -> None:
    plan = no_ramp().compute(
        MergedControls(export_limit=2000.0),
        meter(-500.0, at=NOW - 5.5),
        {"a": reading(8000.0)},
        {"a": 10_000.0},
        NOW,
        meter_fresh=meter_fresh,
    )
    assert plan.state is ControlState.FAIL_SAFE
    assert plan.fail_safe_reason is reason
    assert plan.generation_target_w == pytest.approx(2000.0)


def test_meter_exactly_at_max_age_is_still_used() -> None:
    plan = no_ramp().compute(
        MergedControls(export_limit=2000.0),
        meter(-500.0, at=NOW - 5.0),
        {"a": reading(8000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.state is ControlState.CONTROLLING


def test_max_age_is_a_setting() -> None:
    controller = Controller(ControllerSettings(meter_max_age_s=1.0))
    plan = controller.compute(
        MergedControls(), meter(0.0, at=NOW - 1.5), {"a": reading(0.0)}, {"a": 10_000.0}, NOW
    )
    assert plan.state is ControlState.FAIL_SAFE


@pytest.mark.parametrize("grid_w", [9000.0, 0.0, -7000.0])
def test_fail_safe_target_ignores_load(grid_w: float) -> None:
    plan = no_ramp().compute(
        MergedControls(export_limit=3000.0, generation_limit=6000.0),
        meter(grid_w, at=NOW - 60),
        {"a": reading(7000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(3000.0)
    assert plan.constraint is Constraint.EXPORT_LIMIT


def test_fail_safe_uses_generation_limit_when_lower() -> None:
    plan = no_ramp().compute(
        MergedControls(export_limit=3000.0, generation_limit=1000.0),
        None,
        {"a": reading(7000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(1000.0)
    assert plan.constraint is Constraint.GENERATION_LIMIT


def test_fail_safe_uses_ratings_when_lower() -> None:
    plan = no_ramp().compute(
        MergedControls(export_limit=30_000.0), None, {"a": reading(7000.0)}, {"a": 10_000.0}, NOW
    )
    assert plan.generation_target_w == pytest.approx(10_000.0)
    assert plan.constraint is Constraint.RATING


def test_fail_safe_without_export_limit_is_the_ratings() -> None:
    plan = no_ramp().compute(
        MergedControls(),
        None,
        {"a": reading(7000.0, 8000.0), "b": reading(0.0, 2000.0)},
        {"a": 8000.0, "b": 2000.0},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(10_000.0)
    assert {k: c.limit_pct for k, c in plan.commands.items()} == {"a": 100.0, "b": 100.0}


def test_fail_safe_decrease_is_immediate() -> None:
    plan = Controller().compute(
        MergedControls(export_limit=0.0),
        None,
        {"a": reading(9000.0)},
        {"a": 10_000.0},
        NOW,
        meter_fresh=False,
    )
    assert plan.generation_target_w == 0.0
    assert plan.commands["a"].limit_pct == 0.0


def test_fail_safe_with_a_dead_meter_still_reaches_its_level() -> None:
    # The meter never answered (started at night, output 0). The fail-safe level
    # does not depend on the meter, so it is reached by ramping, not held at 0.
    controller = Controller()
    merged = MergedControls(export_limit=5000.0)
    plan = None
    for second in range(5):
        plan = controller.compute(
            merged, None, {"a": reading(0.0)}, {"a": 10_000.0}, NOW + second, meter_fresh=False
        )
    assert plan is not None
    assert plan.state is ControlState.FAIL_SAFE
    assert plan.generation_target_w == pytest.approx(5000.0)


# --- a failing meter within its max age --------------------------------------------


def test_unfresh_meter_holds_increase() -> None:
    controller = Controller()
    merged = MergedControls(export_limit=1000.0)
    first = controller.compute(merged, meter(-1000.0), {"a": reading(3000.0)}, {"a": 10_000.0}, NOW)
    assert first.generation_target_w == pytest.approx(3000.0)
    # The meter fails; its last reading said more load, but we may not act on it.
    plan = controller.compute(
        merged,
        meter(2000.0, at=NOW + 1),
        {"a": reading(3000.0)},
        {"a": 10_000.0},
        NOW + 2,
        meter_fresh=False,
    )
    assert plan.state is ControlState.CONTROLLING
    assert plan.generation_target_w == pytest.approx(3000.0)
    assert plan.constraint is Constraint.HOLD


def test_unfresh_meter_still_applies_decrease() -> None:
    controller = Controller()
    controller.compute(
        MergedControls(export_limit=1000.0),
        meter(-1000.0),
        {"a": reading(3000.0)},
        {"a": 10_000.0},
        NOW,
    )
    plan = controller.compute(
        MergedControls(export_limit=0.0),
        meter(-1000.0, at=NOW),
        {"a": reading(3000.0)},
        {"a": 10_000.0},
        NOW + 1,
        meter_fresh=False,
    )
    assert plan.generation_target_w == pytest.approx(2000.0)
    assert plan.constraint is Constraint.EXPORT_LIMIT


def test_unfresh_meter_does_not_raise_to_import_floor() -> None:
    controller = Controller()
    merged = MergedControls(export_limit=0.0, import_limit=0.0)
    controller.compute(merged, meter(0.0), {"a": reading(0.0)}, {"a": 10_000.0}, NOW)
    plan = controller.compute(
        merged,
        meter(4000.0, at=NOW + 1),
        {"a": reading(0.0)},
        {"a": 10_000.0},
        NOW + 1,
        meter_fresh=False,
    )
    assert plan.generation_target_w == 0.0
    assert plan.constraint is Constraint.HOLD


# --- unreachable inverters ------------------------------------------------------


def test_unreachable_inverter_gets_no_command_others_do() -> None:
    plan = Controller().compute(
        MergedControls(export_limit=0.0),
        meter(-1000.0),
        {"a": reading(3000.0, 5000.0), "b": None},
        {"a": 5000.0, "b": 5000.0},
        NOW,
    )
    assert set(plan.commands) == {"a"}
    # The meter sees b's output, so the export limit still holds: a curtails.
    assert plan.generation_target_w == pytest.approx(2000.0)


def test_unreachable_rating_is_subtracted_from_generation_limit() -> None:
    plan = no_ramp().compute(
        MergedControls(generation_limit=7000.0),
        meter(0.0),
        {"a": reading(2000.0, 5000.0), "b": None, "c": reading(2000.0, 5000.0)},
        {"a": 5000.0, "b": 4000.0, "c": 5000.0},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(3000.0)
    assert plan.constraint is Constraint.GENERATION_LIMIT
    assert set(plan.commands) == {"a", "c"}
    assert plan.commands["a"].limit_pct == pytest.approx(30.0)


def test_unreachable_rating_above_generation_limit_gives_zero() -> None:
    plan = Controller().compute(
        MergedControls(generation_limit=3000.0),
        meter(0.0),
        {"a": reading(2000.0, 5000.0), "b": None},
        {"a": 5000.0, "b": 4000.0},
        NOW,
    )
    assert plan.generation_target_w == 0.0
    assert plan.commands["a"].limit_pct == 0.0


def test_unreachable_inverter_without_known_rating_leaves_nothing_under_a_limit() -> None:
    """Never read, never stored: it could be producing anything, so the others get 0 W."""
    plan = no_ramp().compute(
        MergedControls(generation_limit=3000.0),
        meter(0.0),
        {"a": reading(2000.0, 5000.0), "b": None},
        {"a": 5000.0},
        NOW,
    )
    assert plan.generation_target_w == 0.0
    assert plan.commands["a"].limit_pct == 0.0


def test_unreachable_inverter_without_known_rating_leaves_nothing_at_fail_safe() -> None:
    plan = no_ramp().compute(
        MergedControls(export_limit=1500.0),
        None,
        {"a": reading(2000.0, 5000.0), "b": None},
        {"a": 5000.0},
        NOW,
    )
    assert plan.state is ControlState.FAIL_SAFE
    assert plan.generation_target_w == 0.0


def test_unknown_rating_matters_only_while_unreachable() -> None:
    plan = no_ramp().compute(
        MergedControls(generation_limit=3000.0),
        meter(0.0),
        {"a": reading(2000.0, 5000.0), "b": reading(0.0, 5000.0)},
        {},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(3000.0)


def test_all_inverters_unreachable() -> None:
    plan = Controller().compute(
        MergedControls(export_limit=0.0), meter(-100.0), {"a": None}, {"a": 5000.0}, NOW
    )
    assert plan.commands == {}
    assert plan.generation_target_w == 0.0


def test_generation_limit_above_rating_leaves_rating() -> None:
    plan = no_ramp().compute(
        MergedControls(generation_limit=20_000.0),
        meter(0.0),
        {"a": reading(1000.0)},
        {"a": 10_000.0},
        NOW,
    )
    assert plan.generation_target_w == pytest.approx(10_000.0)
    assert plan.constraint is Constraint.RATING


# --- readings as the controller sees them -----------------------------------------


@pytest.mark.parametrize(
    ("limit_pct", "enabled", "connected", "limit_w"),
    [
        (40.0, True, True, 4000.0),
        (40.0, False, True, 10_000.0),
        (None, True, True, 10_000.0),
        (40.0, None, None, 10_000.0),
        (40.0, True, False, 0.0),
        (None, None, False, 0.0),
    ],
)
def test_inverter_limit_w(
    limit_pct: float | None, enabled: bool | None, connected: bool | None, limit_w: float
) -> None:
    r = InverterReading(
        timestamp=NOW,
        ac_power_w=0.0,
        rated_power_w=10_000.0,
        limit_pct=limit_pct,
        limit_enabled=enabled,
        connected=connected,
    )
    assert r.limit_w == pytest.approx(limit_w)


def test_meter_export_is_minus_grid() -> None:
    assert meter(-1200.0).export_w == 1200.0
    assert meter(300.0).export_w == -300.0


def test_fail_safe_counts_unreachable_inverters_at_rating() -> None:
    """Meter and one inverter lost together: the reachable ones may only fill what is left."""
    controller = Controller()
    reading = InverterReading(timestamp=100.0, ac_power_w=3000.0, rated_power_w=5000.0)
    plan = controller.compute(
        MergedControls(export_limit=6000.0),
        None,
        {"a": reading, "b": None},
        {"a": 5000.0, "b": 4000.0},
        100.0,
    )
    assert plan.state is ControlState.FAIL_SAFE
    assert plan.generation_target_w == pytest.approx(2000.0)
    assert plan.commands["a"].limit_pct == pytest.approx(40.0)


def test_export_a_hair_over_the_limit_is_not_urgent() -> None:
    """Rounding noise above the limit is no breach; 20 W and more is."""
    reading = InverterReading(timestamp=10.0, ac_power_w=3000.0, rated_power_w=5000.0)
    for export, urgent in ((10.0, False), (OVER_LIMIT_TOLERANCE_W + 5.0, True)):
        plan = Controller().compute(
            MergedControls(export_limit=0.0),
            MeterReading(timestamp=10.0, grid_power_w=-export),
            {"a": reading},
            {"a": 5000.0},
            10.0,
        )
        assert plan.over_export_limit is urgent


# --- inverters that refuse their limit -----------------------------------------------------


def test_inverter_refusing_its_limit_leaves_the_others_only_what_remains() -> None:
    """b holds 50 % of 3 kW and refuses writes: a and b together stay within the target."""
    plan = no_ramp().compute(
        MergedControls(export_limit=1500.0),
        meter(-2429.0),  # load 1000 W, a 1929 W + b 1500 W, exporting 2429 W
        {"a": reading(1929.0, 4000.0, limit_pct=48.2), "b": reading(1500.0, 3000.0, limit_pct=50)},
        {"a": 4000.0, "b": 3000.0},
        NOW,
        not_following={"b"},
    )
    assert plan.generation_target_w == pytest.approx(2500.0)
    a_w = plan.commands["a"].limit_pct / 100 * 4000.0
    assert a_w == pytest.approx(1000.0)  # 2500 W target minus the 1500 W b may go on making
    b_w = plan.commands["b"].limit_pct / 100 * 3000.0
    assert b_w <= 1500.0  # asked for its share, never more than it holds now


def test_refusing_inverter_counts_at_its_output_when_above_its_reported_limit() -> None:
    plan = no_ramp().compute(
        MergedControls(generation_limit=3000.0),
        meter(0.0),
        {"a": reading(1000.0, 4000.0, limit_pct=25), "b": reading(2500.0, 3000.0, limit_pct=50)},
        {},
        NOW,
        not_following={"b"},
    )
    assert plan.commands["a"].limit_pct / 100 * 4000.0 == pytest.approx(500.0)


def test_configured_meter_that_never_answered_is_unavailable_not_missing() -> None:
    plan = no_ramp().compute(
        MergedControls(export_limit=0.0), None, {"a": reading(0.0)}, {}, NOW, meter_fresh=False
    )
    assert plan.fail_safe_reason is FailSafeReason.METER_UNAVAILABLE


# --- the margin and band that keep a flickering load from rewriting the inverters ---------


def noisy(sigma_w: float) -> Controller:
    """A controller that has learnt a load moving by ``sigma_w`` a second."""
    controller = no_ramp()
    controller.load_noise = LoadNoise(initial_sigma_w=sigma_w)
    return controller


def export_plan(controller: Controller, load_w: float, output_w: float, t: float) -> float:
    plan = controller.compute(
        MergedControls(export_limit=1500.0),
        meter(load_w - output_w, at=t),
        {"a": reading(output_w, at=t)},
        {"a": 10_000.0},
        t,
    )
    assert plan.constraint is Constraint.EXPORT_LIMIT
    return plan.generation_target_w


def test_target_keeps_a_margin_sized_from_the_load_noise() -> None:
    # A still load: exactly at the limit. A load moving by ~100 W a second: 50 W below.
    assert export_plan(noisy(0.0), 4000.0, 6000.0, NOW) == pytest.approx(5500.0)
    assert export_plan(noisy(100.0), 4000.0, 6000.0, NOW) == pytest.approx(5450.0, abs=5.0)
    # However noisy, the margin stays bounded.
    assert export_plan(noisy(5000.0), 4000.0, 6000.0, NOW) == pytest.approx(5250.0, abs=1.0)


def test_target_holds_while_the_load_wanders_within_the_band() -> None:
    controller = noisy(100.0)
    first = export_plan(controller, 4000.0, 6000.0, NOW)
    # The load moves down by 40 W (the export would still be within the tolerance above
    # the limit) and up by 150 W (less than two typical moves below the margin): kept.
    for t, load in ((1, 3960.0), (2, 4150.0), (3, 4100.0)):
        assert export_plan(controller, load, first, NOW + t) == first
    # Down 100 W: the target in force would export above the limit; it follows at once.
    lower = export_plan(controller, 3900.0, first, NOW + 4)
    assert lower < first
    assert lower <= 3900.0 + 1500.0 - 40.0
    # Up 400 W: more than the band is being thrown away; it follows.
    higher = export_plan(controller, 4300.0, lower, NOW + 5)
    assert higher > 4300.0 + 1500.0 - 100.0


def test_a_quiet_load_is_followed_closely() -> None:
    # Moves of 40–70 W teach a noise of a few watts: each one is followed, a few watts
    # below the limit.
    controller = noisy(0.0)
    for t, load in enumerate((4000.0, 4040.0, 3990.0, 4060.0)):
        target = export_plan(controller, load, 5500.0, NOW + t)
        margin = 0.5 * controller.load_noise.sigma_w
        assert margin < 10.0
        assert target == pytest.approx(load + 1500.0 - margin)
