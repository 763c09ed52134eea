"""Battery charge rule in Home Assistant: its flow, and export limits from a real SOC state."""

from __future__ import annotations

from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER, ConfigSubentryData
from homeassistant.const import ATTR_ENTITY_ID, CONF_NAME, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dynamic_export.const import (
    CONF_ENABLED,
    CONF_HIGH_EXPORT_LIMIT,
    CONF_HYSTERESIS,
    CONF_LOW_EXPORT_LIMIT,
    CONF_MAX_AGE,
    CONF_SOC_ENTITY,
    CONF_THRESHOLD,
    SUBENTRY_SOC,
)

from ...helpers import next_cycle, state_of
from ...sites import added_site, limiter_subentry, setup_site, site_entry

BATTERY = "sensor.battery"
BATTERY_ATTRIBUTES = {"unit_of_measurement": "%", "device_class": "battery"}
START = "2025-06-02T01:00:00+00:00"
"""Tests start the frozen clock on a whole second: the coordinator schedules its next cycle
from the whole second of the (frozen) loop time, and a fraction could put that in the past."""


def soc_subentry(
    *,
    high: float | None = 3000.0,
    low: float = 0.0,
    threshold: float = 80.0,
    hysteresis: float = 10.0,
    max_age_min: float = 15.0,
) -> ConfigSubentryData:
    """A battery charge rule as the flow stores it: 0 W below 80 %, ``high`` from 90 %."""
    return ConfigSubentryData(
        data={
            CONF_SOC_ENTITY: BATTERY,
            CONF_THRESHOLD: threshold,
            CONF_HYSTERESIS: hysteresis,
            CONF_LOW_EXPORT_LIMIT: low,
            CONF_HIGH_EXPORT_LIMIT: high,
            CONF_MAX_AGE: max_age_min,
            CONF_ENABLED: True,
        },
        subentry_type=SUBENTRY_SOC,
        title="Battery first",
        unique_id=None,
    )


async def _battery(hass: HomeAssistant, soc: str) -> None:
    """The battery sensor reports ``soc``, then a control cycle runs."""
    hass.states.async_set(BATTERY, soc, BATTERY_ATTRIBUTES)
    await hass.async_block_till_done()
    await next_cycle(hass)


async def _site(hass: HomeAssistant, sub: ConfigSubentryData) -> MockConfigEntry:
    return await setup_site(hass, site_entry([sub]))


async def test_flow_picks_the_sensor_and_checks_the_settings(hass: HomeAssistant) -> None:
    """Thresholds that cannot work are refused; a good rule is stored with the switch on."""
    hass.states.async_set(BATTERY, "50", BATTERY_ATTRIBUTES)
    entry = added_site(hass)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SOC), context={"source": SOURCE_USER}
    )
    assert result["step_id"] == "user"
    flow_id = result["flow_id"]
    base = {
        CONF_NAME: " Battery first ",
        CONF_SOC_ENTITY: BATTERY,
        CONF_THRESHOLD: 80,
        CONF_HYSTERESIS: 10,
        CONF_LOW_EXPORT_LIMIT: 0,
        CONF_MAX_AGE: 15,
    }
    for bad in (
        {CONF_THRESHOLD: 95, CONF_HYSTERESIS: 10},  # the upper edge would be 105 %
        {CONF_LOW_EXPORT_LIMIT: 2000, CONF_HIGH_EXPORT_LIMIT: 1000},  # high below low
    ):
        result = await hass.config_entries.subentries.async_configure(flow_id, {**base, **bad})
        assert result["type"] is FlowResultType.FORM, bad
        assert result["errors"] == {"base": "invalid_soc_settings"}, bad
    assert not entry.subentries

    result = await hass.config_entries.subentries.async_configure(flow_id, base)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.title == "Battery first"
    assert sub.data == {
        CONF_SOC_ENTITY: BATTERY,
        CONF_THRESHOLD: 80.0,
        CONF_HYSTERESIS: 10.0,
        CONF_LOW_EXPORT_LIMIT: 0.0,
        CONF_HIGH_EXPORT_LIMIT: None,  # empty: no limit once charged
        CONF_MAX_AGE: 15.0,
        CONF_ENABLED: True,
    }

    # Reconfigure keeps the switch and shows the form as a reconfigure step.
    hass.config_entries.async_update_subentry(entry, sub, data={**sub.data, CONF_ENABLED: False})
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SOC),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": sub.subentry_id},
    )
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**base, CONF_HIGH_EXPORT_LIMIT: 5000}
    )
    assert result["reason"] == "reconfigure_successful"
    updated = entry.subentries[sub.subentry_id]
    assert updated.data[CONF_HIGH_EXPORT_LIMIT] == 5000.0
    assert updated.data[CONF_ENABLED] is False


async def test_export_limit_follows_the_battery_with_hysteresis(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """Low limit below the threshold, high limit from threshold + hysteresis, none between."""
    freezer.move_to(START)
    hass.states.async_set(BATTERY, "50", BATTERY_ATTRIBUTES)
    await _site(hass, soc_subentry())
    assert state_of(hass, "sensor.home_export_limit") == "0.0"
    state = hass.states.get("sensor.home_export_limit")
    assert state is not None
    assert state.attributes["source"] == "Battery first"
    assert state_of(hass, "sensor.battery_first_export_limit_asked") == "0.0"
    assert state_of(hass, "switch.battery_first_enabled") == "on"

    steps = [
        ("85", "0.0"),  # climbing inside the band: still low
        ("90", "3000.0"),  # threshold + hysteresis reached
        ("85", "3000.0"),  # falling inside the band: still high
        ("80", "3000.0"),  # at the threshold: still high
        ("79.5", "0.0"),  # below the threshold
        ("89", "0.0"),
        ("95", "3000.0"),
        (STATE_UNAVAILABLE, "0.0"),  # doubtful: low
        ("85", "0.0"),  # after a doubtful spell it must climb past the edge again
        ("95", "3000.0"),
        (STATE_UNKNOWN, "0.0"),
        ("95", "3000.0"),
        ("not a number", "0.0"),
        ("95", "3000.0"),
        ("120", "0.0"),  # outside 0–100 %
    ]
    for soc, expected in steps:
        await _battery(hass, soc)
        assert state_of(hass, "sensor.home_export_limit") == expected, soc
        assert state_of(hass, "sensor.battery_first_export_limit_asked") == expected, soc

    # The sensor disappears: low.
    await _battery(hass, "95")
    hass.states.async_remove(BATTERY)
    await hass.async_block_till_done()
    await next_cycle(hass)
    assert state_of(hass, "sensor.home_export_limit") == "0.0"


async def test_no_high_limit_means_no_limit_and_others_still_merge(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """With no high limit a charged battery asks for nothing; a fixed limit then sets it."""
    freezer.move_to(START)
    hass.states.async_set(BATTERY, "95", BATTERY_ATTRIBUTES)
    await setup_site(
        hass, site_entry([soc_subentry(high=None), limiter_subentry("Fixed", export_limit=5000)])
    )
    state = hass.states.get("sensor.home_export_limit")
    assert state is not None
    assert state.state == "5000.0"
    assert state.attributes["source"] == "Fixed"
    assert state_of(hass, "sensor.battery_first_export_limit_asked") == "unknown"

    await _battery(hass, "40")
    state = hass.states.get("sensor.home_export_limit")
    assert state is not None
    assert state.state == "0.0"
    assert state.attributes["source"] == "Battery first"

    # Switched off, the rule no longer counts (without a reload).
    await hass.services.async_call(
        "switch", "turn_off", {ATTR_ENTITY_ID: "switch.battery_first_enabled"}, blocking=True
    )
    await next_cycle(hass)
    assert state_of(hass, "sensor.home_export_limit") == "5000.0"
    assert state_of(hass, "sensor.battery_first_export_limit_asked") == "unknown"


async def test_missing_sensor_at_start_is_low_until_it_reports(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """A sensor that does not exist yet (still starting) keeps export low until it reports."""
    freezer.move_to(START)
    await _site(hass, soc_subentry())
    assert state_of(hass, "sensor.home_export_limit") == "0.0"
    await _battery(hass, "92")
    assert state_of(hass, "sensor.home_export_limit") == "3000.0"


async def test_a_steady_charge_reported_again_stays_fresh(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """A full battery reports the same 100 % for hours: each report keeps it fresh.

    Only a sensor that stops reporting for longer than the maximum age counts as stale.
    """
    freezer.move_to(START)
    hass.states.async_set(BATTERY, "100", BATTERY_ATTRIBUTES)
    await _site(hass, soc_subentry(max_age_min=15))
    assert state_of(hass, "sensor.home_export_limit") == "3000.0"

    for _ in range(4):  # an hour of unchanged reports every 10 minutes
        freezer.tick(timedelta(minutes=10))
        await _battery(hass, "100")
        assert state_of(hass, "sensor.home_export_limit") == "3000.0"

    freezer.tick(timedelta(minutes=14))
    await next_cycle(hass)
    assert state_of(hass, "sensor.home_export_limit") == "3000.0"
    freezer.tick(timedelta(minutes=2))  # 16 minutes without a report
    await next_cycle(hass)
    assert state_of(hass, "sensor.home_export_limit") == "0.0"

    await _battery(hass, "100")  # reporting again
    assert state_of(hass, "sensor.home_export_limit") == "3000.0"
