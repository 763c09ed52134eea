"""MQTT limiter in Home Assistant: its flow, and limits from messages through HA's MQTT."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER, ConfigSubentryData
from homeassistant.const import ATTR_ENTITY_ID, CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_mqtt_message,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from custom_components.dynamic_export.const import (
    CONF_ENABLED,
    CONF_MAX_AGE,
    CONF_TOPIC,
    SUBENTRY_MQTT,
)

from ...helpers import attributes_of, next_cycle, state_of
from ...sites import added_site, limiter_subentry, setup_site, site_entry

TOPIC = "site/limits"
START = "2025-06-02T01:00:00+00:00"
"""Tests start the frozen clock on a whole second: the coordinator schedules its next cycle
from the whole second of the (frozen) loop time, and a fraction could put that in the past."""
NAME = "grid_operator"  # entity ids of the limiter "Grid operator"


def mqtt_subentry(max_age_s: float = 30.0) -> ConfigSubentryData:
    """An MQTT limiter as the flow stores it."""
    return ConfigSubentryData(
        data={CONF_TOPIC: TOPIC, CONF_MAX_AGE: max_age_s, CONF_ENABLED: True},
        subentry_type=SUBENTRY_MQTT,
        title="Grid operator",
        unique_id=None,
    )


async def _publish(hass: HomeAssistant, payload: str | dict[str, Any]) -> None:
    """A message arrives on the limiter's topic; then a control cycle runs."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    async_fire_mqtt_message(hass, TOPIC, text)
    await hass.async_block_till_done()
    await next_cycle(hass)


async def test_flow_aborts_without_mqtt(hass: HomeAssistant) -> None:
    """Without Home Assistant's MQTT integration there is nothing to subscribe with."""
    entry = added_site(hass)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_MQTT), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "mqtt_not_configured"


async def test_flow_checks_the_topic(hass: HomeAssistant, mqtt_mock: MqttMockHAClient) -> None:
    """Wildcards, empty topics, blank names and ages out of range are refused; reconfigure
    keeps the switch."""
    entry = added_site(hass)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_MQTT), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    flow_id = result["flow_id"]
    for topic in ("limits/#", "site/+/limits", "   "):
        result = await hass.config_entries.subentries.async_configure(
            flow_id, {CONF_NAME: "Grid operator", CONF_TOPIC: topic, CONF_MAX_AGE: 60}
        )
        assert result["errors"] == {CONF_TOPIC: "invalid_topic"}, topic
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_NAME: "  ", CONF_TOPIC: TOPIC, CONF_MAX_AGE: 60}
    )
    assert result["errors"] == {CONF_NAME: "name_blank"}
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_NAME: "Grid operator", CONF_TOPIC: TOPIC, CONF_MAX_AGE: 0}
    )
    assert result["errors"] == {CONF_MAX_AGE: "max_age_out_of_range"}
    assert result["description_placeholders"] == {"max_age_min": "1", "max_age_max": "86400"}
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_NAME: "Grid operator", CONF_TOPIC: f" {TOPIC} ", CONF_MAX_AGE: 45}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.title == "Grid operator"
    assert sub.data == {CONF_TOPIC: TOPIC, CONF_MAX_AGE: 45.0, CONF_ENABLED: True}

    hass.config_entries.async_update_subentry(entry, sub, data={**sub.data, CONF_ENABLED: False})
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_MQTT),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": sub.subentry_id},
    )
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: "Grid operator", CONF_TOPIC: "site/other", CONF_MAX_AGE: 45}
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[sub.subentry_id].data == {
        CONF_TOPIC: "site/other",
        CONF_MAX_AGE: 45.0,
        CONF_ENABLED: False,
    }
    # Let the mocked MQTT client's one-second housekeeping timer run, so none is left behind.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=2))
    await hass.async_block_till_done()


async def test_messages_set_limits_until_they_expire(
    hass: HomeAssistant,
    mqtt_mock: MqttMockHAClient,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Valid messages merge with the other limiters; bad ones are logged and ignored."""
    freezer.move_to(START)
    entry = await setup_site(
        hass,
        site_entry([mqtt_subentry(max_age_s=30), limiter_subentry("Fixed", export_limit=1000)]),
    )
    assert state_of(hass, "sensor.home_export_limit") == "1000.0"
    assert state_of(hass, f"sensor.{NAME}_last_message") == "unknown"
    assert state_of(hass, f"sensor.{NAME}_export_limit_asked") == "unknown"
    assert state_of(hass, f"switch.{NAME}_enabled") == "on"
    status = attributes_of(hass, f"sensor.{NAME}_last_message")
    assert status["controls"] is None
    assert status["stale"] is True
    assert status["rejected"] == 0

    # The fixed limit is stricter on export; MQTT alone sets a generation limit.
    first = dt_util.utcnow()
    await _publish(hass, {"opModExpLimW": 1500, "opModGenLimW": 4000, "opModImpLimW": None})
    assert state_of(hass, "sensor.home_export_limit") == "1000.0"
    assert attributes_of(hass, "sensor.home_export_limit")["source"] == "Fixed"
    assert state_of(hass, "sensor.home_generation_limit") == "4000.0"
    assert attributes_of(hass, "sensor.home_generation_limit")["source"] == "Grid operator"
    assert state_of(hass, f"sensor.{NAME}_export_limit_asked") == "1500.0"
    assert state_of(hass, f"sensor.{NAME}_generation_limit_asked") == "4000.0"
    assert state_of(hass, f"sensor.{NAME}_import_limit_asked") == "unknown"
    assert state_of(hass, f"sensor.{NAME}_last_message") == first.isoformat()
    status = attributes_of(hass, f"sensor.{NAME}_last_message")
    assert status["controls"] == {"export_limit": 1500.0, "generation_limit": 4000.0}
    assert status["stale"] is False
    assert status["expires_at"] == (first + timedelta(seconds=30)).isoformat()

    # A new message replaces the previous one whole: MQTT now wins on export.
    freezer.tick(timedelta(seconds=5))
    second = dt_util.utcnow()
    await _publish(hass, {"opModExpLimW": 200})
    assert state_of(hass, "sensor.home_export_limit") == "200.0"
    assert attributes_of(hass, "sensor.home_export_limit")["source"] == "Grid operator"
    assert state_of(hass, "sensor.home_generation_limit") == "unknown"
    assert state_of(hass, f"sensor.{NAME}_last_message") == second.isoformat()

    # Invalid messages: a log line each, the last valid message stays in force.
    freezer.tick(timedelta(seconds=5))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for bad in ('{"opModExpLimitW": 0}', "not json", '{"opModConnect": 0}', "[1500]"):
            await _publish(hass, bad)
    warnings = [r.getMessage() for r in caplog.records if "ignored MQTT message" in r.getMessage()]
    assert len(warnings) == 4
    assert warnings[0].startswith(f"Grid operator: ignored MQTT message on {TOPIC}: unknown keys")
    assert state_of(hass, "sensor.home_export_limit") == "200.0"
    assert state_of(hass, f"sensor.{NAME}_last_message") == second.isoformat()
    status = attributes_of(hass, f"sensor.{NAME}_last_message")
    assert status["rejected"] == 4
    assert status["last_error"] == "payload must be a JSON object"
    assert status["last_error_at"] == dt_util.utcnow().isoformat()
    assert status["stale"] is False

    # 30 s after the last valid message it still counts; after that it does not.
    freezer.move_to(second + timedelta(seconds=30))
    await next_cycle(hass)
    assert state_of(hass, "sensor.home_export_limit") == "200.0"
    freezer.move_to(second + timedelta(seconds=31))
    await next_cycle(hass)
    assert state_of(hass, "sensor.home_export_limit") == "1000.0"
    assert attributes_of(hass, "sensor.home_export_limit")["source"] == "Fixed"
    assert state_of(hass, f"sensor.{NAME}_export_limit_asked") == "unknown"
    assert state_of(hass, f"sensor.{NAME}_last_message") == second.isoformat()
    assert attributes_of(hass, f"sensor.{NAME}_last_message")["stale"] is True

    # Connect / energize come through as well.
    await _publish(hass, {"opModConnect": False})
    assert attributes_of(hass, "sensor.home_control_state")["connect"] is False
    assert entry.runtime_data.limiters
    # Unload here, not in teardown: unsubscribing starts the mocked MQTT client's cooldown
    # timer, which must run before the test ends or it is left behind.
    assert await hass.config_entries.async_unload(entry.entry_id)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=2))
    await hass.async_block_till_done()


async def test_switched_off_and_unloaded(
    hass: HomeAssistant, mqtt_mock: MqttMockHAClient, freezer: FrozenDateTimeFactory
) -> None:
    """Switched off, messages no longer count; unloaded, the topic is no longer followed."""
    freezer.move_to(START)
    entry: MockConfigEntry = await setup_site(hass, site_entry([mqtt_subentry()]))
    await _publish(hass, {"opModExpLimW": 700})
    assert state_of(hass, "sensor.home_export_limit") == "700.0"

    await hass.services.async_call(
        "switch", "turn_off", {ATTR_ENTITY_ID: f"switch.{NAME}_enabled"}, blocking=True
    )
    await next_cycle(hass)
    assert state_of(hass, "sensor.home_export_limit") == "unknown"
    assert state_of(hass, f"sensor.{NAME}_export_limit_asked") == "unknown"

    (handle,) = entry.runtime_data.limiters.values()
    limiter: Any = handle.limiter
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    freezer.tick(timedelta(seconds=1))
    async_fire_mqtt_message(hass, TOPIC, json.dumps({"opModExpLimW": 100}))
    await hass.async_block_till_done()
    assert limiter.status(dt_util.utcnow()).controls.export_limit == 700.0
