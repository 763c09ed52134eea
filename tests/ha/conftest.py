"""Fixtures for the Home Assistant layer: the peers a site talks to, on 127.0.0.1.

The sites themselves (subentries of each device kind, site entries) are built with
``sites.py``; flows and real-time watching with ``helpers.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import HomeAssistant

from custom_components.dynamic_export.sim.scenario import Scenario
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from ..csip.server.fixtures import csip_device, csip_pki, csip_server, csip_server_factory
from .helpers import STEADY_SITE
from .peers import RtuBridge, SiteGateway
from .sites import unload_sites

__all__ = ["csip_device", "csip_pki", "csip_server", "csip_server_factory"]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load this repository's integration."""


@pytest.fixture
def scenario_data() -> dict[str, Any]:
    """The simulated site's scenario; tests override it for their own story."""
    return STEADY_SITE


@pytest.fixture
async def sim(
    hass: HomeAssistant, socket_enabled: None, scenario_data: dict[str, Any]
) -> AsyncIterator[SimulatedSiteServer]:
    """A simulated site (2 inverters, a meter) serving Modbus TCP on 127.0.0.1.

    Sites still loaded when the test ends are unloaded before the simulated site stops, so
    no reload in flight is left talking to a server that is going away.
    """
    server = SimulatedSiteServer(Scenario.from_dict(scenario_data, name="test"), port=0)
    await server.start()
    try:
        yield server
    finally:
        await unload_sites(hass)
        await server.stop()


@pytest.fixture
async def bus(sim: SimulatedSiteServer, tmp_path: Path) -> AsyncIterator[RtuBridge]:
    """The simulated site's units on an RS-485 bus (a pty) instead of Modbus TCP."""
    bridge = RtuBridge(sim, tmp_path)
    yield bridge
    bridge.close()


@pytest.fixture
async def gateway(socket_enabled: None, tmp_path: Path) -> AsyncIterator[SiteGateway]:
    """A Powerwall gateway whose readings come from a live model."""
    gateway = SiteGateway(tmp_path)
    await gateway.start()
    yield gateway
    await gateway.stop()
