"""Every limiter form checks its name and watt limits itself: errors on the field."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.const import CONF_API_TOKEN, CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.dynamic_export.const import (
    CONF_CONNECT,
    CONF_ENABLED,
    CONF_ENERGIZE,
    CONF_EXPORT_LIMIT,
    CONF_FALLBACK,
    CONF_HIGH_EXPORT_LIMIT,
    CONF_HYSTERESIS,
    CONF_IMPORT_LIMIT,
    CONF_LOW_EXPORT_LIMIT,
    CONF_MAX_AGE,
    CONF_PRESET,
    CONF_SITE_ID,
    CONF_SOC_ENTITY,
    CONF_THRESHOLD,
    CONF_TIMEZONE,
    MAX_LIMIT_W,
    SUBENTRY_AMBER,
    SUBENTRY_FIXED_LIMITER,
    SUBENTRY_SOC,
    SUBENTRY_TARIFF,
)

from ...helpers import start_reconfigure, start_subentry_flow
from ...sites import added_site, limiter_subentry

FIXED = {CONF_NAME: "Export", CONF_EXPORT_LIMIT: 1500, CONF_CONNECT: True, CONF_ENERGIZE: True}
TARIFF = {
    CONF_NAME: "Solar soak",
    CONF_PRESET: "ausgrid_ea029",
    CONF_EXPORT_LIMIT: 0,
    CONF_TIMEZONE: "Australia/Sydney",
}
SOC = {
    CONF_NAME: "Battery first",
    CONF_SOC_ENTITY: "sensor.battery",
    CONF_THRESHOLD: 80,
    CONF_HYSTERESIS: 10,
    CONF_LOW_EXPORT_LIMIT: 0,
    CONF_HIGH_EXPORT_LIMIT: 3000,
    CONF_MAX_AGE: 15,
}
RANGE = {"max_limit": f"{MAX_LIMIT_W:,}"}

BAD_INPUTS = [
    pytest.param(SUBENTRY_FIXED_LIMITER, FIXED, {CONF_NAME: "  "}, "name_blank", id="fixed-name"),
    pytest.param(
        SUBENTRY_FIXED_LIMITER, FIXED, {CONF_EXPORT_LIMIT: -5}, "limit_out_of_range", id="fixed-neg"
    ),
    pytest.param(
        SUBENTRY_FIXED_LIMITER,
        FIXED,
        {CONF_IMPORT_LIMIT: 10_000_000},
        "limit_out_of_range",
        id="fixed-huge",
    ),
    pytest.param(SUBENTRY_TARIFF, TARIFF, {CONF_NAME: " "}, "name_blank", id="tariff-name"),
    pytest.param(
        SUBENTRY_TARIFF, TARIFF, {CONF_EXPORT_LIMIT: -1}, "limit_out_of_range", id="tariff-neg"
    ),
    pytest.param(SUBENTRY_SOC, SOC, {CONF_NAME: ""}, "name_blank", id="soc-name"),
    pytest.param(
        SUBENTRY_SOC, SOC, {CONF_LOW_EXPORT_LIMIT: -5}, "limit_out_of_range", id="soc-low"
    ),
    pytest.param(
        SUBENTRY_SOC,
        SOC,
        {CONF_HIGH_EXPORT_LIMIT: MAX_LIMIT_W + 1},
        "limit_out_of_range",
        id="soc-high",
    ),
    pytest.param(
        SUBENTRY_SOC, SOC, {CONF_THRESHOLD: 101}, "threshold_out_of_range", id="soc-threshold"
    ),
    pytest.param(
        SUBENTRY_SOC, SOC, {CONF_HYSTERESIS: -1}, "hysteresis_out_of_range", id="soc-hysteresis"
    ),
    pytest.param(SUBENTRY_SOC, SOC, {CONF_MAX_AGE: 0}, "max_age_out_of_range", id="soc-max-age"),
]


@pytest.mark.parametrize(("kind", "valid", "change", "error"), BAD_INPUTS)
async def test_add_refuses_bad_field(
    hass: HomeAssistant, kind: str, valid: dict[str, Any], change: dict[str, Any], error: str
) -> None:
    """The form comes back with the error on the changed field; fixed, it creates the limiter."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, kind)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**valid, **change}
    )
    assert result["type"] is FlowResultType.FORM
    (key,) = change
    assert result["errors"] == {key: error}
    if error == "limit_out_of_range":
        assert result["description_placeholders"].items() >= RANGE.items()
    elif error.endswith("_out_of_range"):
        assert {f"{key}_min", f"{key}_max"} <= result["description_placeholders"].keys()
    assert not entry.subentries
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], valid)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.title == valid[CONF_NAME]


async def test_names_are_stored_stripped(hass: HomeAssistant) -> None:
    """Spaces around a name are not part of the title."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_SOC)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**SOC, CONF_NAME: "  Battery first "}
    )
    assert result["title"] == "Battery first"


async def test_limit_at_the_maximum_is_taken(hass: HomeAssistant) -> None:
    """The range includes both ends."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_FIXED_LIMITER)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**FIXED, CONF_EXPORT_LIMIT: 0, CONF_IMPORT_LIMIT: MAX_LIMIT_W}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_fixed_reconfigure_refuses_blank_name_and_bad_limit(hass: HomeAssistant) -> None:
    """Reconfiguring checks as adding does, and leaves the limiter as it was until fixed."""
    entry = added_site(hass, [limiter_subentry("Export", export_limit=1500.0)])
    (sub,) = entry.subentries.values()
    result = await start_reconfigure(hass, entry, SUBENTRY_FIXED_LIMITER, sub.subentry_id)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**FIXED, CONF_NAME: "\t", CONF_EXPORT_LIMIT: MAX_LIMIT_W + 1}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    assert result["errors"] == {CONF_NAME: "name_blank", CONF_EXPORT_LIMIT: "limit_out_of_range"}
    assert entry.subentries[sub.subentry_id].title == "Export"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**FIXED, CONF_NAME: " Zero export ", CONF_EXPORT_LIMIT: 0}
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[sub.subentry_id].title == "Zero export"


async def test_amber_settings_refuse_bad_limit(hass: HomeAssistant) -> None:
    """Amber's export limit is checked on its field (reconfigure goes straight to it)."""
    amber = ConfigSubentryData(
        data={
            CONF_API_TOKEN: "token",
            CONF_SITE_ID: "site",
            CONF_THRESHOLD: 0.0,
            CONF_EXPORT_LIMIT: 0.0,
            CONF_FALLBACK: "limit",
            CONF_ENABLED: True,
        },
        subentry_type=SUBENTRY_AMBER,
        title="Amber 4103",
        unique_id=None,
    )
    entry = added_site(hass, [amber])
    (sub,) = entry.subentries.values()
    result = await start_reconfigure(hass, entry, SUBENTRY_AMBER, sub.subentry_id)
    settings = {CONF_THRESHOLD: 0, CONF_FALLBACK: "limit"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**settings, CONF_EXPORT_LIMIT: -5}
    )
    assert result["errors"] == {CONF_EXPORT_LIMIT: "limit_out_of_range"}
    assert result["description_placeholders"] == RANGE
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**settings, CONF_EXPORT_LIMIT: 200}
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[sub.subentry_id].data[CONF_EXPORT_LIMIT] == 200.0
    # The price threshold too: from -100 to 100 c/kWh.
    result = await start_reconfigure(hass, entry, SUBENTRY_AMBER, sub.subentry_id)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**settings, CONF_THRESHOLD: 250, CONF_EXPORT_LIMIT: 0}
    )
    assert result["errors"] == {CONF_THRESHOLD: "threshold_out_of_range"}
    placeholders = result["description_placeholders"]
    assert (placeholders["threshold_min"], placeholders["threshold_max"]) == ("-100", "100")


@pytest.mark.parametrize(
    ("kind", "valid"),
    [(SUBENTRY_FIXED_LIMITER, FIXED), (SUBENTRY_TARIFF, TARIFF), (SUBENTRY_SOC, SOC)],
)
async def test_a_name_the_site_already_has_is_refused(
    hass: HomeAssistant, kind: str, valid: dict[str, Any]
) -> None:
    """A second "Network limit" would be a second device of that name (entity ids ``_2``)."""
    entry = added_site(hass, [limiter_subentry("Network limit", export_limit=1500.0)])
    result = await start_subentry_flow(hass, entry, kind)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**valid, CONF_NAME: " network LIMIT "}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_NAME: "name_taken"}
    assert result["description_placeholders"]["name"] == "network LIMIT"
    assert len(entry.subentries) == 1
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], valid)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_reconfigure_may_keep_its_own_name_but_not_take_another(
    hass: HomeAssistant,
) -> None:
    """Its own name is not taken; another part's is."""
    entry = added_site(
        hass,
        [
            limiter_subentry("Export", export_limit=1500.0),
            limiter_subentry("Generation cap", export_limit=None),
        ],
    )
    sub = next(s for s in entry.subentries.values() if s.title == "Export")
    result = await start_reconfigure(hass, entry, SUBENTRY_FIXED_LIMITER, sub.subentry_id)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**FIXED, CONF_NAME: "Generation cap"}
    )
    assert result["errors"] == {CONF_NAME: "name_taken"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**FIXED, CONF_NAME: "Export", CONF_EXPORT_LIMIT: 1000}
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[sub.subentry_id].data[CONF_EXPORT_LIMIT] == 1000.0
