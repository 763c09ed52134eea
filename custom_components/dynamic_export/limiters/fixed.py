"""A limiter that always asks for the same, user-set controls."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ..core.controls import WATT_CONTROLS, Controls, ControlType


@dataclass(slots=True)
class FixedLimiter:
    """Fixed limits from the configuration, changeable at run time."""

    source: str
    settings: Controls
    enabled: bool = True

    def controls(self, now: datetime) -> Controls:
        """Return the configured controls (time does not matter)."""
        return self.settings

    def set_limit(self, control: ControlType, watts: float | None) -> None:
        """Change one watt limit; ``None`` removes it."""
        if control not in WATT_CONTROLS:
            raise ValueError(f"{control} is not a watt limit")
        if watts is not None and not watts >= 0:
            raise ValueError(f"{control} must be a non-negative number of watts")
        change: dict[str, Any] = {control.value: watts}
        self.settings = replace(self.settings, **change)
