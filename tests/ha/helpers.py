"""Helpers for tests that watch a simulated site in real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from custom_components.dynamic_export.const import DOMAIN
from custom_components.dynamic_export.sim.server import SimulatedSiteServer


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
