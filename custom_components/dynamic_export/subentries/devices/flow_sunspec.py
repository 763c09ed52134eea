"""SunSpec devices, over Modbus TCP or RS-485 (Modbus RTU).

TCP needs a host, a port and a unit id; RS-485 a serial port, its line settings and a unit
id. Either way the device is read before it is saved.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import ConfigEntry, SubentryFlowResult
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.helpers import selector

from ...compat import vol
from ...const import (
    CONF_BAUDRATE,
    CONF_INVERT,
    CONF_KIND,
    CONF_PARITY,
    CONF_RATED_POWER,
    CONF_SERIAL_PORT,
    CONF_STOPBITS,
    CONF_UNIT_ID,
    DEFAULT_BAUDRATE,
    DEFAULT_MODBUS_PORT,
    KIND_SUNSPEC_RTU,
    KIND_SUNSPEC_TCP,
)
from ...core.errors import DeviceError, DeviceUnavailableError
from ...runtime import loaded_pool
from ...selectors import PORT, PORT_RANGE, UNIT_ID, UNIT_ID_RANGE, number_selector
from ...sunspec.connection import ConnectionPool
from ...sunspec.device import SunSpecDevice
from ...sunspec.errors import ModbusExceptionError, NotSunSpecError
from ...sunspec.inverter import InverterInfo, SunSpecInverter
from ...sunspec.meter import MeterInfo, SunSpecMeter
from ...validation import FormCheck
from .flow_base import DeviceSteps, dropdown
from .naming import device_title
from .setup import serial_settings

# Modbus exceptions a gateway answers with when nothing is behind the unit id:
# 10 "gateway path unavailable", 11 "gateway target device failed to respond".
GATEWAY_ERRORS = (10, 11)
PARITY_OPTIONS = {"none": "N", "even": "E", "odd": "O"}
BAUD_RATES = ["1200", "2400", "4800", "9600", "19200", "38400", "57600", "115200"]
SERIAL_BY_ID = "/dev/serial/by-id"

# RS-485 addresses a slave from 1 to 247 (0 is broadcast, 248-255 reserved).
RTU_UNIT_ID_RANGE = (1, 247)


def _tcp_schema(unit_id: int, *, meter: bool) -> vol.Schema:
    fields: dict[Any, Any] = {
        vol.Required(CONF_HOST): selector.TextSelector(),
        vol.Required(CONF_PORT, default=DEFAULT_MODBUS_PORT): PORT,
        vol.Required(CONF_UNIT_ID, default=unit_id): UNIT_ID,
    }
    if meter:
        fields[vol.Required(CONF_INVERT, default=False)] = selector.BooleanSelector()
    return vol.Schema(fields)


def _tcp_address(host: str, port: int, unit_id: int) -> str:
    return f"{host}:{port} unit {unit_id}"


def _rtu_address(data: dict[str, Any]) -> str:
    return f"{data[CONF_SERIAL_PORT]} unit {data[CONF_UNIT_ID]}"


class SunSpecSteps(DeviceSteps):
    """What both SunSpec transports share: the client that reads the device, and its title."""

    default_unit_id: int
    fallback_title: str

    def _client(
        self, device: SunSpecDevice, data: dict[str, Any]
    ) -> SunSpecInverter | SunSpecMeter:
        """The client that identifies the device (a meter with the sign chosen in the form)."""
        if self.is_meter:
            return SunSpecMeter(device, invert=bool(data[CONF_INVERT]))
        return SunSpecInverter(device)

    def _title_and_id(
        self, info: InverterInfo | MeterInfo, data: dict[str, Any], address: str
    ) -> tuple[str, str]:
        """The subentry's title and unique id (the serial, else the ``address``).

        An inverter's rating is kept in ``data`` until a read at start replaces it.
        """
        if isinstance(info, InverterInfo):
            data[CONF_RATED_POWER] = info.rated_power_w
        serial = info.serial_number or address
        return device_title(info.manufacturer, info.model, serial, self.fallback_title), serial


class SunSpecTcpSteps(SunSpecSteps):
    """SunSpec over Modbus TCP: a host, a port and a unit id."""

    async def async_step_sunspec_tcp(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the device address and test it."""
        return await self._async_step_tcp("sunspec_tcp", user_input)

    async def _async_step_tcp(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        """The address form as ``step_id`` (``reconfigure`` changes a device already added)."""
        entry = self._get_entry()
        reconfiguring = step_id == "reconfigure"
        current = self._get_reconfigure_subentry() if reconfiguring else None
        check = FormCheck()
        errors = check.errors
        if user_input is not None:
            check.host(user_input)
            check.number(user_input, CONF_PORT, *PORT_RANGE, whole=True)
            check.number(user_input, CONF_UNIT_ID, *UNIT_ID_RANGE, whole=True)
        if user_input is not None and not errors:
            data = {
                **user_input,
                CONF_HOST: user_input[CONF_HOST].strip(),
                CONF_PORT: int(user_input[CONF_PORT]),
                CONF_UNIT_ID: int(user_input[CONF_UNIT_ID]),
            }
            address = (data[CONF_HOST], data[CONF_PORT], data[CONF_UNIT_ID])
            if self._address_taken(data):
                return self.async_abort(reason="already_configured")
            try:
                title, unique_id = await self._async_probe_tcp(*address, data)
            except NotSunSpecError:
                errors["base"] = "not_sunspec"
            except ModbusExceptionError as err:
                if err.code in GATEWAY_ERRORS:
                    errors["base"] = "unit_not_found"
                else:
                    errors["base"] = "unsupported_device"
                    self._log_refusal(_tcp_address(*address), err)
            except DeviceUnavailableError:
                errors["base"] = "cannot_connect"
            except DeviceError as err:
                errors["base"] = "unsupported_device"
                self._log_refusal(_tcp_address(*address), err)
            else:
                if current is not None:
                    if current.unique_id != unique_id:
                        return self.async_abort(reason="different_device")
                    return self.async_update_and_abort(entry, current, data=data)
                if any(sub.unique_id == unique_id for sub in entry.subentries.values()):
                    return self.async_abort(reason="already_configured")
                return self.async_create_entry(title=title, data=data, unique_id=unique_id)
        schema = _tcp_schema(self.default_unit_id, meter=self.is_meter)
        suggested = user_input or (dict(current.data) if current else self._known_gateway(entry))
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders=check.placeholders,
        )

    @staticmethod
    def _known_gateway(entry: ConfigEntry) -> dict[str, Any]:
        """The host and port of a device already added over TCP, to offer for the next one.

        Inverters behind one Datamanager or gateway, and often the meter too, share them.
        """
        for sub in entry.subentries.values():
            kind = sub.data.get(CONF_KIND, KIND_SUNSPEC_TCP)
            if kind == KIND_SUNSPEC_TCP and sub.data.get(CONF_HOST) and CONF_UNIT_ID in sub.data:
                return {CONF_HOST: sub.data[CONF_HOST], CONF_PORT: sub.data.get(CONF_PORT)}
        return {}

    async def _async_probe_tcp(
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
        return self._title_and_id(info, data, f"{host}:{port}:{unit_id}")


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


class SunSpecRtuSteps(SunSpecSteps):
    """SunSpec over RS-485 (Modbus RTU): a serial port, its line settings and a unit id."""

    async def async_step_sunspec_rtu(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the port, the line settings and the unit id, and read the device."""
        check = FormCheck()
        errors = check.errors
        baudrate = _baudrate(user_input[CONF_BAUDRATE]) if user_input is not None else None
        if user_input is not None:
            check.number(user_input, CONF_UNIT_ID, *RTU_UNIT_ID_RANGE, whole=True)
            if baudrate is None:
                errors[CONF_BAUDRATE] = "invalid_baudrate"
        if user_input is not None and not errors:
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
                    if err.code in GATEWAY_ERRORS:
                        errors["base"] = "unit_not_found"
                    else:
                        errors["base"] = "unsupported_device"
                        self._log_refusal(_rtu_address(data), err)
                except DeviceUnavailableError as err:
                    errors["base"] = (
                        "cannot_open_port"
                        if str(err).startswith("cannot connect")
                        else "no_response"
                    )
                except DeviceError as err:
                    errors["base"] = "unsupported_device"
                    self._log_refusal(_rtu_address(data), err)
                else:
                    return self._finish(title, data, unique_id)
        ports = await self.hass.async_add_executor_job(_list_serial_ports)
        fields: dict[Any, Any] = {
            vol.Required(CONF_SERIAL_PORT): dropdown(ports, custom=True),
            vol.Required(CONF_BAUDRATE, default=str(DEFAULT_BAUDRATE)): dropdown(
                BAUD_RATES, custom=True
            ),
            vol.Required(CONF_PARITY, default="none"): dropdown(list(PARITY_OPTIONS), "parity"),
            vol.Required(CONF_STOPBITS, default="1"): dropdown(["1", "2"]),
            vol.Required(CONF_UNIT_ID, default=self.default_unit_id): number_selector(
                *RTU_UNIT_ID_RANGE, 1, "", checked_by_step=True
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
            description_placeholders=check.placeholders,
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
            info = await self._async_read_rtu(ConnectionPool(timeout_s=self.probe_timeout_s), data)
        elif (
            current is not None
            and current.data.get(CONF_SERIAL_PORT) == port
            and serial_settings(current.data) != serial_settings(data)
        ):
            # New line settings for a bus this device has to itself (checked by the caller):
            # the site's connection stays closed while the new settings are tried.
            site_bus = site_pool.get_serial(port, serial_settings(current.data))
            async with site_bus.async_suspend():
                info = await self._async_read_rtu(
                    ConnectionPool(timeout_s=self.probe_timeout_s), data
                )
        else:
            info = await self._async_read_rtu(site_pool, data, shared=True)
        return self._title_and_id(info, data, f"{port}:{data[CONF_UNIT_ID]}")

    async def _async_read_rtu(
        self, pool: ConnectionPool, data: dict[str, Any], *, shared: bool = False
    ) -> InverterInfo | MeterInfo:
        """Read the device's identity through ``pool`` (closed afterwards unless ``shared``)."""
        try:
            connection = pool.get_serial(data[CONF_SERIAL_PORT], serial_settings(data))
            return await self._client(
                SunSpecDevice(connection, data[CONF_UNIT_ID]), data
            ).async_setup()
        finally:
            if not shared:
                await pool.close()


class ModbusTcpChecks(DeviceSteps):
    """How the vendor Modbus TCP kinds (SolarEdge, Sungrow, Huawei) explain a failed test."""

    def _probe_error(
        self, where: str, err: DeviceError, vendor: Mapping[type[DeviceError], str]
    ) -> str:
        """The form error for a failed connection test; logged where the form says so.

        ``vendor`` maps the family's own refusals (not that device, no control) to errors.
        """
        for kind, reason in vendor.items():
            if isinstance(err, kind):
                self._log_refusal(where, err)
                return reason
        if isinstance(err, ModbusExceptionError) and err.code in GATEWAY_ERRORS:
            return "unit_not_found"
        if isinstance(err, DeviceUnavailableError):
            return "cannot_connect"
        self._log_refusal(where, err)
        return "unsupported_device"
