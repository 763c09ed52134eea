"""MQTT limiter: controls published as JSON by another program, valid for a limited time.

Payload: a JSON object with any of ``opModConnect`` and ``opModEnergize`` (true/false) and
``opModExpLimW``, ``opModGenLimW``, ``opModImpLimW``, ``opModLoadLimW`` (watts, finite and
non-negative); ``null`` or a missing key means "no opinion", ``{}`` asks for nothing.

Strict on purpose: unknown keys, duplicate keys, 0/1 for booleans, NaN or Infinity reject
the whole message, because a misspelt ``opModExpLimitW`` silently ignored would mean *no*
export limit. A rejected message leaves the last valid one in force until it expires.

Unlike open-dynamic-export, the last message does not hold forever: after ``max_age``
(60 s by default) the limiter asks for ``stale_controls`` (nothing by default), so a
publisher that died stops limiting (or, if configured, makes the site safe).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..core.controls import Controls

MAX_PAYLOAD_BYTES = 4096
BOOLEAN_KEYS = {"opModConnect": "connect", "opModEnergize": "energize"}
WATT_KEYS = {
    "opModExpLimW": "export_limit",
    "opModGenLimW": "generation_limit",
    "opModImpLimW": "import_limit",
    "opModLoadLimW": "load_limit",
}
KEYS = {**BOOLEAN_KEYS, **WATT_KEYS}


class MqttPayloadError(ValueError):
    """The payload is not a valid limiter message; the text says why."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MqttPayloadError(f"key {key!r} appears twice")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise MqttPayloadError(f"{name} is not a valid number")


def parse_payload(payload: bytes | str) -> Controls:
    """The controls a payload asks for; raises :class:`MqttPayloadError` if invalid."""
    raw = payload.encode() if isinstance(payload, str) else payload
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise MqttPayloadError(f"payload is larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        data = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
        )
    except UnicodeDecodeError as err:
        raise MqttPayloadError("payload is not UTF-8 text") from err
    except json.JSONDecodeError as err:
        raise MqttPayloadError(f"payload is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise MqttPayloadError("payload must be a JSON object")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise MqttPayloadError(f"unknown keys {unknown}; allowed: {', '.join(KEYS)}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        if key in BOOLEAN_KEYS:
            if not isinstance(value, bool):
                raise MqttPayloadError(f"{key} must be true or false, not {value!r}")
            values[BOOLEAN_KEYS[key]] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MqttPayloadError(f"{key} must be a number of watts, not {value!r}")
        if not math.isfinite(value) or value < 0:
            raise MqttPayloadError(f"{key} must be a finite, non-negative number of watts")
        values[WATT_KEYS[key]] = float(value)
    return Controls(**values)


@dataclass(frozen=True, slots=True)
class MqttStatus:
    """What the HA layer shows: last valid message, its age, last rejection."""

    controls: Controls | None
    received_at: datetime | None
    expires_at: datetime | None
    stale: bool
    last_error: str | None
    last_error_at: datetime | None
    rejected: int


class MqttLimiter:
    """Holds the last valid MQTT message; the HA layer calls :meth:`receive` per message."""

    def __init__(
        self,
        source: str,
        *,
        max_age: timedelta = timedelta(seconds=60),
        stale_controls: Controls | None = None,
        enabled: bool = True,
    ) -> None:
        if max_age <= timedelta(0):
            raise ValueError("max_age must be positive")
        self.source = source
        self.enabled = enabled
        self.max_age = max_age
        self.stale_controls = stale_controls or Controls()
        self._message: Controls | None = None
        self._received_at: datetime | None = None
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._rejected = 0

    def receive(self, payload: bytes | str, now: datetime) -> Controls:
        """Take a message received at ``now``; re-raises :class:`MqttPayloadError`."""
        try:
            controls = parse_payload(payload)
        except MqttPayloadError as err:
            self._last_error, self._last_error_at = str(err), now
            self._rejected += 1
            raise
        self._message, self._received_at = controls, now
        return controls

    def _fresh(self, now: datetime) -> bool:
        return self._received_at is not None and now - self._received_at <= self.max_age

    def controls(self, now: datetime) -> Controls:
        """The last valid message while it is fresh, then ``stale_controls``."""
        if self._message is not None and self._fresh(now):
            return self._message
        return self.stale_controls

    def status(self, now: datetime) -> MqttStatus:
        """Everything the HA layer shows, at ``now``."""
        received = self._received_at
        return MqttStatus(
            controls=self._message,
            received_at=received,
            expires_at=None if received is None else received + self.max_age,
            stale=not self._fresh(now),
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            rejected=self._rejected,
        )
