"""Config subentry flows of the limiters: fixed limits, Amber prices, tariff, battery, MQTT."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigSubentryFlow, SubentryFlowResult
from homeassistant.const import CONF_API_TOKEN, CONF_NAME
from homeassistant.helpers import selector

from ...compat import vol
from ...const import (
    CONF_CONNECT,
    CONF_ENABLED,
    CONF_ENERGIZE,
    CONF_EXPORT_LIMIT,
    CONF_FALLBACK,
    CONF_HIGH_EXPORT_LIMIT,
    CONF_HYSTERESIS,
    CONF_LOW_EXPORT_LIMIT,
    CONF_MAX_AGE,
    CONF_PRESET,
    CONF_SITE_ID,
    CONF_SOC_ENTITY,
    CONF_THRESHOLD,
    CONF_TIMEZONE,
    CONF_TOPIC,
    CONF_WINDOWS,
    PRESET_CUSTOM,
    WATT_LIMIT_KEYS,
)
from ...limiters.amber import AmberFallback
from ...limiters.amber_api import AmberAuthError, AmberError, AmberSite
from ...limiters.soc import SocSettings
from ...limiters.tariff import PRESETS, TariffWindowError, load_timezone
from ...selectors import LIMIT_WATTS, number_selector
from ...validation import FormCheck
from .setup import amber_client, custom_windows

# Ranges of the number fields checked in the steps (``validation.FormCheck.number``).
AMBER_THRESHOLD_RANGE = (-100, 100)
"""Feed-in price threshold, c/kWh."""
SOC_THRESHOLD_RANGE = (0, 100)
SOC_HYSTERESIS_RANGE = (0, 50)
SOC_MAX_AGE_RANGE = (1, 1440)
"""Minutes a state of charge is believed."""
MQTT_MAX_AGE_RANGE = (1, 86400)
"""Seconds a published limit counts."""


class _LimiterFlow(ConfigSubentryFlow):
    """Shared reconfigure: show the form with current values, keep the on/off switch."""

    def _finish(self, title: str, data: dict[str, Any]) -> SubentryFlowResult:
        """Create the subentry, or update it when reconfiguring."""
        if self.source == "reconfigure":
            subentry = self._get_reconfigure_subentry()
            data[CONF_ENABLED] = subentry.data.get(CONF_ENABLED, True)
            return self.async_update_and_abort(self._get_entry(), subentry, title=title, data=data)
        return self.async_create_entry(title=title, data={**data, CONF_ENABLED: True})

    def _taken_names(self) -> list[str]:
        """The names of the site's other parts (devices and limiters): a name must be new."""
        own = self._get_reconfigure_subentry().subentry_id if self.source == "reconfigure" else None
        return [
            sub.title for sub in self._get_entry().subentries.values() if sub.subentry_id != own
        ]

    def _current(self) -> dict[str, Any]:
        if self.source != "reconfigure":
            return {}
        subentry = self._get_reconfigure_subentry()
        return {CONF_NAME: subentry.title, **subentry.data}


_FIXED_FIELDS: dict[Any, Any] = {vol.Required(CONF_NAME): selector.TextSelector()}
_FIXED_FIELDS.update({vol.Optional(key): LIMIT_WATTS for key in WATT_LIMIT_KEYS})
_FIXED_FIELDS[vol.Required(CONF_CONNECT, default=True)] = selector.BooleanSelector()
_FIXED_FIELDS[vol.Required(CONF_ENERGIZE, default=True)] = selector.BooleanSelector()
FIXED_SCHEMA = vol.Schema(_FIXED_FIELDS)


class FixedLimiterSubentryFlow(_LimiterFlow):
    """Fixed limits: an export limit, zero export, a generation cap, ..."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Name the limiter and set the limits it asks for; an emptied field removes a limit."""
        check = FormCheck()
        if user_input is not None:
            name = check.name(user_input, taken=self._taken_names())
            check.limits(user_input, *WATT_LIMIT_KEYS)
            if not check.errors:
                return self._finish(name, _fixed_data(user_input))
        return self.async_show_form(
            step_id="reconfigure" if self.source == "reconfigure" else "user",
            data_schema=self.add_suggested_values_to_schema(
                FIXED_SCHEMA, user_input or self._current()
            ),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change the limits."""
        return await self.async_step_user(user_input)


def _fixed_data(user_input: dict[str, Any]) -> dict[str, Any]:
    """Limits as stored: unset limits are None, booleans as given."""
    data: dict[str, Any] = {
        key: None if user_input.get(key) is None else float(user_input[key])
        for key in WATT_LIMIT_KEYS
    }
    data[CONF_CONNECT] = bool(user_input[CONF_CONNECT])
    data[CONF_ENERGIZE] = bool(user_input[CONF_ENERGIZE])
    return data


class AmberSubentryFlow(_LimiterFlow):
    """Amber Electric: stop exporting when the feed-in price says exporting costs money."""

    def __init__(self) -> None:
        """Start with nothing known about the account."""
        self._token = ""
        self._sites: list[AmberSite] = []
        self._site: AmberSite | None = None

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Ask for the API token and check it by listing the account's sites."""
        errors: dict[str, str] = {}
        if user_input is not None:
            self._token = user_input[CONF_API_TOKEN].strip()
            try:
                self._sites = await amber_client(self.hass, self._token).async_get_sites()
            except AmberAuthError:
                errors["base"] = "invalid_auth"
            except AmberError:
                errors["base"] = "cannot_connect"
            else:
                if not self._sites:
                    return self.async_abort(reason="no_sites")
                return await self.async_step_site()
        return self.async_show_form(
            step_id="user",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_API_TOKEN): selector.TextSelector(
                        selector.TextSelectorConfig(type=selector.TextSelectorType.PASSWORD)
                    )
                }
            ),
            errors=errors,
        )

    async def async_step_site(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Pick the site (NMI); the single active one is offered first."""
        if user_input is not None:
            self._site = next(s for s in self._sites if s.id == user_input[CONF_SITE_ID])
            return await self.async_step_settings()
        active = [s for s in self._sites if s.active]
        default = (active or self._sites)[0].id
        options = [
            selector.SelectOptionDict(
                value=site.id, label=f"{site.nmi} ({site.network}, {site.status})"
            )
            for site in self._sites
        ]
        return self.async_show_form(
            step_id="site",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_SITE_ID, default=default): selector.SelectSelector(
                        selector.SelectSelectorConfig(options=options)
                    )
                }
            ),
        )

    async def async_step_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Threshold, the export limit to apply, and what to do without prices."""
        check = FormCheck()
        if user_input is not None:
            check.limits(user_input, CONF_EXPORT_LIMIT)
            check.number(user_input, CONF_THRESHOLD, *AMBER_THRESHOLD_RANGE)
        if user_input is not None and not check.errors:
            current = self._current()
            site_id = self._site.id if self._site else current[CONF_SITE_ID]
            token = self._token or current[CONF_API_TOKEN]
            title = f"Amber {self._site.nmi}" if self._site else current[CONF_NAME]
            return self._finish(
                title,
                {
                    CONF_API_TOKEN: token,
                    CONF_SITE_ID: site_id,
                    CONF_THRESHOLD: float(user_input[CONF_THRESHOLD]),
                    CONF_EXPORT_LIMIT: float(user_input[CONF_EXPORT_LIMIT]),
                    CONF_FALLBACK: user_input[CONF_FALLBACK],
                },
            )
        schema = vol.Schema(
            {
                vol.Required(CONF_THRESHOLD, default=0.0): number_selector(
                    *AMBER_THRESHOLD_RANGE, 0.01, "c/kWh", checked_by_step=True
                ),
                vol.Required(CONF_EXPORT_LIMIT, default=0.0): LIMIT_WATTS,
                vol.Required(CONF_FALLBACK, default=AmberFallback.LIMIT.value): (
                    selector.SelectSelector(
                        selector.SelectSelectorConfig(
                            options=[f.value for f in AmberFallback],
                            translation_key="amber_fallback",
                        )
                    )
                ),
            }
        )
        return self.async_show_form(
            step_id="settings",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or self._current()),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change the threshold, limit or fallback (the token and site stay)."""
        return await self.async_step_settings(user_input)


class TariffSubentryFlow(_LimiterFlow):
    """Two-way tariff windows: a published preset or your own list."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Choose a preset or enter windows; times are in the tariff's timezone."""
        check = FormCheck(placeholders={"detail": ""})
        errors, placeholders = check.errors, check.placeholders
        if user_input is not None:
            name = check.name(user_input, taken=self._taken_names())
            check.limits(user_input, CONF_EXPORT_LIMIT)
            preset = user_input[CONF_PRESET]
            windows = user_input.get(CONF_WINDOWS) or []
            if isinstance(windows, dict):  # one window, typed without the list's "- "
                windows = [windows]
            timezone = (user_input.get(CONF_TIMEZONE) or self.hass.config.time_zone).strip()
            try:
                # Windows without a limit of their own take the form's: checked once it is valid.
                if preset == PRESET_CUSTOM and CONF_EXPORT_LIMIT not in errors:
                    if not isinstance(windows, list) or not windows:
                        raise TariffWindowError("give at least one window")
                    custom_windows(windows, float(user_input[CONF_EXPORT_LIMIT]))
            except TariffWindowError as err:
                errors[CONF_WINDOWS] = "invalid_windows"
                placeholders["detail"] = str(err)
            else:
                # Loading a zone reads a file: not on the event loop.
                if (await self.hass.async_add_executor_job(load_timezone, timezone))[1]:
                    errors[CONF_TIMEZONE] = "invalid_timezone"
                elif not errors:
                    return self._finish(
                        name,
                        {
                            CONF_PRESET: preset,
                            CONF_WINDOWS: windows if preset == PRESET_CUSTOM else [],
                            CONF_TIMEZONE: timezone,
                            CONF_EXPORT_LIMIT: float(user_input[CONF_EXPORT_LIMIT]),
                        },
                    )
        schema = vol.Schema(
            {
                vol.Required(CONF_NAME): selector.TextSelector(),
                vol.Required(CONF_PRESET, default=PRESET_CUSTOM): selector.SelectSelector(
                    selector.SelectSelectorConfig(
                        options=[*PRESETS, PRESET_CUSTOM], translation_key="tariff_preset"
                    )
                ),
                vol.Required(CONF_EXPORT_LIMIT, default=0.0): LIMIT_WATTS,
                vol.Optional(CONF_TIMEZONE): selector.TextSelector(),
                vol.Optional(CONF_WINDOWS): selector.ObjectSelector(),
            }
        )
        suggested = user_input or self._current() or {CONF_TIMEZONE: self.hass.config.time_zone}
        return self.async_show_form(
            step_id="reconfigure" if self.source == "reconfigure" else "user",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change the windows."""
        return await self.async_step_user(user_input)


class SocSubentryFlow(_LimiterFlow):
    """Battery-SOC rule: keep exporting low until the battery is nearly full."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Pick the battery's state-of-charge sensor and the thresholds."""
        check = FormCheck()
        errors = check.errors
        if user_input is not None:
            name = check.name(user_input, taken=self._taken_names())
            check.limits(user_input, CONF_LOW_EXPORT_LIMIT, CONF_HIGH_EXPORT_LIMIT)
            check.number(user_input, CONF_THRESHOLD, *SOC_THRESHOLD_RANGE)
            check.number(user_input, CONF_HYSTERESIS, *SOC_HYSTERESIS_RANGE)
            check.number(user_input, CONF_MAX_AGE, *SOC_MAX_AGE_RANGE)
        if user_input is not None and not errors:
            high = user_input.get(CONF_HIGH_EXPORT_LIMIT)
            data = {
                CONF_SOC_ENTITY: user_input[CONF_SOC_ENTITY],
                CONF_THRESHOLD: float(user_input[CONF_THRESHOLD]),
                CONF_HYSTERESIS: float(user_input[CONF_HYSTERESIS]),
                CONF_LOW_EXPORT_LIMIT: float(user_input[CONF_LOW_EXPORT_LIMIT]),
                CONF_HIGH_EXPORT_LIMIT: None if high is None else float(high),
                CONF_MAX_AGE: float(user_input[CONF_MAX_AGE]),
            }
            try:
                SocSettings(
                    threshold=data[CONF_THRESHOLD],
                    hysteresis=data[CONF_HYSTERESIS],
                    low_export_limit=data[CONF_LOW_EXPORT_LIMIT],
                    high_export_limit=data[CONF_HIGH_EXPORT_LIMIT],
                )
            except ValueError:
                errors["base"] = "invalid_soc_settings"
            else:
                return self._finish(name, data)
        schema = vol.Schema(
            {
                vol.Required(CONF_NAME): selector.TextSelector(),
                vol.Required(CONF_SOC_ENTITY): selector.EntitySelector(
                    selector.EntitySelectorConfig(domain="sensor", device_class="battery")
                ),
                vol.Required(CONF_THRESHOLD, default=90): number_selector(
                    *SOC_THRESHOLD_RANGE, 1, "%", checked_by_step=True
                ),
                vol.Required(CONF_HYSTERESIS, default=5): number_selector(
                    *SOC_HYSTERESIS_RANGE, 1, "%", checked_by_step=True
                ),
                vol.Required(CONF_LOW_EXPORT_LIMIT, default=0): LIMIT_WATTS,
                vol.Optional(CONF_HIGH_EXPORT_LIMIT): LIMIT_WATTS,
                vol.Required(CONF_MAX_AGE, default=15): number_selector(
                    *SOC_MAX_AGE_RANGE, 1, "min", checked_by_step=True
                ),
            }
        )
        return self.async_show_form(
            step_id="reconfigure" if self.source == "reconfigure" else "user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or self._current()),
            errors=errors,
            description_placeholders=check.placeholders,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change the sensor or thresholds."""
        return await self.async_step_user(user_input)


class MqttSubentryFlow(_LimiterFlow):
    """Limits published on an MQTT topic (through Home Assistant's MQTT integration)."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Choose the topic and how long a message counts."""
        if "mqtt" not in self.hass.config.components:
            return self.async_abort(reason="mqtt_not_configured")
        check = FormCheck()
        errors = check.errors
        if user_input is not None:
            name = check.name(user_input, taken=self._taken_names())
            topic = user_input[CONF_TOPIC].strip()
            if not topic or "#" in topic or "+" in topic:
                errors[CONF_TOPIC] = "invalid_topic"
            check.number(user_input, CONF_MAX_AGE, *MQTT_MAX_AGE_RANGE)
            if not errors:
                return self._finish(
                    name,
                    {CONF_TOPIC: topic, CONF_MAX_AGE: float(user_input[CONF_MAX_AGE])},
                )
        schema = vol.Schema(
            {
                vol.Required(CONF_NAME): selector.TextSelector(),
                vol.Required(CONF_TOPIC): selector.TextSelector(),
                vol.Required(CONF_MAX_AGE, default=60): number_selector(
                    *MQTT_MAX_AGE_RANGE, 1, "s", checked_by_step=True
                ),
            }
        )
        return self.async_show_form(
            step_id="reconfigure" if self.source == "reconfigure" else "user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or self._current()),
            errors=errors,
            description_placeholders=check.placeholders,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change the topic or maximum age."""
        return await self.async_step_user(user_input)
