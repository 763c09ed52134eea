"""Available power on a curtailed site: the sun the limit throws away, for automations.

How each method (reported, not limited, siblings, recent, a lower bound) is chosen is tested
in ``tests/core/test_available_power.py``; here the figure comes over Modbus, end to end.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from custom_components.dynamic_export.core.available_power import Method
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from .helpers import STEADY_SITE, attributes_of, state_of, wait_for
from .sites import limiter_subentry, setup_site, sunspec_site

SUN_W = float(STEADY_SITE["pv_available_w"])  # type: ignore[arg-type]


async def test_a_curtailed_site_shows_the_sun_it_has(
    hass: HomeAssistant, sim: SimulatedSiteServer
) -> None:
    """6 kW of sun held to 2.5 kW by a 1500 W export limit: the sensors still show ~6 kW."""
    entry = sunspec_site(sim, limiter_subentry("Export limit", export_limit=1500.0))
    await setup_site(hass, entry)
    await wait_for(lambda: sim.site.generation_w < 2700.0, 15, "the site curtailed")
    await wait_for(
        lambda: state_of(hass, "sensor.home_available_power") not in ("unknown", "unavailable"),
        10,
        "a site figure",
    )
    site = float(state_of(hass, "sensor.home_available_power"))
    assert 0.9 * SUN_W <= site <= 1.05 * SUN_W, site
    # The simulated inverters fill in SunSpec model 122's WAval with what their panels have.
    # (The sensor writes at most every 30 s, so the method is read from the cycle itself.)
    figure = entry.runtime_data.coordinator.data.available_power
    assert figure is not None
    assert figure.method is Method.REPORTED
    assert 0.9 * SUN_W <= figure.watts <= 1.05 * SUN_W, figure

    # Per inverter the sensors are disabled by default; enabled as a user would, they add
    # up to the site's figure and never show less than the inverter's output.
    registry = er.async_get(hass)
    entities = [f"sensor.inverter_{unit}_available_power" for unit in (1, 2)]
    for entity in entities:
        registered = registry.async_get(entity)
        assert registered is not None
        assert registered.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        registry.async_update_entity(entity, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(
        lambda: all(state_of(hass, e) not in ("unknown", "unavailable") for e in entities),
        10,
        "the inverters' figures",
    )
    coordinator = entry.runtime_data.coordinator
    snapshot = coordinator.data
    for key, status in snapshot.inverters.items():
        assert status.reading is not None
        assert status.available_power is not None, key
        assert status.available_power.watts >= status.reading.ac_power_w
    assert snapshot.available_power is not None
    total = sum(s.available_power.watts for s in snapshot.inverters.values() if s.available_power)
    assert snapshot.available_power.watts == total
    for entity in entities:
        assert attributes_of(hass, entity)["method"] in {m.value for m in Method}
