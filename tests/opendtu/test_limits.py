"""Limit arithmetic, derating and the acknowledgement tracker, without a DTU."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.opendtu.limits import (
    OPENDTU_MAX_LIMIT,
    LimitRequest,
    LimitType,
    PendingLimit,
    TemperatureDerating,
    limit_request,
)

ABS = LimitType.ABSOLUTE
REL = LimitType.RELATIVE


@pytest.mark.parametrize(
    ("pct", "kwargs", "expected"),
    [
        (50.0, {"max_power_w": 800.0}, LimitRequest(ABS, 400.0)),
        (12.3456, {"max_power_w": 800.0}, LimitRequest(ABS, 98.7)),  # 98.7648 rounded down
        (0.0, {"max_power_w": 800.0}, LimitRequest(ABS, 40.0)),  # 5 % minimum
        (0.0, {"max_power_w": 800.0, "min_limit_pct": 2.0}, LimitRequest(ABS, 16.0)),
        (150.0, {"max_power_w": 800.0}, LimitRequest(ABS, 800.0)),
        (75.0, {"max_power_w": 3000.0}, LimitRequest(ABS, OPENDTU_MAX_LIMIT)),
        (100.0, {"max_power_w": 3000.0}, LimitRequest(REL, 100.0)),  # over the 2250 W cap
        (100.0, {"max_power_w": 2000.0, "share_pct": 60.0}, LimitRequest(ABS, 1200.0)),
        (50.0, {"max_power_w": 2000.0, "share_pct": 60.0}, LimitRequest(ABS, 600.0)),
        (1.0, {"max_power_w": 2000.0, "share_pct": 2.0}, LimitRequest(ABS, 100.0)),
        (33.33, {"max_power_w": 2000.0, "absolute": False}, LimitRequest(REL, 33.3)),
        (100.0, {"max_power_w": 3000.0, "absolute": False}, LimitRequest(REL, 100.0)),
        (50.0, {"max_power_w": 2000.0, "share_pct": 50, "absolute": False}, LimitRequest(REL, 25)),
    ],
)
def test_limit_request(pct: float, kwargs: dict, expected: LimitRequest) -> None:
    request = limit_request(pct, **kwargs)
    assert request.type == expected.type
    assert request.value == pytest.approx(expected.value)


def test_limit_request_rejects_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        limit_request(float("nan"), max_power_w=800.0)


def test_same_as_uses_the_dtu_resolution() -> None:
    assert LimitRequest(ABS, 400.0).same_as(LimitRequest(ABS, 400.04))
    assert not LimitRequest(ABS, 400.0).same_as(LimitRequest(ABS, 400.1))
    assert not LimitRequest(ABS, 50.0).same_as(LimitRequest(REL, 50.0))
    assert not LimitRequest(ABS, 50.0).same_as(None)


def test_derating_line() -> None:
    derating = TemperatureDerating(start_c=55.0, end_c=75.0, min_share_pct=40.0)
    assert derating.share_pct(None) == 100.0
    assert derating.share_pct(20.0) == 100.0
    assert derating.share_pct(55.0) == 100.0
    assert derating.share_pct(65.0) == pytest.approx(70.0)
    assert derating.share_pct(75.0) == pytest.approx(40.0)
    assert derating.share_pct(90.0) == pytest.approx(40.0)
    with pytest.raises(ValueError, match="end_c"):
        TemperatureDerating(start_c=70.0, end_c=70.0)
    for share in (0.0, 120.0):
        with pytest.raises(ValueError, match="min_share_pct"):
            TemperatureDerating(start_c=60.0, end_c=70.0, min_share_pct=share)


def test_pending_ignores_answers_from_before_the_command() -> None:
    pending = PendingLimit(timeout_s=10.0)
    first, second = LimitRequest(ABS, 100.0), LimitRequest(ABS, 50.0)
    assert pending.submit(first, now=0.0) is first
    pending.sent(first, now=1.0)
    assert pending.submit(second, now=1.5) is None
    assert pending.observe("Ok", fetched_at=0.9, now=2.0) is None  # read before the POST
    assert pending.in_flight == first
    assert pending.observe("Ok", fetched_at=2.5, now=2.6) is second
    assert pending.in_flight is None
    assert pending.response_time_s == pytest.approx(1.5)


def test_pending_without_our_command_does_not_block() -> None:
    pending = PendingLimit()
    request = LimitRequest(REL, 20.0)
    assert pending.observe("Pending", fetched_at=5.0, now=5.0) is None
    assert pending.submit(request, now=5.0) is request


def test_unknown_status_resolves_and_response_time_is_smoothed() -> None:
    pending = PendingLimit()
    request = LimitRequest(ABS, 10.0)
    pending.sent(request, now=0.0)
    assert pending.observe("Unknown", fetched_at=1.0, now=1.0) is None
    assert (pending.outcome, pending.response_time_s) == ("Unknown", None)
    for sent_at, acked_at in ((10.0, 12.0), (20.0, 24.0)):
        pending.sent(request, now=sent_at)
        pending.observe("Ok", fetched_at=acked_at, now=acked_at)
    assert pending.response_time_s == pytest.approx(2.0 + 0.3 * (4.0 - 2.0))


def test_pending_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        PendingLimit(timeout_s=0)
