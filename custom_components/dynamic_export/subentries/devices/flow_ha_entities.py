"""Inverters and meters already in Home Assistant, seen through their entities."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import (
    SubentryFlowResult,
)
from homeassistant.const import CONF_NAME
from homeassistant.helpers import selector

from ...compat import vol
from ...const import (
    CONF_INVERT,
    CONF_KIND,
    CONF_LIMIT_ENTITY,
    CONF_LIMIT_UNIT,
    CONF_MAX_AGE,
    CONF_POWER_ENTITY,
    CONF_RATED_POWER,
    DEFAULT_ENTITY_MAX_AGE,
    DEFAULT_INVERTER_ENTITY_MAX_AGE,
    KIND_HA_ENTITY,
    LIMIT_UNIT_PERCENT,
    LIMIT_UNIT_WATT,
)
from ...selectors import number_selector
from ...validation import FormCheck
from .flow_base import RATING_RANGE, RATING_WATTS, DeviceSteps, dropdown
from .ha_entities import EntityValueError, number_range, read_power_w

METER_MAX_AGE_RANGE = (1, 600)
"""Seconds a grid power sensor may go unreported: a meter is read every cycle."""

INVERTER_MAX_AGE_RANGE = (5, 3600)
"""Seconds an inverter's power sensor may go unreported: its integration may poll slowly."""


class _NamedSteps(DeviceSteps):
    """A device the user names: its name must be new to the site."""

    def _names_but(self, unique_id: str) -> list[str]:
        """The other parts' names, but that of the same entity (adding it twice aborts)."""
        return [sub.title for sub in self._others() if sub.unique_id != unique_id]


class HaEntityInverterSteps(_NamedSteps):
    """An inverter already in Home Assistant: a power sensor and a number that limits it."""

    async def async_step_ha_entity(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Choose the entities, the limit's unit, the rating and how old the power may get."""
        check = FormCheck()
        errors = check.errors
        if user_input is not None:
            power, limit = user_input[CONF_POWER_ENTITY], user_input[CONF_LIMIT_ENTITY]
            name = check.name(user_input, taken=self._names_but(limit))
            check.number(user_input, CONF_RATED_POWER, *RATING_RANGE)
            check.number(user_input, CONF_MAX_AGE, *INVERTER_MAX_AGE_RANGE)
            try:
                read_power_w(self.hass, power)
            except EntityValueError as err:
                errors[CONF_POWER_ENTITY] = err.reason
            try:
                number_range(self.hass, limit)
            except EntityValueError as err:
                errors[CONF_LIMIT_ENTITY] = err.reason
            if not errors:
                data = {
                    CONF_KIND: KIND_HA_ENTITY,
                    CONF_POWER_ENTITY: power,
                    CONF_LIMIT_ENTITY: limit,
                    CONF_LIMIT_UNIT: user_input[CONF_LIMIT_UNIT],
                    CONF_RATED_POWER: float(user_input[CONF_RATED_POWER]),
                    CONF_MAX_AGE: float(user_input[CONF_MAX_AGE]),
                }
                return self._finish(name, data, limit, same_device=False)
        schema = vol.Schema(
            {
                vol.Required(CONF_NAME): selector.TextSelector(),
                vol.Required(CONF_POWER_ENTITY): selector.EntitySelector(
                    selector.EntitySelectorConfig(domain="sensor", device_class="power")
                ),
                vol.Required(CONF_LIMIT_ENTITY): selector.EntitySelector(
                    selector.EntitySelectorConfig(domain=["number", "input_number"])
                ),
                vol.Required(CONF_LIMIT_UNIT, default=LIMIT_UNIT_WATT): dropdown(
                    [LIMIT_UNIT_WATT, LIMIT_UNIT_PERCENT], "limit_unit"
                ),
                vol.Required(CONF_RATED_POWER): RATING_WATTS,
                vol.Required(
                    CONF_MAX_AGE, default=DEFAULT_INVERTER_ENTITY_MAX_AGE
                ): number_selector(*INVERTER_MAX_AGE_RANGE, 1, "s", checked_by_step=True),
            }
        )
        return self.async_show_form(
            step_id="ha_entity",
            data_schema=self.add_suggested_values_to_schema(schema, self._suggested(user_input)),
            errors=errors,
            description_placeholders=check.placeholders,
        )


class HaEntityMeterSteps(_NamedSteps):
    """A grid power sensor already in Home Assistant as the site meter."""

    async def async_step_ha_entity(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Choose the sensor, its sign and how old its value may get, and check it."""
        check = FormCheck()
        errors = check.errors
        if user_input is not None:
            power = user_input[CONF_POWER_ENTITY]
            name = check.name(user_input, taken=self._names_but(power))
            check.number(user_input, CONF_MAX_AGE, *METER_MAX_AGE_RANGE)
            try:
                read_power_w(self.hass, power)
            except EntityValueError as err:
                errors[CONF_POWER_ENTITY] = err.reason
            if not errors:
                data = {
                    CONF_KIND: KIND_HA_ENTITY,
                    CONF_POWER_ENTITY: power,
                    CONF_INVERT: bool(user_input[CONF_INVERT]),
                    CONF_MAX_AGE: float(user_input[CONF_MAX_AGE]),
                }
                return self._finish(name, data, power, same_device=False)
        schema = vol.Schema(
            {
                vol.Required(CONF_NAME): selector.TextSelector(),
                vol.Required(CONF_POWER_ENTITY): selector.EntitySelector(
                    selector.EntitySelectorConfig(domain="sensor", device_class="power")
                ),
                vol.Required(CONF_INVERT, default=False): selector.BooleanSelector(),
                vol.Required(CONF_MAX_AGE, default=DEFAULT_ENTITY_MAX_AGE): number_selector(
                    *METER_MAX_AGE_RANGE, 1, "s", checked_by_step=True
                ),
            }
        )
        return self.async_show_form(
            step_id="ha_entity",
            data_schema=self.add_suggested_values_to_schema(schema, self._suggested(user_input)),
            errors=errors,
            description_placeholders=check.placeholders,
        )
