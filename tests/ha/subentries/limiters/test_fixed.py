"""Fixed limiters: the flow stores the limits as the site reads them."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.dynamic_export.const import (
    CONF_CONNECT,
    CONF_ENABLED,
    CONF_ENERGIZE,
    CONF_EXPORT_LIMIT,
    CONF_GENERATION_LIMIT,
    CONF_SITE_NAME,
    SUBENTRY_FIXED_LIMITER,
)

from ...helpers import start_reconfigure, start_subentry_flow
from ...sites import added_site, limiter_subentry, setup_site, site_entry


async def test_fixed_limiter_add_and_reconfigure(hass: HomeAssistant) -> None:
    """Fixed limits are stored with unset limits as None; reconfigure can remove one."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_FIXED_LIMITER)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_SITE_NAME: "Export limit ",
            CONF_EXPORT_LIMIT: 1500,
            CONF_GENERATION_LIMIT: 8000,
            CONF_CONNECT: True,
            CONF_ENERGIZE: True,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.title == "Export limit"
    assert sub.data[CONF_EXPORT_LIMIT] == 1500.0
    assert sub.data["import_limit"] is None
    assert sub.data[CONF_ENABLED] is True

    result = await start_reconfigure(hass, entry, SUBENTRY_FIXED_LIMITER, sub.subentry_id)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_SITE_NAME: "Zero export",
            CONF_EXPORT_LIMIT: 0,
            CONF_CONNECT: True,
            CONF_ENERGIZE: False,
        },
    )
    assert result["reason"] == "reconfigure_successful"
    updated = entry.subentries[sub.subentry_id]
    assert updated.title == "Zero export"
    assert updated.data[CONF_EXPORT_LIMIT] == 0.0
    assert updated.data[CONF_GENERATION_LIMIT] is None
    assert updated.data[CONF_ENERGIZE] is False


async def test_limiter_subentry_helper_matches_flow(hass: HomeAssistant) -> None:
    """The test helper builds the same shape the flow stores (keeps other tests honest)."""
    entry = added_site(hass, [limiter_subentry(export_limit=1.0)])
    result = await start_subentry_flow(hass, entry, SUBENTRY_FIXED_LIMITER)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {CONF_SITE_NAME: "x", CONF_EXPORT_LIMIT: 1, CONF_CONNECT: True, CONF_ENERGIZE: True},
    )
    subs = list(entry.subentries.values())
    assert subs[0].data == subs[1].data


async def test_limit_named_by_the_limiter_is_not_repeated(hass: HomeAssistant) -> None:
    """A limiter named after its limit gives that number its own name only."""
    await setup_site(
        hass,
        site_entry([limiter_subentry("Zero export limit", export_limit=0.0, load_limit=900.0)]),
    )
    export = hass.states.get("number.zero_export_limit")
    assert export is not None
    assert export.attributes["friendly_name"] == "Zero export limit"
    load = hass.states.get("number.zero_export_limit_load_limit")
    assert load is not None
    assert load.attributes["friendly_name"] == "Zero export limit Load limit"


async def test_whole_watts_show_without_a_fraction(hass: HomeAssistant) -> None:
    """1500 W is "1500" in the number's box and history, not "1500.0"; a fraction stays."""
    await setup_site(
        hass,
        site_entry([limiter_subentry("Network", export_limit=1500.0, import_limit=2.5)]),
    )
    export = hass.states.get("number.network_export_limit")
    assert export is not None
    assert export.state == "1500"
    imported = hass.states.get("number.network_import_limit")
    assert imported is not None
    assert imported.state == "2.5"
