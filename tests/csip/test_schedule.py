"""The control schedule: which DERControl applies, and which transitions to report."""

from __future__ import annotations

import json
import random

import pytest

from custom_components.dynamic_export.core.controls import Controls, ControlType
from custom_components.dynamic_export.csip.schedule import ControlSchedule, refs
from custom_components.dynamic_export.csip.selection import Source
from custom_components.dynamic_export.csip.sep2.codes import EventStatus, ResponseStatus
from custom_components.dynamic_export.csip.sep2.resources import (
    DefaultDERControl,
    DERControl,
    DERControlBase,
    DERProgram,
)
from custom_components.dynamic_export.csip.sep2.units import ActivePower

T0 = 1_750_000_000
EXP = ControlType.EXPORT_LIMIT
GEN = ControlType.GENERATION_LIMIT
R = ResponseStatus


def watts(w: float | None) -> ActivePower | None:
    return None if w is None else ActivePower(int(w))


def base(
    exp: float | None = None,
    gen: float | None = None,
    imp: float | None = None,
    connect: bool | None = None,
    energize: bool | None = None,
    ramp_tms: int | None = None,
) -> DERControlBase:
    return DERControlBase(
        op_mod_connect=connect,
        op_mod_energize=energize,
        op_mod_exp_lim_w=watts(exp),
        op_mod_gen_lim_w=watts(gen),
        op_mod_imp_lim_w=watts(imp),
        ramp_tms=ramp_tms,
    )


def ctl(
    mrid: str,
    start: int,
    duration: int,
    *,
    created: int = T0 - 3600,
    status: EventStatus = EventStatus.SCHEDULED,
    rs: int = 0,
    rd: int = 0,
    exp: float | None = None,
    gen: float | None = None,
    connect: bool | None = None,
    ramp_tms: int | None = None,
) -> DERControl:
    return DERControl(
        mrid=mrid,
        href=f"/derc/{mrid}",
        creation_time=created,
        start=start,
        duration=duration,
        status=status,
        base=base(exp=exp, gen=gen, connect=connect, ramp_tms=ramp_tms),
        randomize_start=rs,
        randomize_duration=rd,
        response_required=3,
        reply_to="/rsps/1/rsp",
    )


def prog(
    mrid: str,
    primacy: int,
    *controls: DERControl,
    default: DERControlBase | None = None,
    set_grad_w: int | None = None,
) -> DERProgram:
    dderc = None if default is None else DefaultDERControl(f"D{mrid}", default, set_grad_w)
    return DERProgram(mrid, f"/derp/{mrid}", primacy, None, dderc, tuple(controls))


def export_at(schedule: ControlSchedule, now: int) -> float | None:
    return schedule.controls(now).export_limit


# -- defaults -------------------------------------------------------------------------------


def test_default_only() -> None:
    schedule = ControlSchedule()
    events = schedule.update([prog("P", 1, default=base(exp=1500, connect=True))], T0)
    assert events == []
    assert schedule.controls(T0) == Controls(connect=True, export_limit=1500.0)
    chosen = schedule.selections(T0)[EXP]
    assert chosen.source is Source.DEFAULT
    assert chosen.program_mrid == "P"
    assert schedule.defaults.export_limit == 1500.0
    assert schedule.next_control(T0) is None


def test_default_per_type_from_best_primacy_that_sets_it() -> None:
    schedule = ControlSchedule()
    schedule.update(
        [
            prog("worse", 2, default=base(exp=9000, imp=4000)),
            prog("best", 1, default=base(exp=1000)),
        ],
        T0,
    )
    assert schedule.controls(T0) == Controls(export_limit=1000.0, import_limit=4000.0)


def test_fixed_default_when_server_has_none_then_nothing() -> None:
    fixed = ControlSchedule(fixed_default=Controls(export_limit=5000.0))
    fixed.update([prog("P", 1)], T0)
    assert fixed.controls(T0) == Controls(export_limit=5000.0)
    assert fixed.selections(T0)[EXP].source is Source.FIXED
    bare = ControlSchedule()
    bare.update([prog("P", 1)], T0)
    assert bare.controls(T0).is_empty


def test_server_default_beats_fixed_default_and_vanishes_with_the_poll() -> None:
    schedule = ControlSchedule(fixed_default=Controls(export_limit=5000.0))
    schedule.update([prog("P", 1, default=base(exp=1500))], T0)
    assert export_at(schedule, T0) == 1500.0
    schedule.update([prog("P", 1)], T0 + 60)
    assert export_at(schedule, T0 + 60) == 5000.0


def test_watts_use_the_multiplier_and_set_grad_w_comes_from_best_default() -> None:
    schedule = ControlSchedule()
    d = DERControlBase(op_mod_exp_lim_w=ActivePower(15, 2))
    schedule.update([prog("A", 2, default=d, set_grad_w=27), prog("B", 1, default=d)], T0)
    assert export_at(schedule, T0) == 1500.0
    assert schedule.set_grad_w == 27


# -- one control ----------------------------------------------------------------------------


def test_export_limit_control_starts_then_completes_in_order() -> None:
    schedule = ControlSchedule()
    p = prog("P", 1, ctl("A", T0 + 60, 300, exp=2000), default=base(exp=8000))
    assert refs(schedule.update([p], T0)) == [("A", R.RECEIVED)]
    assert export_at(schedule, T0 + 59) == 8000.0
    assert schedule.next_control(T0) is not None
    assert refs(schedule.advance(T0 + 60)) == [("A", R.STARTED)]
    assert export_at(schedule, T0 + 60) == 2000.0
    chosen = schedule.selections(T0 + 100)[EXP]
    assert (chosen.mrid, chosen.start, chosen.end, chosen.source) == (
        "A",
        T0 + 60,
        T0 + 360,
        Source.CONTROL,
    )
    assert refs(schedule.update([p], T0 + 200)) == []
    assert refs(schedule.advance(T0 + 360)) == [("A", R.COMPLETED)]
    assert export_at(schedule, T0 + 360) == 8000.0
    assert schedule.advance(T0 + 400) == []
    assert schedule.update([p], T0 + 400) == []


def test_started_carries_effective_end_for_retries() -> None:
    schedule = ControlSchedule()
    events = schedule.update([prog("P", 1, ctl("A", T0, 300, exp=1))], T0)
    started = [e for e in events if e.status is R.STARTED]
    assert started[0].control.end == T0 + 300
    assert started[0].control.reply_to == "/rsps/1/rsp"


def test_control_already_over_when_first_seen_is_ignored() -> None:
    schedule = ControlSchedule()
    assert schedule.update([prog("P", 1, ctl("old", T0 - 600, 300, exp=1))], T0) == []
    assert schedule.controls(T0).is_empty


def test_control_only_competes_for_the_types_it_sets() -> None:
    schedule = ControlSchedule()
    schedule.update(
        [prog("P", 1, ctl("A", T0, 300, exp=2000), ctl("B", T0, 300, gen=3000, connect=True))],
        T0,
    )
    assert schedule.controls(T0) == Controls(
        connect=True, export_limit=2000.0, generation_limit=3000.0
    )


def test_control_that_starts_while_server_is_down_still_starts() -> None:
    schedule = ControlSchedule()
    schedule.update([prog("P", 1, ctl("A", T0 + 600, 300, exp=2000))], T0)
    assert refs(schedule.advance(T0 + 600)) == [("A", R.STARTED)]
    assert export_at(schedule, T0 + 700) == 2000.0


def test_control_missed_entirely_ends_without_responses() -> None:
    schedule = ControlSchedule()
    schedule.update([prog("P", 1, ctl("A", T0 + 60, 60, exp=2000))], T0)
    assert schedule.advance(T0 + 1000) == []


# -- supersession -----------------------------------------------------------------------------


def test_higher_primacy_program_supersedes_running_control_at_once() -> None:
    schedule = ControlSchedule()
    old = ctl("A", T0, 600, exp=12000, created=T0 - 10)
    low = prog("P2", 2, old, default=base(exp=0))
    schedule.update([low], T0)
    assert export_at(schedule, T0 + 30) == 12000.0
    new = ctl("B", T0 + 60, 840, exp=0, created=T0 + 59)
    events = schedule.update([prog("P1", 1, new), low], T0 + 60)
    assert refs(events) == [("B", R.RECEIVED), ("A", R.SUPERSEDED), ("B", R.STARTED)]
    assert export_at(schedule, T0 + 60) == 0.0
    assert schedule.selections(T0 + 60)[EXP].mrid == "B"
    # The superseded control never comes back, even after the superseder ends.
    assert refs(schedule.advance(T0 + 900)) == [("B", R.COMPLETED)]
    assert schedule.selections(T0 + 900)[EXP].source is Source.DEFAULT
    assert schedule.advance(T0 + 1000) == []


def test_newer_control_of_same_primacy_supersedes() -> None:
    schedule = ControlSchedule()
    a = ctl("A", T0, 600, exp=5000, created=T0 - 100)
    schedule.update([prog("P", 1, a)], T0)
    b = ctl("B", T0 + 100, 600, exp=1000, created=T0 + 100)
    events = schedule.update([prog("P", 1, a, b)], T0 + 100)
    assert ("A", R.SUPERSEDED) in refs(events)
    assert export_at(schedule, T0 + 100) == 1000.0


def test_lower_primacy_wins_even_if_older() -> None:
    schedule = ControlSchedule()
    strong = ctl("strong", T0, 600, exp=1000, created=T0 - 1000)
    weak = ctl("weak", T0 + 60, 600, exp=9000, created=T0 + 50)
    events = schedule.update([prog("P1", 1, strong), prog("P2", 2, weak)], T0 + 60)
    assert ("weak", R.SUPERSEDED) in refs(events)
    assert ("strong", R.SUPERSEDED) not in refs(events)
    assert export_at(schedule, T0 + 60) == 1000.0


def test_server_superseded_status_loses_to_non_superseded_of_same_primacy() -> None:
    schedule = ControlSchedule()
    flagged = ctl("new", T0, 600, exp=9000, created=T0 - 1, status=EventStatus.SUPERSEDED)
    plain = ctl("old", T0, 600, exp=1000, created=T0 - 100)
    schedule.update([prog("P", 1, flagged, plain)], T0)
    assert export_at(schedule, T0) == 1000.0


def test_superseder_in_the_future_cuts_the_running_control_only_when_it_starts() -> None:
    schedule = ControlSchedule()
    a = ctl("A", T0, 3600, exp=5000, created=T0 - 100)
    b = ctl("B", T0 + 1800, 600, exp=1000, created=T0 + 10)
    events = schedule.update([prog("P", 1, a, b)], T0 + 10)
    assert ("A", R.SUPERSEDED) not in refs(events)
    assert export_at(schedule, T0 + 1799) == 5000.0
    assert schedule.selections(T0 + 100)[EXP].end == T0 + 1800
    events = schedule.advance(T0 + 1800)
    assert refs(events) == [("A", R.SUPERSEDED), ("B", R.STARTED)]
    assert export_at(schedule, T0 + 1800) == 1000.0
    assert export_at(schedule, T0 + 2500) is None  # A does not resume


def test_supersession_is_final_even_if_the_superseder_is_cancelled() -> None:
    schedule = ControlSchedule()
    a = ctl("A", T0, 3600, exp=5000, created=T0 - 100)
    b = ctl("B", T0 + 60, 600, exp=1000, created=T0 + 60)
    schedule.update([prog("P", 1, a, b)], T0 + 60)
    cancelled = ctl("B", T0 + 60, 600, exp=1000, created=T0 + 60, status=EventStatus.CANCELLED)
    schedule.update([prog("P", 1, a, cancelled)], T0 + 120)
    assert export_at(schedule, T0 + 120) is None


def test_partial_overlap_of_types_keeps_the_other_type_and_completes() -> None:
    schedule = ControlSchedule()
    a = ctl("A", T0, 600, exp=5000, gen=7000, created=T0 - 100)
    b = ctl("B", T0 + 60, 120, exp=1000, created=T0 + 60)
    events = schedule.update([prog("P", 1, a, b)], T0 + 60)
    assert ("A", R.SUPERSEDED) not in refs(events)
    assert schedule.controls(T0 + 60) == Controls(export_limit=1000.0, generation_limit=7000.0)
    # A lost the export limit for good; its generation limit runs to its end.
    assert schedule.controls(T0 + 300) == Controls(generation_limit=7000.0)
    assert ("A", R.COMPLETED) in refs(schedule.advance(T0 + 600))


def test_back_to_back_controls_hand_over_in_order() -> None:
    schedule = ControlSchedule()
    a = ctl("A", T0, 300, exp=5000)
    b = ctl("B", T0 + 300, 300, exp=3000)
    schedule.update([prog("P", 1, a, b)], T0)
    assert refs(schedule.advance(T0 + 300)) == [("A", R.COMPLETED), ("B", R.STARTED)]
    assert export_at(schedule, T0 + 300) == 3000.0


# -- cancellation -----------------------------------------------------------------------------


def test_cancelled_stops_now_and_reports_once() -> None:
    schedule = ControlSchedule()
    p = prog("P", 1, ctl("A", T0, 600, exp=2000), default=base(exp=8000))
    schedule.update([p], T0)
    cancelled = prog(
        "P", 1, ctl("A", T0, 600, exp=2000, status=EventStatus.CANCELLED), default=base(exp=8000)
    )
    assert refs(schedule.update([cancelled], T0 + 100)) == [("A", R.CANCELLED)]
    assert export_at(schedule, T0 + 100) == 8000.0
    assert schedule.update([cancelled], T0 + 200) == []
    assert schedule.advance(T0 + 600) == []  # never "completed"


def test_cancelled_before_it_starts_never_starts() -> None:
    schedule = ControlSchedule()
    schedule.update([prog("P", 1, ctl("A", T0 + 60, 600, exp=2000))], T0)
    c = ctl("A", T0 + 60, 600, exp=2000, rd=300, status=EventStatus.CANCELLED_WITH_RANDOMIZATION)
    assert refs(schedule.update([prog("P", 1, c)], T0 + 10)) == [("A", R.CANCELLED)]
    assert schedule.advance(T0 + 60) == []
    assert export_at(schedule, T0 + 60) is None


def test_cancelled_on_arrival_is_acknowledged_and_never_applied() -> None:
    schedule = ControlSchedule()
    c = ctl("A", T0, 600, exp=2000, status=EventStatus.CANCELLED)
    assert refs(schedule.update([prog("P", 1, c)], T0 + 10)) == [
        ("A", R.RECEIVED),
        ("A", R.CANCELLED),
    ]
    assert export_at(schedule, T0 + 10) is None


def cancel_with_randomisation(seed: int) -> tuple[int, list[tuple[str, ResponseStatus]]]:
    """Cancel a running control at T0+100; return when it stopped applying."""
    schedule = ControlSchedule(rng=random.Random(seed))
    schedule.update([prog("P", 1, ctl("A", T0, 3600, exp=2000, rd=120))], T0)
    c = ctl("A", T0, 3600, exp=2000, rd=120, status=EventStatus.CANCELLED_WITH_RANDOMIZATION)
    events = refs(schedule.update([prog("P", 1, c)], T0 + 100))
    stop = next(t for t in range(T0 + 100, T0 + 400) if export_at(schedule, t) is None)
    return stop, events


def test_cancel_with_randomisation_stops_at_a_random_time_within_the_window() -> None:
    results = [cancel_with_randomisation(seed) for seed in range(20)]
    stops = {stop for stop, _ in results}
    assert all(T0 + 100 <= stop <= T0 + 220 for stop in stops)
    assert len(stops) > 5  # random, not at once
    assert all(events == [("A", R.CANCELLED)] for _, events in results)
    assert cancel_with_randomisation(7) == cancel_with_randomisation(7)


# -- server side deletion and gaps -------------------------------------------------------------


def test_control_that_vanishes_from_the_server_is_kept_until_it_ends() -> None:
    schedule = ControlSchedule()
    schedule.update([prog("P", 1, ctl("A", T0, 600, exp=2000), default=base(exp=8000))], T0)
    assert schedule.update([prog("P", 1, default=base(exp=8000))], T0 + 60) == []
    assert export_at(schedule, T0 + 300) == 2000.0
    assert refs(schedule.advance(T0 + 600)) == [("A", R.COMPLETED)]
    assert export_at(schedule, T0 + 600) == 8000.0


def gapped(gap: int, bridge: int = 10) -> ControlSchedule:
    schedule = ControlSchedule(gap_bridge_s=bridge)
    first = ctl("A", T0, 300, exp=10000)
    second = ctl("B", T0 + 300 + gap, 300, exp=10000)
    schedule.update([prog("P", 1, first, second, default=base(exp=0))], T0)
    return schedule


def test_four_second_gap_between_controls_does_not_dip_to_default() -> None:
    schedule = gapped(4)
    for t in range(T0 + 295, T0 + 310):
        assert export_at(schedule, t) == 10000.0, t
    bridge = schedule.selections(T0 + 302)[EXP]
    assert (bridge.source, bridge.mrid, bridge.end) == (Source.BRIDGE, "A", T0 + 304)
    # The responses still tell the truth: A completed, B started on time.
    assert refs(schedule.advance(T0 + 300)) == [("A", R.COMPLETED)]
    assert refs(schedule.advance(T0 + 304)) == [("B", R.STARTED)]


def test_gap_bridging_is_configurable_and_bounded() -> None:
    assert export_at(gapped(4, bridge=2), T0 + 302) == 0.0
    assert export_at(gapped(60), T0 + 330) == 0.0


def test_gap_left_by_a_cancellation_is_not_bridged() -> None:
    schedule = gapped(4)
    c = ctl("A", T0, 300, exp=10000, status=EventStatus.CANCELLED)
    b = ctl("B", T0 + 304, 300, exp=10000)
    schedule.update([prog("P", 1, c, b, default=base(exp=0))], T0 + 100)
    assert export_at(schedule, T0 + 200) == 0.0


def test_nominally_adjacent_controls_stay_bridged_across_random_offsets() -> None:
    schedule = ControlSchedule(rng=random.Random(3))
    a = ctl("A", T0, 300, exp=10000)
    b = ctl("B", T0 + 300, 300, exp=10000, rs=120)
    schedule.update([prog("P", 1, a, b, default=base(exp=0))], T0)
    upcoming = schedule.next_control(T0 + 1)
    assert upcoming is not None
    assert upcoming.mrid == "B"
    assert upcoming.start > T0 + 310  # this seed opens a real gap
    for t in range(T0 + 250, upcoming.start + 5):
        assert export_at(schedule, t) == 10000.0, t


# -- randomisation ----------------------------------------------------------------------------


def starts(seed: int, bound: int, polls: int = 1) -> int:
    schedule = ControlSchedule(rng=random.Random(seed))
    p = prog("P", 1, ctl("A", T0 + 1000, 300, exp=1, rs=bound))
    for i in range(polls):
        schedule.update([p], T0 + i)
    upcoming = schedule.next_control(T0)
    assert upcoming is not None
    return upcoming.start


def test_randomised_start_is_reproducible_and_within_bounds() -> None:
    positive = {starts(seed, 60) for seed in range(30)}
    negative = {starts(seed, -60) for seed in range(30)}
    assert all(T0 + 1000 <= s <= T0 + 1060 for s in positive)
    assert all(T0 + 940 <= s <= T0 + 1000 for s in negative)
    assert len(positive) > 5
    assert len(negative) > 5
    assert starts(11, 60) == starts(11, 60)


def test_randomisation_is_drawn_once_and_never_again() -> None:
    rng = random.Random(5)
    schedule = ControlSchedule(rng=rng)
    p = prog("P", 1, ctl("A", T0 + 1000, 300, exp=1, rs=60, rd=60))
    schedule.update([p], T0)
    first = schedule.next_control(T0)
    state = rng.getstate()
    for i in range(1, 50):
        schedule.update([p], T0 + i)
    assert schedule.next_control(T0 + 60) == first
    assert rng.getstate() == state  # nothing more drawn


def test_randomised_duration_moves_the_end() -> None:
    ends = set()
    for seed in range(20):
        schedule = ControlSchedule(rng=random.Random(seed))
        schedule.update([prog("P", 1, ctl("A", T0 + 100, 300, exp=1, rd=60))], T0)
        upcoming = schedule.next_control(T0)
        assert upcoming is not None
        assert upcoming.start == T0 + 100
        ends.add(upcoming.end)
    assert all(T0 + 400 <= e <= T0 + 460 for e in ends)
    assert len(ends) > 5


# -- exposure and persistence -----------------------------------------------------------------


def test_running_lists_started_controls_for_opt_out() -> None:
    schedule = ControlSchedule()
    schedule.update([prog("P", 1, ctl("A", T0, 300, exp=1), ctl("B", T0 + 600, 300, exp=1))], T0)
    assert [r.mrid for r in schedule.running(T0 + 10)] == ["A"]


def test_ramp_tms_is_exposed_with_the_selection() -> None:
    schedule = ControlSchedule()
    schedule.update([prog("P", 1, ctl("A", T0, 300, exp=1, ramp_tms=3000))], T0)
    assert schedule.selections(T0)[EXP].ramp_tms == 3000


def test_persistence_round_trip_keeps_applying_without_the_server() -> None:
    rng = random.Random(9)
    schedule = ControlSchedule(rng=rng)
    a = ctl("A", T0, 600, exp=2000, gen=4000, created=T0 - 100, rd=60)
    b = ctl("B", T0 + 60, 600, exp=1000, created=T0 + 60)
    future = ctl("F", T0 + 5000, 300, exp=3000, rs=600)
    programs = [prog("P", 1, a, b, future, default=base(exp=8000), set_grad_w=27)]
    schedule.update(programs, T0 + 100)
    saved = json.loads(json.dumps(schedule.to_dict()))

    restored = ControlSchedule.from_dict(saved, rng=random.Random(1234))
    for t in (T0 + 100, T0 + 300, T0 + 700, T0 + 5100, T0 + 6000):
        assert restored.controls(t) == schedule.controls(t), t
    assert restored.next_control(T0 + 100) == schedule.next_control(T0 + 100)
    assert restored.set_grad_w == 27
    assert restored.defaults == schedule.defaults
    # Already reported transitions are not reported again; later ones are, once.
    assert restored.advance(T0 + 100) == []
    later = refs(restored.advance(T0 + 700))
    assert later == refs(schedule.advance(T0 + 700))
    assert ("B", R.COMPLETED) in later
    assert ("A", R.STARTED) not in later
    assert restored.to_dict() == json.loads(json.dumps(schedule.to_dict()))


def test_persistence_keeps_a_pending_randomised_cancellation() -> None:
    schedule = ControlSchedule(rng=random.Random(4))
    schedule.update([prog("P", 1, ctl("A", T0, 3600, exp=2000, rd=300))], T0)
    c = ctl("A", T0, 3600, exp=2000, rd=300, status=EventStatus.CANCELLED_WITH_RANDOMIZATION)
    schedule.update([prog("P", 1, c)], T0 + 10)
    restored = ControlSchedule.from_dict(json.loads(json.dumps(schedule.to_dict())))
    for t in range(T0 + 10, T0 + 320, 5):
        assert restored.controls(t) == schedule.controls(t)
    assert restored.update([prog("P", 1, c)], T0 + 20) == []


def test_unknown_persistence_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        ControlSchedule.from_dict({"format": 99})


def test_random_overlap_of_back_to_back_controls_is_not_supersession() -> None:
    schedule = ControlSchedule(rng=random.Random(2))
    a = ctl("A", T0, 300, exp=5000, rd=120, created=T0 - 100)
    b = ctl("B", T0 + 300, 300, exp=3000, created=T0 - 50)
    schedule.update([prog("P", 1, a, b)], T0)
    end_a = schedule.selections(T0)[EXP].end
    assert end_a is not None
    assert end_a > T0 + 310  # this seed makes A run into B's time
    events = refs(schedule.advance(T0 + 300))
    assert events == [("B", R.STARTED)]
    assert export_at(schedule, T0 + 300) == 3000.0  # the newer control wins the overlap
    assert refs(schedule.advance(end_a)) == [("A", R.COMPLETED)]


def test_loser_due_no_earlier_than_winner_never_starts_despite_random_offsets() -> None:
    schedule = ControlSchedule(rng=random.Random(1))
    winner = ctl("W", T0 + 100, 300, exp=1000, rs=60)
    loser = ctl("L", T0 + 100, 300, exp=9000)
    schedule.update([prog("P1", 1, winner), prog("P2", 2, loser)], T0)
    upcoming = schedule.next_control(T0)
    assert upcoming is not None
    assert upcoming.mrid == "W"
    assert upcoming.start > T0 + 100  # the winner's offset leaves the loser room to run
    assert refs(schedule.advance(T0 + 100)) == [("L", R.SUPERSEDED)]
    assert export_at(schedule, T0 + 100) is None
    assert refs(schedule.advance(upcoming.start)) == [("W", R.STARTED)]


def test_server_superseded_status_never_starts_and_stops_a_running_control() -> None:
    """EventStatus 4 from the server: a waiting control never starts and cuts nothing short;
    a running one stops at the poll that says so. Both are answered "superseded" once."""
    schedule = ControlSchedule()
    running = ctl("run", T0, 600, exp=2000, created=T0 - 100)
    schedule.update([prog("P", 2, running)], T0)
    assert export_at(schedule, T0 + 10) == 2000.0
    flagged = ctl("new", T0 + 20, 600, exp=9000, created=T0, status=EventStatus.SUPERSEDED)
    events = schedule.update([prog("P", 2, running), prog("Q", 1, flagged)], T0 + 10)
    assert refs(events) == [("new", R.RECEIVED), ("new", R.SUPERSEDED)]
    events = schedule.advance(T0 + 30)
    assert ("new", R.STARTED) not in refs(events)
    assert export_at(schedule, T0 + 30) == 2000.0, "the better-primacy flagged control cut nothing"
    now_flagged = ctl("run", T0, 600, exp=2000, created=T0 - 100, status=EventStatus.SUPERSEDED)
    events = schedule.update([prog("P", 2, now_flagged), prog("Q", 1, flagged)], T0 + 40)
    assert refs(events) == [("run", R.SUPERSEDED)]
    assert export_at(schedule, T0 + 40) is None
