"""Config flow: a site is created, named once, and tuned in its options."""

from __future__ import annotations

import pytest
from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.dynamic_export.const import (
    CONF_CONTROL_ENABLED,
    CONF_CONTROL_INTERVAL,
    CONF_DEADBAND,
    CONF_METER_MAX_AGE,
    CONF_RAMP_UP_RATE,
    CONF_REVERT_TIMEOUT,
    CONF_SITE_NAME,
    DOMAIN,
)

from .sites import added_site


async def test_site_created_with_control_choice(hass: HomeAssistant) -> None:
    """The user names a site and picks monitor-only; defaults fill the rest."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_SITE_NAME: " Home ", CONF_CONTROL_INTERVAL: 2, CONF_CONTROL_ENABLED: False},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Home"
    assert result["data"] == {CONF_SITE_NAME: "Home"}
    options = result["options"]
    assert options[CONF_CONTROL_INTERVAL] == 2
    assert options[CONF_CONTROL_ENABLED] is False
    assert options[CONF_METER_MAX_AGE] == 5.0
    assert result["result"].unique_id == "home"


async def test_site_name_must_be_unique(hass: HomeAssistant) -> None:
    """A second site with the same name is an error on the name; the form stays open."""
    added_site(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_SITE_NAME: " home ", CONF_CONTROL_INTERVAL: 1, CONF_CONTROL_ENABLED: True},
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_SITE_NAME: "site_name_taken"}
    assert result["description_placeholders"]["name"] == "home"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_SITE_NAME: "Cabin", CONF_CONTROL_INTERVAL: 1, CONF_CONTROL_ENABLED: True},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Cabin"


async def test_options_flow_saves_tuning(hass: HomeAssistant) -> None:
    """The options form shows current values and keeps the control switch's state."""
    entry = added_site(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    tuning = {
        CONF_CONTROL_INTERVAL: 2,
        CONF_METER_MAX_AGE: 4,
        CONF_RAMP_UP_RATE: 30,
        CONF_DEADBAND: 0.5,
        CONF_REVERT_TIMEOUT: 120,
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], tuning)
    await hass.async_block_till_done()  # the reload that new options bring
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {**tuning, CONF_CONTROL_ENABLED: True}
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(
    ("form", "errors"),
    [
        ({CONF_SITE_NAME: "   "}, {CONF_SITE_NAME: "name_blank"}),
        ({CONF_CONTROL_INTERVAL: 1.5}, {CONF_CONTROL_INTERVAL: "invalid_interval"}),
        ({CONF_CONTROL_INTERVAL: 0}, {CONF_CONTROL_INTERVAL: "invalid_interval"}),
        ({CONF_CONTROL_INTERVAL: 61}, {CONF_CONTROL_INTERVAL: "invalid_interval"}),
    ],
)
async def test_site_form_errors(
    hass: HomeAssistant, form: dict[str, object], errors: dict[str, str]
) -> None:
    """A blank name or an interval that is not whole seconds in 1-60 is an error on its field."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    valid = {CONF_SITE_NAME: "Home", CONF_CONTROL_INTERVAL: 1, CONF_CONTROL_ENABLED: True}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {**valid, **form})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    if CONF_CONTROL_INTERVAL in errors:
        assert result["description_placeholders"] == {"min_interval": "1", "max_interval": "60"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], valid)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Home"


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        (CONF_METER_MAX_AGE, 0.5, ("1", "60")),
        (CONF_METER_MAX_AGE, 61, ("1", "60")),
        (CONF_RAMP_UP_RATE, 0, ("1", "100")),
        (CONF_RAMP_UP_RATE, 250, ("1", "100")),
        (CONF_DEADBAND, -1, ("0", "10")),
        (CONF_DEADBAND, 11, ("0", "10")),
        (CONF_REVERT_TIMEOUT, 5, ("10", "3600")),
        (CONF_REVERT_TIMEOUT, 4000, ("10", "3600")),
    ],
)
async def test_options_out_of_range_is_an_error_on_its_field(
    hass: HomeAssistant, key: str, value: float, shown: tuple[str, str]
) -> None:
    """Every tuning option outside its range is refused beside its field, naming the range."""
    entry = added_site(hass)
    before = dict(entry.options)
    tuning = {
        CONF_CONTROL_INTERVAL: 2,
        CONF_METER_MAX_AGE: 4,
        CONF_RAMP_UP_RATE: 30,
        CONF_DEADBAND: 0.5,
        CONF_REVERT_TIMEOUT: 120,
    }
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**tuning, key: value}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {key: f"{key}_out_of_range"}
    placeholders = result["description_placeholders"]
    assert (placeholders[f"{key}_min"], placeholders[f"{key}_max"]) == shown
    assert entry.options == before


async def test_options_interval_whole_seconds(hass: HomeAssistant) -> None:
    """The options refuse a fractional interval on its field and keep the stored one."""
    entry = added_site(hass)
    before = dict(entry.options)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_CONTROL_INTERVAL: 1.5,
            CONF_METER_MAX_AGE: 4,
            CONF_RAMP_UP_RATE: 30,
            CONF_DEADBAND: 0.5,
            CONF_REVERT_TIMEOUT: 120,
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_CONTROL_INTERVAL: "invalid_interval"}
    assert entry.options == before
