"""Actions set_limits / clear_limits: the automation override of a site."""

from __future__ import annotations

from datetime import timedelta

import pytest
import voluptuous as vol
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dynamic_export.const import DOMAIN, MAX_LIMIT_W
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from .helpers import state_of, wait_for
from .sites import (
    limiter_subentry,
    setup_site,
    sunspec_site,
)


async def _site(hass: HomeAssistant, sim: SimulatedSiteServer, **limits: float) -> MockConfigEntry:
    entry = sunspec_site(sim, limiter_subentry("Fixed", **limits))
    return await setup_site(hass, entry)


async def test_override_sets_merges_and_clears(
    hass: HomeAssistant, sim: SimulatedSiteServer
) -> None:
    """An override merges like a limiter; the stricter fixed limit still wins a control."""
    await _site(hass, sim, generation_limit=2000)
    await hass.services.async_call(
        DOMAIN,
        "set_limits",
        {"export_limit": 0, "generation_limit": 4000, "duration": {"hours": 1}},
        blocking=True,
    )
    export = hass.states.get("sensor.home_export_limit")
    assert export is not None
    assert float(export.state) == 0
    assert export.attributes["source"] == "Automation override"
    generation = hass.states.get("sensor.home_generation_limit")
    assert generation is not None
    assert float(generation.state) == 2000  # the stricter fixed limit wins
    assert generation.attributes["source"] == "Fixed"
    override = hass.states.get("binary_sensor.home_override")
    assert override is not None
    assert override.state == "on"
    assert override.attributes["export_limit"] == 0
    until = dt_util.parse_datetime(state_of(hass, "sensor.home_override_until"))
    assert until is not None
    assert timedelta(minutes=59) < until - dt_util.utcnow() <= timedelta(hours=1)
    await wait_for(lambda: sim.site.export_w < 60, 8, "zero export")

    await hass.services.async_call(DOMAIN, "clear_limits", {}, blocking=True)
    assert state_of(hass, "binary_sensor.home_override") == "off"
    assert state_of(hass, "sensor.home_export_limit") == "unknown"
    assert state_of(hass, "sensor.home_override_until") == "unknown"


async def test_override_expires(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """After its end the override no longer counts."""
    await _site(hass, sim)
    until = dt_util.utcnow() + timedelta(seconds=2)
    await hass.services.async_call(
        DOMAIN, "set_limits", {"export_limit": 100, "until": until.isoformat()}, blocking=True
    )
    assert state_of(hass, "sensor.home_export_limit") == "100.0"
    await wait_for(lambda: state_of(hass, "sensor.home_export_limit") == "unknown", 5, "expiry")
    assert state_of(hass, "binary_sensor.home_override") == "off"


async def test_override_survives_restart(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """Reloading the site (as a restart does) keeps an override that has not expired."""
    entry = await _site(hass, sim)
    await hass.services.async_call(
        DOMAIN, "set_limits", {"energize": False, "duration": {"minutes": 10}}, blocking=True
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert state_of(hass, "binary_sensor.home_override") == "on"
    state = hass.states.get("sensor.home_control_state")
    assert state is not None
    assert state.attributes["energize"] is False
    await wait_for(lambda: sim.site.generation_w < 50, 8, "generation stopped")


async def test_bad_input(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """Each mistake is a translated validation error, and nothing is set."""
    await _site(hass, sim)
    cases = [
        ({"duration": {"minutes": 5}}, "no_limits"),
        ({"export_limit": 0}, "duration_or_until"),
        (
            {"export_limit": 0, "duration": {"minutes": 5}, "until": "2030-01-01T00:00:00"},
            "duration_or_until",
        ),
        ({"export_limit": 0, "until": "2001-01-01T00:00:00"}, "until_in_past"),
        ({"export_limit": 0, "duration": {"days": 400}}, "too_long"),
        ({"export_limit": 0, "duration": {"minutes": 5}, "site": "nowhere"}, "site_not_found"),
    ]
    for data, key in cases:
        with pytest.raises(ServiceValidationError) as info:
            await hass.services.async_call(DOMAIN, "set_limits", data, blocking=True)
        assert info.value.translation_key == key, data
    for watts in (-1, MAX_LIMIT_W + 1):  # the forms' and the number entities' range
        with pytest.raises(vol.Invalid):
            await hass.services.async_call(
                DOMAIN,
                "set_limits",
                {"export_limit": watts, "duration": {"minutes": 5}},
                blocking=True,
            )
    assert state_of(hass, "binary_sensor.home_override") == "off"


async def test_site_required_without_a_loaded_site(hass: HomeAssistant) -> None:
    """With no site loaded the action says which site is needed."""
    assert await async_setup_component(hass, DOMAIN, {})
    with pytest.raises(ServiceValidationError) as info:
        await hass.services.async_call(DOMAIN, "clear_limits", {}, blocking=True)
    assert info.value.translation_key == "site_required"
