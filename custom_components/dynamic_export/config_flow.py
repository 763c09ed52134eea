"""Config flow: create a site and tune it; its parts are added as subentries.

Each kind of subentry has its flow in ``subentries/<kind>/flow.py``; this module names them
for Home Assistant.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
)
from homeassistant.core import callback
from homeassistant.helpers import selector
from homeassistant.util import slugify

from .compat import vol
from .const import (
    CONF_CONTROL_ENABLED,
    CONF_CONTROL_INTERVAL,
    CONF_DEADBAND,
    CONF_METER_MAX_AGE,
    CONF_RAMP_UP_RATE,
    CONF_REVERT_TIMEOUT,
    CONF_SITE_NAME,
    DEFAULT_CONTROL_INTERVAL,
    DEFAULT_DEADBAND,
    DEFAULT_METER_MAX_AGE,
    DEFAULT_RAMP_UP_RATE,
    DEFAULT_REVERT_TIMEOUT,
    DOMAIN,
    SUBENTRY_AMBER,
    SUBENTRY_CSIP,
    SUBENTRY_FIXED_LIMITER,
    SUBENTRY_INVERTER,
    SUBENTRY_METER,
    SUBENTRY_MQTT,
    SUBENTRY_SOC,
    SUBENTRY_TARIFF,
)
from .core.errors import CredentialsRejectedError, DeviceError, DeviceUnavailableError
from .core.write_policy import MIN_REVERT_CYCLES, min_revert_timeout
from .limiters.amber_api import AmberError
from .reauth import async_check_password, credential_key, rejected_subentries
from .selectors import INTERVAL_SECONDS, number_selector
from .subentries.csip.flow import CsipSubentryFlow
from .subentries.devices.flow import InverterSubentryFlow, MeterSubentryFlow
from .subentries.devices.flow_base import PASSWORD
from .subentries.devices.flow_discovery import PowerwallDiscoverySteps
from .subentries.devices.flow_discovery_opendtu import OpenDtuDiscoverySteps
from .subentries.limiters.flow import (
    AmberSubentryFlow,
    FixedLimiterSubentryFlow,
    MqttSubentryFlow,
    SocSubentryFlow,
    TariffSubentryFlow,
)
from .validation import FormCheck

_LOGGER = logging.getLogger(__name__)

SITE_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_SITE_NAME): selector.TextSelector(),
        vol.Required(CONF_CONTROL_INTERVAL, default=DEFAULT_CONTROL_INTERVAL): INTERVAL_SECONDS,
        vol.Required(CONF_CONTROL_ENABLED, default=True): selector.BooleanSelector(),
    }
)

# Each tuning option: its range, its step in the form and its unit.
OPTION_RANGES: dict[str, tuple[float, float, float, str]] = {
    CONF_METER_MAX_AGE: (1, 60, 0.5, "s"),
    CONF_RAMP_UP_RATE: (1, 100, 1, "%/s"),
    CONF_DEADBAND: (0, 10, 0.1, "%"),
    CONF_REVERT_TIMEOUT: (10, 3600, 1, "s"),
}

OPTIONS_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_CONTROL_INTERVAL): INTERVAL_SECONDS,
        **{
            vol.Required(key): number_selector(low, high, step, unit, checked_by_step=True)
            for key, (low, high, step, unit) in OPTION_RANGES.items()
        },
    }
)

OPTION_DEFAULTS = {
    CONF_CONTROL_INTERVAL: DEFAULT_CONTROL_INTERVAL,
    CONF_METER_MAX_AGE: DEFAULT_METER_MAX_AGE,
    CONF_RAMP_UP_RATE: DEFAULT_RAMP_UP_RATE,
    CONF_DEADBAND: DEFAULT_DEADBAND,
    CONF_REVERT_TIMEOUT: DEFAULT_REVERT_TIMEOUT,
}


class DynamicExportConfigFlow(
    PowerwallDiscoverySteps, OpenDtuDiscoverySteps, ConfigFlow, domain=DOMAIN
):
    """Create a site; devices and limiters are added to it as subentries."""

    VERSION = 1

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """Control tuning lives in the options."""
        return SiteOptionsFlow()

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Inverters, the site meter and the limiters are added to a site."""
        return {
            SUBENTRY_INVERTER: InverterSubentryFlow,
            SUBENTRY_METER: MeterSubentryFlow,
            SUBENTRY_FIXED_LIMITER: FixedLimiterSubentryFlow,
            SUBENTRY_AMBER: AmberSubentryFlow,
            SUBENTRY_TARIFF: TariffSubentryFlow,
            SUBENTRY_SOC: SocSubentryFlow,
            SUBENTRY_MQTT: MqttSubentryFlow,
            SUBENTRY_CSIP: CsipSubentryFlow,
        }

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Name the site and choose control or monitor-only."""
        check = FormCheck()
        if user_input is not None:
            name = check.name(user_input, CONF_SITE_NAME)
            if name and slugify(name) in self._async_current_ids(include_ignore=False):
                # On the field, so the form stays open: an abort would lose what was typed.
                check.errors[CONF_SITE_NAME] = "site_name_taken"
                check.placeholders["name"] = name
            check.interval(user_input)
            if not check.errors:
                await self.async_set_unique_id(slugify(name))
                self._abort_if_unique_id_configured()
                return self.async_create_entry(
                    title=name,
                    data={CONF_SITE_NAME: name},
                    options={
                        **OPTION_DEFAULTS,
                        CONF_CONTROL_INTERVAL: user_input[CONF_CONTROL_INTERVAL],
                        CONF_CONTROL_ENABLED: user_input[CONF_CONTROL_ENABLED],
                    },
                )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(SITE_SCHEMA, user_input or {}),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """A device of the site refused its password (see ``subentries.devices.reauth``)."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the new password of the first device that refuses; check it, save it."""
        entry = self._get_reauth_entry()
        pending = rejected_subentries(entry)
        if not pending:
            return self.async_abort(reason="reauth_not_needed")
        sub = pending[0]
        key = credential_key(sub)
        errors: dict[str, str] = {}
        if user_input is not None:
            password = str(user_input[key])
            try:
                await async_check_password(self.hass, sub, password)
            except CredentialsRejectedError:
                errors[key] = "invalid_auth"
            except (DeviceUnavailableError, AmberError):
                errors["base"] = "cannot_connect"
            except DeviceError as err:
                errors["base"] = "invalid_response"
                _LOGGER.warning("%s answered the password check oddly: %s", sub.title, err)
            else:
                # Saving changes the site's structure: its update listener reloads it.
                self.hass.config_entries.async_update_subentry(
                    entry, sub, data={**sub.data, key: password}
                )
                return self.async_abort(reason="reauth_successful")
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema({vol.Required(key): PASSWORD}),
            errors=errors,
            description_placeholders={"device": sub.title, "site": entry.title},
        )


class SiteOptionsFlow(OptionsFlow):
    """Tune the controller; saving reloads the site."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show the tuning form; a revert timer the interval cannot refresh is refused."""
        check = FormCheck()
        if user_input is not None:
            check.interval(user_input)
            for key, (low, high, _, _) in OPTION_RANGES.items():
                check.number(user_input, key, low, high)
            if not check.errors:
                shortest = min_revert_timeout(float(user_input[CONF_CONTROL_INTERVAL]))
                if float(user_input[CONF_REVERT_TIMEOUT]) < shortest:
                    check.errors[CONF_REVERT_TIMEOUT] = "revert_too_short"
                    check.placeholders.update(
                        shortest=f"{shortest:.0f}", cycles=str(MIN_REVERT_CYCLES)
                    )
            if not check.errors:
                return self.async_create_entry(data={**self.config_entry.options, **user_input})
        values = {**OPTION_DEFAULTS, **self.config_entry.options, **(user_input or {})}
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(OPTIONS_SCHEMA, values),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )
