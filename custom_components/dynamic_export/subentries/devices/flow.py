"""Config subentry steps of the device kinds other than SunSpec over Modbus TCP.

The inverter and meter flows (config_flow.py) start with a menu of kinds; each kind's steps
live here as a mixin. Every device is read before it is saved, and every failure is a form
error the user can act on. Reconfiguring a device runs the same steps with the current
values filled in, and must find the same device again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigSubentry,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PASSWORD, CONF_PORT
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers import selector
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from ...compat import vol
from ...const import (
    CONF_BAUDRATE,
    CONF_FINGERPRINT,
    CONF_INVERT,
    CONF_INVERTERS,
    CONF_KIND,
    CONF_LIMIT_ENTITY,
    CONF_LIMIT_UNIT,
    CONF_MAX_AGE,
    CONF_PARITY,
    CONF_PHASES,
    CONF_POWER_ENTITY,
    CONF_RATED_POWER,
    CONF_SERIAL,
    CONF_SERIAL_PORT,
    CONF_STOPBITS,
    CONF_UNIT_ID,
    CONF_VERSION,
    DEFAULT_BAUDRATE,
    DEFAULT_ENTITY_MAX_AGE,
    DEFAULT_OPENDTU_PORT,
    DEFAULT_POWERWALL_PORT,
    DOMAIN,
    KIND_HA_ENTITY,
    KIND_OPENDTU,
    KIND_POWERWALL,
    KIND_SUNSPEC_RTU,
    LIMIT_UNIT_PERCENT,
    LIMIT_UNIT_WATT,
)
from ...core.errors import DeviceError, DeviceUnavailableError
from ...opendtu import probe as opendtu_probe
from ...opendtu.errors import InvalidPasswordError as DtuPasswordError
from ...opendtu.errors import NotOpenDtuError
from ...opendtu.probe import DtuInfo, DtuInverter
from ...powerwall import probe as powerwall_probe
from ...powerwall.errors import (
    CertificateChangedError,
    GatewayStoppedError,
    InvalidPasswordError,
    LoginThrottledError,
    NotPowerwallError,
)
from ...powerwall.probe import PowerwallInfo
from ...runtime import loaded_pool
from ...selectors import PORT, number_selector
from ...sunspec.connection import ConnectionPool
from ...sunspec.device import SunSpecDevice
from ...sunspec.errors import ModbusExceptionError, NotSunSpecError
from ...sunspec.inverter import InverterInfo, SunSpecInverter
from ...sunspec.meter import MeterInfo, SunSpecMeter
from .ha_entities import EntityValueError, number_range, read_power_w
from .setup import powerwall_issue_id, serial_settings

PROBE_TIMEOUT_S = 3.0
"""Seconds each request of a set-up check may take (tests shorten it)."""

# Modbus exceptions a gateway answers with when nothing is behind the unit id.
_GATEWAY_ERRORS = (10, 11)
PARITY_OPTIONS = {"none": "N", "even": "E", "odd": "O"}
BAUD_RATES = ["1200", "2400", "4800", "9600", "19200", "38400", "57600", "115200"]
MAX_RATING_W = 100_000
SERIAL_BY_ID = "/dev/serial/by-id"


def _select(options: list[str], key: str | None = None, *, custom: bool = False) -> Any:
    config = selector.SelectSelectorConfig(
        options=options, mode=selector.SelectSelectorMode.DROPDOWN, custom_value=custom
    )
    if key is not None:
        config["translation_key"] = key
    return selector.SelectSelector(config)


_PASSWORD = selector.TextSelector(
    selector.TextSelectorConfig(type=selector.TextSelectorType.PASSWORD)
)
_WATTS = number_selector(1, MAX_RATING_W, 1, "W")


class _DeviceSteps(ConfigSubentryFlow):
    """What every kind's steps share: the subentry being reconfigured, and saving."""

    is_meter: bool

    def _current(self) -> ConfigSubentry | None:
        """The subentry being reconfigured (None while adding)."""
        return self._get_reconfigure_subentry() if self.source == SOURCE_RECONFIGURE else None

    def _others(self) -> list[ConfigSubentry]:
        """The site's other subentries."""
        current = self._current()
        return [
            sub
            for sub in self._get_entry().subentries.values()
            if current is None or sub.subentry_id != current.subentry_id
        ]

    def _suggested(self, user_input: Mapping[str, Any] | None) -> dict[str, Any]:
        current = self._current()
        if user_input is not None:
            return dict(user_input)
        return {CONF_NAME: current.title, **current.data} if current else {}

    def _finish(
        self,
        title: str,
        data: dict[str, Any],
        unique_id: str,
        *,
        same_device: bool = True,
    ) -> SubentryFlowResult:
        """Create the subentry, or update it when reconfiguring.

        ``same_device``: reconfiguring must find the device it had (by unique id); devices made
        of Home Assistant entities may instead be pointed at other entities.
        """
        current = self._current()
        if any(sub.unique_id == unique_id for sub in self._others()):
            return self.async_abort(reason="already_configured")
        if current is None:
            return self.async_create_entry(title=title, data=data, unique_id=unique_id)
        if same_device:
            if current.unique_id != unique_id:
                return self.async_abort(reason="different_device")
            return self.async_update_and_abort(self._get_entry(), current, data=data)
        return self.async_update_and_abort(
            self._get_entry(), current, title=title, data=data, unique_id=unique_id
        )


class _PortNotFoundError(Exception):
    """The serial port path does not exist."""


def _list_serial_ports() -> list[str]:
    """Stable /dev/serial/by-id names first, then the ports pyserial finds (blocking)."""
    from serial.tools import list_ports  # type: ignore[import-untyped]  # noqa: PLC0415

    found: list[str] = []
    if os.path.isdir(SERIAL_BY_ID):
        found.extend(sorted(os.path.join(SERIAL_BY_ID, name) for name in os.listdir(SERIAL_BY_ID)))
    found.extend(sorted(str(port.device) for port in list_ports.comports()))
    return found


def _baudrate(value: Any) -> int | None:
    """A baud rate typed or chosen in the form (None when it is not a positive integer)."""
    try:
        rate = int(str(value).strip())
    except ValueError:
        return None
    return rate if rate > 0 else None


class SunSpecRtuSteps(_DeviceSteps):
    """SunSpec over RS-485 (Modbus RTU): a serial port, its line settings and a unit id."""

    default_unit_id: int
    fallback_title: str

    async def async_step_sunspec_rtu(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the port, the line settings and the unit id, and read the device."""
        errors: dict[str, str] = {}
        baudrate = _baudrate(user_input[CONF_BAUDRATE]) if user_input is not None else None
        if user_input is not None and baudrate is None:
            errors[CONF_BAUDRATE] = "invalid_baudrate"
        elif user_input is not None:
            data: dict[str, Any] = {
                CONF_KIND: KIND_SUNSPEC_RTU,
                CONF_SERIAL_PORT: str(user_input[CONF_SERIAL_PORT]).strip(),
                CONF_BAUDRATE: baudrate,
                CONF_PARITY: PARITY_OPTIONS[user_input[CONF_PARITY]],
                CONF_STOPBITS: int(user_input[CONF_STOPBITS]),
                CONF_UNIT_ID: int(user_input[CONF_UNIT_ID]),
            }
            if self.is_meter:
                data[CONF_INVERT] = bool(user_input.get(CONF_INVERT, False))
            port = data[CONF_SERIAL_PORT]
            same_port = [
                sub
                for sub in self._others()
                if sub.data.get(CONF_KIND) == KIND_SUNSPEC_RTU
                and sub.data.get(CONF_SERIAL_PORT) == port
            ]
            if any(sub.data.get(CONF_UNIT_ID) == data[CONF_UNIT_ID] for sub in same_port):
                return self.async_abort(reason="already_configured")
            if any(serial_settings(sub.data) != serial_settings(data) for sub in same_port):
                errors["base"] = "port_settings_conflict"
            else:
                try:
                    title, unique_id = await self._async_probe_rtu(data)
                except _PortNotFoundError:
                    errors[CONF_SERIAL_PORT] = "port_not_found"
                except ValueError:
                    errors["base"] = "port_settings_conflict"
                except NotSunSpecError:
                    errors["base"] = "not_sunspec"
                except ModbusExceptionError as err:
                    errors["base"] = (
                        "unit_not_found" if err.code in _GATEWAY_ERRORS else "unsupported_device"
                    )
                except DeviceUnavailableError as err:
                    errors["base"] = (
                        "cannot_open_port"
                        if str(err).startswith("cannot connect")
                        else "no_response"
                    )
                except DeviceError:
                    errors["base"] = "unsupported_device"
                else:
                    return self._finish(title, data, unique_id)
        ports = await self.hass.async_add_executor_job(_list_serial_ports)
        fields: dict[Any, Any] = {
            vol.Required(CONF_SERIAL_PORT): _select(ports, custom=True),
            vol.Required(CONF_BAUDRATE, default=str(DEFAULT_BAUDRATE)): _select(
                BAUD_RATES, custom=True
            ),
            vol.Required(CONF_PARITY, default="none"): _select(list(PARITY_OPTIONS), "parity"),
            vol.Required(CONF_STOPBITS, default="1"): _select(["1", "2"]),
            vol.Required(CONF_UNIT_ID, default=self.default_unit_id): number_selector(
                1, 247, 1, ""
            ),
        }
        if self.is_meter:
            fields[vol.Required(CONF_INVERT, default=False)] = selector.BooleanSelector()
        suggested = self._suggested(user_input)
        for key in (CONF_BAUDRATE, CONF_STOPBITS):
            if key in suggested:
                suggested[key] = str(suggested[key])
        if user_input is None and CONF_PARITY in suggested:
            letters = {letter: name for name, letter in PARITY_OPTIONS.items()}
            suggested[CONF_PARITY] = letters.get(suggested[CONF_PARITY], "none")
        return self.async_show_form(
            step_id="sunspec_rtu",
            data_schema=self.add_suggested_values_to_schema(vol.Schema(fields), suggested),
            errors=errors,
        )

    async def _async_probe_rtu(self, data: dict[str, Any]) -> tuple[str, str]:
        """Read the device's identity on the bus; returns its title and unique id.

        A bus the loaded site already uses is probed through the site's own connection, so
        the probe waits its turn instead of talking over the control loop.
        """
        port = data[CONF_SERIAL_PORT]
        if port.startswith("/") and not await self.hass.async_add_executor_job(
            os.path.exists, port
        ):
            raise _PortNotFoundError(port)
        current = self._current()
        site_pool = loaded_pool(self._get_entry())
        if site_pool is None:
            info = await self._async_read_rtu(ConnectionPool(timeout_s=PROBE_TIMEOUT_S), data)
        elif (
            current is not None
            and current.data.get(CONF_SERIAL_PORT) == port
            and serial_settings(current.data) != serial_settings(data)
        ):
            # New line settings for a bus this device has to itself (checked by the caller):
            # the site's connection stays closed while the new settings are tried.
            site_bus = site_pool.get_serial(port, serial_settings(current.data))
            async with site_bus.async_suspend():
                info = await self._async_read_rtu(ConnectionPool(timeout_s=PROBE_TIMEOUT_S), data)
        else:
            info = await self._async_read_rtu(site_pool, data, shared=True)
        if isinstance(info, InverterInfo):
            data[CONF_RATED_POWER] = info.rated_power_w  # until a read at start replaces it
        name = " ".join(p for p in (info.manufacturer, info.model) if p) or self.fallback_title
        serial = info.serial_number or f"{port}:{data[CONF_UNIT_ID]}"
        return f"{name} ({serial})", serial

    async def _async_read_rtu(
        self, pool: ConnectionPool, data: dict[str, Any], *, shared: bool = False
    ) -> InverterInfo | MeterInfo:
        """Read the device's identity through ``pool`` (closed afterwards unless ``shared``)."""
        try:
            connection = pool.get_serial(data[CONF_SERIAL_PORT], serial_settings(data))
            device = SunSpecDevice(connection, data[CONF_UNIT_ID])
            if self.is_meter:
                return await SunSpecMeter(device, invert=data[CONF_INVERT]).async_setup()
            return await SunSpecInverter(device).async_setup()
        finally:
            if not shared:
                await pool.close()


class PowerwallSteps(_DeviceSteps):
    """A Tesla Powerwall 2 gateway as the site meter, over its local HTTPS API."""

    _pending_powerwall: tuple[dict[str, Any], str] | None = None

    async def async_step_powerwall(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the gateway's address and password; pin its certificate."""
        errors: dict[str, str] = {}
        current = self._current()
        if user_input is not None:
            data = {
                CONF_KIND: KIND_POWERWALL,
                CONF_HOST: str(user_input[CONF_HOST]).strip(),
                CONF_PORT: int(user_input[CONF_PORT]),
                CONF_PASSWORD: user_input[CONF_PASSWORD],
            }
            # Reconfiguring checks against the pinned certificate: a new one must be accepted.
            pinned = current.data.get(CONF_FINGERPRINT) if current else None
            try:
                info = await self._async_probe_powerwall(data, pinned)
            except CertificateChangedError as err:
                self._pending_powerwall = (data, err.seen)
                return await self.async_step_powerwall_certificate()
            except DeviceError as err:
                errors["base"] = _powerwall_error(err)
            else:
                return self._save_powerwall(data, info)
        schema = vol.Schema(
            {
                vol.Required(CONF_HOST): selector.TextSelector(),
                vol.Required(CONF_PORT, default=DEFAULT_POWERWALL_PORT): PORT,
                vol.Required(CONF_PASSWORD): _PASSWORD,
            }
        )
        return self.async_show_form(
            step_id="powerwall",
            data_schema=self.add_suggested_values_to_schema(schema, self._suggested(user_input)),
            errors=errors,
        )

    async def async_step_powerwall_certificate(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """The gateway shows a new certificate: accept it only if the gateway was replaced."""
        assert self._pending_powerwall is not None
        data, seen = self._pending_powerwall
        current = self._current()
        pinned = str(current.data.get(CONF_FINGERPRINT)) if current else ""
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                info = await self._async_probe_powerwall(data, seen)
            except CertificateChangedError as err:
                self._pending_powerwall = (data, err.seen)
                seen = err.seen
                errors["base"] = "certificate_changed_again"
            except DeviceError as err:
                errors["base"] = _powerwall_error(err)
            else:
                return self._save_powerwall(data, info)
        return self.async_show_form(
            step_id="powerwall_certificate",
            data_schema=vol.Schema({}),
            errors=errors,
            description_placeholders={"pinned": pinned, "seen": seen},
        )

    async def _async_probe_powerwall(
        self, data: dict[str, Any], fingerprint: str | None
    ) -> PowerwallInfo:
        return await powerwall_probe.async_probe(
            async_get_clientsession(self.hass),
            data[CONF_HOST],
            data[CONF_PASSWORD],
            port=data[CONF_PORT],
            fingerprint=fingerprint,
            timeout_s=PROBE_TIMEOUT_S,
        )

    def _save_powerwall(self, data: dict[str, Any], info: PowerwallInfo) -> SubentryFlowResult:
        data = {
            **data,
            CONF_FINGERPRINT: info.fingerprint,
            CONF_PHASES: info.phases or 1,
            CONF_VERSION: info.version,
        }
        current = self._current()
        if current is not None and current.unique_id == info.din:
            ir.async_delete_issue(self.hass, DOMAIN, powerwall_issue_id(current.subentry_id))
        return self._finish("Tesla Powerwall", data, info.din)


def _powerwall_error(err: DeviceError) -> str:
    """The form error for a failed Powerwall check (most specific first)."""
    for kind, reason in (
        (InvalidPasswordError, "invalid_auth"),
        (LoginThrottledError, "login_throttled"),
        (NotPowerwallError, "not_powerwall"),
        (GatewayStoppedError, "gateway_stopped"),
        (DeviceUnavailableError, "cannot_connect"),
    ):
        if isinstance(err, kind):
            return reason
    return "invalid_response"


class OpenDtuSteps(_DeviceSteps):
    """Hoymiles micro-inverters behind an OpenDTU: one subentry per DTU, several inverters."""

    _dtu_data: dict[str, Any] | None = None
    _dtu: DtuInfo | None = None
    _chosen: list[str] | None = None

    async def async_step_opendtu(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the DTU's address and admin password, and list its inverters."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {
                CONF_KIND: KIND_OPENDTU,
                CONF_HOST: str(user_input[CONF_HOST]).strip(),
                CONF_PORT: int(user_input[CONF_PORT]),
                CONF_PASSWORD: user_input[CONF_PASSWORD],
            }
            try:
                info = await opendtu_probe.async_probe(
                    async_get_clientsession(self.hass),
                    data[CONF_HOST],
                    data[CONF_PASSWORD],
                    port=data[CONF_PORT],
                    timeout_s=PROBE_TIMEOUT_S,
                )
            except DtuPasswordError:
                errors["base"] = "invalid_auth"
            except NotOpenDtuError:
                errors["base"] = "not_opendtu"
            except DeviceUnavailableError:
                errors["base"] = "cannot_connect"
            except DeviceError:
                errors["base"] = "invalid_response"
            else:
                self._dtu_data, self._dtu = data, info
                if self._current() is None:
                    if any(sub.unique_id == self._dtu_id() for sub in self._others()):
                        return self.async_abort(reason="dtu_already_configured")
                    if not info.inverters:
                        return self.async_abort(reason="no_inverters")
                return await self.async_step_opendtu_inverters()
        schema = vol.Schema(
            {
                vol.Required(CONF_HOST): selector.TextSelector(),
                vol.Required(CONF_PORT, default=DEFAULT_OPENDTU_PORT): PORT,
                vol.Required(CONF_PASSWORD): _PASSWORD,
            }
        )
        return self.async_show_form(
            step_id="opendtu",
            data_schema=self.add_suggested_values_to_schema(schema, self._suggested(user_input)),
            errors=errors,
        )

    async def async_step_opendtu_inverters(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Choose which of the DTU's inverters the site controls."""
        assert self._dtu is not None
        current = self._current()
        configured = _configured_inverters(current)
        elsewhere = {
            str(inv[CONF_SERIAL])
            for sub in self._others()
            if sub.data.get(CONF_KIND) == KIND_OPENDTU
            for inv in sub.data.get(CONF_INVERTERS, [])
        }
        on_dtu = {inv.serial: inv for inv in self._dtu.inverters}
        offered = [inv for inv in self._dtu.inverters if inv.serial not in elsewhere]
        # Inverters saved before but gone from the DTU stay listed, so they can be removed.
        missing = [serial for serial in configured if serial not in on_dtu]
        if not offered and not missing:
            return self.async_abort(reason="already_configured")
        errors: dict[str, str] = {}
        if user_input is not None:
            chosen = [str(serial) for serial in user_input[CONF_INVERTERS]]
            if not chosen:
                errors[CONF_INVERTERS] = "no_inverter_chosen"
            elif any(serial not in on_dtu for serial in chosen):
                errors[CONF_INVERTERS] = "unknown_serial"
            else:
                self._chosen = chosen
                unknown = [s for s in chosen if on_dtu[s].max_power_w is None]
                if unknown:
                    return await self.async_step_opendtu_ratings()
                return self._save_opendtu({})
        options = [
            selector.SelectOptionDict(value=inv.serial, label=_inverter_label(inv))
            for inv in offered
        ] + [
            selector.SelectOptionDict(value=serial, label=f"{serial} (not on this DTU)")
            for serial in missing
        ]
        default = list(configured) if current else [inv.serial for inv in offered]
        schema = vol.Schema(
            {
                vol.Required(CONF_INVERTERS, default=default): selector.SelectSelector(
                    selector.SelectSelectorConfig(
                        options=options, multiple=True, mode=selector.SelectSelectorMode.LIST
                    )
                )
            }
        )
        return self.async_show_form(
            step_id="opendtu_inverters",
            data_schema=schema,
            errors=errors,
            description_placeholders={"dtu": self._dtu.hostname or self._dtu_host()},
        )

    async def async_step_opendtu_ratings(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask the rated power of inverters the DTU has not talked to yet."""
        assert self._dtu is not None
        assert self._chosen is not None
        on_dtu = {inv.serial: inv for inv in self._dtu.inverters}
        unknown = [s for s in self._chosen if on_dtu[s].max_power_w is None]
        if user_input is not None:
            return self._save_opendtu({serial: float(user_input[serial]) for serial in unknown})
        configured = _configured_inverters(self._current())
        schema = vol.Schema({vol.Required(serial): _WATTS for serial in unknown})
        suggested = {
            serial: configured[serial][CONF_RATED_POWER]
            for serial in unknown
            if configured.get(serial, {}).get(CONF_RATED_POWER)
        }
        names = ", ".join(f"{on_dtu[s].name} ({s})" for s in unknown)
        return self.async_show_form(
            step_id="opendtu_ratings",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            description_placeholders={"inverters": names},
        )

    def _dtu_host(self) -> str:
        assert self._dtu_data is not None
        return f"{self._dtu_data[CONF_HOST]}:{self._dtu_data[CONF_PORT]}"

    def _save_opendtu(self, ratings: dict[str, float]) -> SubentryFlowResult:
        assert self._dtu is not None
        assert self._dtu_data is not None
        assert self._chosen is not None
        on_dtu = {inv.serial: inv for inv in self._dtu.inverters}
        inverters = [
            {
                CONF_SERIAL: serial,
                CONF_NAME: on_dtu[serial].name,
                # What the DTU reports is kept too: it counts the inverter at its rating
                # when the DTU is down at a later start.
                CONF_RATED_POWER: ratings.get(serial) or on_dtu[serial].max_power_w,
            }
            for serial in self._chosen
        ]
        data = {**self._dtu_data, CONF_VERSION: self._dtu.version, CONF_INVERTERS: inverters}
        current = self._current()
        # The DTU is known by its host name (OpenDTU-xxxxxx unless renamed); its inverters by
        # serial. Moving it to another address keeps the subentry.
        unique_id = current.unique_id if current and current.unique_id else self._dtu_id()
        return self._finish(f"OpenDTU {self._dtu.hostname or self._dtu_host()}", data, unique_id)

    def _dtu_id(self) -> str:
        assert self._dtu is not None
        return f"opendtu_{self._dtu.hostname or self._dtu_host()}"


def _configured_inverters(sub: ConfigSubentry | None) -> dict[str, dict[str, Any]]:
    if sub is None:
        return {}
    return {str(inv[CONF_SERIAL]): dict(inv) for inv in sub.data.get(CONF_INVERTERS, [])}


def _inverter_label(inverter: DtuInverter) -> str:
    power = (
        f"{inverter.max_power_w:g} W" if inverter.max_power_w is not None else "max power unknown"
    )
    return f"{inverter.name} ({inverter.serial}, {power})"


class HaEntityInverterSteps(_DeviceSteps):
    """An inverter already in Home Assistant: a power sensor and a number that limits it."""

    async def async_step_ha_entity(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Choose the entities, the limit's unit and the rating, and check the entities."""
        errors: dict[str, str] = {}
        if user_input is not None:
            power, limit = user_input[CONF_POWER_ENTITY], user_input[CONF_LIMIT_ENTITY]
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
                }
                name = str(user_input[CONF_NAME]).strip()
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
                vol.Required(CONF_LIMIT_UNIT, default=LIMIT_UNIT_WATT): _select(
                    [LIMIT_UNIT_WATT, LIMIT_UNIT_PERCENT], "limit_unit"
                ),
                vol.Required(CONF_RATED_POWER): _WATTS,
            }
        )
        return self.async_show_form(
            step_id="ha_entity",
            data_schema=self.add_suggested_values_to_schema(schema, self._suggested(user_input)),
            errors=errors,
        )


class HaEntityMeterSteps(_DeviceSteps):
    """A grid power sensor already in Home Assistant as the site meter."""

    async def async_step_ha_entity(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Choose the sensor, its sign and how old its value may get, and check it."""
        errors: dict[str, str] = {}
        if user_input is not None:
            power = user_input[CONF_POWER_ENTITY]
            try:
                read_power_w(self.hass, power)
            except EntityValueError as err:
                errors[CONF_POWER_ENTITY] = err.reason
            else:
                data = {
                    CONF_KIND: KIND_HA_ENTITY,
                    CONF_POWER_ENTITY: power,
                    CONF_INVERT: bool(user_input[CONF_INVERT]),
                    CONF_MAX_AGE: float(user_input[CONF_MAX_AGE]),
                }
                name = str(user_input[CONF_NAME]).strip()
                return self._finish(name, data, power, same_device=False)
        schema = vol.Schema(
            {
                vol.Required(CONF_NAME): selector.TextSelector(),
                vol.Required(CONF_POWER_ENTITY): selector.EntitySelector(
                    selector.EntitySelectorConfig(domain="sensor", device_class="power")
                ),
                vol.Required(CONF_INVERT, default=False): selector.BooleanSelector(),
                vol.Required(CONF_MAX_AGE, default=DEFAULT_ENTITY_MAX_AGE): number_selector(
                    1, 600, 1, "s"
                ),
            }
        )
        return self.async_show_form(
            step_id="ha_entity",
            data_schema=self.add_suggested_values_to_schema(schema, self._suggested(user_input)),
            errors=errors,
        )


class InverterKindSteps(SunSpecRtuSteps, OpenDtuSteps, HaEntityInverterSteps):
    """Every inverter kind's steps but SunSpec TCP (which config_flow.py has)."""


class MeterKindSteps(SunSpecRtuSteps, PowerwallSteps, HaEntityMeterSteps):
    """Every meter kind's steps but SunSpec TCP."""
