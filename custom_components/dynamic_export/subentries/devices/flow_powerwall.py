"""A Tesla Powerwall 2 gateway as the site meter, over its local HTTPS API."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import (
    SubentryFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers import selector
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from ...compat import vol
from ...const import (
    CONF_FINGERPRINT,
    CONF_KIND,
    CONF_PHASES,
    CONF_VERSION,
    DEFAULT_POWERWALL_PORT,
    DOMAIN,
    KIND_POWERWALL,
)
from ...core.errors import DeviceError, DeviceUnavailableError
from ...powerwall import probe as powerwall_probe
from ...powerwall.errors import (
    CertificateChangedError,
    GatewayStoppedError,
    InvalidPasswordError,
    LoginThrottledError,
    NotPowerwallError,
)
from ...powerwall.probe import PowerwallInfo
from ...selectors import PORT, PORT_RANGE
from ...validation import FormCheck
from .flow_base import PASSWORD, DeviceSteps
from .setup import powerwall_issue_id


class PowerwallSteps(DeviceSteps):
    """A Tesla Powerwall 2 gateway as the site meter, over its local HTTPS API."""

    _pending_powerwall: tuple[dict[str, Any], str] | None = None

    async def async_step_powerwall(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the gateway's address and password; pin its certificate."""
        check = FormCheck()
        errors = check.errors
        current = self._current()
        if user_input is not None:
            check.host(user_input)
            check.number(user_input, CONF_PORT, *PORT_RANGE, whole=True)
        if user_input is not None and not errors:
            data = {
                CONF_KIND: KIND_POWERWALL,
                CONF_HOST: str(user_input[CONF_HOST]).strip(),
                CONF_PORT: int(user_input[CONF_PORT]),
                CONF_PASSWORD: user_input[CONF_PASSWORD],
            }
            # Reconfiguring checks against the pinned certificate: a new one must be accepted.
            pinned = current.data.get(CONF_FINGERPRINT) if current else None
            try:
                info = await self._async_probe_powerwall(data, pinned)
            except CertificateChangedError as err:
                self._pending_powerwall = (data, err.seen)
                return await self.async_step_powerwall_certificate()
            except DeviceError as err:
                errors["base"] = self._powerwall_refusal(data, err)
            else:
                return self._save_powerwall(data, info)
        schema = vol.Schema(
            {
                vol.Required(CONF_HOST): selector.TextSelector(),
                vol.Required(CONF_PORT, default=DEFAULT_POWERWALL_PORT): PORT,
                vol.Required(CONF_PASSWORD): PASSWORD,
            }
        )
        return self.async_show_form(
            step_id="powerwall",
            data_schema=self.add_suggested_values_to_schema(schema, self._suggested(user_input)),
            errors=errors,
            description_placeholders=check.placeholders,
        )

    async def async_step_powerwall_certificate(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """The gateway shows a new certificate: accept it only if the gateway was replaced."""
        assert self._pending_powerwall is not None
        data, seen = self._pending_powerwall
        current = self._current()
        pinned = str(current.data.get(CONF_FINGERPRINT)) if current else ""
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                info = await self._async_probe_powerwall(data, seen)
            except CertificateChangedError as err:
                self._pending_powerwall = (data, err.seen)
                seen = err.seen
                errors["base"] = "certificate_changed_again"
            except DeviceError as err:
                errors["base"] = self._powerwall_refusal(data, err)
            else:
                return self._save_powerwall(data, info)
        return self.async_show_form(
            step_id="powerwall_certificate",
            data_schema=vol.Schema({}),
            errors=errors,
            description_placeholders={"pinned": pinned, "seen": seen},
        )

    async def _async_probe_powerwall(
        self, data: dict[str, Any], fingerprint: str | None
    ) -> PowerwallInfo:
        return await powerwall_probe.async_probe(
            async_get_clientsession(self.hass),
            data[CONF_HOST],
            data[CONF_PASSWORD],
            port=data[CONF_PORT],
            fingerprint=fingerprint,
            timeout_s=self.probe_timeout_s,
        )

    def _powerwall_refusal(self, data: dict[str, Any], err: DeviceError) -> str:
        """The form error for a failed check; an unreadable answer is logged, as its text says."""
        reason = powerwall_error(err)
        if reason == "invalid_response":
            self._log_refusal(f"{data[CONF_HOST]}:{data[CONF_PORT]}", err)
        return reason

    def _save_powerwall(self, data: dict[str, Any], info: PowerwallInfo) -> SubentryFlowResult:
        data = powerwall_data(data, info)
        current = self._current()
        if current is not None and current.unique_id == info.din:
            ir.async_delete_issue(self.hass, DOMAIN, powerwall_issue_id(current.subentry_id))
        return self._finish(POWERWALL_TITLE, data, info.din)


POWERWALL_TITLE = "Tesla Powerwall"


def powerwall_data(login: dict[str, Any], info: PowerwallInfo) -> dict[str, Any]:
    """A Powerwall meter subentry's data: the login and what the check learnt (pinned)."""
    return {
        **login,
        CONF_FINGERPRINT: info.fingerprint,
        CONF_PHASES: info.phases or 1,
        CONF_VERSION: info.version,
    }


def powerwall_error(err: DeviceError) -> str:
    """The form error for a failed Powerwall check (most specific first)."""
    for kind, reason in (
        (InvalidPasswordError, "invalid_auth"),
        (LoginThrottledError, "login_throttled"),
        (NotPowerwallError, "not_powerwall"),
        (GatewayStoppedError, "gateway_stopped"),
        (DeviceUnavailableError, "cannot_connect"),
    ):
        if isinstance(err, kind):
            return reason
    return "invalid_response"
