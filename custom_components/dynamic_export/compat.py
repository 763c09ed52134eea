"""What differs between the oldest and the newest Home Assistant this integration supports.

At run time every name here is the one Home Assistant itself provides. Only the type checker
is told something else on Python 3.14 (Home Assistant 2026.x): there Home Assistant validates
with ``probatio``, installed as ``voluptuous`` when Home Assistant starts, and types its flow
and service schemas with probatio's classes.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING and sys.version_info >= (3, 14):
    import probatio as vol
    from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
else:
    import voluptuous as vol
    from homeassistant.components.binary_sensor import BinarySensorDeviceClass

__all__ = ["BinarySensorDeviceClass", "vol"]
