"""Sungrow SG (string) and SH (hybrid) inverters over Modbus TCP.

The form asks for the address only. The connection test reads the identity (serial, device
type code -> family, rating) and the power limitation registers, and writes nothing. The
connection is paced for a WiNet-S dongle (a pause after connecting, a gap between requests);
while the site is loaded the test goes through the site's own connection, so it waits its
turn instead of talking over the control loop.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SubentryFlowResult
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.helpers import selector

from ...compat import vol
from ...const import (
    CONF_KIND,
    CONF_RATED_POWER,
    CONF_UNIT_ID,
    DEFAULT_INVERTER_UNIT_ID,
    DEFAULT_SUNGROW_PORT,
    KIND_SUNGROW,
)
from ...core.errors import DeviceError
from ...runtime import loaded_pool
from ...selectors import PORT, PORT_RANGE, number_selector
from ...sungrow.errors import NotSungrowError, PowerLimitUnsupportedError
from ...sungrow.inverter import pace_for_winet
from ...sungrow.probe import SungrowProbe, async_probe
from ...sunspec.connection import ConnectionPool
from ...validation import FormCheck
from .flow_sunspec import RTU_UNIT_ID_RANGE, ModbusTcpChecks
from .naming import device_title

SUNGROW_UNIT_ID = number_selector(*RTU_UNIT_ID_RANGE, 1, "", checked_by_step=True)
"""Sungrow slave addresses are 1-247 (1 unless the installer changed it)."""


SUNGROW_REFUSALS: dict[type[DeviceError], str] = {
    NotSungrowError: "not_sungrow",
    PowerLimitUnsupportedError: "no_power_limitation",
}


class SungrowSteps(ModbusTcpChecks):
    """A Sungrow inverter: host, port (502) and unit id."""

    async def async_step_sungrow(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the address and read the inverter."""
        check = FormCheck()
        errors = check.errors
        if user_input is not None:
            check.host(user_input)
            check.number(user_input, CONF_PORT, *PORT_RANGE, whole=True)
            check.number(user_input, CONF_UNIT_ID, *RTU_UNIT_ID_RANGE, whole=True)
        if user_input is not None and not errors:
            data: dict[str, Any] = {
                CONF_KIND: KIND_SUNGROW,
                CONF_HOST: str(user_input[CONF_HOST]).strip(),
                CONF_PORT: int(user_input[CONF_PORT]),
                CONF_UNIT_ID: int(user_input[CONF_UNIT_ID]),
            }
            if self._address_taken(data):
                return self.async_abort(reason="already_configured")
            where = f"{data[CONF_HOST]}:{data[CONF_PORT]} unit {data[CONF_UNIT_ID]}"
            try:
                probe = await self._async_probe_sungrow(data)
            except DeviceError as err:
                errors["base"] = self._probe_error(where, err, SUNGROW_REFUSALS)
            else:
                info = probe.info
                data[CONF_RATED_POWER] = info.rated_power_w
                serial = info.serial_number or where
                family = f"Sungrow {info.family.name}"
                title = device_title(None, family, serial, family)
                return self._finish(title, data, serial)
        fields: dict[Any, Any] = {
            vol.Required(CONF_HOST): selector.TextSelector(),
            vol.Required(CONF_PORT, default=DEFAULT_SUNGROW_PORT): PORT,
            vol.Required(CONF_UNIT_ID, default=DEFAULT_INVERTER_UNIT_ID): SUNGROW_UNIT_ID,
        }
        return self.async_show_form(
            step_id="sungrow",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(fields), self._suggested(user_input)
            ),
            errors=errors,
            description_placeholders=check.placeholders,
        )

    async def _async_probe_sungrow(self, data: dict[str, Any]) -> SungrowProbe:
        """Read the inverter, through the loaded site's connection when there is one."""
        site_pool = loaded_pool(self._get_entry())
        pool = site_pool or ConnectionPool(timeout_s=self.probe_timeout_s)
        try:
            connection = pace_for_winet(pool.get(data[CONF_HOST], data[CONF_PORT]))
            return await async_probe(connection, data[CONF_UNIT_ID])
        finally:
            if site_pool is None:
                await pool.close()
