"""The six controls a limiter can ask for, and what a limiter hands to the merge."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum


class ControlType(StrEnum):
    """A control a limiter can ask for (the CSIP-AUS opMod* names in snake case)."""

    CONNECT = "connect"
    ENERGIZE = "energize"
    EXPORT_LIMIT = "export_limit"
    GENERATION_LIMIT = "generation_limit"
    IMPORT_LIMIT = "import_limit"
    LOAD_LIMIT = "load_limit"


BOOLEAN_CONTROLS = (ControlType.CONNECT, ControlType.ENERGIZE)
WATT_CONTROLS = (
    ControlType.EXPORT_LIMIT,
    ControlType.GENERATION_LIMIT,
    ControlType.IMPORT_LIMIT,
    ControlType.LOAD_LIMIT,
)


@dataclass(frozen=True, slots=True)
class Controls:
    """Controls asked for by one limiter; ``None`` means "no opinion".

    Watt limits are site-level, non-negative watts. Field names match
    :class:`ControlType` values so the two can be used interchangeably.
    """

    connect: bool | None = None
    energize: bool | None = None
    export_limit: float | None = None
    generation_limit: float | None = None
    import_limit: float | None = None
    load_limit: float | None = None

    def get(self, control: ControlType) -> bool | float | None:
        """Return the value asked for ``control``."""
        value: bool | float | None = getattr(self, control.value)
        return value

    def as_dict(self) -> dict[str, bool | float | None]:
        """Return the controls as a plain dict (for diagnostics and attributes)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def is_empty(self) -> bool:
        """True when the limiter asks for nothing."""
        return all(getattr(self, f.name) is None for f in fields(self))


@dataclass(frozen=True, slots=True)
class LimitRequest:
    """What one limiter asks for in one cycle, labelled with its source."""

    source: str
    controls: Controls
