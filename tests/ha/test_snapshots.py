"""Snapshots of what the development site shows: every device, entity, state and diagnostics.

The site is built through the flows against a simulated site whose time does not move, so
every reading, and what the controller makes of it, is the same on every run. Ids Home
Assistant draws at random (entries, subentries, devices, contexts) and wall-clock times are
replaced by stable names before comparing. ``pytest --snapshot-update`` rewrites the files
under ``snapshots/`` after a deliberate change: review the diff like code.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.dynamic_export.entity import SPACING_S
from custom_components.dynamic_export.sim.scenario import Scenario
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from .development_site import development_site
from .helpers import STEADY_SITE, state_of, wait_for
from .sites import unload_sites

SETTLE_S = SPACING_S + 2.0
"""Control time to let run first: every limit written, and every paced entity caught up."""

WALL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?$")

VOLATILE_KEYS = frozenset(
    {"created_at", "modified_at", "duration_s", "age_s", "wall_time", "timestamp", "time", "port"}
)
"""Diagnostics keys whose values belong to this run: times, and the simulator's free port."""


@pytest.fixture
async def frozen_sim(
    hass: HomeAssistant, socket_enabled: None
) -> AsyncIterator[SimulatedSiteServer]:
    """The development site's simulator with its clock stopped: readings never change."""
    server = SimulatedSiteServer(
        Scenario.from_dict(STEADY_SITE, name="snapshot"), port=0, autostep=False
    )
    await server.start()
    try:
        yield server
    finally:
        await unload_sites(hass)
        await server.stop()


class Ids:
    """Stable names for the ids Home Assistant draws at random in one run."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        self.names: dict[str, str] = {entry.entry_id: "<site entry>"}
        for sub in entry.subentries.values():
            self.names[sub.subentry_id] = f"<subentry {sub.title}>"
        for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id):
            self.names[device.id] = f"<device {device.name}>"
        self._pattern = re.compile("|".join(re.escape(i) for i in self.names))

    def text(self, raw: str) -> str:
        """``raw`` with every known id replaced by its name."""
        return self._pattern.sub(lambda m: self.names[m.group(0)], raw)

    def plain(self, value: Any) -> Any:
        """``value`` with ids named and wall-clock times and run times left out."""
        if isinstance(value, dict):
            return {
                self.text(str(k)): "<run-dependent>" if k in VOLATILE_KEYS else self.plain(v)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.plain(v) for v in value]
        if isinstance(value, str):
            return "<time>" if WALL_TIME.match(value) else self.text(value)
        return value


async def _settled_site(hass: HomeAssistant, sim: SimulatedSiteServer) -> ConfigEntry:
    """The development site, after a few control cycles on frozen readings."""
    entry_id = await development_site(hass, sim)
    await wait_for(
        lambda: state_of(hass, "sensor.home_export_limit") == "1500.0", 5, "the limit in force"
    )
    entry = hass.config_entries.async_get_entry(entry_id)
    assert entry is not None
    coordinator = entry.runtime_data.coordinator
    first = coordinator.data.time
    await wait_for(
        lambda: coordinator.data.time >= first + SETTLE_S, SETTLE_S + 5, "control cycles"
    )
    await hass.async_block_till_done()
    return entry


async def test_devices_entities_and_states(
    hass: HomeAssistant, frozen_sim: SimulatedSiteServer, snapshot: SnapshotAssertion
) -> None:
    """Every device and entity as registered, and every entity's state and attributes."""
    entry = await _settled_site(hass, frozen_sim)
    ids = Ids(hass, entry)
    devices = sorted(
        dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id),
        key=lambda d: d.name or "",
    )
    assert len(devices) == 5  # the site, two inverters, the meter, the limiter
    for device in devices:
        assert ids.plain(
            {
                "name": device.name,
                "manufacturer": device.manufacturer,
                "model": device.model,
                "serial_number": device.serial_number,
                "sw_version": device.sw_version,
                "entry_type": device.entry_type,
                "via_device": ids.names.get(device.via_device_id or "", None),
                "identifiers": sorted(v for _, v in device.identifiers),
            }
        ) == snapshot(name=f"device {device.name}")

    registry = er.async_get(hass)
    entities = sorted(
        er.async_entries_for_config_entry(registry, entry.entry_id), key=lambda e: e.entity_id
    )
    assert len(entities) >= 35  # a site, a limiter, two inverters and a meter
    for entity in entities:
        state = hass.states.get(entity.entity_id)
        assert ids.plain(
            {
                "unique_id": entity.unique_id,
                "device": ids.names.get(entity.device_id or "", None),
                "translation_key": entity.translation_key,
                "original_name": entity.original_name,
                "device_class": entity.original_device_class,
                "unit": entity.unit_of_measurement,
                "entity_category": entity.entity_category,
                "disabled_by": entity.disabled_by,
                "capabilities": entity.capabilities,
                "options": {k: dict(v) for k, v in entity.options.items()},
                "state": None if state is None else state.state,
                "attributes": None if state is None else dict(state.attributes),
            }
        ) == snapshot(name=entity.entity_id)


async def test_diagnostics(
    hass: HomeAssistant,
    frozen_sim: SimulatedSiteServer,
    hass_client: ClientSessionGenerator,
    snapshot: SnapshotAssertion,
) -> None:
    """The diagnostics a user attaches to an issue: the entry, the devices, the last cycle."""
    entry = await _settled_site(hass, frozen_sim)
    report = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert Ids(hass, entry).plain(report) == snapshot
