"""Temporary controls set from Home Assistant automations, with an expiry time.

One override per limiter: a new :meth:`OverrideLimiter.set` replaces the previous one, so
an automation never has to guess what is stacked. Like every limiter it can only add
restrictions; the merge keeps the most restrictive value, so an override cannot lift a
limit another limiter sets. It ends by itself at ``until`` (checked on every call, no
timer needed) and survives restarts through :meth:`to_dict` / :meth:`from_dict`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from ..core.controls import BOOLEAN_CONTROLS, WATT_CONTROLS, Controls


def check_controls(controls: Controls) -> Controls:
    """Return ``controls`` if every value is sound, else raise a ValueError saying which."""
    for control in WATT_CONTROLS:
        value = controls.get(control)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{control} must be a number of watts, not {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{control} must be a finite, non-negative number of watts")
    for control in BOOLEAN_CONTROLS:
        value = controls.get(control)
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{control} must be true or false, not {value!r}")
    return controls


def controls_from_dict(data: Mapping[str, Any]) -> Controls:
    """Controls from :meth:`Controls.as_dict` output; unknown keys are an error."""
    names = {f.name for f in fields(Controls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown controls {sorted(unknown)}")
    return check_controls(Controls(**{k: v for k, v in data.items() if v is not None}))


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must have a timezone")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Override:
    """What was asked, until when, by whom (``source``: automation id or user)."""

    controls: Controls
    until: datetime
    source: str
    set_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "controls": self.controls.as_dict(),
            "until": self.until.isoformat(),
            "source": self.source,
            "set_at": self.set_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Override:
        """Inverse of :meth:`to_dict`; raises ValueError on malformed data."""
        try:
            return cls(
                controls=controls_from_dict(data["controls"]),
                until=_aware(datetime.fromisoformat(data["until"]), "until"),
                source=str(data["source"]),
                set_at=_aware(datetime.fromisoformat(data["set_at"]), "set_at"),
            )
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"stored override is malformed: {err!r}") from err


class OverrideLimiter:
    """Holds at most one override and asks for it until it expires."""

    def __init__(self, source: str, *, enabled: bool = True) -> None:
        self.source = source
        self.enabled = enabled
        self._override: Override | None = None

    def set(
        self, controls: Controls, until: datetime, source: str, now: datetime | None = None
    ) -> Override:
        """Replace the override; ValueError for bad values, nothing asked, or a past ``until``."""
        now = _aware(now or datetime.now(UTC), "now")
        until = _aware(until, "until")
        check_controls(controls)
        if controls.is_empty:
            raise ValueError("an override must ask for at least one control")
        if until <= now:
            raise ValueError(f"until ({until.isoformat()}) is not in the future")
        self._override = Override(controls, until, source, now)
        return self._override

    def clear(self) -> None:
        """Remove the override now."""
        self._override = None

    def active(self, now: datetime) -> Override | None:
        """The override in force at ``now``, if any (an expired one is dropped)."""
        if self._override is not None and now >= self._override.until:
            self._override = None
        return self._override

    def controls(self, now: datetime) -> Controls:
        """The override's controls until it expires, then nothing."""
        active = self.active(now)
        return Controls() if active is None else active.controls

    def to_dict(self) -> dict[str, Any]:
        """The override (or none), for storage."""
        return {"override": None if self._override is None else self._override.to_dict()}

    @classmethod
    def from_dict(
        cls, source: str, data: Mapping[str, Any], now: datetime, *, enabled: bool = True
    ) -> OverrideLimiter:
        """A limiter with the stored override, unless it expired meanwhile.

        Raises ValueError on malformed data (the HA layer logs it and starts empty).
        """
        limiter = cls(source, enabled=enabled)
        stored = data.get("override")
        if stored is not None:
            override = Override.from_dict(stored)
            if override.until > now:
                limiter._override = override
        return limiter
