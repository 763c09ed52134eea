"""Shared test set-up.

The component is imported here, at collection time, so Home Assistant finds
this repository's ``custom_components`` rather than the test plugin's own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import custom_components.dynamic_export  # noqa: F401

OUR_PACKAGE = "dynamic_export"


@pytest.fixture(autouse=True)
def _no_deprecated_use_reported(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test in which Home Assistant reports our integration using a deprecated API.

    Home Assistant logs such use (``helpers.frame``: "Detected that custom integration ...")
    instead of warning through Python; Python warnings are errors by the pytest settings.
    """
    yield
    reports = [
        record.getMessage()
        for when in ("setup", "call")
        for record in caplog.get_records(when)
        if record.name.startswith("homeassistant.helpers.frame")
        and record.levelno >= logging.WARNING
        and OUR_PACKAGE in record.getMessage()
    ]
    assert not reports, reports
