"""End to end: the real coordinator controls the simulated site over Modbus TCP on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import HomeAssistant

from custom_components.dynamic_export.core.controller import ControlState, FailSafeReason
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from .conftest import inverter_subentry, limiter_subentry, meter_subentry, setup_site, site_entry
from .helpers import record, wait_for

EXPORT_LIMIT = 1500.0
TOLERANCE = 50.0

LOAD_STEPS = {
    "description": "6 kW of sun; the load drops by 3 kW at 8 s and comes back at 16 s",
    "duration_s": 600,
    "repeat": False,
    "inverters": [
        {"rating_w": 5000, "time_constant_s": 1.0},
        {"rating_w": 5000, "time_constant_s": 1.0},
    ],
    "pv_available_w": 6000,
    "load_w": 3500,
    "events": [
        {"t": 8, "type": "load_step", "delta_w": -3000},
        {"t": 16, "type": "load_step", "delta_w": 3000},
    ],
}


@pytest.mark.parametrize("scenario_data", [LOAD_STEPS])
async def test_export_held_at_limit_through_load_steps(
    hass: HomeAssistant, sim: SimulatedSiteServer, scenario_data: dict[str, Any]
) -> None:
    """Export stays at or below 1500 W, apart from the inverters' own lag after a load drop."""
    entry = site_entry(
        [
            inverter_subentry(sim, 1),
            inverter_subentry(sim, 2),
            meter_subentry(sim),
            limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
        ]
    )
    await setup_site(hass, entry)
    samples = await record(sim, until_t=24.0)

    settled = [s for s in samples if 4.0 <= s.t < 8.0]
    assert settled, "no samples before the load drop"
    assert all(s.export_w <= EXPORT_LIMIT + TOLERANCE for s in settled)
    # Not over-curtailed either: the site exports close to what it may.
    assert max(s.export_w for s in settled) >= EXPORT_LIMIT - 150

    after_drop = [s for s in samples if 8.0 <= s.t < 16.0]
    over = [s.t for s in after_drop if s.export_w > EXPORT_LIMIT + TOLERANCE]
    assert over, "the load drop should push export over the limit for a moment"
    # Up to one 1 s cycle to notice, then the inverters' 1 s lag sheds 3 kW within ~4.1 s.
    assert max(over) - 8.0 <= 6.0, f"export above the limit until t={max(over):.1f} s"
    assert all(s.export_w <= EXPORT_LIMIT + TOLERANCE for s in after_drop if s.t >= 14.0)

    after_rise = [s for s in samples if 16.0 <= s.t < 24.0]
    assert all(s.export_w <= EXPORT_LIMIT + TOLERANCE for s in after_rise)
    # Generation comes back once the load returns.
    assert max(s.generation_w for s in after_rise if s.t >= 21.0) >= 4500

    state = hass.states.get("sensor.home_export_limit")
    assert state is not None
    assert float(state.state) == EXPORT_LIMIT
    assert state.attributes["source"] == "Export limit"


async def test_generation_limit_respected(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """A generation limit caps the inverters' total output, split between them."""
    entry = site_entry(
        [
            inverter_subentry(sim, 1),
            inverter_subentry(sim, 2),
            meter_subentry(sim),
            limiter_subentry("Generation cap", generation_limit=2500),
            limiter_subentry("Loose export", export_limit=9000),
        ]
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
    entry = site_entry(
        [
            inverter_subentry(sim, 1),
            inverter_subentry(sim, 2),
            meter_subentry(sim),
            limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
        ],
        meter_max_age=2.0,
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
