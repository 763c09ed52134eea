"""GoodWe ET-family (hybrid) inverters through the ``goodwe`` library, over UDP port 8899.

The form asks for the address only: the protocol's port (8899) and the inverter's address
(0xF7) are fixed. The connection test reads the identity (serial, model, rating), checks that
the inverter hears its GoodWe meter (its export limit needs it) and reads the export limit
settings; it writes nothing.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SubentryFlowResult
from homeassistant.const import CONF_HOST
from homeassistant.helpers import selector

from ...compat import vol
from ...const import CONF_KIND, CONF_RATED_POWER, KIND_GOODWE
from ...core.errors import DeviceError, DeviceUnavailableError
from ...goodwe_inverter.client import GoodWeEtClient
from ...goodwe_inverter.errors import NoGoodWeMeterError, NotGoodWeEtError
from ...goodwe_inverter.probe import GoodWeProbe, async_probe
from ...validation import FormCheck
from .flow_base import DeviceSteps
from .naming import device_title

PROBE_TRIES = 3
"""UDP loses datagrams: the test asks up to this many times before it gives up."""


class GoodWeSteps(DeviceSteps):
    """A GoodWe ET/EH/BT/BH inverter: its address."""

    async def async_step_goodwe(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the address and read the inverter (one GoodWe per site, see below)."""
        # Each GoodWe holds export at its own meter. Two behind one grid connection, each
        # given the export its own share allows, would each keep the export the other's cut
        # was meant to remove: the site would stay above its limit. One per site until the
        # site's export target is handed to them instead.
        if any(sub.data.get(CONF_KIND) == KIND_GOODWE for sub in self._others()):
            return self.async_abort(reason="site_has_goodwe")
        check = FormCheck()
        errors = check.errors
        if user_input is not None and (host := check.host(user_input)):
            data: dict[str, Any] = {CONF_KIND: KIND_GOODWE, CONF_HOST: host}
            try:
                probe = await self._async_probe_goodwe(host)
            except NotGoodWeEtError as err:
                self._log_refusal(host, err)
                errors["base"] = "not_goodwe_et"
            except NoGoodWeMeterError as err:
                self._log_refusal(host, err)
                errors["base"] = "no_goodwe_meter"
            except DeviceUnavailableError:
                errors["base"] = "goodwe_unreachable"
            except DeviceError as err:
                self._log_refusal(host, err)
                errors["base"] = "unsupported_device"
            else:
                info = probe.info
                data[CONF_RATED_POWER] = info.rated_power_w
                title = device_title("GoodWe", info.model_name, info.serial_number, "GoodWe")
                return self._finish(title, data, info.serial_number)
        fields: dict[Any, Any] = {vol.Required(CONF_HOST): selector.TextSelector()}
        return self.async_show_form(
            step_id="goodwe",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(fields), self._suggested(user_input)
            ),
            errors=errors,
        )

    async def _async_probe_goodwe(self, host: str) -> GoodWeProbe:
        """Read the inverter through a client of its own (each request is its own datagram)."""
        client = GoodWeEtClient(
            host, timeout_s=min(1.0, self.probe_timeout_s), retries=PROBE_TRIES - 1
        )
        return await async_probe(client)
