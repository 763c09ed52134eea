"""Form fields shared by the config flow and every subentry flow.

Numbers are typed into a box, not dragged on a slider: limits span watts to megawatts and a
port or unit id must be exact.
"""

from __future__ import annotations

from homeassistant.helpers import selector

from .const import MAX_LIMIT_W


def number_selector(
    minimum: float, maximum: float, step: float, unit: str | None = None
) -> selector.NumberSelector:
    """A number typed into a box, from ``minimum`` to ``maximum`` in ``step``s of ``unit``."""
    config = selector.NumberSelectorConfig(
        min=minimum, max=maximum, step=step, mode=selector.NumberSelectorMode.BOX
    )
    if unit is not None:
        config["unit_of_measurement"] = unit
    return selector.NumberSelector(config)


LIMIT_WATTS = number_selector(0, MAX_LIMIT_W, 1, "W")
"""A watt limit (export, generation, import, load), 0 included."""

PORT = number_selector(1, 65535, 1, "")
"""A TCP port."""
