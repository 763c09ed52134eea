"""Helpers for the Home Assistant tests: starting flows, watching a site in real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.dynamic_export.const import DOMAIN
from custom_components.dynamic_export.sim.server import SimulatedSiteServer


async def start_subentry_flow(
    hass: HomeAssistant, entry: Any, subentry_type: str, kind: str | None = None
) -> Any:
    """Start adding a subentry; with ``kind``, pick it from the menu the flow opens with."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, subentry_type), context={"source": SOURCE_USER}
    )
    if kind is not None:
        assert result["type"] is FlowResultType.MENU
        assert kind in result["menu_options"]
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"next_step_id": kind}
        )
    return result


async def start_reconfigure(
    hass: HomeAssistant, entry: Any, subentry_type: str, subentry_id: str
) -> Any:
    """Start reconfiguring a subentry."""
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, subentry_type),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    """An entity's state (the entity must exist)."""
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def attributes_of(hass: HomeAssistant, entity_id: str) -> dict[str, Any]:
    """An entity's attributes (the entity must exist)."""
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return dict(state.attributes)


async def next_cycle(hass: HomeAssistant) -> None:
    """Let every loaded site's next control cycle run, and wait until it has.

    For tests whose clock is frozen by the freezer: fires the timers due within the next
    second, the sleep of each site's control schedule among them, then waits for a cycle
    of each schedule that started after this call. (The schedule is a background task
    that never ends, so ``async_block_till_done(wait_background_tasks=True)`` cannot.)
    """
    coordinators = [
        entry.runtime_data.coordinator
        for entry in hass.config_entries.async_entries(DOMAIN)
        if entry.state is ConfigEntryState.LOADED
    ]
    waits = [asyncio.ensure_future(c.schedule.async_wait_cycle()) for c in coordinators]
    await asyncio.sleep(0)  # the waits are registered before any cycle can start
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=1))
    await asyncio.gather(*waits)
    await hass.async_block_till_done()
    # Other background tasks the timers started (MQTT's subscriptions), not the schedules.
    schedules = {c.schedule_task for c in coordinators}
    if others := [t for t in hass._background_tasks if t not in schedules and not t.done()]:
        await asyncio.wait(others)
        await hass.async_block_till_done()


def site_device(
    hass: HomeAssistant, entry_id: str, key: str | None = None
) -> dr.DeviceEntry | None:
    """The site's device (``key`` None) or one of its subentries' devices, by identifier.

    Looked up among the entry's devices: ``DeviceRegistry.async_get_device`` is deprecated
    and raises outside an integration on Home Assistant 2026.11.
    """
    wanted = (DOMAIN, entry_id if key is None else f"{entry_id}_{key}")
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry_id)
    return next((d for d in devices if wanted in d.identifiers), None)


async def wait_for(condition: Callable[[], bool], within_s: float, what: str) -> None:
    """Poll ``condition`` every 50 ms until it holds; fail after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Sample:
    """The simulated site at one moment (scenario time, export and generation in W)."""

    t: float
    export_w: float
    generation_w: float


async def record(sim: SimulatedSiteServer, until_t: float, every: float = 0.1) -> list[Sample]:
    """Sample the site's true export and generation until scenario time ``until_t``."""
    samples: list[Sample] = []
    while sim.site.now < until_t:
        samples.append(Sample(sim.site.now, sim.site.export_w, sim.site.generation_w))
        await asyncio.sleep(every)
    return samples


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
"""The default scenario: a steady site (sun, load and export do not change)."""


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
"""A scenario to run a site through: settled, a load drop, the load back (until 24 s)."""


def check_load_steps(
    samples: list[Sample],
    export_limit: float,
    *,
    tolerance: float,
    comply_s: float,
    must_overshoot: bool = True,
) -> None:
    """Assert a site run through LOAD_STEPS held its export limit.

    Settled at the limit (not below it), over the limit after the load drop for at most
    ``comply_s`` (the inverters lag, so a real site overshoots: ``must_overshoot``), within
    it after the load comes back, and generation back up once the load has returned.
    """
    settled = [s for s in samples if 4.0 <= s.t < 8.0]
    assert settled, "no samples before the load drop"
    assert all(s.export_w <= export_limit + tolerance for s in settled)
    # Not over-curtailed either: the site exports close to what it may.
    assert max(s.export_w for s in settled) >= export_limit - 150

    after_drop = [s for s in samples if 8.0 <= s.t < 16.0]
    over = [s.t for s in after_drop if s.export_w > export_limit + tolerance]
    if must_overshoot:
        assert over, "the load drop should push export over the limit for a moment"
    assert not over or max(over) - 8.0 <= comply_s, f"export above the limit at {over}"
    assert all(s.export_w <= export_limit + tolerance for s in after_drop if s.t >= 8 + comply_s)

    after_rise = [s for s in samples if 16.0 <= s.t < 24.0]
    assert all(s.export_w <= export_limit + tolerance for s in after_rise)
    # Generation comes back once the load returns.
    assert max(s.generation_w for s in after_rise if s.t >= 21.0) >= 4500
