"""The site ``scripts/develop`` sets up, built through the same flows the UI uses.

Entity ids are the ones Home Assistant derives from the names those flows give, so the
tests that name them (the dashboard's, the snapshots) see what a user sees.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.dynamic_export.const import (
    CONF_CONNECT,
    CONF_CONTROL_ENABLED,
    CONF_CONTROL_INTERVAL,
    CONF_ENERGIZE,
    CONF_EXPORT_LIMIT,
    CONF_INVERT,
    CONF_SITE_NAME,
    CONF_UNIT_ID,
    DOMAIN,
    KIND_SUNSPEC_TCP,
    SUBENTRY_FIXED_LIMITER,
    SUBENTRY_INVERTER,
    SUBENTRY_METER,
)
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from .helpers import start_subentry_flow


async def add_through_flow(
    hass: HomeAssistant, entry_id: str, kind: str, form: dict[str, Any]
) -> None:
    """Add a subentry through its flow, as the UI does."""
    entry = hass.config_entries.async_get_entry(entry_id)
    menu_kind = None if kind == SUBENTRY_FIXED_LIMITER else KIND_SUNSPEC_TCP
    result = await start_subentry_flow(hass, entry, kind, menu_kind)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()


async def development_site(hass: HomeAssistant, sim: SimulatedSiteServer) -> str:
    """The site ``scripts/develop`` sets up: inverters 1 and 2, meter 240, 1500 W export."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_SITE_NAME: "Home", CONF_CONTROL_INTERVAL: 1, CONF_CONTROL_ENABLED: True},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry_id: str = result["result"].entry_id
    await hass.async_block_till_done()
    address = {CONF_HOST: "127.0.0.1", CONF_PORT: sim.port}
    for unit in sim.inverter_unit_ids:
        await add_through_flow(hass, entry_id, SUBENTRY_INVERTER, {**address, CONF_UNIT_ID: unit})
    await add_through_flow(
        hass,
        entry_id,
        SUBENTRY_METER,
        {**address, CONF_UNIT_ID: sim.meter_unit_id, CONF_INVERT: False},
    )
    await add_through_flow(
        hass,
        entry_id,
        SUBENTRY_FIXED_LIMITER,
        {
            CONF_SITE_NAME: "Network limit",
            CONF_EXPORT_LIMIT: 1500,
            CONF_CONNECT: True,
            CONF_ENERGIZE: True,
        },
    )
    return entry_id
