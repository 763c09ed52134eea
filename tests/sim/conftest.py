"""The simulator tests talk to a real server on 127.0.0.1, so allow loopback sockets."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _allow_loopback(socket_enabled: None) -> None:
    """pytest-socket (loaded by the HA test plugin) blocks sockets unless enabled."""
