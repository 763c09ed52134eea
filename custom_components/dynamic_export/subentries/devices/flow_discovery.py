"""A Tesla gateway that announces itself on the network is offered as a site's meter.

Home Assistant sees the gateway's DHCP request (its host name is its DIN, starting with the
part number, as core's Powerwall integration matches). A gateway already added that comes
back on another address gets its address updated. Discovery starts the site flow, not a subentry
flow, so this step adds the meter subentry itself once the password checks out: to the
site the user picks among those that have no meter yet.
"""

from __future__ import annotations

import logging
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult, ConfigSubentry
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT
from homeassistant.helpers import selector
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.device_registry import format_mac
from homeassistant.helpers.service_info.dhcp import DhcpServiceInfo

from ...compat import vol
from ...const import CONF_KIND, DEFAULT_POWERWALL_PORT, KIND_POWERWALL, SUBENTRY_METER
from ...core.errors import DeviceError
from ...powerwall import probe as powerwall_probe
from .flow_base import PASSWORD
from .flow_powerwall import POWERWALL_TITLE, powerwall_data, powerwall_error

CONF_SITE = "site"

_LOGGER = logging.getLogger(__name__)


class PowerwallDiscoverySteps(ConfigFlow):
    """The ``dhcp`` and ``powerwall_discovered`` steps of the site flow."""

    _discovered_host: str = ""

    async def async_step_dhcp(self, discovery_info: DhcpServiceInfo) -> ConfigFlowResult:
        """A gateway asked for an address: offer it unless a site already has it or a meter."""
        host = discovery_info.ip
        # The gateway's host name is its DIN, the unique id of its meter subentry.
        din = discovery_info.hostname.upper()
        await self.async_set_unique_id(f"powerwall_{format_mac(discovery_info.macaddress)}")
        for entry in self._async_current_entries(include_ignore=False):
            for sub in entry.subentries.values():
                if sub.data.get(CONF_KIND) != KIND_POWERWALL:
                    continue
                if sub.unique_id == din and sub.data.get(CONF_HOST) != host:
                    # The same gateway got another address: follow it (the pinned
                    # certificate still guards against another device there).
                    self.hass.config_entries.async_update_subentry(
                        entry, sub, data={**sub.data, CONF_HOST: host}
                    )
                    return self.async_abort(reason="powerwall_already_configured")
                if sub.unique_id == din or sub.data.get(CONF_HOST) == host:
                    return self.async_abort(reason="powerwall_already_configured")
        if not self._sites_without_meter():
            return self.async_abort(reason="no_site_without_meter")
        self._discovered_host = host
        self.context["title_placeholders"] = {"name": POWERWALL_TITLE, "host": host}
        return await self.async_step_powerwall_discovered()

    async def async_step_powerwall_discovered(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Pick the site and give the customer password; the gateway is checked first."""
        sites = self._sites_without_meter()
        if not sites:
            return self.async_abort(reason="no_site_without_meter")
        errors: dict[str, str] = {}
        if user_input is not None:
            entry = next((e for e in sites if e.entry_id == user_input[CONF_SITE]), sites[0])
            login = {
                CONF_KIND: KIND_POWERWALL,
                CONF_HOST: self._discovered_host,
                CONF_PORT: DEFAULT_POWERWALL_PORT,
                CONF_PASSWORD: user_input[CONF_PASSWORD],
            }
            try:
                info = await powerwall_probe.async_probe(
                    async_get_clientsession(self.hass),
                    self._discovered_host,
                    user_input[CONF_PASSWORD],
                    port=DEFAULT_POWERWALL_PORT,
                )
            except DeviceError as err:
                errors["base"] = powerwall_error(err)
                if errors["base"] == "invalid_response":  # the form says to see the log
                    _LOGGER.warning(
                        "The gateway at %s cannot be used: %s", self._discovered_host, err
                    )
            else:
                if any(sub.unique_id == info.din for sub in entry.subentries.values()):
                    return self.async_abort(reason="powerwall_already_configured")
                self.hass.config_entries.async_add_subentry(
                    entry,
                    ConfigSubentry(
                        data=MappingProxyType(powerwall_data(login, info)),
                        subentry_type=SUBENTRY_METER,
                        title=POWERWALL_TITLE,
                        unique_id=info.din,
                    ),
                )
                return self.async_abort(
                    reason="powerwall_added", description_placeholders={"site": entry.title}
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
            step_id="powerwall_discovered",
            data_schema=schema,
            errors=errors,
            description_placeholders={"host": self._discovered_host},
        )

    def _sites_without_meter(self) -> list[ConfigEntry]:
        return [
            entry
            for entry in self._async_current_entries(include_ignore=False)
            if not any(s.subentry_type == SUBENTRY_METER for s in entry.subentries.values())
        ]
