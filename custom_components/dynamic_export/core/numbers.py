"""What counts as a number in data read from a device or from Home Assistant.

Devices answer in JSON, registers and entity attributes, where a value that should be a
number may be text, ``true`` or NaN. Every reader asks the same question through
:func:`finite_number`, so a value is either usable everywhere or nowhere.
"""

from __future__ import annotations

import math


def finite_number(value: object) -> float | None:
    """``value`` as a float when it is a finite int or float, else None.

    A bool is not a number here, although Python makes it an int: ``true`` where a power
    belongs is bad data, not 1 W. NaN and the infinities are not finite, so they never
    reach the controller as a reading.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
