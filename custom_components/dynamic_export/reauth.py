"""Re-authentication: a device or service that refuses its credentials asks for new ones.

An OpenDTU's admin password or a Powerwall's customer password changes (a reset, a firmware
update, a new owner), or an Amber API token is revoked: the site keeps running (the device
counts as away, Amber's fallback applies), and Home Assistant's re-authentication flow for
the site asks for the new password or token of each one that refuses. Control never stops
for it (a coordinator that raised ``ConfigEntryAuthFailed`` would stop cycling).
"""

from __future__ import annotations

import logging

from homeassistant.config_entries import ConfigEntry, ConfigEntryState, ConfigSubentry
from homeassistant.const import CONF_API_TOKEN, CONF_HOST, CONF_PASSWORD, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util import dt as dt_util

from .const import (
    CONF_FINGERPRINT,
    CONF_KIND,
    DEFAULT_OPENDTU_PORT,
    DEFAULT_POWERWALL_PORT,
    KIND_OPENDTU,
    KIND_POWERWALL,
    SUBENTRY_AMBER,
)
from .core.cycle import CycleSnapshot, SiteDevices
from .core.errors import CredentialsRejectedError
from .limiters.amber import AmberAttention, AmberLimiter
from .limiters.amber_api import AmberAuthError
from .opendtu import probe as opendtu_probe
from .powerwall import probe as powerwall_probe
from .subentries.limiters.setup import amber_client

_LOGGER = logging.getLogger(__name__)

METER_KEY = "meter"


class CredentialsWatch:
    """After each cycle: start re-authentication once when a device refuses its password."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Watch ``entry``'s cycles."""
        self._hass = hass
        self._entry = entry
        self._asked = False

    async def __call__(self, snapshot: CycleSnapshot, devices: SiteDevices) -> None:
        """A coordinator hook."""
        if not snapshot.credentials_rejected:
            self._asked = False
            return
        if self._asked:
            return
        self._asked = True
        names = ", ".join(sub.title for sub in rejected_subentries(self._entry))
        _LOGGER.warning("%s refuses its password: asking for a new one", names or "A device")
        self._entry.async_start_reauth(self._hass)


def credential_key(sub: ConfigSubentry) -> str:
    """Which field holds the subentry's secret: an Amber token or a device password."""
    return CONF_API_TOKEN if sub.subentry_type == SUBENTRY_AMBER else CONF_PASSWORD


def rejected_subentries(entry: ConfigEntry) -> list[ConfigSubentry]:
    """The devices whose password, or Amber limiters whose token, was refused last time.

    A site that is not running cannot tell: then everything with a secret is offered.
    """
    if entry.state is not ConfigEntryState.LOADED:
        return [sub for sub in entry.subentries.values() if credential_key(sub) in sub.data]
    runtime = entry.runtime_data
    found: dict[str, ConfigSubentry] = {}
    now = dt_util.utcnow()
    for sub_id, handle in runtime.limiters.items():
        limiter = handle.limiter
        if (
            isinstance(limiter, AmberLimiter)
            and limiter.status(now).attention is AmberAttention.AUTH_FAILED
            and sub_id in entry.subentries
        ):
            found[sub_id] = entry.subentries[sub_id]
    for key in sorted(runtime.loop.credentials_rejected):
        if key == METER_KEY and runtime.meter is not None:
            sub = runtime.meter.subentry
        elif key in runtime.inverters:
            sub = runtime.inverters[key].subentry
        else:
            continue
        found[sub.subentry_id] = entry.subentries.get(sub.subentry_id, sub)
    return list(found.values())


async def async_check_password(hass: HomeAssistant, sub: ConfigSubentry, password: str) -> None:
    """Log in with ``password`` (a token for Amber); raises the device's error when refused.

    A refused Amber token raises ``CredentialsRejectedError`` as a device does; Amber being
    unreachable raises ``AmberError``.
    """
    if sub.subentry_type == SUBENTRY_AMBER:
        try:
            await amber_client(hass, password).async_get_sites()
        except AmberAuthError as err:
            raise CredentialsRejectedError(str(err) or "Amber refused the token") from err
        return
    session = async_get_clientsession(hass)
    host = str(sub.data[CONF_HOST])
    kind = sub.data.get(CONF_KIND)
    if kind == KIND_OPENDTU:
        port = int(sub.data.get(CONF_PORT, DEFAULT_OPENDTU_PORT))
        await opendtu_probe.async_probe(session, host, password, port=port)
    elif kind == KIND_POWERWALL:
        port = int(sub.data.get(CONF_PORT, DEFAULT_POWERWALL_PORT))
        fingerprint = sub.data.get(CONF_FINGERPRINT)
        await powerwall_probe.async_probe(
            session, host, password, port=port, fingerprint=fingerprint
        )
    else:
        raise ValueError(f"{sub.title} has no password to check")
