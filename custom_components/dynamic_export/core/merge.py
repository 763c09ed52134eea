"""Merge the requests of all limiters: the most restrictive value wins each control."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .controls import BOOLEAN_CONTROLS, WATT_CONTROLS, ControlType, LimitRequest


@dataclass(frozen=True, slots=True)
class MergedControls:
    """The controls in force for the site, and which limiter won each of them.

    Unset controls resolve to the permissive default: connected, energized and
    unlimited (``None``). ``sources`` names the winning limiter of every control
    that some limiter set.
    """

    connect: bool = True
    energize: bool = True
    export_limit: float | None = None
    generation_limit: float | None = None
    import_limit: float | None = None
    load_limit: float | None = None
    sources: dict[ControlType, str] = field(default_factory=dict)

    def get(self, control: ControlType) -> bool | float | None:
        """Return the merged value of ``control``."""
        value: bool | float | None = getattr(self, control.value)
        return value

    def source(self, control: ControlType) -> str | None:
        """Return the limiter that set ``control``, or None when nobody did."""
        return self.sources.get(control)


def merge_requests(requests: Iterable[LimitRequest]) -> MergedControls:
    """Merge limiter requests; ``False`` wins connect/energize, the lowest watts win limits.

    Ties keep the first limiter that asked, so the order of ``requests`` decides
    which source is reported when two limiters ask for the same value.
    """
    values: dict[str, bool | float | None] = {}
    sources: dict[ControlType, str] = {}
    for request in requests:
        for control in BOOLEAN_CONTROLS:
            asked = request.controls.get(control)
            if asked is None:
                continue
            current = values.get(control.value)
            if current is None or (current is True and asked is False):
                values[control.value] = bool(asked)
                sources[control] = request.source
        for control in WATT_CONTROLS:
            asked = request.controls.get(control)
            if asked is None:
                continue
            # Clamp before comparing, so a negative (or NaN) ask ties with 0 W.
            watts = float(asked) if float(asked) > 0 else 0.0
            current = values.get(control.value)
            if current is None or watts < float(current):
                values[control.value] = watts
                sources[control] = request.source
    return MergedControls(
        connect=bool(values.get("connect", True)),
        energize=bool(values.get("energize", True)),
        export_limit=_watts(values.get("export_limit")),
        generation_limit=_watts(values.get("generation_limit")),
        import_limit=_watts(values.get("import_limit")),
        load_limit=_watts(values.get("load_limit")),
        sources=sources,
    )


def _watts(value: bool | float | None) -> float | None:
    return None if value is None else float(value)
