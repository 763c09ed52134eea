"""A meter wired to a SolarEdge inverter as the site meter, read through the inverter.

The form asks for the inverter's address (host, port, unit id) and which of its meters (1-3)
is at the grid connection point; a site with a SolarEdge inverter offers that inverter's
address. The inverter serves one Modbus client at a time, so the meter must use the same
host and port as the site's SolarEdge inverter there (then both ride on one connection), and
while the site is loaded the connection test goes through the site's own connection instead
of knocking the control loop off. The test only reads; a meter that is not at the grid
connection point (a consumption or production meter) is refused with the function it has.

Right after the inverter is added (or anything else changes) the site reloads, and a
SolarEdge inverter's set-up takes its 5–10 s commit: a test made meanwhile would open a
second client and knock the site's own off. So the test first waits for the site to settle.
"""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigSubentry, SubentryFlowResult
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.helpers import selector

from ...compat import vol
from ...const import (
    CONF_KIND,
    CONF_METER_NUMBER,
    CONF_UNIT_ID,
    DEFAULT_INVERTER_UNIT_ID,
    DEFAULT_SOLAREDGE_METER_NUMBER,
    DEFAULT_SOLAREDGE_PORT,
    KIND_SOLAREDGE,
    SUBENTRY_INVERTER,
)
from ...core.errors import DeviceError
from ...runtime import loaded_pool
from ...selectors import PORT, PORT_RANGE, UNIT_ID, UNIT_ID_RANGE, number_selector
from ...solaredge.errors import NoMeterError, NotGridMeterError, NotSolarEdgeError
from ...solaredge.meter import METER_NUMBERS, SolarEdgeMeterInfo, async_read_meter_identity
from ...sunspec.connection import ConnectionPool
from ...sunspec.errors import NotSunSpecError
from ...validation import FormCheck
from .flow_sunspec import ModbusTcpChecks
from .naming import device_title

METER_NUMBER = number_selector(*METER_NUMBERS, 1, "", checked_by_step=True)

SOLAREDGE_METER_REFUSALS: dict[type[DeviceError], str] = {
    NotSolarEdgeError: "not_solaredge",
    NoMeterError: "no_solaredge_meter",
}


SITE_SETTLE_S = 30.0
"""How long the connection test waits for a site that is setting up or reloading."""


class SiteBusyError(Exception):
    """The site was still setting up or reloading when the test had to read."""


async def _async_site_settled(entry: ConfigEntry[Any]) -> None:
    """Wait until the site is not setting up, unloading or reloading.

    Home Assistant holds the entry's set-up lock through each of them: taking it (and
    letting it go at once) waits them out.
    """
    try:
        async with asyncio.timeout(SITE_SETTLE_S), entry.setup_lock:
            pass
    except TimeoutError as err:
        raise SiteBusyError from err


def _solaredge_inverters(subentries: list[ConfigSubentry]) -> list[ConfigSubentry]:
    return [
        sub
        for sub in subentries
        if sub.subentry_type == SUBENTRY_INVERTER and sub.data.get(CONF_KIND) == KIND_SOLAREDGE
    ]


class SolarEdgeMeterSteps(ModbusTcpChecks):
    """The site meter wired to a SolarEdge inverter: its address and the meter's number."""

    async def async_step_solaredge(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the inverter's address and the meter number, and read the meter."""
        check = FormCheck()
        errors = check.errors
        inverters = _solaredge_inverters(self._others())
        if user_input is not None:
            check.host(user_input)
            check.number(user_input, CONF_PORT, *PORT_RANGE, whole=True)
            check.number(user_input, CONF_UNIT_ID, *UNIT_ID_RANGE, whole=True)
            check.number(user_input, CONF_METER_NUMBER, *METER_NUMBERS, whole=True)
        if user_input is not None and not errors:
            data: dict[str, Any] = {
                CONF_KIND: KIND_SOLAREDGE,
                CONF_HOST: str(user_input[CONF_HOST]).strip(),
                CONF_PORT: int(user_input[CONF_PORT]),
                CONF_UNIT_ID: int(user_input[CONF_UNIT_ID]),
                CONF_METER_NUMBER: int(user_input[CONF_METER_NUMBER]),
            }
            where = f"{data[CONF_HOST]}:{data[CONF_PORT]} unit {data[CONF_UNIT_ID]}"
            other_port = next(
                (
                    sub.data[CONF_PORT]
                    for sub in inverters
                    if str(sub.data.get(CONF_HOST, "")).lower() == data[CONF_HOST].lower()
                    and sub.data.get(CONF_PORT) != data[CONF_PORT]
                ),
                None,
            )
            if other_port is not None:
                # A second port to the same inverter is a second Modbus client: it would
                # knock the inverter's own connection off every cycle.
                errors[CONF_PORT] = "solaredge_other_port"
                check.placeholders["inverter_port"] = str(other_port)
            else:
                try:
                    info = await self._async_probe_solaredge_meter(data)
                except SiteBusyError:
                    errors["base"] = "site_busy"
                except NotSunSpecError:
                    errors["base"] = "not_sunspec"
                except NotGridMeterError as err:
                    errors["base"] = "not_grid_meter"
                    check.placeholders["meter_option"] = err.option or "?"
                    self._log_refusal(where, err)
                except DeviceError as err:
                    errors["base"] = self._probe_error(where, err, SOLAREDGE_METER_REFUSALS)
                else:
                    serial = info.serial_number or f"{where} meter {info.meter_number}"
                    title = device_title(info.manufacturer, info.model, serial, "SolarEdge meter")
                    return self._finish(title, data, f"solaredge-meter-{serial}")
        fields: dict[Any, Any] = {
            vol.Required(CONF_HOST): selector.TextSelector(),
            vol.Required(CONF_PORT, default=DEFAULT_SOLAREDGE_PORT): PORT,
            vol.Required(CONF_UNIT_ID, default=DEFAULT_INVERTER_UNIT_ID): UNIT_ID,
            vol.Required(CONF_METER_NUMBER, default=DEFAULT_SOLAREDGE_METER_NUMBER): METER_NUMBER,
        }
        suggested = self._suggested(user_input)
        if not suggested and inverters:
            # The meter is read through the inverter: offer its address.
            inverter = inverters[0].data
            suggested = {key: inverter[key] for key in (CONF_HOST, CONF_PORT, CONF_UNIT_ID)}
        return self.async_show_form(
            step_id=KIND_SOLAREDGE,
            data_schema=self.add_suggested_values_to_schema(vol.Schema(fields), suggested),
            errors=errors,
            description_placeholders=check.placeholders,
        )

    async def _async_probe_solaredge_meter(self, data: dict[str, Any]) -> SolarEdgeMeterInfo:
        """Read the meter, through the loaded site's connection when there is one."""
        entry = self._get_entry()
        await _async_site_settled(entry)
        site_pool = loaded_pool(entry)
        pool = site_pool or ConnectionPool(timeout_s=self.probe_timeout_s)
        try:
            connection = pool.get(data[CONF_HOST], data[CONF_PORT])
            return await async_read_meter_identity(
                connection, data[CONF_UNIT_ID], data[CONF_METER_NUMBER]
            )
        finally:
            if site_pool is None:
                await pool.close()
