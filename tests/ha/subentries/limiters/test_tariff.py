"""Two-way tariff limiter in Home Assistant: its flow, its entities and its windows in time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER, ConfigSubentryData
from homeassistant.const import ATTR_ENTITY_ID, CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dynamic_export.const import (
    CONF_ENABLED,
    CONF_EXPORT_LIMIT,
    CONF_PRESET,
    CONF_TIMEZONE,
    CONF_WINDOWS,
    SUBENTRY_TARIFF,
)

from ...helpers import attributes_of, next_cycle, state_of
from ...sites import added_site, limiter_subentry, setup_site, site_entry

SYDNEY = "Australia/Sydney"
MIDDAY = {"name": "Midday", "start": "10:00", "end": "15:00", "export_limit": 0}
MONDAY_NIGHT = {
    "name": "Night",
    "start": "22:00",
    "end": "02:00",
    "days": ["mon"],
    "export_limit": 500,
}
# 2 June 2025 is a Monday; Sydney is on AEST (UTC+10) in June.
MONDAY_11 = "2025-06-02T11:00:00+10:00"


def tariff_subentry(
    windows: list[dict[str, Any]] | None = None,
    *,
    title: str = "Export charge",
    preset: str = "custom",
    timezone: str = SYDNEY,
    export_limit: float = 0.0,
    enabled: bool = True,
) -> ConfigSubentryData:
    """A tariff limiter subentry as the flow stores it."""
    return ConfigSubentryData(
        data={
            CONF_PRESET: preset,
            CONF_WINDOWS: windows if windows is not None else [MIDDAY],
            CONF_TIMEZONE: timezone,
            CONF_EXPORT_LIMIT: export_limit,
            CONF_ENABLED: enabled,
        },
        subentry_type=SUBENTRY_TARIFF,
        title=title,
        unique_id=None,
    )


def _utc(text: str) -> str:
    """An ISO time as the UTC timestamp string a timestamp sensor shows."""
    return dt_util.as_utc(datetime.fromisoformat(text)).isoformat()


async def _at(hass: HomeAssistant, freezer: FrozenDateTimeFactory, when: str) -> None:
    """Move the clock to ``when`` and let the site's next control cycle run."""
    freezer.move_to(when)
    await next_cycle(hass)


def _suggested(result: FlowResult, key: str) -> Any:
    for marker in result["data_schema"].schema:
        if marker == key:
            return (marker.description or {}).get("suggested_value")
    raise AssertionError(f"{key} not in the form")


async def _start(hass: HomeAssistant, entry: MockConfigEntry, **context: Any) -> FlowResult:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_TARIFF), context={"source": SOURCE_USER, **context}
    )


async def test_flow_preset_limits_export_in_the_networks_time(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """A preset needs no windows; it runs in its network's zone, with the limit asked for."""
    freezer.move_to("2025-06-02T12:00:00+09:30")  # noon in Adelaide, inside 10:00–16:00
    entry = await setup_site(hass, site_entry([]))
    assert state_of(hass, "sensor.home_export_limit") == "unknown"

    result = await _start(hass, entry)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert _suggested(result, CONF_TIMEZONE) == hass.config.time_zone
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {CONF_NAME: " SAPN ", CONF_PRESET: "sapn_rele2w", CONF_EXPORT_LIMIT: 150},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    (sub,) = entry.subentries.values()
    assert sub.title == "SAPN"
    assert sub.data[CONF_PRESET] == "sapn_rele2w"
    assert sub.data[CONF_WINDOWS] == []
    assert sub.data[CONF_EXPORT_LIMIT] == 150.0
    assert sub.data[CONF_ENABLED] is True

    # Adding the subentry reloaded the site with the new limiter.
    assert state_of(hass, "sensor.home_export_limit") == "150.0"
    assert attributes_of(hass, "sensor.home_export_limit")["source"] == "SAPN"
    assert state_of(hass, "sensor.sapn_export_limit_asked") == "150.0"
    assert state_of(hass, "sensor.sapn_active_window") == "Export charge"
    status = attributes_of(hass, "sensor.sapn_active_window")
    assert status["timezone"] == "Australia/Adelaide"
    assert status["timezone_fallback"] is False
    assert state_of(hass, "sensor.sapn_next_change") == _utc("2025-06-02T16:00:00+09:30")
    assert state_of(hass, "switch.sapn_enabled") == "on"

    await _at(hass, freezer, "2025-06-02T16:30:00+09:30")
    assert state_of(hass, "sensor.home_export_limit") == "unknown"
    assert state_of(hass, "sensor.sapn_active_window") == "unknown"


async def test_flow_custom_windows_and_timezone_are_checked(hass: HomeAssistant) -> None:
    """Bad windows show the error and where it is; an unknown zone is refused."""
    await hass.config.async_set_time_zone(SYDNEY)
    entry = added_site(hass)
    result = await _start(hass, entry)
    flow_id = result["flow_id"]
    assert result["description_placeholders"] == {"detail": ""}

    async def submit(**fields: Any) -> FlowResult:
        data = {CONF_NAME: "Mine", CONF_PRESET: "custom", CONF_EXPORT_LIMIT: 0, **fields}
        return await hass.config_entries.subentries.async_configure(flow_id, data)

    cases: list[tuple[Any, str]] = [
        (None, "give at least one window"),
        ([], "give at least one window"),
        ([{**MIDDAY, "start": "25:00"}], "window 1: start: '25:00' is not a time of day"),
        ([MIDDAY, {**MONDAY_NIGHT, "days": ["funday"]}], "window 2: days: 'funday' is not a day"),
        ([{**MIDDAY, "colour": "red"}], "window 1: unknown keys ['colour']"),
        ([{**MIDDAY, "export_limit": -5}], "window 1: export_limit: must be a non-negative"),
    ]
    for windows, detail in cases:
        fields = {} if windows is None else {CONF_WINDOWS: windows}
        result = await submit(**fields)
        assert result["type"] is FlowResultType.FORM, windows
        assert result["errors"] == {CONF_WINDOWS: "invalid_windows"}, windows
        assert result["description_placeholders"]["detail"].startswith(detail), windows
        # The form keeps what was typed, so the user can correct it.
        assert _suggested(result, CONF_WINDOWS) == fields.get(CONF_WINDOWS)

    result = await submit(**{CONF_WINDOWS: [MIDDAY], CONF_TIMEZONE: "Mars/Olympus_Mons"})
    assert result["errors"] == {CONF_TIMEZONE: "invalid_timezone"}
    assert result["description_placeholders"]["detail"] == ""
    assert not entry.subentries

    # No zone given: Home Assistant's. A single window typed without the list's "- " is a list.
    result = await submit(**{CONF_WINDOWS: MIDDAY})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.title == "Mine"
    assert sub.data == {
        CONF_PRESET: "custom",
        CONF_WINDOWS: [MIDDAY],
        CONF_TIMEZONE: SYDNEY,
        CONF_EXPORT_LIMIT: 0.0,
        CONF_ENABLED: True,
    }


async def test_custom_window_without_a_limit_takes_the_forms(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """A custom window that sets no export limit of its own uses the form's export limit."""
    # The story moves forward only: a clock stepped back would not reach the next cycle.
    freezer.move_to("2025-06-02T10:15:00+10:00")
    entry = await setup_site(hass, site_entry([]))
    result = await _start(hass, entry)
    window = {"start": "10:00", "end": "15:00"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "Charge",
            CONF_PRESET: "custom",
            CONF_EXPORT_LIMIT: 250,
            CONF_TIMEZONE: SYDNEY,
            CONF_WINDOWS: [window, {**MONDAY_NIGHT, "start": "10:30"}],
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.home_export_limit") == "250.0"
    assert state_of(hass, "sensor.charge_active_window") == "Window 1"
    await _at(hass, freezer, "2025-06-02T10:45:00+10:00")  # the other window sets its own
    assert state_of(hass, "sensor.home_export_limit") == "250.0"
    await _at(hass, freezer, "2025-06-02T23:00:00+10:00")
    assert state_of(hass, "sensor.home_export_limit") == "500.0"


async def test_windows_set_the_sites_export_limit_across_midnight(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """Inside a window the site's export limit is the window's; outside there is none.

    Home Assistant runs on US/Pacific here: the windows follow the tariff's own zone.
    """
    assert hass.config.time_zone != SYDNEY
    freezer.move_to(MONDAY_11)
    entry = await setup_site(hass, site_entry([tariff_subentry([MIDDAY, MONDAY_NIGHT])]))
    assert entry.subentries

    assert state_of(hass, "sensor.home_export_limit") == "0.0"
    assert attributes_of(hass, "sensor.home_export_limit")["source"] == "Export charge"
    assert state_of(hass, "sensor.export_charge_export_limit_asked") == "0.0"
    assert state_of(hass, "sensor.export_charge_active_window") == "Midday"
    assert state_of(hass, "sensor.export_charge_next_change") == _utc("2025-06-02T15:00:00+10:00")
    status = attributes_of(hass, "sensor.export_charge_active_window")
    assert {k: status[k] for k in status if k != "friendly_name"} == {
        "export_limit": 0.0,
        "active_window": "Midday",
        "active_index": 0,
        "window_start": _utc("2025-06-02T10:00:00+10:00"),
        "window_end": _utc("2025-06-02T15:00:00+10:00"),
        "next_change": _utc("2025-06-02T15:00:00+10:00"),
        "timezone": SYDNEY,
        "timezone_fallback": False,
    }
    # Only the first status sensor carries the full status.
    assert "window_start" not in attributes_of(hass, "sensor.export_charge_next_change")

    await _at(hass, freezer, "2025-06-02T15:00:00+10:00")  # windows end exclusive
    assert state_of(hass, "sensor.home_export_limit") == "unknown"
    assert attributes_of(hass, "sensor.home_export_limit")["source"] is None
    assert state_of(hass, "sensor.export_charge_export_limit_asked") == "unknown"
    assert state_of(hass, "sensor.export_charge_active_window") == "unknown"
    assert state_of(hass, "sensor.export_charge_next_change") == _utc("2025-06-02T22:00:00+10:00")
    status = attributes_of(hass, "sensor.export_charge_active_window")
    assert status["export_limit"] is None
    assert status["active_index"] is None

    await _at(hass, freezer, "2025-06-02T23:30:00+10:00")
    assert state_of(hass, "sensor.home_export_limit") == "500.0"
    assert state_of(hass, "sensor.export_charge_active_window") == "Night"
    assert state_of(hass, "sensor.export_charge_next_change") == _utc("2025-06-03T02:00:00+10:00")

    # Tuesday 01:30: still Monday's night window, which runs past midnight.
    await _at(hass, freezer, "2025-06-03T01:30:00+10:00")
    assert state_of(hass, "sensor.home_export_limit") == "500.0"
    status = attributes_of(hass, "sensor.export_charge_active_window")
    assert status["window_start"] == _utc("2025-06-02T22:00:00+10:00")
    assert status["window_end"] == _utc("2025-06-03T02:00:00+10:00")

    await _at(hass, freezer, "2025-06-03T02:00:00+10:00")
    assert state_of(hass, "sensor.home_export_limit") == "unknown"

    # The night window is for Mondays only: Tuesday night is free.
    await _at(hass, freezer, "2025-06-03T23:00:00+10:00")
    assert state_of(hass, "sensor.home_export_limit") == "unknown"
    assert state_of(hass, "sensor.export_charge_next_change") == _utc("2025-06-04T10:00:00+10:00")


async def test_switching_the_limiter_off_needs_no_reload(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """switch.<limiter>_enabled takes the limiter out of the merge in place, and back."""
    freezer.move_to(MONDAY_11)
    entry = await setup_site(
        hass, site_entry([tariff_subentry(), limiter_subentry("Fixed", export_limit=2000)])
    )
    runtime = entry.runtime_data
    assert state_of(hass, "sensor.home_export_limit") == "0.0"
    assert state_of(hass, "switch.export_charge_enabled") == "on"

    await hass.services.async_call(
        "switch", "turn_off", {ATTR_ENTITY_ID: "switch.export_charge_enabled"}, blocking=True
    )
    await _at(hass, freezer, "2025-06-02T11:00:01+10:00")
    assert entry.runtime_data is runtime  # not reloaded
    assert state_of(hass, "switch.export_charge_enabled") == "off"
    assert state_of(hass, "sensor.home_export_limit") == "2000.0"
    assert attributes_of(hass, "sensor.home_export_limit")["source"] == "Fixed"
    assert state_of(hass, "sensor.export_charge_export_limit_asked") == "unknown"
    assert state_of(hass, "sensor.export_charge_active_window") == "Midday"  # the tariff's view
    (sub,) = [s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_TARIFF]
    assert sub.data[CONF_ENABLED] is False

    await hass.services.async_call(
        "switch", "turn_on", {ATTR_ENTITY_ID: "switch.export_charge_enabled"}, blocking=True
    )
    await _at(hass, freezer, "2025-06-02T11:00:02+10:00")
    assert entry.runtime_data is runtime
    assert state_of(hass, "sensor.home_export_limit") == "0.0"
    assert attributes_of(hass, "sensor.home_export_limit")["source"] == "Export charge"


async def test_reconfigure_changes_windows_and_keeps_the_switch(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """Reconfiguring shows the current windows, applies new ones, and leaves the switch off."""
    freezer.move_to(MONDAY_11)
    entry = await setup_site(hass, site_entry([tariff_subentry(enabled=False)]))
    assert state_of(hass, "switch.export_charge_enabled") == "off"
    assert state_of(hass, "sensor.home_export_limit") == "unknown"
    (sub,) = entry.subentries.values()
    runtime = entry.runtime_data

    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_TARIFF),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": sub.subentry_id},
    )
    assert result["step_id"] == "reconfigure"
    assert _suggested(result, CONF_NAME) == "Export charge"
    assert _suggested(result, CONF_WINDOWS) == [MIDDAY]
    assert _suggested(result, CONF_TIMEZONE) == SYDNEY

    # A mistake is shown on the reconfigure form, not the add form.
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "Export charge",
            CONF_PRESET: "custom",
            CONF_EXPORT_LIMIT: 0,
            CONF_WINDOWS: [{**MIDDAY, "end": "15:99"}],
        },
    )
    assert result["step_id"] == "reconfigure"
    assert result["errors"] == {CONF_WINDOWS: "invalid_windows"}

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "Export charge",
            CONF_PRESET: "custom",
            CONF_EXPORT_LIMIT: 0,
            CONF_TIMEZONE: SYDNEY,
            CONF_WINDOWS: [{**MIDDAY, "export_limit": 300}],
        },
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    updated = entry.subentries[sub.subentry_id]
    assert updated.data[CONF_ENABLED] is False
    assert updated.data[CONF_WINDOWS] == [{**MIDDAY, "export_limit": 300}]
    assert entry.runtime_data is not runtime  # new windows: the site was reloaded
    assert state_of(hass, "switch.export_charge_enabled") == "off"
    assert state_of(hass, "sensor.home_export_limit") == "unknown"

    await hass.services.async_call(
        "switch", "turn_on", {ATTR_ENTITY_ID: "switch.export_charge_enabled"}, blocking=True
    )
    await _at(hass, freezer, "2025-06-02T11:00:01+10:00")
    assert state_of(hass, "sensor.home_export_limit") == "300.0"
