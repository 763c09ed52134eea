"""What a DERControlBase asks for, in the core's control types.

The schedule, the status and the limiter all speak :class:`~..core.controls.Controls`;
this is the one place that knows which DERControlBase field is which control.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..core.controls import Controls, ControlType
from .sep2.resources import DERControlBase
from .sep2.units import ActivePower

_BASE_FIELD: dict[ControlType, str] = {
    ControlType.CONNECT: "op_mod_connect",
    ControlType.ENERGIZE: "op_mod_energize",
    ControlType.EXPORT_LIMIT: "op_mod_exp_lim_w",
    ControlType.GENERATION_LIMIT: "op_mod_gen_lim_w",
    ControlType.IMPORT_LIMIT: "op_mod_imp_lim_w",
    ControlType.LOAD_LIMIT: "op_mod_load_lim_w",
}


def base_value(base: DERControlBase, control_type: ControlType) -> bool | float | None:
    """The value ``base`` sets for one control type (watts for limits), or None."""
    raw: bool | ActivePower | None = getattr(base, _BASE_FIELD[control_type])
    if isinstance(raw, ActivePower):
        return max(0.0, raw.watts)
    return raw


def base_types(base: DERControlBase) -> tuple[ControlType, ...]:
    """The control types ``base`` sets: the only ones its control competes for."""
    return tuple(t for t in ControlType if getattr(base, _BASE_FIELD[t]) is not None)


def to_controls(values: Mapping[ControlType, bool | float | None]) -> Controls:
    """Per-type values as core :class:`Controls` (missing types: no opinion)."""

    def flag(control_type: ControlType) -> bool | None:
        value = values.get(control_type)
        return None if value is None else bool(value)

    def watts(control_type: ControlType) -> float | None:
        value = values.get(control_type)
        return None if value is None else float(value)

    return Controls(
        connect=flag(ControlType.CONNECT),
        energize=flag(ControlType.ENERGIZE),
        export_limit=watts(ControlType.EXPORT_LIMIT),
        generation_limit=watts(ControlType.GENERATION_LIMIT),
        import_limit=watts(ControlType.IMPORT_LIMIT),
        load_limit=watts(ControlType.LOAD_LIMIT),
    )


def base_controls(base: DERControlBase) -> Controls:
    """``base`` as core :class:`Controls`."""
    return to_controls({t: base_value(base, t) for t in ControlType})
