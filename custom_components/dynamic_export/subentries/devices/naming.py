"""Short device names: the model and a short identifier, as a device page and an entity id want.

The manufacturer is on the device page already, and a whole serial number makes every entity id
long enough that pickers cut the part that tells two sensors apart (the Energy dashboard's
"imported" and "exported"). Entity ids follow the device name when an entity is first added.
"""

from __future__ import annotations

import re

SHORT_ID_CHARS = 4
"""How much of a long serial number is kept: enough to tell a site's devices apart."""

_SEPARATORS = re.compile(r"[\s\-_/.:]+")


def short_identifier(serial: str) -> str:
    """The part of a serial number that tells devices apart: its last segment, or its tail.

    "SIM-INV-1" gives "1", "34119102" gives "9102", "SN-0012345678" gives "5678".
    """
    segments = [s for s in _SEPARATORS.split(serial.strip()) if s]
    if not segments:
        return ""
    last = segments[-1]
    return last if len(last) <= SHORT_ID_CHARS else last[-SHORT_ID_CHARS:]


def device_title(
    manufacturer: str | None, model: str | None, serial: str | None, fallback: str
) -> str:
    """A device's name: its model (else manufacturer, else ``fallback``) and a short identifier.

    A model that already ends with the identifier does not repeat it.
    """
    name = (model or "").strip() or (manufacturer or "").strip() or fallback
    short = short_identifier(serial or "")
    if not short or name.split()[-1].casefold() == short.casefold():
        return name
    return f"{name} {short}"
