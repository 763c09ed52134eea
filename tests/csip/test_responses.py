"""Which Responses are sent, once each, with retries and opt-out."""

from __future__ import annotations

import json

import pytest

from custom_components.dynamic_export.csip.entries import ControlRef
from custom_components.dynamic_export.csip.responses import (
    OutgoingResponse,
    ResponseTracker,
    wanted,
)
from custom_components.dynamic_export.csip.schedule import ControlSchedule, ScheduleEvent
from custom_components.dynamic_export.csip.sep2.codes import EventStatus, ResponseStatus
from custom_components.dynamic_export.csip.sep2.resources import (
    DERControl,
    DERControlBase,
    DERProgram,
)
from custom_components.dynamic_export.csip.sep2.units import ActivePower

T0 = 1_750_000_000
R = ResponseStatus
RSP = "/rsps/1/rsp"


def ref(
    mrid: str = "A", required: int = 3, reply_to: str | None = RSP, end: int = T0 + 600
) -> ControlRef:
    return ControlRef(mrid, "P", reply_to, required, end)


def ev(
    status: ResponseStatus,
    mrid: str = "A",
    at: int = T0,
    *,
    required: int = 3,
    reply_to: str | None = RSP,
    end: int = T0 + 600,
) -> ScheduleEvent:
    return ScheduleEvent(ref(mrid, required, reply_to, end), status, at)


def statuses(items: list[OutgoingResponse]) -> list[tuple[str, ResponseStatus]]:
    return [(o.mrid, o.status) for o in items]


def drain(tracker: ResponseTracker, now: int) -> list[tuple[str, ResponseStatus]]:
    """Send everything that is due, in order, until nothing is left for now."""
    out: list[tuple[str, ResponseStatus]] = []
    while batch := tracker.due(now):
        for item in batch:
            tracker.sent(item.mrid, item.status)
        out.extend(statuses(batch))
    return out


LIFECYCLE = [R.RECEIVED, R.STARTED, R.COMPLETED]


@pytest.mark.parametrize(
    ("required", "expected"),
    [
        (0, []),
        (0x01, [R.RECEIVED]),
        (0x02, [R.STARTED, R.COMPLETED]),
        (0x03, LIFECYCLE),
    ],
)
def test_response_required_bits(required: int, expected: list[ResponseStatus]) -> None:
    tracker = ResponseTracker()
    tracker.record([ev(s, required=required) for s in LIFECYCLE])
    assert [s for _, s in drain(tracker, T0)] == expected


def test_wanted_covers_every_status() -> None:
    assert wanted(0x02, R.CANCELLED)
    assert wanted(0x02, R.SUPERSEDED)
    assert wanted(0x02, R.OPTED_OUT)
    assert wanted(0x04, R.OPTED_OUT)
    assert not wanted(0x01, R.SUPERSEDED)
    assert not wanted(0x04, R.STARTED)


def test_nothing_without_reply_to() -> None:
    tracker = ResponseTracker()
    tracker.record([ev(R.RECEIVED, reply_to=None)])
    assert tracker.due(T0) == []


def test_duplicates_are_never_queued_again() -> None:
    tracker = ResponseTracker()
    tracker.record([ev(R.RECEIVED), ev(R.RECEIVED)])
    assert drain(tracker, T0) == [("A", R.RECEIVED)]
    tracker.record([ev(R.RECEIVED, at=T0 + 60)])
    assert tracker.due(T0 + 60) == []


def test_one_at_a_time_per_control_keeps_the_order() -> None:
    tracker = ResponseTracker()
    tracker.record([ev(R.RECEIVED), ev(R.STARTED), ev(R.RECEIVED, "B")])
    assert statuses(tracker.due(T0)) == [("A", R.RECEIVED), ("B", R.RECEIVED)]
    tracker.failed("A", R.RECEIVED, T0)
    assert statuses(tracker.due(T0 + 1)) == [("B", R.RECEIVED)]  # started waits its turn


def test_failed_responses_back_off_then_give_up() -> None:
    tracker = ResponseTracker(max_attempts=3, retry_s=10)
    tracker.record([ev(R.COMPLETED)])
    tracker.failed("A", R.COMPLETED, T0)
    assert tracker.due(T0 + 9) == []
    assert statuses(tracker.due(T0 + 10)) == [("A", R.COMPLETED)]
    tracker.failed("A", R.COMPLETED, T0 + 10)
    assert tracker.due(T0 + 29) == []  # 20 s: exponential
    assert tracker.due(T0 + 30) != []
    tracker.failed("A", R.COMPLETED, T0 + 30)
    assert tracker.due(T0 + 10_000) == []
    assert tracker.pending == []


def test_started_is_retried_until_the_event_ends() -> None:
    tracker = ResponseTracker(max_attempts=2, retry_s=10, max_backoff_s=60)
    tracker.record([ev(R.STARTED, end=T0 + 600)])
    now = T0
    for _ in range(8):
        assert statuses(tracker.due(now)) == [("A", R.STARTED)]
        tracker.failed("A", R.STARTED, now)
        now += 60
    assert now < T0 + 600
    assert tracker.due(T0 + 600) == []
    assert tracker.pending == []


def test_permanent_failure_drops_the_response() -> None:
    tracker = ResponseTracker()
    tracker.record([ev(R.STARTED)])
    tracker.failed("A", R.STARTED, T0, permanent=True)
    assert tracker.pending == []


def test_opted_out_instead_of_started_when_control_is_off() -> None:
    tracker = ResponseTracker()
    tracker.record([ev(R.RECEIVED), ev(R.STARTED)], opted_out=True)
    tracker.record([ev(R.COMPLETED, at=T0 + 600)])
    assert drain(tracker, T0 + 600) == [("A", R.RECEIVED), ("A", R.OPTED_OUT)]


def test_opting_out_of_running_events_drops_a_pending_started() -> None:
    tracker = ResponseTracker()
    tracker.record([ev(R.STARTED), ev(R.STARTED, "B", required=1)])
    tracker.opt_out([ref("A"), ref("B", required=1)], T0 + 30)
    tracker.opt_out([ref("A")], T0 + 40)
    tracker.record([ev(R.COMPLETED, at=T0 + 600), ev(R.CANCELLED, "A", at=T0 + 500)])
    assert drain(tracker, T0 + 600) == [("A", R.OPTED_OUT), ("A", R.CANCELLED)]


def test_opting_back_in_and_out_again() -> None:
    """Each change of mind is told once; "completed" follows an opt-in, not an opt-out."""
    tracker = ResponseTracker()
    tracker.record([ev(R.RECEIVED), ev(R.STARTED)])
    assert not tracker.opt_in([ref("A")], T0 + 10), "never left: nothing to opt back in to"
    assert tracker.opt_out([ref("A")], T0 + 20)
    assert not tracker.opt_out([ref("A")], T0 + 25)
    assert tracker.opt_in([ref("A")], T0 + 30)
    assert tracker.opt_out([ref("A")], T0 + 40)
    assert tracker.opt_in([ref("A")], T0 + 50)
    tracker.record([ev(R.COMPLETED, at=T0 + 600)])
    assert drain(tracker, T0 + 600) == [
        ("A", R.RECEIVED),
        ("A", R.OPTED_OUT),
        ("A", R.OPTED_IN),
        ("A", R.OPTED_OUT),
        ("A", R.OPTED_IN),
        ("A", R.COMPLETED),
    ]


def test_choices_survive_a_restart() -> None:
    tracker = ResponseTracker()
    tracker.record([ev(R.RECEIVED), ev(R.STARTED)])
    tracker.opt_out([ref("A")], T0 + 20)
    saved = json.loads(json.dumps(tracker.to_dict()))
    restored = ResponseTracker.from_dict(saved)
    restored.record([ev(R.COMPLETED, at=T0 + 600)])
    assert R.COMPLETED not in [s for _, s in drain(restored, T0 + 600)]
    restored = ResponseTracker.from_dict(saved)
    assert restored.opt_in([ref("A")], T0 + 30)
    del saved["choices"]  # saved by an older version: an opt-out there was final
    older = ResponseTracker.from_dict(saved)
    assert not older.opt_out([ref("A")], T0 + 30)
    assert older.opt_in([ref("A")], T0 + 30)


def test_persistence_round_trip() -> None:
    tracker = ResponseTracker(retry_s=10)
    tracker.record([ev(R.RECEIVED), ev(R.STARTED), ev(R.RECEIVED, "B")])
    tracker.sent("B", R.RECEIVED)
    tracker.failed("A", R.RECEIVED, T0)
    restored = ResponseTracker.from_dict(json.loads(json.dumps(tracker.to_dict())), retry_s=10)
    assert restored.pending == tracker.pending
    assert restored.due(T0 + 5) == []
    restored.record([ev(R.RECEIVED, "B")])
    assert drain(restored, T0 + 10) == [("A", R.RECEIVED), ("A", R.STARTED)]
    with pytest.raises(ValueError, match="format"):
        ResponseTracker.from_dict({"format": 0})


def test_history_is_forgotten_after_a_while_but_not_while_queued() -> None:
    tracker = ResponseTracker(history_s=100)
    tracker.record([ev(R.RECEIVED), ev(R.COMPLETED, "B")])
    tracker.sent("A", R.RECEIVED)
    tracker.failed("B", R.COMPLETED, T0)
    tracker.due(T0 + 200)
    assert len(tracker.to_dict()["history"]) == 1  # B's completed is still queued


def test_with_the_schedule_a_superseded_control_gets_7_and_the_new_one_2() -> None:
    def control(mrid: str, start: int, duration: int, created: int, watts: int) -> DERControl:
        b = DERControlBase(op_mod_exp_lim_w=ActivePower(watts))
        return DERControl(
            mrid, None, created, start, duration, EventStatus.SCHEDULED, b, 0, 0, 3, RSP
        )

    schedule = ControlSchedule()
    tracker = ResponseTracker()
    low = DERProgram("P6", None, 2, controls=(control("DERC1", T0, 600, T0, 12000),))
    tracker.record(schedule.update([low], T0))
    assert drain(tracker, T0) == [("DERC1", R.RECEIVED), ("DERC1", R.STARTED)]
    high = DERProgram("P1", None, 1, controls=(control("DERC2", T0 + 60, 840, T0 + 60, 0),))
    tracker.record(schedule.update([high, low], T0 + 60))
    assert drain(tracker, T0 + 60) == [
        ("DERC2", R.RECEIVED),
        ("DERC1", R.SUPERSEDED),
        ("DERC2", R.STARTED),
    ]
    tracker.record(schedule.update([high, low], T0 + 900))
    assert drain(tracker, T0 + 900) == [("DERC2", R.COMPLETED)]
