"""A Victron GX with ESS over Modbus TCP: the GX as the site's inverter, or its grid meter.

The inverter form asks for the address and the rating of the PV the GX manages; the GX is
then driven only through its ESS maximum feed-in, and it curtails its PV inverters itself.
So that nothing else drives those PV inverters too (the two loops would fight, and a
SolarEdge serves one client), a GX is only added to a site without other inverters, and
once a site has one no other inverter can be added (``flow.py``). The connection test only
reads; the maximum feed-in it finds is stored as the GX's own setting: releasing writes it
back, and the site never sets a higher one.

The meter form asks for the address and the grid meter's unit id (its device instance,
listed on the GX under *Available services*).
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SubentryFlowResult
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.helpers import selector

from ...compat import vol
from ...const import (
    CONF_KIND,
    CONF_OWN_FEED_IN,
    CONF_RATED_POWER,
    CONF_UNIT_ID,
    DEFAULT_VICTRON_METER_UNIT_ID,
    DEFAULT_VICTRON_PORT,
    KIND_VICTRON_GX,
    SUBENTRY_INVERTER,
)
from ...core.errors import DeviceError, DeviceUnavailableError
from ...runtime import loaded_pool
from ...selectors import PORT, PORT_RANGE, UNIT_ID, UNIT_ID_RANGE, number_selector
from ...sunspec.connection import ConnectionPool
from ...sunspec.errors import ModbusExceptionError
from ...validation import FormCheck
from ...victron.errors import EssUnavailableError, GridMeterUnavailableError, NotVictronGxError
from ...victron.inverter import GxInfo
from ...victron.meter import GridMeterInfo
from ...victron.probe import async_probe_grid_meter, async_probe_gx
from .flow_base import MAX_RATING_W, DeviceSteps
from .flow_sunspec import GATEWAY_ERRORS
from .naming import device_title

RATING_RANGE = (1, MAX_RATING_W)
PV_RATING = number_selector(*RATING_RANGE, 1, "W", checked_by_step=True)


def has_victron_gx(subentries: Any) -> bool:
    """True when one of the site's inverter subentries is a Victron GX."""
    return any(
        sub.subentry_type == SUBENTRY_INVERTER and sub.data.get(CONF_KIND) == KIND_VICTRON_GX
        for sub in subentries
    )


class VictronGxSteps(DeviceSteps):
    """A Victron GX: as the inverter (host, port, PV rating) or its grid meter (+ unit id)."""

    async def async_step_victron_gx(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the address (and the PV rating, or the meter's unit id), and read the GX."""
        if not self.is_meter and any(
            sub.subentry_type == SUBENTRY_INVERTER for sub in self._others()
        ):
            return self.async_abort(reason="victron_gx_not_alone")
        check = FormCheck()
        errors = check.errors
        current = self._current()
        if user_input is not None:
            check.host(user_input)
            check.number(user_input, CONF_PORT, *PORT_RANGE, whole=True)
            if self.is_meter:
                check.number(user_input, CONF_UNIT_ID, *UNIT_ID_RANGE, whole=True)
            else:
                check.number(user_input, CONF_RATED_POWER, *RATING_RANGE)
        if user_input is not None and not errors:
            data: dict[str, Any] = {
                CONF_KIND: KIND_VICTRON_GX,
                CONF_HOST: str(user_input[CONF_HOST]).strip(),
                CONF_PORT: int(user_input[CONF_PORT]),
            }
            if self.is_meter:
                data[CONF_UNIT_ID] = int(user_input[CONF_UNIT_ID])
            else:
                data[CONF_RATED_POWER] = float(user_input[CONF_RATED_POWER])
            where = f"{data[CONF_HOST]}:{data[CONF_PORT]}"
            try:
                found = await self._async_probe_victron(data)
            except NotVictronGxError as err:
                errors["base"] = "not_victron_gx"
                self._log_refusal(where, err)
            except GridMeterUnavailableError as err:
                errors["base"] = "no_grid_meter"
                self._log_refusal(where, err)
            except EssUnavailableError as err:
                errors["base"] = "no_ess"
                self._log_refusal(where, err)
            except ModbusExceptionError as err:
                if err.code in GATEWAY_ERRORS:
                    errors["base"] = "unit_not_found"
                else:
                    errors["base"] = "unsupported_device"
                    self._log_refusal(where, err)
            except DeviceUnavailableError:
                errors["base"] = "cannot_connect"
            except DeviceError as err:
                errors["base"] = "unsupported_device"
                self._log_refusal(where, err)
            else:
                if isinstance(found, GxInfo):
                    # Reconfiguring keeps the setting found when the GX was added: the GX
                    # may hold one of our caps now.
                    own = current.data.get(CONF_OWN_FEED_IN) if current else None
                    data[CONF_OWN_FEED_IN] = found.max_feed_in_w if own is None else own
                    title = device_title(None, "Victron GX", found.serial_number, "Victron GX")
                    return self._finish(title, data, f"victron-gx-{found.serial_number}")
                serial = found.serial_number or f"{where} unit {data[CONF_UNIT_ID]}"
                title = device_title(None, "Victron grid meter", serial, "Victron grid meter")
                return self._finish(title, data, f"victron-grid-{serial}")
        fields: dict[Any, Any] = {
            vol.Required(CONF_HOST): selector.TextSelector(),
            vol.Required(CONF_PORT, default=DEFAULT_VICTRON_PORT): PORT,
        }
        if self.is_meter:
            fields[vol.Required(CONF_UNIT_ID, default=DEFAULT_VICTRON_METER_UNIT_ID)] = UNIT_ID
        else:
            fields[vol.Required(CONF_RATED_POWER)] = PV_RATING
        return self.async_show_form(
            step_id=KIND_VICTRON_GX,
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(fields), self._suggested(user_input)
            ),
            errors=errors,
            description_placeholders=check.placeholders,
        )

    async def _async_probe_victron(self, data: dict[str, Any]) -> GxInfo | GridMeterInfo:
        """Read the GX (or its meter), through the loaded site's connection when there is one."""
        site_pool = loaded_pool(self._get_entry())
        pool = site_pool or ConnectionPool(timeout_s=self.probe_timeout_s)
        try:
            connection = pool.get(data[CONF_HOST], data[CONF_PORT])
            if self.is_meter:
                return await async_probe_grid_meter(connection, data[CONF_UNIT_ID])
            return await async_probe_gx(connection)
        finally:
            if site_pool is None:
                await pool.close()
