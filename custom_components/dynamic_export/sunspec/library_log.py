"""Keep pymodbus's own per-request messages out of the log at default levels.

pymodbus logs every exception answer, timeout and failed connect at WARNING or ERROR
("Exception response 131 / 0" a few times a second while a unit is away). Our connection
turns each of those into an error the control loop reports once, when the device goes
away, and once when it is back; pymodbus's lines would only repeat it every cycle. They are
demoted to DEBUG, and only those made on our behalf (in the context of our requests), so
another integration using pymodbus in the same Home Assistant keeps its messages. Turning
on debug logging for ``pymodbus`` shows them again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

PYMODBUS_LOGGER = "pymodbus.logging"
"""The one logger pymodbus writes through (its ``Log`` class)."""

_on_our_behalf: ContextVar[bool] = ContextVar("dynamic_export_modbus_request", default=False)


class _DemoteOurRequests(logging.Filter):
    """Turn pymodbus records made for our requests into DEBUG records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _on_our_behalf.get() or record.levelno <= logging.DEBUG:
            return True
        if record.levelno >= logging.CRITICAL:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        # The logger's own level was checked at the original level: check again.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_FILTER = _DemoteOurRequests()


def install() -> None:
    """Attach the filter to pymodbus's logger (once)."""
    logger = logging.getLogger(PYMODBUS_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


@contextmanager
def on_our_behalf() -> Iterator[None]:
    """Mark pymodbus work started in this block (and the callbacks it schedules) as ours."""
    token = _on_our_behalf.set(True)
    try:
        yield
    finally:
        _on_our_behalf.reset(token)
