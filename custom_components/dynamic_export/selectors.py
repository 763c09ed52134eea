"""Form fields shared by the config flow and every subentry flow.

Numbers are typed into a box, not dragged on a slider: limits span watts to megawatts and a
port or unit id must be exact.
"""

from __future__ import annotations

from typing import Any

from homeassistant.helpers import selector

from .compat import vol
from .const import MAX_CONTROL_INTERVAL, MAX_LIMIT_W, MIN_CONTROL_INTERVAL


class _RangeHintSelector(selector.NumberSelector):
    """A number whose range guides the UI only; the flow's step checks it (``validation``).

    A range the schema enforced would fail the whole form with no text beside the field;
    checked in the step, an out-of-range value is a translated error on its field.
    """

    def __call__(self, data: Any) -> float:
        """Any number; the step checks the range."""
        value: float = vol.Coerce(float)(data)
        return value


def number_selector(
    minimum: float,
    maximum: float,
    step: float,
    unit: str | None = None,
    *,
    checked_by_step: bool = False,
) -> selector.NumberSelector:
    """A number typed into a box, from ``minimum`` to ``maximum`` in ``step``s of ``unit``.

    ``checked_by_step``: the schema takes any number and the flow's step checks the range.
    """
    config = selector.NumberSelectorConfig(
        min=minimum, max=maximum, step=step, mode=selector.NumberSelectorMode.BOX
    )
    if unit is not None:
        config["unit_of_measurement"] = unit
    if checked_by_step:
        return _RangeHintSelector(config)
    return selector.NumberSelector(config)


LIMIT_WATTS = number_selector(0, MAX_LIMIT_W, 1, "W", checked_by_step=True)
"""A watt limit (export, generation, import, load), 0 included; see ``validation``."""

INTERVAL_SECONDS = number_selector(
    MIN_CONTROL_INTERVAL, MAX_CONTROL_INTERVAL, 1, "s", checked_by_step=True
)
"""The control interval in whole seconds; see ``validation``."""

PORT_RANGE = (1, 65535)
PORT = number_selector(*PORT_RANGE, 1, "", checked_by_step=True)
"""A TCP port; see ``validation``."""

UNIT_ID_RANGE = (0, 255)
UNIT_ID = number_selector(*UNIT_ID_RANGE, 1, "", checked_by_step=True)
"""A Modbus unit id; see ``validation``."""
