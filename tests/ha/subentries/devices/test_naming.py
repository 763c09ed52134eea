"""Device names: the model and a short identifier."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.subentries.devices.naming import (
    device_title,
    short_identifier,
)


@pytest.mark.parametrize(
    ("serial", "short"),
    [
        ("SIM-INV-1", "1"),
        ("34119102", "9102"),
        ("SN-0012345678", "5678"),
        ("127.0.0.1:502:3", "3"),
        ("  ", ""),
        ("", ""),
    ],
)
def test_short_identifier(serial: str, short: str) -> None:
    assert short_identifier(serial) == short


@pytest.mark.parametrize(
    ("manufacturer", "model", "serial", "title"),
    [
        ("Fronius", "Primo 5.0-1", "34119102", "Primo 5.0-1 9102"),
        ("Dynamic Export", "Simulated meter", "SIM-METER-1", "Simulated meter 1"),
        ("SMA", "", "3001234567", "SMA 4567"),
        (None, None, None, "SunSpec inverter"),
        ("Acme", "Meter 1", "X-1", "Meter 1"),  # the id is not repeated
    ],
)
def test_device_title(
    manufacturer: str | None, model: str | None, serial: str | None, title: str
) -> None:
    assert device_title(manufacturer, model, serial, "SunSpec inverter") == title
