"""When a command is worth writing to an inverter."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.core.measurements import InverterCommand, InverterReading
from custom_components.dynamic_export.core.write_policy import REFRESH_FRACTION, WritePolicy

T0 = 100.0
REVERT = 60.0


def cmd(pct: float, *, connect: bool = True) -> InverterCommand:
    return InverterCommand(connect=connect, limit_pct=pct)


def holding(
    pct: float | None, *, enabled: bool | None = True, connected: bool | None = True
) -> InverterReading:
    """A reading of an inverter that holds ``pct``."""
    return InverterReading(
        timestamp=T0,
        ac_power_w=1000.0,
        rated_power_w=10_000.0,
        limit_pct=pct,
        limit_enabled=enabled,
        connected=connected,
    )


def written(pct: float, *, connect: bool = True, deadband: float = 1.0) -> WritePolicy:
    policy = WritePolicy(deadband_pct=deadband)
    policy.record("a", cmd(pct, connect=connect), T0)
    return policy


def test_default_deadband() -> None:
    assert WritePolicy().deadband_pct == 1.0


def test_first_command_writes() -> None:
    policy = WritePolicy()
    assert policy.should_write("a", cmd(50.0), None, REVERT, T0)
    assert policy.should_write("a", cmd(50.0), holding(50.0), REVERT, T0)
    assert policy.last_command("a") is None


def test_same_command_is_not_rewritten() -> None:
    policy = written(50.0)
    assert not policy.should_write("a", cmd(50.0), holding(50.0), REVERT, T0 + 1)
    assert policy.last_command("a") == cmd(50.0)


@pytest.mark.parametrize("pct", [49.2, 50.8, 50.99, 49.01])
def test_deadband_suppresses_small_moves_both_ways(pct: float) -> None:
    policy = written(50.0)
    assert not policy.should_write("a", cmd(pct), holding(50.0), REVERT, T0 + 1)


@pytest.mark.parametrize("pct", [48.0, 49.0, 51.0, 55.0, 0.0, 100.0])
def test_moves_beyond_deadband_write(pct: float) -> None:
    policy = written(50.0)
    assert policy.should_write("a", cmd(pct), holding(50.0), REVERT, T0 + 1)


def test_deadband_is_a_setting() -> None:
    policy = written(50.0, deadband=5.0)
    assert not policy.should_write("a", cmd(53.0), holding(50.0), REVERT, T0 + 1)
    assert policy.should_write("a", cmd(56.0), holding(50.0), REVERT, T0 + 1)


def test_urgent_writes_any_decrease() -> None:
    policy = written(50.0)
    assert not policy.should_write("a", cmd(49.5), holding(50.0), REVERT, T0 + 1)
    assert policy.should_write("a", cmd(49.5), holding(50.0), REVERT, T0 + 1, urgent=True)


def test_urgent_does_not_write_small_increase_or_same() -> None:
    policy = written(50.0)
    assert not policy.should_write("a", cmd(50.5), holding(50.0), REVERT, T0 + 1, urgent=True)
    assert not policy.should_write("a", cmd(50.0), holding(50.0), REVERT, T0 + 1, urgent=True)


def test_refresh_at_half_the_revert_timer() -> None:
    policy = written(50.0)
    half = REVERT * REFRESH_FRACTION
    assert REFRESH_FRACTION == 0.5
    assert not policy.should_write("a", cmd(50.0), holding(50.0), REVERT, T0 + half - 0.1)
    assert policy.should_write("a", cmd(50.0), holding(50.0), REVERT, T0 + half)
    assert policy.should_write("a", cmd(50.0), holding(50.0), REVERT, T0 + REVERT * 2)


def test_record_restarts_the_refresh_timer() -> None:
    policy = written(50.0)
    policy.record("a", cmd(50.0), T0 + 30)
    assert not policy.should_write("a", cmd(50.0), holding(50.0), REVERT, T0 + 31)


def test_no_refresh_without_revert_timer() -> None:
    policy = written(50.0)
    assert not policy.should_write("a", cmd(50.0), holding(50.0), 0.0, T0 + 100_000)


def test_reverted_inverter_is_rewritten() -> None:
    # The inverter dropped our limit (its revert timer ran out, or a restart).
    policy = written(50.0)
    assert policy.should_write("a", cmd(50.0), holding(50.0, enabled=False), REVERT, T0 + 1)
    assert policy.should_write("a", cmd(50.0), holding(None, enabled=False), REVERT, T0 + 1)


def test_disabled_limit_is_fine_when_we_wrote_full_power() -> None:
    policy = written(100.0)
    assert not policy.should_write("a", cmd(100.0), holding(100.0, enabled=False), REVERT, T0 + 1)


def test_limit_changed_by_someone_else_is_rewritten() -> None:
    policy = written(50.0)
    assert policy.should_write("a", cmd(50.0), holding(80.0), REVERT, T0 + 1)
    assert policy.should_write("a", cmd(50.0), holding(48.5), REVERT, T0 + 1)


def test_reading_within_deadband_of_written_is_not_drift() -> None:
    # Inverters round the percentage they report.
    policy = written(50.4)
    assert not policy.should_write("a", cmd(50.4), holding(50.0), REVERT, T0 + 1)


def test_reading_without_limit_information_is_not_drift() -> None:
    policy = written(50.0)
    assert not policy.should_write("a", cmd(50.0), holding(None, enabled=None), REVERT, T0 + 1)
    assert not policy.should_write("a", cmd(50.0), holding(None, enabled=True), REVERT, T0 + 1)
    assert not policy.should_write("a", cmd(50.0), None, REVERT, T0 + 1)


def test_reconnected_by_someone_else_is_rewritten() -> None:
    policy = written(0.0, connect=False)
    assert policy.should_write(
        "a", cmd(0.0, connect=False), holding(0.0, connected=True), REVERT, T0 + 1
    )
    assert not policy.should_write(
        "a", cmd(0.0, connect=False), holding(70.0, connected=False), REVERT, T0 + 1
    )
    assert not policy.should_write(
        "a", cmd(0.0, connect=False), holding(70.0, connected=None), REVERT, T0 + 1
    )


def test_disconnected_by_someone_else_is_rewritten() -> None:
    policy = written(50.0)
    assert policy.should_write("a", cmd(50.0), holding(50.0, connected=False), REVERT, T0 + 1)


@pytest.mark.parametrize(("before", "after"), [(True, False), (False, True)])
def test_connect_change_always_writes(before: bool, after: bool) -> None:
    policy = written(0.0, connect=before)
    assert policy.should_write(
        "a", cmd(0.0, connect=after), holding(0.0, connected=before), REVERT, T0 + 0.1
    )


def test_forget_one_inverter() -> None:
    policy = WritePolicy()
    policy.record("a", cmd(50.0), T0)
    policy.record("b", cmd(50.0), T0)
    policy.forget("a")
    assert policy.last_command("a") is None
    assert policy.last_command("b") == cmd(50.0)
    assert policy.should_write("a", cmd(50.0), holding(50.0), REVERT, T0 + 1)
    assert not policy.should_write("b", cmd(50.0), holding(50.0), REVERT, T0 + 1)
    policy.forget("unknown")


def test_forget_all() -> None:
    policy = WritePolicy()
    policy.record("a", cmd(50.0), T0)
    policy.record("b", cmd(50.0), T0)
    policy.forget()
    assert policy.last_command("a") is None
    assert policy.last_command("b") is None
    assert policy.should_write("b", cmd(50.0), holding(50.0), REVERT, T0 + 1)


def test_inverters_are_judged_separately() -> None:
    policy = written(50.0)
    assert policy.should_write("b", cmd(50.0), holding(50.0), REVERT, T0 + 1)


def test_going_to_zero_is_written_inside_the_deadband() -> None:
    """A last limit of 0.6 % and a new one of 0 % (energize off) is still written."""
    policy = WritePolicy(deadband_pct=1.0)
    policy.record("a", InverterCommand(connect=True, limit_pct=0.6), 0.0)
    assert policy.should_write("a", InverterCommand(connect=True, limit_pct=0.0), None, 60.0, 1.0)
    policy.record("a", InverterCommand(connect=True, limit_pct=0.0), 1.0)
    assert not policy.should_write(
        "a", InverterCommand(connect=True, limit_pct=0.0), None, 60.0, 2.0
    )


# --- device steps: what the device rounds is not drift ------------------------------------


@pytest.mark.parametrize(
    ("written_pct", "held_pct", "step_pct", "deadband"),
    [
        (40.6, 40.0, 1.0, 0.5),  # SunSpec WMaxLimPct at scale factor 0, rounded down
        (41.5, 40.0, 2.0, 1.0),  # an HA number with a 100 W step on a 5 kW inverter
    ],
)
def test_device_rounding_is_not_drift(
    written_pct: float, held_pct: float, step_pct: float, deadband: float
) -> None:
    policy = written(written_pct, deadband=deadband)
    for second in range(1, 6):
        assert not policy.should_write(
            "a", cmd(written_pct), holding(held_pct), REVERT, T0 + second, step_pct=step_pct
        )


def test_a_change_the_device_cannot_hold_is_not_written() -> None:
    """40.2 % and 40.9 % are both 40 % on a device with 1 % steps."""
    policy = written(40.2, deadband=0.5)
    assert not policy.should_write("a", cmd(40.9), holding(40.0), REVERT, T0 + 1, step_pct=1.0)
    assert policy.should_write("a", cmd(41.0), holding(40.0), REVERT, T0 + 1, step_pct=1.0)


def test_a_real_drift_beyond_one_step_is_still_rewritten() -> None:
    policy = written(40.6, deadband=0.5)
    assert policy.should_write("a", cmd(40.6), holding(38.0), REVERT, T0 + 1, step_pct=1.0)
