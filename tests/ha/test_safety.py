"""Control safety in Home Assistant: limits applied whatever the timing, ratings kept.

Each test here reproduces a fault the landed code had (see the control-safety issue) against
the simulated site over Modbus TCP on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
from types import MappingProxyType
from typing import Any

import pytest
from homeassistant.config_entries import (
    ConfigEntryDisabler,
    ConfigEntryState,
    ConfigSubentry,
    ConfigSubentryData,
)
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.dynamic_export import runtime as runtime_module
from custom_components.dynamic_export.const import (
    CONF_CONNECT,
    CONF_CONTROL_INTERVAL,
    CONF_DEADBAND,
    CONF_ENABLED,
    CONF_ENERGIZE,
    CONF_EXPORT_LIMIT,
    CONF_KIND,
    CONF_LIMIT_ENTITY,
    CONF_LIMIT_UNIT,
    CONF_METER_MAX_AGE,
    CONF_POWER_ENTITY,
    CONF_RAMP_UP_RATE,
    CONF_RATED_POWER,
    CONF_REVERT_TIMEOUT,
    CONF_UNIT_ID,
    KIND_HA_ENTITY,
    LIMIT_UNIT_WATT,
    SUBENTRY_FIXED_LIMITER,
    SUBENTRY_INVERTER,
    WATT_LIMIT_KEYS,
)
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from .helpers import record, wait_for
from .sites import (
    inverter_subentry,
    limiter_subentry,
    meter_subentry,
    setup_site,
    site_entry,
    sunspec_site,
)

EXPORT_LIMIT = 1500.0


def _fixed_limiter(export_limit: float) -> ConfigSubentry:
    data: dict[str, Any] = dict.fromkeys(WATT_LIMIT_KEYS)
    data.update({CONF_CONNECT: True, CONF_ENERGIZE: True, CONF_ENABLED: True})
    data[CONF_EXPORT_LIMIT] = export_limit
    return ConfigSubentry(
        data=MappingProxyType(data),
        subentry_type=SUBENTRY_FIXED_LIMITER,
        title="Late limit",
        unique_id=None,
    )


async def test_limiter_added_while_the_site_builds_is_applied(
    hass: HomeAssistant, sim: SimulatedSiteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subentry added during set-up (between its awaits) is built by a reload, not lost."""
    entry = sunspec_site(sim)
    build_meter = runtime_module.async_build_meter
    added: list[str] = []

    async def meter_then_a_new_limiter(*args: Any) -> Any:
        if not added:  # the user saves a fixed limiter while the site is starting
            limiter = _fixed_limiter(EXPORT_LIMIT)
            hass.config_entries.async_add_subentry(entry, limiter)
            added.append(limiter.subentry_id)
        return await build_meter(*args)

    monkeypatch.setattr(runtime_module, "async_build_meter", meter_then_a_new_limiter)
    entry.add_to_hass(hass)
    # Not asserted: the reload the change calls for may already be unloading the entry.
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    def built() -> bool:  # runtime_data is gone while the reload unloads
        runtime = getattr(entry, "runtime_data", None)
        return entry.state is ConfigEntryState.LOADED and added[0] in getattr(
            runtime, "limiters", {}
        )

    await wait_for(built, 10, "the late limiter to be built")
    samples = await record(sim, until_t=sim.site.now + 8.0)
    assert all(s.export_w <= EXPORT_LIMIT + 50 for s in samples[-20:]), samples[-20:]


async def test_limit_moved_while_the_site_builds_is_applied(
    hass: HomeAssistant, sim: SimulatedSiteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fixed limit changed during set-up (a live setting, no reload) takes effect."""
    entry = sunspec_site(sim, limiter_subentry("Fixed", export_limit=4000.0))
    build_limiter = runtime_module.async_build_limiter

    async def limiter_then_a_tighter_limit(*args: Any) -> Any:
        built = await build_limiter(*args)
        (fixed,) = [s for s in entry.subentries.values() if s.title == "Fixed"]
        if fixed.data[CONF_EXPORT_LIMIT] != EXPORT_LIMIT:  # the user moves the slider now
            hass.config_entries.async_update_subentry(
                entry, fixed, data={**fixed.data, CONF_EXPORT_LIMIT: EXPORT_LIMIT}
            )
        return built

    monkeypatch.setattr(runtime_module, "async_build_limiter", limiter_then_a_tighter_limit)
    await setup_site(hass, entry)
    assert entry.runtime_data.coordinator.data is not None
    await wait_for(
        lambda: entry.runtime_data.coordinator.data.merged.export_limit == EXPORT_LIMIT,
        3,
        "the moved limit to be merged",
    )


async def test_inverter_down_at_start_counts_at_its_rating(
    hass: HomeAssistant, sim: SimulatedSiteServer, socket_enabled: None
) -> None:
    """Down since start-up, with the rating from its set-up: the limit still holds."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    down = inverter_subentry(sim, 2)
    down = type(down)(
        data={
            CONF_HOST: "127.0.0.1",
            CONF_PORT: closed_port,
            CONF_UNIT_ID: 2,
            CONF_RATED_POWER: 5000.0,  # what the flow stored when it was added
        },
        subentry_type=SUBENTRY_INVERTER,
        title="Inverter 2",
        unique_id="SIM-INV-2",
    )
    entry = site_entry(
        [
            inverter_subentry(sim, 1),
            down,
            meter_subentry(sim),
            limiter_subentry("Generation", generation_limit=6000.0),
        ]
    )
    await setup_site(hass, entry)
    await wait_for(
        lambda: entry.runtime_data.coordinator.data.plan.generation_target_w <= 1000.0,
        10,
        "the target to count the silent inverter at 5 kW",
    )
    await record(sim, until_t=sim.site.now + 3.0)
    assert sim.site.inverters[0].output_w <= 1000.0 + 50


async def test_flow_stores_the_rating_it_read(
    hass: HomeAssistant, sim: SimulatedSiteServer
) -> None:
    entry = site_entry([])
    await setup_site(hass, entry)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_INVERTER), context={"source": "user"}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"next_step_id": "sunspec_tcp"}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: sim.port, CONF_UNIT_ID: 1}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.data[CONF_RATED_POWER] == 5000.0


@pytest.mark.parametrize(("interval", "revert", "ok"), [(60, 10, False), (60, 240, True)])
async def test_revert_timeout_must_outlast_the_refresh(
    hass: HomeAssistant, interval: int, revert: int, *, ok: bool
) -> None:
    entry = await setup_site(hass, site_entry([]))
    result = await hass.config_entries.options.async_init(entry.entry_id)
    tuning = {
        CONF_CONTROL_INTERVAL: interval,
        CONF_METER_MAX_AGE: 5,
        CONF_RAMP_UP_RATE: 25,
        CONF_DEADBAND: 1,
        CONF_REVERT_TIMEOUT: revert,
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], tuning)
    await hass.async_block_till_done()  # the reload that new options bring
    if ok:
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert entry.options[CONF_REVERT_TIMEOUT] == revert
        assert await hass.config_entries.async_unload(entry.entry_id)
    else:
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {CONF_REVERT_TIMEOUT: "revert_too_short"}
        assert result["description_placeholders"]["shortest"] == "240"


async def test_stored_revert_timeout_too_short_is_raised(
    hass: HomeAssistant, sim: SimulatedSiteServer
) -> None:
    """An older configuration with 10 s against 60 s cycles runs with 240 s."""
    entry = site_entry([inverter_subentry(sim, 1)], interval=60, **{CONF_REVERT_TIMEOUT: 10})
    await setup_site(hass, entry)
    (inverter,) = entry.runtime_data.inverters.values()
    assert inverter.client.revert_timeout_s == 240.0


# --- fault 3: unloading, removing or disabling a site hands the inverters back -------------

ENTITY_LIMIT = "input_number.pv_limit"
ENTITY_POWER = "sensor.pv_power"


async def _entity_inverter_site(hass: HomeAssistant) -> MockConfigEntry:
    """An entity inverter (no revert timer) held down by a zero export limit without meter."""
    assert await async_setup_component(
        hass,
        "input_number",
        {"input_number": {"pv_limit": {"min": 0, "max": 5000, "step": 100, "initial": 5000}}},
    )
    hass.states.async_set(ENTITY_POWER, "3000", {"unit_of_measurement": "W"})
    inverter = ConfigSubentryData(
        data={
            CONF_KIND: KIND_HA_ENTITY,
            CONF_POWER_ENTITY: ENTITY_POWER,
            CONF_LIMIT_ENTITY: ENTITY_LIMIT,
            CONF_LIMIT_UNIT: LIMIT_UNIT_WATT,
            CONF_RATED_POWER: 5000,
        },
        subentry_type=SUBENTRY_INVERTER,
        title="PV",
        unique_id=ENTITY_LIMIT,
    )
    entry = await setup_site(hass, site_entry([inverter, limiter_subentry(export_limit=0.0)]))
    await wait_for(
        lambda: float(hass.states.get(ENTITY_LIMIT).state) < 5000, 5, "the number to be lowered"
    )
    return entry


@pytest.mark.parametrize("how", ["unload", "disable", "remove"])
async def test_site_going_away_hands_back_an_entity_inverter(
    hass: HomeAssistant, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An HA number has no revert timer: without a hand-back it stays curtailed for good."""
    entry = await _entity_inverter_site(hass)
    if how == "unload":
        assert await hass.config_entries.async_unload(entry.entry_id)
    elif how == "disable":
        assert await hass.config_entries.async_set_disabled_by(
            entry.entry_id, ConfigEntryDisabler.USER
        )
    else:
        assert (await hass.config_entries.async_remove(entry.entry_id))["require_restart"] is False
    await hass.async_block_till_done()
    assert hass.states.get(ENTITY_LIMIT).state == "5000.0"
    assert "Handed back to their own settings" in caplog.text


# --- fault 11: diagnostics hide hosts and serial numbers wherever they appear ---------------


async def test_diagnostics_scrub_hosts_and_serials_inside_values(
    hass: HomeAssistant, sim: SimulatedSiteServer, hass_client: ClientSessionGenerator
) -> None:
    """Error strings carry the host, titles and keys the serial: redaction by key misses them."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    silent = ConfigSubentryData(
        data={CONF_HOST: "127.0.0.1", CONF_PORT: closed_port, CONF_UNIT_ID: 2},
        subentry_type=SUBENTRY_INVERTER,
        title="Fronius Symo (SN-4711-XYZ)",
        unique_id="SN-4711-XYZ",
    )
    entry = site_entry([inverter_subentry(sim, 1), silent, meter_subentry(sim)])
    await setup_site(hass, entry)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    errors = [s["error"] for s in diagnostics["last_cycle"]["inverters"].values() if s["error"]]
    assert errors, "the silent inverter's error is shown"
    text = json.dumps(diagnostics)
    for secret in ("127.0.0.1", "SN-4711-XYZ", "SIM-INV-1", "SIM-METER-1"):
        assert secret not in text, secret
    assert "Fronius Symo" in text  # what is not secret stays readable
