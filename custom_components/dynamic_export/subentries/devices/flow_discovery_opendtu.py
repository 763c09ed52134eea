"""An OpenDTU that announces itself over mDNS is offered as a site's inverters.

OpenDTU announces ``_opendtu._tcp`` when mDNS is turned on in its network settings, under
its host name (OpenDTU-xxxxxx unless renamed), which is also how its subentry is known. A DTU
already added that comes back on another address gets its address updated. As for the
Powerwall, discovery starts the site flow, so this step adds the subentry itself once the
password checks out, with every inverter whose rating the DTU knows; the subentry's
reconfigure form then chooses among them.
"""

from __future__ import annotations

import logging
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult, ConfigSubentry
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PASSWORD, CONF_PORT
from homeassistant.helpers import selector
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from ...compat import vol
from ...const import (
    CONF_INVERTERS,
    CONF_KIND,
    CONF_RATED_POWER,
    CONF_SERIAL,
    CONF_VERSION,
    DEFAULT_OPENDTU_PORT,
    KIND_OPENDTU,
    SUBENTRY_INVERTER,
)
from ...core.errors import DeviceError, DeviceUnavailableError
from ...opendtu import probe as opendtu_probe
from ...opendtu.errors import InvalidPasswordError, NotOpenDtuError
from .flow_base import PASSWORD

CONF_SITE = "site"

_LOGGER = logging.getLogger(__name__)


def dtu_unique_id(hostname: str) -> str:
    """The subentry's unique id for a DTU known by ``hostname`` (as the inverter flow sets)."""
    return f"opendtu_{hostname}"


class OpenDtuDiscoverySteps(ConfigFlow):
    """The ``zeroconf`` and ``opendtu_discovered`` steps of the site flow."""

    _dtu_host: str = ""
    _dtu_port: int = DEFAULT_OPENDTU_PORT

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """A DTU announced itself: offer it unless a site already has it."""
        host = discovery_info.host
        port = discovery_info.port or DEFAULT_OPENDTU_PORT
        name = discovery_info.hostname.removesuffix(".").removesuffix(".local")
        await self.async_set_unique_id(dtu_unique_id(name.casefold()))  # one flow per DTU
        for entry in self._async_current_entries(include_ignore=False):
            for sub in entry.subentries.values():
                if sub.data.get(CONF_KIND) != KIND_OPENDTU:
                    continue
                same_dtu = (sub.unique_id or "").casefold() == dtu_unique_id(name.casefold())
                if same_dtu and (sub.data.get(CONF_HOST), sub.data.get(CONF_PORT)) != (host, port):
                    # The same DTU got another address: follow it.
                    self.hass.config_entries.async_update_subentry(
                        entry, sub, data={**sub.data, CONF_HOST: host, CONF_PORT: port}
                    )
                    return self.async_abort(reason="opendtu_already_configured")
                if same_dtu or sub.data.get(CONF_HOST) == host:
                    return self.async_abort(reason="opendtu_already_configured")
        if not self._async_current_entries(include_ignore=False):
            return self.async_abort(reason="no_site")
        self._dtu_host, self._dtu_port = host, port
        self.context["title_placeholders"] = {"name": name, "host": host}
        return await self.async_step_opendtu_discovered()

    async def async_step_opendtu_discovered(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Pick the site and give the DTU's admin password; the DTU is asked first."""
        sites = self._async_current_entries(include_ignore=False)
        if not sites:
            return self.async_abort(reason="no_site")
        errors: dict[str, str] = {}
        if user_input is not None:
            entry = next((e for e in sites if e.entry_id == user_input[CONF_SITE]), sites[0])
            try:
                info = await opendtu_probe.async_probe(
                    async_get_clientsession(self.hass),
                    self._dtu_host,
                    user_input[CONF_PASSWORD],
                    port=self._dtu_port,
                )
            except InvalidPasswordError:
                errors["base"] = "invalid_auth"
            except NotOpenDtuError:
                errors["base"] = "not_opendtu"
            except DeviceUnavailableError:
                errors["base"] = "cannot_connect"
            except DeviceError as err:
                errors["base"] = "invalid_response"  # the form says to see the log
                _LOGGER.warning("The OpenDTU at %s cannot be used: %s", self._dtu_host, err)
            else:
                where = f"{self._dtu_host}:{self._dtu_port}"
                unique_id = dtu_unique_id(info.hostname or where)
                if any(sub.unique_id == unique_id for sub in entry.subentries.values()):
                    return self.async_abort(reason="opendtu_already_configured")
                taken = _serials_in(entry)
                inverters = [
                    {
                        CONF_SERIAL: inv.serial,
                        CONF_NAME: inv.name,
                        CONF_RATED_POWER: inv.max_power_w,
                    }
                    for inv in info.inverters
                    if inv.max_power_w is not None and inv.serial not in taken
                ]
                if not inverters:
                    return self.async_abort(
                        reason="opendtu_no_rated_inverters",
                        description_placeholders={"site": entry.title},
                    )
                data = {
                    CONF_KIND: KIND_OPENDTU,
                    CONF_HOST: self._dtu_host,
                    CONF_PORT: self._dtu_port,
                    CONF_PASSWORD: user_input[CONF_PASSWORD],
                    CONF_VERSION: info.version,
                    CONF_INVERTERS: inverters,
                }
                self.hass.config_entries.async_add_subentry(
                    entry,
                    ConfigSubentry(
                        data=MappingProxyType(data),
                        subentry_type=SUBENTRY_INVERTER,
                        title=f"OpenDTU {info.hostname or where}",
                        unique_id=unique_id,
                    ),
                )
                return self.async_abort(
                    reason="opendtu_added",
                    description_placeholders={"site": entry.title, "count": str(len(inverters))},
                )
        options = [selector.SelectOptionDict(value=e.entry_id, label=e.title) for e in sites]
        schema = vol.Schema(
            {
                vol.Required(CONF_SITE, default=sites[0].entry_id): selector.SelectSelector(
                    selector.SelectSelectorConfig(options=options)
                ),
                vol.Required(CONF_PASSWORD): PASSWORD,
            }
        )
        return self.async_show_form(
            step_id="opendtu_discovered",
            data_schema=schema,
            errors=errors,
            description_placeholders={"host": self._dtu_host},
        )


def _serials_in(entry: ConfigEntry) -> set[str]:
    """Serials of the OpenDTU inverters a site already has (on any DTU)."""
    return {
        str(inv[CONF_SERIAL])
        for sub in entry.subentries.values()
        if sub.data.get(CONF_KIND) == KIND_OPENDTU
        for inv in sub.data.get(CONF_INVERTERS, [])
    }
