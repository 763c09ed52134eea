"""Fixtures of the device tests."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.subentries.devices.flow_base import DeviceSteps


@pytest.fixture(autouse=True)
def _short_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """A device that does not answer fails its check in 0.5 s, not 3 s."""
    monkeypatch.setattr(DeviceSteps, "probe_timeout_s", 0.5)
