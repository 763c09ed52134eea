"""Actions: set and clear limits from automations (the site's override limiter).

An override merges like any other limiter (the most restrictive value wins), expires
on time, and survives a restart until then.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.util import dt as dt_util

from .compat import vol
from .const import (
    ATTR_DURATION,
    ATTR_SITE,
    ATTR_UNTIL,
    CONF_CONNECT,
    CONF_ENERGIZE,
    DOMAIN,
    MAX_LIMIT_W,
    SERVICE_CLEAR_LIMITS,
    SERVICE_SET_LIMITS,
    WATT_LIMIT_KEYS,
)
from .core.controls import Controls
from .runtime import DynamicExportConfigEntry

MAX_OVERRIDE = timedelta(days=366)

_WATTS = vol.All(vol.Coerce(float), vol.Range(min=0, max=MAX_LIMIT_W))

SET_LIMITS_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_SITE): cv.string,
        vol.Optional(CONF_CONNECT): cv.boolean,
        vol.Optional(CONF_ENERGIZE): cv.boolean,
        **{vol.Optional(key): _WATTS for key in WATT_LIMIT_KEYS},
        vol.Optional(ATTR_DURATION): cv.positive_time_period,
        vol.Optional(ATTR_UNTIL): cv.datetime,
    }
)
CLEAR_LIMITS_SCHEMA = vol.Schema({vol.Optional(ATTR_SITE): cv.string})


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions (once, from ``async_setup``)."""
    hass.services.async_register(DOMAIN, SERVICE_SET_LIMITS, _async_set_limits, SET_LIMITS_SCHEMA)
    hass.services.async_register(
        DOMAIN, SERVICE_CLEAR_LIMITS, _async_clear_limits, CLEAR_LIMITS_SCHEMA
    )


def _error(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


def _site(hass: HomeAssistant, call: ServiceCall) -> DynamicExportConfigEntry:
    """The site an action targets: the given config entry, or the only loaded site."""
    loaded: list[DynamicExportConfigEntry] = [
        entry
        for entry in hass.config_entries.async_entries(DOMAIN)
        if entry.state is ConfigEntryState.LOADED
    ]
    wanted = call.data.get(ATTR_SITE)
    if wanted is None:
        if len(loaded) != 1:
            raise _error("site_required")
        return loaded[0]
    for entry in loaded:
        if wanted in (entry.entry_id, entry.title):
            return entry
    raise _error("site_not_found", site=str(wanted))


def _until(call: ServiceCall, now: datetime) -> datetime:
    duration: timedelta | None = call.data.get(ATTR_DURATION)
    until: datetime | None = call.data.get(ATTR_UNTIL)
    if duration is not None and until is not None:
        raise _error("duration_or_until")
    if duration is None and until is None:
        raise _error("duration_or_until")
    if until is not None:
        until = dt_util.as_utc(
            until if until.tzinfo else until.replace(tzinfo=dt_util.get_default_time_zone())
        )
    else:
        assert duration is not None
        until = now + duration
    if until <= now:
        raise _error("until_in_past", until=until.isoformat())
    if until - now > MAX_OVERRIDE:
        raise _error("too_long")
    return until


async def _async_set_limits(call: ServiceCall) -> None:
    """Set (replace) the site's override."""
    hass = call.hass
    entry = _site(hass, call)
    now = dt_util.utcnow()
    until = _until(call, now)
    values: dict[str, Any] = {
        key: call.data[key]
        for key in (CONF_CONNECT, CONF_ENERGIZE, *WATT_LIMIT_KEYS)
        if key in call.data
    }
    if not values:
        raise _error("no_limits")
    if any(isinstance(v, float) and not math.isfinite(v) for v in values.values()):
        raise _error("no_limits")
    runtime = entry.runtime_data
    source = call.context.user_id or "automation"
    try:
        runtime.override.set(Controls(**values), until, source, now)
    except ValueError as err:
        raise _error("invalid_override", reason=str(err)) from err
    await runtime.store.async_save("override", runtime.override.to_dict())
    await runtime.coordinator.async_refresh()


async def _async_clear_limits(call: ServiceCall) -> None:
    """Remove the site's override."""
    entry = _site(call.hass, call)
    runtime = entry.runtime_data
    runtime.override.clear()
    await runtime.store.async_save("override", runtime.override.to_dict())
    await runtime.coordinator.async_refresh()
