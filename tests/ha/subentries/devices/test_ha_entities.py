"""Home Assistant entities as devices: a grid power sensor as the meter, inverters limited
through number entities.

The "inverters" here are an ``input_number`` (limit in W) and a template ``number`` (limit in %,
kept in an ``input_number``), so both ``input_number.set_value`` and ``number.set_value`` are
exercised; a small physics loop makes their power sensors follow the limits and writes the
grid power sensor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntry
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component

from custom_components.dynamic_export.const import (
    CONF_INVERT,
    CONF_KIND,
    CONF_LIMIT_ENTITY,
    CONF_LIMIT_UNIT,
    CONF_MAX_AGE,
    CONF_POWER_ENTITY,
    CONF_RATED_POWER,
    KIND_HA_ENTITY,
    LIMIT_UNIT_PERCENT,
    LIMIT_UNIT_WATT,
    SUBENTRY_INVERTER,
    SUBENTRY_METER,
)
from custom_components.dynamic_export.core.controller import ControlState
from custom_components.dynamic_export.core.errors import DeviceResponseError
from custom_components.dynamic_export.core.measurements import InverterCommand
from custom_components.dynamic_export.entity import SPACING_S
from custom_components.dynamic_export.subentries.devices.ha_entities import (
    EntityValueError,
    HaEntityInverter,
    HaEntityMeter,
    number_range,
)

from ...helpers import start_reconfigure, start_subentry_flow, state_of, wait_for
from ...peers import (
    GRID,
    PCT_BACKING,
    PCT_LIMIT,
    PV1_POWER,
    PV2_POWER,
    W_LIMIT,
    EntitySite,
    run_until,
    seconds_over,
    set_power,
)
from ...sites import (
    added_site,
    entity_inverter_subentry,
    entity_meter_subentry,
    limiter_subentry,
    setup_site,
    site_entry,
)


@pytest.fixture
async def numbers(hass: HomeAssistant) -> None:
    """A W limit (input_number) and a % limit (template number over an input_number)."""
    assert await async_setup_component(
        hass,
        "input_number",
        {
            "input_number": {
                "pv1_limit": {"min": 0, "max": 5000, "step": 1, "initial": 5000},
                "pv2_limit_backing": {"min": 0, "max": 100, "step": 1, "initial": 100},
            }
        },
    )
    assert await async_setup_component(
        hass,
        "template",
        {
            "template": [
                {
                    "number": [
                        {
                            "name": "PV2 limit",
                            "state": "{{ states('input_number.pv2_limit_backing') }}",
                            "min": 0,
                            "max": 100,
                            "step": 1,
                            "set_value": [
                                {
                                    "action": "input_number.set_value",
                                    "target": {"entity_id": PCT_BACKING},
                                    "data": {"value": "{{ value }}"},
                                }
                            ],
                        }
                    ]
                }
            ]
        },
    )
    await hass.async_block_till_done()
    assert hass.states.get(PCT_LIMIT).attributes["max"] == 100


def _inverter_form(**changes: Any) -> dict[str, Any]:
    return {
        CONF_NAME: " Balcony ",
        CONF_POWER_ENTITY: PV1_POWER,
        CONF_LIMIT_ENTITY: W_LIMIT,
        CONF_LIMIT_UNIT: LIMIT_UNIT_WATT,
        CONF_RATED_POWER: 5000,
        **changes,
    }


async def _refused_inverter_forms(
    hass: HomeAssistant, entry: ConfigEntry, cases: list[tuple[dict[str, Any], dict[str, str]]]
) -> Any:
    """Submit the inverter form once per case: each stays open with exactly its errors.

    The last form shown, for its placeholders.
    """
    result: Any = None
    for changes, errors in cases:
        result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_HA_ENTITY)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], _inverter_form(**changes)
        )
        assert result["type"] is FlowResultType.FORM, errors
        assert result["errors"] == errors
    return result


async def test_add_and_reconfigure_entity_inverter(hass: HomeAssistant, numbers: None) -> None:
    """The entities are checked; the limit entity is the unique id and may be changed."""
    set_power(hass, PV1_POWER, 1200)
    set_power(hass, PV2_POWER, 0.8, "kW")
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_HA_ENTITY)
    assert result["step_id"] == "ha_entity"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _inverter_form()
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert (sub.title, sub.unique_id) == ("Balcony", W_LIMIT)
    assert sub.data == {
        CONF_KIND: KIND_HA_ENTITY,
        CONF_POWER_ENTITY: PV1_POWER,
        CONF_LIMIT_ENTITY: W_LIMIT,
        CONF_LIMIT_UNIT: LIMIT_UNIT_WATT,
        CONF_RATED_POWER: 5000.0,
        CONF_MAX_AGE: 60.0,
    }

    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_HA_ENTITY)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _inverter_form()
    )
    assert result["reason"] == "already_configured"

    result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub.subentry_id)
    assert result["step_id"] == "ha_entity"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        _inverter_form(
            **{
                CONF_NAME: "Roof",
                CONF_POWER_ENTITY: PV2_POWER,
                CONF_LIMIT_ENTITY: PCT_LIMIT,
                CONF_LIMIT_UNIT: LIMIT_UNIT_PERCENT,
                CONF_RATED_POWER: 3000,
            }
        ),
    )
    assert result["reason"] == "reconfigure_successful"
    sub = entry.subentries[sub.subentry_id]
    assert (sub.title, sub.unique_id) == ("Roof", PCT_LIMIT)
    assert sub.data[CONF_LIMIT_UNIT] == LIMIT_UNIT_PERCENT


async def test_entity_inverter_flow_errors(hass: HomeAssistant, numbers: None) -> None:
    """Missing entities, non-numbers, wrong units and numbers without a range are refused."""
    set_power(hass, "sensor.text_power", "abc")
    set_power(hass, "sensor.off_power", "unavailable")
    set_power(hass, "sensor.va_power", 100, "VA")
    hass.states.async_set("number.no_range", "5")
    hass.states.async_set("number.broken", "n/a", {"min": 0, "max": 10})
    set_power(hass, PV1_POWER, 1200)
    entry = added_site(hass)
    cases = [
        ({CONF_POWER_ENTITY: "sensor.missing_power"}, {CONF_POWER_ENTITY: "entity_not_found"}),
        ({CONF_POWER_ENTITY: "sensor.text_power"}, {CONF_POWER_ENTITY: "not_numeric"}),
        ({CONF_POWER_ENTITY: "sensor.off_power"}, {CONF_POWER_ENTITY: "not_numeric"}),
        ({CONF_POWER_ENTITY: "sensor.va_power"}, {CONF_POWER_ENTITY: "unsupported_unit"}),
        ({CONF_LIMIT_ENTITY: "number.missing"}, {CONF_LIMIT_ENTITY: "entity_not_found"}),
        ({CONF_LIMIT_ENTITY: "number.no_range"}, {CONF_LIMIT_ENTITY: "not_a_number_entity"}),
        ({CONF_LIMIT_ENTITY: "number.broken"}, {CONF_LIMIT_ENTITY: "not_numeric"}),
        ({CONF_NAME: "   "}, {CONF_NAME: "name_blank"}),
        ({CONF_MAX_AGE: 4}, {CONF_MAX_AGE: "max_age_out_of_range"}),
        ({CONF_MAX_AGE: 3601}, {CONF_MAX_AGE: "max_age_out_of_range"}),
    ]
    await _refused_inverter_forms(hass, entry, cases)
    assert not entry.subentries


async def test_add_and_reconfigure_entity_meter(hass: HomeAssistant) -> None:
    """A grid power sensor becomes the site meter; a bad sensor is refused."""
    set_power(hass, GRID, -1.5, "kW")
    set_power(hass, "sensor.other_grid", 300)
    entry = added_site(hass)
    form = {CONF_NAME: "Grid", CONF_POWER_ENTITY: GRID, CONF_INVERT: False, CONF_MAX_AGE: 10}
    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_HA_ENTITY)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**form, CONF_POWER_ENTITY: "sensor.missing"}
    )
    assert result["errors"] == {CONF_POWER_ENTITY: "entity_not_found"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**form, CONF_NAME: " ", CONF_MAX_AGE: 601}
    )
    assert result["errors"] == {CONF_NAME: "name_blank", CONF_MAX_AGE: "max_age_out_of_range"}
    assert result["description_placeholders"] == {"max_age_min": "1", "max_age_max": "600"}
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.data == {
        CONF_KIND: KIND_HA_ENTITY,
        CONF_POWER_ENTITY: GRID,
        CONF_INVERT: False,
        CONF_MAX_AGE: 10.0,
    }

    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_METER), context={"source": SOURCE_USER}
    )
    assert result["reason"] == "site_has_meter"

    result = await start_reconfigure(hass, entry, SUBENTRY_METER, sub.subentry_id)
    assert result["step_id"] == "ha_entity"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**form, CONF_POWER_ENTITY: "sensor.other_grid", CONF_INVERT: True}
    )
    assert result["reason"] == "reconfigure_successful"
    sub = entry.subentries[sub.subentry_id]
    assert sub.unique_id == "sensor.other_grid"
    assert sub.data[CONF_INVERT] is True


async def test_entity_clients_convert_and_clamp(hass: HomeAssistant, numbers: None) -> None:
    """kW and W, the meter's sign, % ↔ W, the number's range and step, release at max."""
    meter = HaEntityMeter(hass, GRID, invert=True, max_age_s=5)
    set_power(hass, GRID, 1.25, "kW")  # export positive: 1.25 kW exported
    assert (await meter.async_read()).grid_power_w == -1250.0

    watts = HaEntityInverter(
        hass, PV1_POWER, W_LIMIT, limit_unit=LIMIT_UNIT_WATT, rated_power_w=4000
    )
    set_power(hass, PV1_POWER, 2.5, "kW")
    reading = await watts.async_read()
    assert (reading.ac_power_w, reading.limit_pct) == (2500.0, 125.0)  # 5000 W of 4000 W
    await watts.async_apply(InverterCommand(connect=True, limit_pct=33.33))
    assert hass.states.get(W_LIMIT).state == "1333.0"  # rounded down to the 1 W step
    await watts.async_apply(InverterCommand(connect=False, limit_pct=50))
    assert float(hass.states.get(W_LIMIT).state) == 0  # no disconnect: the minimum
    await watts.async_release()
    assert float(hass.states.get(W_LIMIT).state) == 5000

    percent = HaEntityInverter(
        hass, PV2_POWER, PCT_LIMIT, limit_unit=LIMIT_UNIT_PERCENT, rated_power_w=3000
    )
    set_power(hass, PV2_POWER, 900, None)  # no unit: watts
    await percent.async_apply(InverterCommand(connect=True, limit_pct=42.7))
    await hass.async_block_till_done()
    assert float(hass.states.get(PCT_BACKING).state) == 42
    reading = await percent.async_read()
    assert (reading.ac_power_w, reading.limit_pct, reading.limit_w) == (900.0, 42.0, 1260.0)
    await percent.async_apply(InverterCommand(connect=True, limit_pct=150))
    await hass.async_block_till_done()
    assert float(hass.states.get(PCT_BACKING).state) == 100
    assert watts.revert_timeout_s == 0.0


@pytest.fixture
async def entity_site(hass: HomeAssistant, numbers: None) -> AsyncIterator[EntitySite]:
    model = EntitySite(hass, load_w=1000.0)
    model.site.start()
    yield model
    await model.site.stop()


EXPORT_LIMIT = 1500.0


async def test_entity_devices_hold_the_export_limit(
    hass: HomeAssistant, entity_site: EntitySite
) -> None:
    """Export settles at the limit through set_value calls; a load step is followed."""
    site = entity_site.site
    entry = site_entry(
        [
            entity_inverter_subentry("PV1", PV1_POWER, W_LIMIT, LIMIT_UNIT_WATT, 4000),
            entity_inverter_subentry("PV2", PV2_POWER, PCT_LIMIT, LIMIT_UNIT_PERCENT, 3000),
            entity_meter_subentry(invert=True, max_age=2.0),
            limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
        ]
    )
    await setup_site(hass, entry)
    start = site.t
    # Unlimited: 5 kW of sun, 1 kW load, 4 kW export.
    await run_until(site, start + 10)
    steady = site.window(start + 6, start + 10)
    assert all(EXPORT_LIMIT - 150 <= s.export_w <= EXPORT_LIMIT + 50 for s in steady), steady
    assert seconds_over(site.window(start, start + 10), EXPORT_LIMIT + 100) <= 4.0

    site.load_w = 2500.0
    await run_until(site, start + 20)
    steady = site.window(start + 16, start + 20)
    assert all(EXPORT_LIMIT - 150 <= s.export_w <= EXPORT_LIMIT + 50 for s in steady), steady
    site.load_w = 500.0
    await run_until(site, start + 30)
    assert seconds_over(site.window(start + 20, start + 30), EXPORT_LIMIT + 100) <= 5.0
    steady = site.window(start + 26, start + 30)
    assert all(EXPORT_LIMIT - 150 <= s.export_w <= EXPORT_LIMIT + 50 for s in steady), steady

    # Shown in W, + import / − export; paced, so a move of a step shows within SPACING_S.
    await wait_for(
        lambda: abs(float(state_of(hass, "sensor.grid_grid_power")) + EXPORT_LIMIT) < 200,
        SPACING_S + 3,
        "the grid power sensor near the export limit",
    )
    assert float(hass.states.get("sensor.pv2_power_limit").state) < 100
    assert float(hass.states.get("sensor.pv1_rated_power").state) == 4000
    assert hass.states.get("sensor.home_control_state").state == ControlState.CONTROLLING

    # Control off hands both back: the numbers go to their maximum.
    await hass.services.async_call(
        "switch", "turn_off", {"entity_id": "switch.home_control"}, blocking=True
    )
    await wait_for(
        lambda: (
            hass.states.get(W_LIMIT).state == "5000.0"
            and hass.states.get(PCT_BACKING).state == "100.0"
        ),
        5,
        "limits released",
    )


async def test_stale_meter_and_broken_entities_keep_the_loop_running(
    hass: HomeAssistant, entity_site: EntitySite
) -> None:
    """A grid sensor not reported for longer than its age is unavailable: fail-safe."""
    entry = site_entry(
        [
            entity_inverter_subentry("PV1", PV1_POWER, W_LIMIT, LIMIT_UNIT_WATT, 4000),
            entity_meter_subentry(invert=True, max_age=2.0),
            limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
        ],
        meter_max_age=5.0,
    )
    await setup_site(hass, entry)
    coordinator = entry.runtime_data.coordinator
    await wait_for(
        lambda: hass.states.get("binary_sensor.grid_connection").state == "on", 5, "meter"
    )

    entity_site.report_grid = False
    await wait_for(
        lambda: hass.states.get("binary_sensor.grid_connection").state == "off", 5, "stale"
    )
    error = hass.states.get("binary_sensor.grid_connection").attributes["error"]
    assert "has not been reported for" in error
    await wait_for(
        lambda: hass.states.get("sensor.home_control_state").state == ControlState.FAIL_SAFE,
        10,
        "fail-safe",
    )
    assert hass.states.get("sensor.home_control_state").attributes["reason"] in {
        "meter_stale",
        "meter_unavailable",
    }
    entity_site.report_grid = True
    await wait_for(
        lambda: hass.states.get("sensor.home_control_state").state == ControlState.CONTROLLING,
        10,
        "control again",
    )

    # The limit number disappears: writes fail, the inverter says why, the loop runs on.
    entity_site.site.load_w = 3000.0  # so a new limit is due
    hass.states.async_set(W_LIMIT, "unavailable", {"min": 0, "max": 5000})
    await wait_for(
        lambda: (
            "unavailable"
            in (hass.states.get("binary_sensor.pv1_connection").attributes.get("error") or "")
        ),
        10,
        "write error shown",
    )
    assert coordinator.last_update_success
    assert hass.states.get("sensor.pv1_ac_power").state == "unavailable"
    assert coordinator.last_update_success

    # A power sensor that is not a number makes the inverter unavailable.
    hass.states.async_set(W_LIMIT, "3000", {"min": 0, "max": 5000, "step": 1})
    entity_site.site.sinks.clear()
    set_power(hass, PV1_POWER, "garbage")
    await wait_for(
        lambda: (
            "not a number"
            in (hass.states.get("binary_sensor.pv1_connection").attributes.get("error") or "")
        ),
        5,
        "bad power",
    )
    assert hass.states.get("sensor.pv1_ac_power").state == "unavailable"
    assert coordinator.last_update_success


async def test_entity_clients_refuse_what_they_cannot_use(
    hass: HomeAssistant, numbers: None
) -> None:
    """Bad settings, an unavailable number, a limit entity without set_value, a bad command."""
    with pytest.raises(ValueError, match="max_age_s"):
        HaEntityMeter(hass, GRID, max_age_s=0)
    with pytest.raises(ValueError, match="rated_power_w"):
        HaEntityInverter(hass, PV1_POWER, W_LIMIT, limit_unit=LIMIT_UNIT_WATT, rated_power_w=0)
    inverter = HaEntityInverter(
        hass, PV1_POWER, "sensor.limit_like", limit_unit=LIMIT_UNIT_WATT, rated_power_w=1000
    )
    with pytest.raises(ValueError, match="finite"):
        await inverter.async_apply(InverterCommand(connect=True, limit_pct=float("nan")))
    hass.states.async_set("sensor.limit_like", "10", {"min": 0, "max": 100})
    with pytest.raises(DeviceResponseError, match="setting 50 failed"):
        await inverter.async_apply(InverterCommand(connect=True, limit_pct=5))
    hass.states.async_set("number.asleep", "unavailable", {"min": 0, "max": 100})
    with pytest.raises(EntityValueError) as err:
        number_range(hass, "number.asleep")
    assert err.value.reason == "not_numeric"


async def test_entity_forms_check_name_rating_and_age_on_their_fields(
    hass: HomeAssistant, numbers: None
) -> None:
    """A blank or taken name, a rating or maximum age out of range: translated field errors.

    The rating used to be held to its range by the schema alone, which fails the form with
    an untranslated message and nothing beside the field; a name another part of the site
    has made a second device of that name (entity ids ending in ``_2``).
    """
    set_power(hass, PV1_POWER, 1200)
    set_power(hass, GRID, 300)
    entry = added_site(hass, [limiter_subentry("Network limit", export_limit=1500.0)])
    cases = [
        ({CONF_NAME: "  "}, {CONF_NAME: "name_blank"}),
        ({CONF_NAME: "network limit"}, {CONF_NAME: "name_taken"}),
        ({CONF_RATED_POWER: 0}, {CONF_RATED_POWER: "rated_power_out_of_range"}),
        ({CONF_RATED_POWER: 10_000_000}, {CONF_RATED_POWER: "rated_power_out_of_range"}),
    ]
    result = await _refused_inverter_forms(hass, entry, cases)
    assert result["description_placeholders"]["rated_power_max"] == "100000"
    meter = {CONF_NAME: "Grid", CONF_POWER_ENTITY: GRID, CONF_INVERT: False, CONF_MAX_AGE: 10}
    for changes, errors in [
        ({CONF_NAME: ""}, {CONF_NAME: "name_blank"}),
        ({CONF_MAX_AGE: 0}, {CONF_MAX_AGE: "max_age_out_of_range"}),
        ({CONF_MAX_AGE: 601}, {CONF_MAX_AGE: "max_age_out_of_range"}),
    ]:
        result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_HA_ENTITY)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {**meter, **changes}
        )
        assert result["type"] is FlowResultType.FORM, errors
        assert result["errors"] == errors
    assert result["description_placeholders"] == {"max_age_min": "1", "max_age_max": "600"}
    assert len(entry.subentries) == 1
