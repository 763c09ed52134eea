"""Config subentry flow of the CSIP-AUS limiter: identity, server, test, then create.

Two ways in: paste the device certificate and key the manufacturer or utility issued,
or let the flow make a key and a certificate signing request (CSR) to send them; the
certificate is pasted later with *Reconfigure*. Before a limiter with a certificate is
created, the flow fetches the server's DeviceCapability over mutual TLS.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigSubentryFlow, SubentryFlowResult
from homeassistant.const import CONF_NAME
from homeassistant.helpers import selector
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from ...compat import vol
from ...const import (
    CONF_CA_PEM,
    CONF_CERT_PEM,
    CONF_CSR_PEM,
    CONF_DCAP_URL,
    CONF_DEFAULT_EXPORT_LIMIT,
    CONF_DEFAULT_IMPORT_LIMIT,
    CONF_ENABLED,
    CONF_KEY_PEM,
    CONF_NMI,
    CONF_PEN,
    CONF_PIN,
    CONF_VERIFY_SERVER,
)
from ...csip.config import split_dcap_url
from ...csip.sep2.identity import (
    CertificateExpiredError,
    CertificateNotYetValidError,
    IdentityError,
    KeyMismatchError,
    format_sfdi,
    generate_csr,
    generate_private_key,
    private_key_pem,
)
from ...csip.sep2.parse import parse_device_capability
from ...csip.sep2.transport import (
    CertificateRejectedError,
    HttpStatusError,
    Sep2Transport,
    ServerCertificateError,
    TlsHandshakeError,
    TransportError,
)
from ...csip.sep2.xml import XmlError
from ...selectors import LIMIT_WATTS, number_selector
from ...validation import FormCheck
from .setup import build_tls

_TEXT = selector.TextSelector(selector.TextSelectorConfig(multiline=True))


def _server_fields() -> dict[Any, Any]:
    return {
        vol.Required(CONF_NAME, default="CSIP-AUS"): selector.TextSelector(),
        vol.Required(CONF_DCAP_URL): selector.TextSelector(
            selector.TextSelectorConfig(type=selector.TextSelectorType.URL)
        ),
        vol.Optional(CONF_CA_PEM): _TEXT,
        vol.Required(CONF_VERIFY_SERVER, default=True): selector.BooleanSelector(),
        vol.Optional(CONF_NMI): selector.TextSelector(),
        vol.Optional(CONF_PIN): selector.TextSelector(),
        vol.Required(CONF_PEN, default=0): number_selector(0, 99999999, 1),
        vol.Optional(CONF_DEFAULT_EXPORT_LIMIT): LIMIT_WATTS,
        vol.Optional(CONF_DEFAULT_IMPORT_LIMIT): LIMIT_WATTS,
    }


CERTIFICATE_SCHEMA = vol.Schema(
    {
        **_server_fields(),
        vol.Required(CONF_CERT_PEM): _TEXT,
        vol.Required(CONF_KEY_PEM): _TEXT,
    }
)
GENERATE_SCHEMA = vol.Schema(_server_fields())


def _check(user_input: dict[str, Any]) -> FormCheck:
    """The name and default limits, checked before anything is fetched."""
    check = FormCheck()
    check.name(user_input)
    check.limits(user_input, CONF_DEFAULT_EXPORT_LIMIT, CONF_DEFAULT_IMPORT_LIMIT)
    return check


def _clean(user_input: dict[str, Any]) -> dict[str, Any]:
    """The settings as stored: stripped text, ints, None for what was left empty."""
    data = {
        key: value.strip() if isinstance(value, str) else value
        for key, value in user_input.items()
        if key != CONF_NAME
    }
    data[CONF_PEN] = int(data.get(CONF_PEN) or 0)
    for key in (CONF_CA_PEM, CONF_NMI, CONF_PIN):
        data[key] = data.get(key) or None
    for key in (CONF_DEFAULT_EXPORT_LIMIT, CONF_DEFAULT_IMPORT_LIMIT):
        value = data.get(key)
        data[key] = None if value is None else float(value)
    return data


class CsipSubentryFlow(ConfigSubentryFlow):
    """Add a CSIP-AUS (IEEE 2030.5) limiter."""

    def __init__(self) -> None:
        """Nothing checked yet."""
        self._data: dict[str, Any] = {}
        self._title = ""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Paste a certificate, or make a key and a CSR."""
        return self.async_show_menu(step_id="user", menu_options=["certificate", "generate"])

    async def async_step_certificate(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """The server and the device's certificate and key; tested before going on."""
        check = FormCheck()
        if user_input is not None:
            data = _clean(user_input)
            check = _check(user_input)
            if not check.errors:
                check.errors.update(await self._async_check(data))
            if not check.errors:
                self._data, self._title = data, user_input[CONF_NAME].strip()
                return await self.async_step_confirm()
        suggested = user_input or self._current()
        return self.async_show_form(
            step_id="reconfigure" if self.source == "reconfigure" else "certificate",
            data_schema=self.add_suggested_values_to_schema(CERTIFICATE_SCHEMA, suggested),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Show the LFDI and SFDI the utility knows the device by, then save."""
        if user_input is not None:
            if self.source == "reconfigure":
                subentry = self._get_reconfigure_subentry()
                data = {**self._data, CONF_ENABLED: subentry.data.get(CONF_ENABLED, True)}
                return self.async_update_and_abort(
                    self._get_entry(), subentry, title=self._title, data=data
                )
            return self.async_create_entry(
                title=self._title, data={**self._data, CONF_ENABLED: True}
            )
        identity, _context = await self.hass.async_add_executor_job(build_tls, self._data)
        return self.async_show_form(
            step_id="confirm",
            description_placeholders={"lfdi": identity.lfdi, "sfdi": format_sfdi(identity.sfdi)},
        )

    async def async_step_generate(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Make a P-256 key (kept in Home Assistant) and a CSR to send for signing."""
        check = FormCheck()
        if user_input is not None:
            data = _clean(user_input)
            check = _check(user_input)
            try:
                split_dcap_url(data[CONF_DCAP_URL])
            except ValueError:
                check.errors[CONF_DCAP_URL] = "invalid_url"
            if not check.errors:
                key_pem, csr_pem = await self.hass.async_add_executor_job(_new_key_and_csr)
                data.update({CONF_KEY_PEM: key_pem, CONF_CSR_PEM: csr_pem, CONF_CERT_PEM: None})
                return self.async_create_entry(
                    title=user_input[CONF_NAME].strip(),
                    data={**data, CONF_ENABLED: True},
                    description_placeholders={"csr": csr_pem},
                )
        return self.async_show_form(
            step_id="generate",
            data_schema=self.add_suggested_values_to_schema(GENERATE_SCHEMA, user_input or {}),
            errors=check.errors,
            description_placeholders=check.placeholders,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change the server or paste the certificate for a generated key."""
        if user_input is not None and not user_input.get(CONF_KEY_PEM):
            stored = self._get_reconfigure_subentry().data.get(CONF_KEY_PEM)
            user_input = {**user_input, CONF_KEY_PEM: stored or ""}
        return await self.async_step_certificate(user_input)

    def _current(self) -> dict[str, Any]:
        if self.source != "reconfigure":
            return {}
        subentry = self._get_reconfigure_subentry()
        return {CONF_NAME: subentry.title, **{k: v for k, v in subentry.data.items() if v}}

    async def _async_check(self, data: dict[str, Any]) -> dict[str, str]:
        """Load the identity and fetch the DeviceCapability; errors by form field."""
        try:
            base, href = split_dcap_url(data[CONF_DCAP_URL])
        except ValueError:
            return {CONF_DCAP_URL: "invalid_url"}
        try:
            _identity, context = await self.hass.async_add_executor_job(build_tls, data)
        except KeyMismatchError:
            return {"base": "key_mismatch"}
        except (CertificateExpiredError, CertificateNotYetValidError):
            return {"base": "certificate_expired"}
        except (IdentityError, ValueError):
            return {"base": "invalid_pem"}
        transport = Sep2Transport(async_get_clientsession(self.hass), base, context)
        try:
            answer = await transport.get(href)
            parse_device_capability(answer.body)
        except CertificateRejectedError:
            return {"base": "certificate_rejected"}
        except ServerCertificateError:
            return {"base": "server_untrusted"}
        except TlsHandshakeError:
            return {"base": "tls_failed"}
        except (XmlError, HttpStatusError):
            return {"base": "not_2030_5"}
        except TransportError:
            return {"base": "cannot_connect"}
        return {}


def _new_key_and_csr() -> tuple[str, str]:
    key = generate_private_key()
    return private_key_pem(key).decode(), generate_csr(key).decode()
