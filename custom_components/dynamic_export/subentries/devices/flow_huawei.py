"""Huawei SUN2000 inverters over Modbus TCP (an SDongle, or the inverter's own Wi-Fi).

The form asks for the address only. The connection test reads the identity (model, serial,
ratings) and the active power derating, and writes nothing. The dongle takes one client at a
time, so while the site is loaded the test goes through the site's own connection: it waits
its turn and does not knock the control loop off. The connection is paced as the dongle needs
(a pause after connecting, a gap between requests).
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
    DEFAULT_HUAWEI_PORT,
    DEFAULT_HUAWEI_UNIT_ID,
    KIND_HUAWEI,
)
from ...core.errors import DeviceError
from ...huawei.errors import DeratingUnsupportedError, NotHuaweiError
from ...huawei.inverter import pace_for_sdongle
from ...huawei.probe import HuaweiProbe, async_probe
from ...runtime import loaded_pool
from ...selectors import PORT, PORT_RANGE, number_selector
from ...sunspec.connection import ConnectionPool
from ...validation import FormCheck
from .flow_sunspec import ModbusTcpChecks
from .naming import device_title

HUAWEI_UNIT_ID_RANGE = (0, 247)
"""1 on most SDongles; some answer on 0 (the library default), so 0 is allowed."""
HUAWEI_UNIT_ID = number_selector(*HUAWEI_UNIT_ID_RANGE, 1, "", checked_by_step=True)


HUAWEI_REFUSALS: dict[type[DeviceError], str] = {
    NotHuaweiError: "not_huawei",
    DeratingUnsupportedError: "no_derating",
}


class HuaweiSteps(ModbusTcpChecks):
    """A Huawei SUN2000: host, port (502) and unit id (1)."""

    async def async_step_huawei(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the address and read the inverter."""
        check = FormCheck()
        errors = check.errors
        if user_input is not None:
            check.host(user_input)
            check.number(user_input, CONF_PORT, *PORT_RANGE, whole=True)
            check.number(user_input, CONF_UNIT_ID, *HUAWEI_UNIT_ID_RANGE, whole=True)
        if user_input is not None and not errors:
            data: dict[str, Any] = {
                CONF_KIND: KIND_HUAWEI,
                CONF_HOST: str(user_input[CONF_HOST]).strip(),
                CONF_PORT: int(user_input[CONF_PORT]),
                CONF_UNIT_ID: int(user_input[CONF_UNIT_ID]),
            }
            if self._address_taken(data):
                return self.async_abort(reason="already_configured")
            where = f"{data[CONF_HOST]}:{data[CONF_PORT]} unit {data[CONF_UNIT_ID]}"
            try:
                probe = await self._async_probe_huawei(data)
            except DeviceError as err:
                errors["base"] = self._probe_error(where, err, HUAWEI_REFUSALS)
            else:
                info = probe.info
                data[CONF_RATED_POWER] = info.rated_power_w
                serial = info.serial_number or where
                title = device_title(None, info.model, serial, "Huawei SUN2000")
                return self._finish(title, data, serial)
        fields: dict[Any, Any] = {
            vol.Required(CONF_HOST): selector.TextSelector(),
            vol.Required(CONF_PORT, default=DEFAULT_HUAWEI_PORT): PORT,
            vol.Required(CONF_UNIT_ID, default=DEFAULT_HUAWEI_UNIT_ID): HUAWEI_UNIT_ID,
        }
        return self.async_show_form(
            step_id="huawei",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(fields), self._suggested(user_input)
            ),
            errors=errors,
            description_placeholders=check.placeholders,
        )

    async def _async_probe_huawei(self, data: dict[str, Any]) -> HuaweiProbe:
        """Read the inverter, through the loaded site's connection when there is one."""
        site_pool = loaded_pool(self._get_entry())
        pool = site_pool or ConnectionPool(timeout_s=self.probe_timeout_s)
        try:
            connection = pace_for_sdongle(pool.get(data[CONF_HOST], data[CONF_PORT]))
            return await async_probe(connection, data[CONF_UNIT_ID])
        finally:
            if site_pool is None:
                await pool.close()
