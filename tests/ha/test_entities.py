"""Entities of a site running against the simulated site, and what they let the user change."""

from __future__ import annotations

import asyncio

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNAVAILABLE, UnitOfPower
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.dynamic_export.const import CONF_CONTROL_ENABLED
from custom_components.dynamic_export.core.controller import ControlState
from custom_components.dynamic_export.entity import SPACING_S, STEPS
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from .helpers import site_device, state_of, wait_for
from .sites import (
    limiter_subentry,
    setup_site,
    sunspec_site,
)

PACED_W = STEPS[UnitOfPower.WATT]


def _site(sim: SimulatedSiteServer, **limits: float | bool | None):
    return sunspec_site(sim, limiter_subentry("Fixed", **limits))


async def test_entity_states_follow_the_site(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """Site, inverter and meter entities show the simulated site's values."""
    entry = await setup_site(hass, _site(sim, export_limit=1000))
    await wait_for(lambda: abs(sim.site.export_w - 1000) < 60, 8, "export at 1000 W")
    # Power sensors are paced: one that moved by a step writes at most every SPACING_S, and
    # one that moved by less may stay up to a step (200 W) from the truth until its heartbeat.
    await wait_for(
        lambda: abs(float(state_of(hass, "sensor.meter_grid_power")) + 1000) < PACED_W + 80,
        SPACING_S + 3,
        "meter entity",
    )

    assert state_of(hass, "sensor.home_control_state") == ControlState.CONTROLLING
    assert state_of(hass, "binary_sensor.home_fail_safe") == "off"
    assert state_of(hass, "switch.home_control") == "on"
    assert float(state_of(hass, "sensor.home_export_limit")) == 1000
    assert state_of(hass, "sensor.home_generation_limit") == "unknown"
    target = float(state_of(hass, "sensor.home_generation_target"))
    assert 1800 < target < 2200  # 1 kW load + 1 kW export
    assert abs(float(state_of(hass, "sensor.home_site_load")) - 1000) < PACED_W + 150

    # Each inverter: 5 kW rating, half of the target, a limit below 100 %.
    for unit in (1, 2):
        power = float(state_of(hass, f"sensor.inverter_{unit}_ac_power"))
        assert abs(power - target / 2) < PACED_W + 150
        assert float(state_of(hass, f"sensor.inverter_{unit}_rated_power")) == 5000
        assert float(state_of(hass, f"sensor.inverter_{unit}_power_limit")) < 30
        assert state_of(hass, f"sensor.inverter_{unit}_status") == "throttled"
        assert float(state_of(hass, f"sensor.inverter_{unit}_lifetime_energy")) >= 0
        assert state_of(hass, f"binary_sensor.inverter_{unit}_connection") == "on"
    assert float(state_of(hass, "sensor.meter_energy_exported")) >= 0
    assert state_of(hass, "sensor.meter_grid_power_phase_c") != STATE_UNAVAILABLE

    # Devices: the site, two inverters, the meter, the limiter; children via the site.
    device_registry = dr.async_get(hass)
    devices = dr.async_entries_for_config_entry(device_registry, entry.entry_id)
    assert len(devices) == 5
    site = site_device(hass, entry.entry_id)
    assert site is not None
    assert all(d.via_device_id == site.id for d in devices if d.id != site.id)
    inverter = next(d for d in devices if d.name == "Inverter 1")
    assert inverter.serial_number == "SIM-INV-1"


async def test_limit_number_applies_without_reload(
    hass: HomeAssistant, sim: SimulatedSiteServer
) -> None:
    """Setting a limiter's number changes the site's limit at the next cycle, no reload."""
    entry = await setup_site(hass, _site(sim, export_limit=3000))
    runtime = entry.runtime_data
    await hass.services.async_call(
        "number",
        "set_value",
        {ATTR_ENTITY_ID: "number.fixed_export_limit", "value": 0},
        blocking=True,
    )
    assert entry.runtime_data is runtime  # not reloaded
    await wait_for(lambda: state_of(hass, "sensor.home_export_limit") == "0.0", 3, "limit 0")
    await wait_for(lambda: sim.site.export_w < 60, 8, "zero export")
    assert float(state_of(hass, "number.fixed_export_limit")) == 0

    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(
            "number",
            "set_value",
            {ATTR_ENTITY_ID: "number.fixed_export_limit", "value": -5},
            blocking=True,
        )
    # The generation limit is not set: shown unknown, and settable.
    assert state_of(hass, "number.fixed_generation_limit") == "unknown"


async def test_limiter_switch_disables_it(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """Switching a limiter off removes its limits from the merge."""
    await setup_site(hass, _site(sim, export_limit=500))
    await wait_for(lambda: state_of(hass, "sensor.home_export_limit") == "500.0", 3, "limit")
    await hass.services.async_call(
        "switch", "turn_off", {ATTR_ENTITY_ID: "switch.fixed_enabled"}, blocking=True
    )
    await wait_for(lambda: state_of(hass, "sensor.home_export_limit") == "unknown", 3, "no limit")
    await wait_for(lambda: sim.site.generation_w > 5500, 8, "full generation")


async def test_control_switch_monitor_only_releases_inverters(
    hass: HomeAssistant, sim: SimulatedSiteServer
) -> None:
    """Turning control off hands the inverters back; turning it on limits them again."""
    entry = await setup_site(hass, _site(sim, export_limit=0))
    await wait_for(lambda: all(i.limit_enabled for i in sim.site.inverters), 5, "limits")

    await hass.services.async_call(
        "switch", "turn_off", {ATTR_ENTITY_ID: "switch.home_control"}, blocking=True
    )
    assert entry.options[CONF_CONTROL_ENABLED] is False
    await wait_for(lambda: not any(i.limit_enabled for i in sim.site.inverters), 5, "release")
    await wait_for(
        lambda: state_of(hass, "sensor.home_control_state") == ControlState.MONITOR_ONLY, 3, "state"
    )
    writes = len(sim.writes)
    await wait_for(lambda: sim.site.generation_w > 5500, 8, "full generation")
    assert len(sim.writes) == writes, "monitor-only must not write"
    # The target is still computed and shown.
    assert float(state_of(hass, "sensor.home_generation_target")) < 2000

    await hass.services.async_call(
        "switch", "turn_on", {ATTR_ENTITY_ID: "switch.home_control"}, blocking=True
    )
    await wait_for(lambda: sim.site.export_w < 60, 8, "zero export again")


async def test_unreachable_inverter_is_unavailable_others_controlled(
    hass: HomeAssistant, sim: SimulatedSiteServer
) -> None:
    """An inverter that stops answering goes unavailable; the other keeps the site in limits."""
    await setup_site(hass, _site(sim, export_limit=500))
    sim.set_unit_offline(2, True, mode="exception")
    await wait_for(
        lambda: state_of(hass, "sensor.inverter_2_ac_power") == STATE_UNAVAILABLE, 5, "unavailable"
    )
    connection = hass.states.get("binary_sensor.inverter_2_connection")
    assert connection is not None
    assert connection.state == "off"
    assert connection.attributes["error"]
    # Inverter 2 keeps its last limit; inverter 1 absorbs the rest of the load change.
    await wait_for(lambda: abs(sim.site.export_w - 500) < 60, 8, "export held")
    assert state_of(hass, "sensor.inverter_1_ac_power") != STATE_UNAVAILABLE
    assert state_of(hass, "sensor.home_control_state") == ControlState.CONTROLLING

    sim.set_unit_offline(2, False)
    await wait_for(
        lambda: state_of(hass, "sensor.inverter_2_ac_power") != STATE_UNAVAILABLE, 5, "back"
    )


async def test_unload_leaves_nothing_behind(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """Unloading stops the cycle and closes the Modbus connection; reload works."""
    entry = await setup_site(hass, _site(sim, export_limit=1000))
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    writes = len(sim.writes)
    await asyncio.sleep(1.5)  # several control intervals
    await hass.async_block_till_done()
    assert all(
        state.state == STATE_UNAVAILABLE
        for state in hass.states.async_all()
        if state.entity_id.startswith(("sensor.home_", "sensor.inverter_"))
    )
    assert len(sim.writes) == writes
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    registry = er.async_get(hass)
    assert registry.async_get("sensor.home_control_state") is not None


async def test_diagnostics_are_redacted(
    hass: HomeAssistant, sim: SimulatedSiteServer, hass_client: ClientSessionGenerator
) -> None:
    """Diagnostics include the last cycle and hide hosts and serial numbers."""
    entry = await setup_site(hass, _site(sim, export_limit=1000))
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = str(diagnostics)
    assert "127.0.0.1" not in text
    assert "SIM-INV-1" not in text
    assert diagnostics["last_cycle"]["merged"]["export_limit"] == 1000
    assert diagnostics["last_cycle"]["plan"]["state"] == "controlling"
    assert diagnostics["inverters"]


async def test_inverter_reporting_nonsense_is_shown_and_skipped(
    hass: HomeAssistant, sim: SimulatedSiteServer
) -> None:
    """An inverter with an impossible scale factor is not controlled; the site still is."""
    sim.registers(2).image.set(123, "WMaxLimPct_SF", 7)  # 10^7 %: nonsense
    await setup_site(hass, _site(sim, export_limit=2500))
    connection = hass.states.get("binary_sensor.inverter_2_connection")
    assert connection is not None
    assert connection.state == "off"
    assert "WMaxLimPct_SF=7" in connection.attributes["error"]
    assert state_of(hass, "sensor.inverter_2_ac_power") == STATE_UNAVAILABLE
    assert not any(unit == 2 for _, unit, _, _ in sim.writes), "nothing written to it"
    # Inverter 1 alone holds the export limit: inverter 2 runs free at 3 kW, the load
    # is 1 kW, so inverter 1 may add only 500 W.
    await wait_for(lambda: abs(sim.site.export_w - 2500) < 60, 8, "export held")
    assert abs(sim.site.inverters[0].output_w - 500) < 60
    assert state_of(hass, "sensor.home_control_state") == ControlState.CONTROLLING
