"""End to end: the real coordinator controls the simulated site over Modbus TCP on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import HomeAssistant

from custom_components.dynamic_export.core.controller import ControlState, FailSafeReason
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from .helpers import LOAD_STEPS, check_load_steps, record, wait_for
from .sites import (
    limiter_subentry,
    setup_site,
    sunspec_site,
)

EXPORT_LIMIT = 1500.0
TOLERANCE = 50.0


@pytest.mark.parametrize("scenario_data", [LOAD_STEPS])
async def test_export_held_at_limit_through_load_steps(
    hass: HomeAssistant, sim: SimulatedSiteServer, scenario_data: dict[str, Any]
) -> None:
    """Export stays at or below 1500 W, apart from the inverters' own lag after a load drop."""
    entry = sunspec_site(sim, limiter_subentry("Export limit", export_limit=EXPORT_LIMIT))
    await setup_site(hass, entry)
    samples = await record(sim, until_t=24.0)
    # Up to one 1 s cycle to notice, then the inverters' 1 s lag sheds 3 kW within ~4.1 s.
    check_load_steps(samples, EXPORT_LIMIT, tolerance=TOLERANCE, comply_s=6.0)

    state = hass.states.get("sensor.home_export_limit")
    assert state is not None
    assert float(state.state) == EXPORT_LIMIT
    assert state.attributes["source"] == "Export limit"


async def test_generation_limit_respected(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """A generation limit caps the inverters' total output, split between them."""
    entry = sunspec_site(
        sim,
        limiter_subentry("Generation cap", generation_limit=2500),
        limiter_subentry("Loose export", export_limit=9000),
    )
    await setup_site(hass, entry)
    samples = await record(sim, until_t=sim.site.now + 6.0)
    tail = samples[len(samples) // 2 :]
    assert all(s.generation_w <= 2500 + TOLERANCE for s in tail)
    assert max(s.generation_w for s in tail) >= 2300
    assert hass.states.get("sensor.home_generation_limit").attributes["source"] == (
        "Generation cap"
    )


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("exception", FailSafeReason.METER_UNAVAILABLE),  # a gateway: "target failed"
        ("timeout", FailSafeReason.METER_UNAVAILABLE),  # nothing answers at all
    ],
)
async def test_fail_safe_when_meter_stops_answering(
    hass: HomeAssistant, sim: SimulatedSiteServer, mode: str, reason: FailSafeReason
) -> None:
    """With the meter silent beyond its maximum age, generation drops to the export limit."""
    entry = sunspec_site(
        sim, limiter_subentry("Export limit", export_limit=EXPORT_LIMIT), meter_max_age=2.0
    )
    await setup_site(hass, entry)
    # Load 1 kW + 1.5 kW export allowed: about 2.5 kW of generation.
    await wait_for(lambda: sim.site.generation_w > 2200, 10, "normal control")

    sim.set_unit_offline(sim.meter_unit_id, True, mode=mode)  # type: ignore[arg-type]
    await wait_for(
        lambda: hass.states.get("sensor.home_control_state").state == ControlState.FAIL_SAFE,
        15,
        "fail-safe",
    )
    state = hass.states.get("sensor.home_control_state")
    assert state.attributes["reason"] == reason
    assert hass.states.get("binary_sensor.home_fail_safe").state == "on"
    assert hass.states.get("sensor.meter_grid_power").state == "unavailable"
    # The export limit is the level that holds whatever the load.
    await wait_for(lambda: sim.site.generation_w <= EXPORT_LIMIT + TOLERANCE, 10, "fail-safe level")
    limits = [inv.limit_w for inv in sim.site.inverters]
    assert sum(limits) <= EXPORT_LIMIT + 1

    sim.set_unit_offline(sim.meter_unit_id, False)
    await wait_for(
        lambda: hass.states.get("sensor.home_control_state").state == ControlState.CONTROLLING,
        10,
        "recovery",
    )
    await wait_for(lambda: sim.site.generation_w > 2200, 10, "generation restored")
