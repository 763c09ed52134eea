"""Hoymiles micro-inverters behind an OpenDTU: one subentry per DTU, several inverters."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import (
    ConfigSubentry,
    SubentryFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PASSWORD, CONF_PORT
from homeassistant.helpers import selector
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from ...compat import vol
from ...const import (
    CONF_INVERTERS,
    CONF_KIND,
    CONF_RATED_POWER,
    CONF_SERIAL,
    CONF_VERSION,
    DEFAULT_OPENDTU_PORT,
    KIND_OPENDTU,
)
from ...core.errors import DeviceError, DeviceUnavailableError
from ...core.numbers import finite_number
from ...opendtu import probe as opendtu_probe
from ...opendtu.errors import InvalidPasswordError as DtuPasswordError
from ...opendtu.errors import NotOpenDtuError
from ...opendtu.probe import DtuInfo, DtuInverter
from ...selectors import PORT, PORT_RANGE
from ...validation import FormCheck
from .flow_base import PASSWORD, RATING_RANGE, RATING_WATTS, DeviceSteps


class OpenDtuSteps(DeviceSteps):
    """Hoymiles micro-inverters behind an OpenDTU: one subentry per DTU, several inverters."""

    _dtu_data: dict[str, Any] | None = None
    _dtu: DtuInfo | None = None
    _chosen: list[str] | None = None

    async def async_step_opendtu(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the DTU's address and admin password, and list its inverters."""
        check = FormCheck()
        errors = check.errors
        if user_input is not None:
            check.host(user_input)
            check.number(user_input, CONF_PORT, *PORT_RANGE, whole=True)
        if user_input is not None and not errors:
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
                    timeout_s=self.probe_timeout_s,
                )
            except DtuPasswordError:
                errors["base"] = "invalid_auth"
            except NotOpenDtuError:
                errors["base"] = "not_opendtu"
            except DeviceUnavailableError:
                errors["base"] = "cannot_connect"
            except DeviceError as err:
                errors["base"] = "invalid_response"
                self._log_refusal(f"{data[CONF_HOST]}:{data[CONF_PORT]}", err)
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
                vol.Required(CONF_PASSWORD): PASSWORD,
            }
        )
        return self.async_show_form(
            step_id="opendtu",
            data_schema=self.add_suggested_values_to_schema(schema, self._suggested(user_input)),
            errors=errors,
            description_placeholders=check.placeholders,
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
        # Each field is named by a serial number: the error says which range, whatever its name.
        placeholders = {"rated_power_min": f"{RATING_RANGE[0]:g}"}
        placeholders["rated_power_max"] = f"{RATING_RANGE[1]:g}"
        errors: dict[str, str] = {}
        if user_input is not None:
            for serial in unknown:
                value = finite_number(user_input.get(serial))
                if value is None or not RATING_RANGE[0] <= value <= RATING_RANGE[1]:
                    errors[serial] = "rated_power_out_of_range"
            if not errors:
                return self._save_opendtu({serial: float(user_input[serial]) for serial in unknown})
        configured = _configured_inverters(self._current())
        schema = vol.Schema({vol.Required(serial): RATING_WATTS for serial in unknown})
        suggested = {
            serial: configured[serial][CONF_RATED_POWER]
            for serial in unknown
            if configured.get(serial, {}).get(CONF_RATED_POWER)
        }
        names = ", ".join(f"{on_dtu[s].name} ({s})" for s in unknown)
        return self.async_show_form(
            step_id="opendtu_ratings",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or suggested),
            errors=errors,
            description_placeholders={"inverters": names, **placeholders},
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
