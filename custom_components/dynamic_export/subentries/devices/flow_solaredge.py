"""SolarEdge inverters over Modbus TCP, limited through Enhanced Dynamic Power Control.

The form asks for the address and for the limit the inverter falls back to when Home
Assistant stops writing. The connection test only reads (identity, rating, power-control
registers); the one-time commit of power control is left to the site's start. A SolarEdge
inverter serves one Modbus client at a time, so while the site is loaded the test goes
through the site's own connection instead of knocking the control loop off.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SubentryFlowResult
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.helpers import selector

from ...compat import vol
from ...const import (
    CONF_FALLBACK_LIMIT,
    CONF_KIND,
    CONF_RATED_POWER,
    CONF_UNIT_ID,
    DEFAULT_INVERTER_UNIT_ID,
    DEFAULT_SOLAREDGE_FALLBACK,
    DEFAULT_SOLAREDGE_PORT,
    KIND_SOLAREDGE,
)
from ...core.errors import DeviceError
from ...runtime import loaded_pool
from ...selectors import PORT, PORT_RANGE, UNIT_ID, UNIT_ID_RANGE, number_selector
from ...solaredge.errors import NotSolarEdgeError, PowerControlUnsupportedError
from ...solaredge.probe import SolarEdgeProbe, async_probe
from ...sunspec.connection import ConnectionPool
from ...sunspec.errors import NotSunSpecError
from ...validation import FormCheck
from .flow_sunspec import ModbusTcpChecks
from .naming import device_title

FALLBACK_RANGE = (0, 100)
FALLBACK_PERCENT = number_selector(*FALLBACK_RANGE, 1, "%", checked_by_step=True)


SOLAREDGE_REFUSALS: dict[type[DeviceError], str] = {
    NotSolarEdgeError: "not_solaredge",
    PowerControlUnsupportedError: "no_power_control",
}


class SolarEdgeSteps(ModbusTcpChecks):
    """A SolarEdge inverter: host, port (1502 by default), unit id and fallback limit."""

    async def async_step_solaredge(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the address and the fallback limit, and read the inverter."""
        check = FormCheck()
        errors = check.errors
        if user_input is not None:
            check.host(user_input)
            check.number(user_input, CONF_PORT, *PORT_RANGE, whole=True)
            check.number(user_input, CONF_UNIT_ID, *UNIT_ID_RANGE, whole=True)
            check.number(user_input, CONF_FALLBACK_LIMIT, *FALLBACK_RANGE)
        if user_input is not None and not errors:
            data: dict[str, Any] = {
                CONF_KIND: KIND_SOLAREDGE,
                CONF_HOST: str(user_input[CONF_HOST]).strip(),
                CONF_PORT: int(user_input[CONF_PORT]),
                CONF_UNIT_ID: int(user_input[CONF_UNIT_ID]),
                CONF_FALLBACK_LIMIT: float(user_input[CONF_FALLBACK_LIMIT]),
            }
            if self._address_taken(data):
                return self.async_abort(reason="already_configured")
            where = f"{data[CONF_HOST]}:{data[CONF_PORT]} unit {data[CONF_UNIT_ID]}"
            try:
                probe = await self._async_probe_solaredge(data)
            except NotSunSpecError:
                errors["base"] = "not_sunspec"
            except DeviceError as err:
                errors["base"] = self._probe_error(where, err, SOLAREDGE_REFUSALS)
            else:
                info = probe.info
                data[CONF_RATED_POWER] = info.rated_power_w
                serial = info.serial_number or where
                title = device_title(info.manufacturer, info.model, serial, "SolarEdge")
                return self._finish(title, data, serial)
        fields: dict[Any, Any] = {
            vol.Required(CONF_HOST): selector.TextSelector(),
            vol.Required(CONF_PORT, default=DEFAULT_SOLAREDGE_PORT): PORT,
            vol.Required(CONF_UNIT_ID, default=DEFAULT_INVERTER_UNIT_ID): UNIT_ID,
            vol.Required(CONF_FALLBACK_LIMIT, default=DEFAULT_SOLAREDGE_FALLBACK): FALLBACK_PERCENT,
        }
        return self.async_show_form(
            step_id="solaredge",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(fields), self._suggested(user_input)
            ),
            errors=errors,
            description_placeholders=check.placeholders,
        )

    async def _async_probe_solaredge(self, data: dict[str, Any]) -> SolarEdgeProbe:
        """Read the inverter, through the loaded site's connection when there is one."""
        site_pool = loaded_pool(self._get_entry())
        pool = site_pool or ConnectionPool(timeout_s=self.probe_timeout_s)
        try:
            connection = pool.get(data[CONF_HOST], data[CONF_PORT])
            return await async_probe(connection, data[CONF_UNIT_ID])
        finally:
            if site_pool is None:
                await pool.close()
