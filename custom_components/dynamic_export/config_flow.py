"""Config flow: a site, its SunSpec inverters and meter, and its fixed limiters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import callback
from homeassistant.helpers import selector
from homeassistant.util import slugify

from .compat import vol
from .const import (
    CONF_CONNECT,
    CONF_CONTROL_ENABLED,
    CONF_CONTROL_INTERVAL,
    CONF_DEADBAND,
    CONF_ENABLED,
    CONF_ENERGIZE,
    CONF_INVERT,
    CONF_KIND,
    CONF_METER_MAX_AGE,
    CONF_RAMP_UP_RATE,
    CONF_RATED_POWER,
    CONF_REVERT_TIMEOUT,
    CONF_SITE_NAME,
    CONF_UNIT_ID,
    DEFAULT_CONTROL_INTERVAL,
    DEFAULT_DEADBAND,
    DEFAULT_INVERTER_UNIT_ID,
    DEFAULT_METER_MAX_AGE,
    DEFAULT_METER_UNIT_ID,
    DEFAULT_MODBUS_PORT,
    DEFAULT_RAMP_UP_RATE,
    DEFAULT_REVERT_TIMEOUT,
    DEVICE_KINDS_INVERTER,
    DEVICE_KINDS_METER,
    DOMAIN,
    KIND_SUNSPEC_TCP,
    SUBENTRY_AMBER,
    SUBENTRY_CSIP,
    SUBENTRY_FIXED_LIMITER,
    SUBENTRY_INVERTER,
    SUBENTRY_METER,
    SUBENTRY_MQTT,
    SUBENTRY_SOC,
    SUBENTRY_TARIFF,
    WATT_LIMIT_KEYS,
)
from .core.errors import DeviceError, DeviceUnavailableError
from .core.write_policy import MIN_REVERT_CYCLES, min_revert_timeout
from .selectors import LIMIT_WATTS, PORT, number_selector
from .subentries.csip.flow import CsipSubentryFlow
from .subentries.devices.flow import InverterKindSteps, MeterKindSteps
from .subentries.limiters.flow import (
    AmberSubentryFlow,
    MqttSubentryFlow,
    SocSubentryFlow,
    TariffSubentryFlow,
)
from .sunspec.connection import ConnectionPool
from .sunspec.device import SunSpecDevice
from .sunspec.errors import ModbusExceptionError, NotSunSpecError
from .sunspec.inverter import InverterInfo, SunSpecInverter
from .sunspec.meter import SunSpecMeter

# Whole seconds: Home Assistant's update coordinator schedules refreshes on a whole-second
# grid, so a fraction of a second would make cycles run back to back.
INTERVAL_SELECTOR = number_selector(1, 60, 1, "s")

# Modbus exceptions a gateway answers with when nothing is behind the unit id:
# 10 "gateway path unavailable", 11 "gateway target device failed to respond".
GATEWAY_ERRORS = (10, 11)

SITE_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_SITE_NAME): selector.TextSelector(),
        vol.Required(CONF_CONTROL_INTERVAL, default=DEFAULT_CONTROL_INTERVAL): INTERVAL_SELECTOR,
        vol.Required(CONF_CONTROL_ENABLED, default=True): selector.BooleanSelector(),
    }
)

OPTIONS_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_CONTROL_INTERVAL): INTERVAL_SELECTOR,
        vol.Required(CONF_METER_MAX_AGE): number_selector(1, 60, 0.5, "s"),
        vol.Required(CONF_RAMP_UP_RATE): number_selector(1, 100, 1, "%/s"),
        vol.Required(CONF_DEADBAND): number_selector(0, 10, 0.1, "%"),
        vol.Required(CONF_REVERT_TIMEOUT): number_selector(10, 3600, 1, "s"),
    }
)

OPTION_DEFAULTS = {
    CONF_CONTROL_INTERVAL: DEFAULT_CONTROL_INTERVAL,
    CONF_METER_MAX_AGE: DEFAULT_METER_MAX_AGE,
    CONF_RAMP_UP_RATE: DEFAULT_RAMP_UP_RATE,
    CONF_DEADBAND: DEFAULT_DEADBAND,
    CONF_REVERT_TIMEOUT: DEFAULT_REVERT_TIMEOUT,
}

_UNIT = number_selector(0, 255, 1, "")


def _device_schema(unit_id: int, *, meter: bool) -> vol.Schema:
    fields: dict[Any, Any] = {
        vol.Required(CONF_HOST): selector.TextSelector(),
        vol.Required(CONF_PORT, default=DEFAULT_MODBUS_PORT): PORT,
        vol.Required(CONF_UNIT_ID, default=unit_id): _UNIT,
    }
    if meter:
        fields[vol.Required(CONF_INVERT, default=False)] = selector.BooleanSelector()
    return vol.Schema(fields)


_LIMITER_FIELDS: dict[Any, Any] = {vol.Required(CONF_SITE_NAME): selector.TextSelector()}
_LIMITER_FIELDS.update({vol.Optional(key): LIMIT_WATTS for key in WATT_LIMIT_KEYS})
_LIMITER_FIELDS[vol.Required(CONF_CONNECT, default=True)] = selector.BooleanSelector()
_LIMITER_FIELDS[vol.Required(CONF_ENERGIZE, default=True)] = selector.BooleanSelector()
LIMITER_SCHEMA = vol.Schema(_LIMITER_FIELDS)


class DynamicExportConfigFlow(ConfigFlow, domain=DOMAIN):
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
        """Inverters, the site meter and fixed limiters are added to a site."""
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
        if user_input is not None:
            name = user_input[CONF_SITE_NAME].strip()
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
        return self.async_show_form(step_id="user", data_schema=SITE_SCHEMA)


class SiteOptionsFlow(OptionsFlow):
    """Tune the controller; saving reloads the site."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show the tuning form; a revert timer the interval cannot refresh is refused."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            shortest = min_revert_timeout(float(user_input[CONF_CONTROL_INTERVAL]))
            if float(user_input[CONF_REVERT_TIMEOUT]) < shortest:
                errors[CONF_REVERT_TIMEOUT] = "revert_too_short"
                placeholders = {
                    "shortest": f"{shortest:.0f}",
                    "cycles": str(MIN_REVERT_CYCLES),
                }
            else:
                return self.async_create_entry(data={**self.config_entry.options, **user_input})
        values = {**OPTION_DEFAULTS, **self.config_entry.options, **(user_input or {})}
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(OPTIONS_SCHEMA, values),
            errors=errors,
            description_placeholders=placeholders,
        )


class _SunSpecSubentryFlow(ConfigSubentryFlow):
    """Shared steps of the inverter and meter flows: probe the device, then save it.

    The first step is a menu of device kinds; SunSpec over Modbus TCP is here, the other
    kinds' steps come from subentries/devices/flow.py.
    """

    default_unit_id: int
    fallback_title: str
    is_meter = False

    async def async_step_sunspec_tcp(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the device address and test it."""
        return await self._async_step_device("sunspec_tcp", user_input)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change a device already added (it must stay the same device), by its kind's steps."""
        kind = self._get_reconfigure_subentry().data.get(CONF_KIND, KIND_SUNSPEC_TCP)
        if kind != KIND_SUNSPEC_TCP:
            step: Callable[[], Awaitable[SubentryFlowResult]] = getattr(self, f"async_step_{kind}")
            return await step()
        return await self._async_step_device("reconfigure", user_input)

    async def _async_step_device(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        entry = self._get_entry()
        reconfiguring = step_id == "reconfigure"
        current = self._get_reconfigure_subentry() if reconfiguring else None
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {
                **user_input,
                CONF_HOST: user_input[CONF_HOST].strip(),
                CONF_PORT: int(user_input[CONF_PORT]),
                CONF_UNIT_ID: int(user_input[CONF_UNIT_ID]),
            }
            address = (data[CONF_HOST], data[CONF_PORT], data[CONF_UNIT_ID])
            taken = any(
                (sub.data.get(CONF_HOST), sub.data.get(CONF_PORT), sub.data.get(CONF_UNIT_ID))
                == address
                for sub in entry.subentries.values()
                if current is None or sub.subentry_id != current.subentry_id
            )
            if taken:
                return self.async_abort(reason="already_configured")
            try:
                title, unique_id = await self._async_probe(*address, data)
            except NotSunSpecError:
                errors["base"] = "not_sunspec"
            except ModbusExceptionError as err:
                errors["base"] = (
                    "unit_not_found" if err.code in GATEWAY_ERRORS else "unsupported_device"
                )
            except DeviceUnavailableError:
                errors["base"] = "cannot_connect"
            except DeviceError:
                errors["base"] = "unsupported_device"
            else:
                if current is not None:
                    if current.unique_id != unique_id:
                        return self.async_abort(reason="different_device")
                    return self.async_update_and_abort(entry, current, data=data)
                if any(sub.unique_id == unique_id for sub in entry.subentries.values()):
                    return self.async_abort(reason="already_configured")
                return self.async_create_entry(title=title, data=data, unique_id=unique_id)
        schema = _device_schema(self.default_unit_id, meter=self.is_meter)
        suggested = user_input or (dict(current.data) if current else {})
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
        )

    def _client(
        self, device: SunSpecDevice, data: dict[str, Any]
    ) -> SunSpecInverter | SunSpecMeter:
        """The client that identifies this kind of device."""
        return SunSpecInverter(device)

    async def _async_probe(
        self, host: str, port: int, unit_id: int, data: dict[str, Any]
    ) -> tuple[str, str]:
        """Read the device's identity; returns its title and unique id."""
        pool = ConnectionPool()
        try:
            info = await self._client(
                SunSpecDevice(pool.get(host, port), unit_id), data
            ).async_setup()
        finally:
            await pool.close()
        if isinstance(info, InverterInfo):
            data[CONF_RATED_POWER] = info.rated_power_w  # until a read at start replaces it
        name = " ".join(p for p in (info.manufacturer, info.model) if p) or self.fallback_title
        serial = info.serial_number or f"{host}:{port}:{unit_id}"
        return f"{name} ({serial})", serial


class InverterSubentryFlow(InverterKindSteps, _SunSpecSubentryFlow):
    """Add an inverter: SunSpec (TCP or RS-485), OpenDTU, or Home Assistant entities."""

    default_unit_id = DEFAULT_INVERTER_UNIT_ID
    fallback_title = "SunSpec inverter"

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Choose the kind of inverter."""
        return self.async_show_menu(step_id="user", menu_options=list(DEVICE_KINDS_INVERTER))


class MeterSubentryFlow(MeterKindSteps, _SunSpecSubentryFlow):
    """Add the site meter at the grid connection point (one per site)."""

    default_unit_id = DEFAULT_METER_UNIT_ID
    fallback_title = "SunSpec meter"
    is_meter = True

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Choose the kind of meter, unless the site has one."""
        entry = self._get_entry()
        if any(sub.subentry_type == SUBENTRY_METER for sub in entry.subentries.values()):
            return self.async_abort(reason="already_configured")
        return self.async_show_menu(step_id="user", menu_options=list(DEVICE_KINDS_METER))

    def _client(
        self, device: SunSpecDevice, data: dict[str, Any]
    ) -> SunSpecInverter | SunSpecMeter:
        """A meter client, with the sign convention chosen in the form."""
        return SunSpecMeter(device, invert=bool(data[CONF_INVERT]))


class FixedLimiterSubentryFlow(ConfigSubentryFlow):
    """Add fixed limits: an export limit, zero export, a generation cap, ..."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Name the limiter and set the limits it asks for."""
        if user_input is not None:
            name = user_input[CONF_SITE_NAME].strip()
            return self.async_create_entry(
                title=name, data={**_limiter_data(user_input), CONF_ENABLED: True}
            )
        return self.async_show_form(step_id="user", data_schema=LIMITER_SCHEMA)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change the limits; an emptied field removes that limit."""
        entry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        if user_input is not None:
            name = user_input[CONF_SITE_NAME].strip()
            data = {
                **_limiter_data(user_input),
                CONF_ENABLED: subentry.data.get(CONF_ENABLED, True),
            }
            return self.async_update_and_abort(entry, subentry, title=name, data=data)
        values = {CONF_SITE_NAME: subentry.title, **subentry.data}
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(LIMITER_SCHEMA, values),
        )


def _limiter_data(user_input: dict[str, Any]) -> dict[str, Any]:
    """Limits as stored: unset limits are None, booleans as given."""
    data: dict[str, Any] = {
        key: None if user_input.get(key) is None else float(user_input[key])
        for key in WATT_LIMIT_KEYS
    }
    data[CONF_CONNECT] = bool(user_input[CONF_CONNECT])
    data[CONF_ENERGIZE] = bool(user_input[CONF_ENERGIZE])
    return data
