"""MQTT limiter payloads: valid, invalid and stale messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.limiters.mqtt_payload import (
    MqttLimiter,
    MqttPayloadError,
    parse_payload,
)

T0 = datetime(2025, 1, 15, 2, 0, tzinfo=UTC)


def test_all_keys() -> None:
    payload = (
        b'{"opModConnect": true, "opModEnergize": false, "opModExpLimW": 1500,'
        b' "opModGenLimW": 8000.5, "opModImpLimW": 0, "opModLoadLimW": 12000}'
    )
    assert parse_payload(payload) == Controls(
        connect=True,
        energize=False,
        export_limit=1500.0,
        generation_limit=8000.5,
        import_limit=0.0,
        load_limit=12000.0,
    )
    assert isinstance(parse_payload(payload).export_limit, float)


def test_partial_null_and_empty() -> None:
    assert parse_payload('{"opModExpLimW": 0}') == Controls(export_limit=0.0)
    assert parse_payload('{"opModExpLimW": null, "opModConnect": true}') == Controls(connect=True)
    assert parse_payload("{}") == Controls()
    assert parse_payload(' \n{"opModGenLimW": 1e3}\n') == Controls(generation_limit=1000.0)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "not JSON"),
        (b"export 0", "not JSON"),
        (b'{"opModExpLimW": 0', "not JSON"),
        (b"[0]", "must be a JSON object"),
        (b"0", "must be a JSON object"),
        (b'{"opModExpLimitW": 0}', r"unknown keys \['opModExpLimitW'\]"),
        (b'{"opModExpLimW": 0, "opModExpLimW": 5000}', "appears twice"),
        (b'{"opModConnect": 1}', "opModConnect must be true or false"),
        (b'{"opModEnergize": "true"}', "opModEnergize must be true or false"),
        (b'{"opModExpLimW": "1500"}', "opModExpLimW must be a number"),
        (b'{"opModExpLimW": true}', "opModExpLimW must be a number"),
        (b'{"opModGenLimW": -1}', "opModGenLimW must be a finite, non-negative"),
        (b'{"opModImpLimW": NaN}', "NaN is not a valid number"),
        (b'{"opModLoadLimW": Infinity}', "Infinity is not a valid number"),
        (b'{"opModExpLimW": 1e999}', "must be a finite"),
        (b'{"opModExpLimW": 0}\xff', "not UTF-8"),
        (b'{"opModExpLimW": 0, "pad": "' + b"x" * 5000 + b'"}', "larger than"),
    ],
)
def test_invalid_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(MqttPayloadError, match=message):
        parse_payload(payload)


def test_limiter_holds_the_last_valid_message_until_it_expires() -> None:
    limiter = MqttLimiter("mqtt")
    assert limiter.controls(T0) == Controls()
    assert limiter.status(T0).stale is True
    limiter.receive(b'{"opModExpLimW": 0}', T0)
    assert limiter.controls(T0 + timedelta(seconds=60)) == Controls(export_limit=0.0)
    assert limiter.controls(T0 + timedelta(seconds=60.001)) == Controls()
    status = limiter.status(T0 + timedelta(seconds=61))
    assert status.stale is True
    assert status.received_at == T0
    assert status.expires_at == T0 + timedelta(seconds=60)
    assert status.controls == Controls(export_limit=0.0)


def test_invalid_message_keeps_the_previous_one_and_is_counted() -> None:
    limiter = MqttLimiter("mqtt", max_age=timedelta(seconds=30))
    limiter.receive('{"opModExpLimW": 2000}', T0)
    with pytest.raises(MqttPayloadError):
        limiter.receive('{"opModExpLimW": -5}', T0 + timedelta(seconds=10))
    assert limiter.controls(T0 + timedelta(seconds=20)) == Controls(export_limit=2000.0)
    status = limiter.status(T0 + timedelta(seconds=20))
    assert status.rejected == 1
    assert status.last_error_at == T0 + timedelta(seconds=10)
    assert "non-negative" in (status.last_error or "")
    # The rejected message did not refresh the age of the valid one.
    assert limiter.controls(T0 + timedelta(seconds=31)) == Controls()


def test_stale_controls_make_a_dead_publisher_safe() -> None:
    safe = Controls(export_limit=0.0)
    limiter = MqttLimiter("mqtt", max_age=timedelta(seconds=5), stale_controls=safe)
    assert limiter.controls(T0) == safe  # nothing received yet
    limiter.receive(b'{"opModExpLimW": 5000}', T0)
    assert limiter.controls(T0 + timedelta(seconds=1)) == Controls(export_limit=5000.0)
    assert limiter.controls(T0 + timedelta(seconds=6)) == safe


def test_max_age_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_age"):
        MqttLimiter("mqtt", max_age=timedelta(0))
