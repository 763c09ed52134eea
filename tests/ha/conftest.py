"""Fixtures for the Home Assistant layer: a simulated site on 127.0.0.1 and site entries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState, ConfigSubentryData
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dynamic_export.const import (
    CONF_CONNECT,
    CONF_CONTROL_ENABLED,
    CONF_CONTROL_INTERVAL,
    CONF_ENABLED,
    CONF_ENERGIZE,
    CONF_INVERT,
    CONF_METER_MAX_AGE,
    CONF_SITE_NAME,
    CONF_UNIT_ID,
    DOMAIN,
    SUBENTRY_FIXED_LIMITER,
    SUBENTRY_INVERTER,
    SUBENTRY_METER,
    WATT_LIMIT_KEYS,
)
from custom_components.dynamic_export.sim.scenario import Scenario
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from ..csip.server.fixtures import csip_device, csip_pki, csip_server, csip_server_factory

__all__ = ["csip_device", "csip_pki", "csip_server", "csip_server_factory"]

STEADY_SITE = {
    "description": "Steady sun and load for Home Assistant tests",
    "duration_s": 3600,
    "repeat": True,
    "inverters": [
        {"rating_w": 5000, "time_constant_s": 0.5},
        {"rating_w": 5000, "time_constant_s": 0.5},
    ],
    "pv_available_w": 6000,
    "load_w": 1000,
}


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


async def unload_sites(hass: HomeAssistant) -> None:
    """Unload every loaded site (after any reload in flight), e.g. before its peers stop."""
    await hass.async_block_till_done()
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def inverter_subentry(sim: SimulatedSiteServer, unit_id: int) -> ConfigSubentryData:
    """Subentry data of one simulated inverter."""
    return ConfigSubentryData(
        data={CONF_HOST: "127.0.0.1", CONF_PORT: sim.port, CONF_UNIT_ID: unit_id},
        subentry_type=SUBENTRY_INVERTER,
        title=f"Inverter {unit_id}",
        unique_id=f"SIM-INV-{unit_id}",
    )


def meter_subentry(sim: SimulatedSiteServer) -> ConfigSubentryData:
    """Subentry data of the simulated meter."""
    return ConfigSubentryData(
        data={
            CONF_HOST: "127.0.0.1",
            CONF_PORT: sim.port,
            CONF_UNIT_ID: sim.meter_unit_id,
            CONF_INVERT: False,
        },
        subentry_type=SUBENTRY_METER,
        title="Meter",
        unique_id="SIM-METER",
    )


def limiter_subentry(title: str = "Fixed", **limits: float | bool | None) -> ConfigSubentryData:
    """Subentry data of a fixed limiter."""
    data: dict[str, Any] = dict.fromkeys(WATT_LIMIT_KEYS)
    data.update({CONF_CONNECT: True, CONF_ENERGIZE: True, CONF_ENABLED: True})
    data.update(limits)
    return ConfigSubentryData(
        data=data, subentry_type=SUBENTRY_FIXED_LIMITER, title=title, unique_id=None
    )


def site_entry(
    subentries: list[ConfigSubentryData], *, interval: float = 1.0, **options: Any
) -> MockConfigEntry:
    """A site config entry with the given subentries."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="Home",
        unique_id="home",
        data={CONF_SITE_NAME: "Home"},
        options={
            CONF_CONTROL_INTERVAL: interval,
            CONF_CONTROL_ENABLED: True,
            CONF_METER_MAX_AGE: 5.0,
            **options,
        },
        subentries_data=subentries,
    )


async def setup_site(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    """Add and set up a site entry."""
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry
