"""Build each kind of limiter subentry and wire it to Home Assistant.

The limiters themselves are plain Python (``limiters/``); this module gives them what
only Home Assistant has: the shared HTTP session, timers for price refreshes, entity
state for a battery's charge, and MQTT subscriptions. Everything registered here is
undone through ``entry.async_on_unload``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.const import CONF_API_TOKEN, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import (
    Event,
    EventStateChangedData,
    EventStateReportedData,
    HomeAssistant,
    State,
    callback,
)
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import (
    async_track_point_in_utc_time,
    async_track_state_change_event,
    async_track_state_report_event,
)
from homeassistant.util import dt as dt_util

from ...const import (
    CONF_CONNECT,
    CONF_ENABLED,
    CONF_ENERGIZE,
    CONF_EXPORT_LIMIT,
    CONF_FALLBACK,
    CONF_HIGH_EXPORT_LIMIT,
    CONF_HYSTERESIS,
    CONF_LOW_EXPORT_LIMIT,
    CONF_MAX_AGE,
    CONF_PRESET,
    CONF_SITE_ID,
    CONF_SOC_ENTITY,
    CONF_THRESHOLD,
    CONF_TIMEZONE,
    CONF_TOPIC,
    CONF_WINDOWS,
    DOMAIN,
    PRESET_CUSTOM,
    SUBENTRY_AMBER,
    SUBENTRY_FIXED_LIMITER,
    SUBENTRY_MQTT,
    SUBENTRY_SOC,
    SUBENTRY_TARIFF,
    WATT_LIMIT_KEYS,
)
from ...core.controls import Controls
from ...limiters.amber import (
    AmberAttention,
    AmberFallback,
    AmberLimiter,
    AmberSettings,
    AmberStatus,
)
from ...limiters.amber_api import DEFAULT_BASE_URL, AmberClient
from ...limiters.fixed import FixedLimiter
from ...limiters.mqtt_payload import MqttLimiter, MqttPayloadError
from ...limiters.soc import SocLimiter, SocSettings
from ...limiters.tariff import (
    PRESETS,
    TariffLimiter,
    TariffSchedule,
    TariffWindow,
    windows_from_list,
)
from ...storage import SiteStore

_LOGGER = logging.getLogger(__name__)

AMBER_BASE_URL = DEFAULT_BASE_URL
"""Where the Amber API is; tests point it at a local server."""
AMBER_RETRY_AFTER_FAILURE = timedelta(minutes=1)


def amber_client(hass: HomeAssistant, token: str) -> AmberClient:
    """An Amber client on Home Assistant's shared HTTP session."""
    return AmberClient(async_get_clientsession(hass), token, base_url=AMBER_BASE_URL)


class SiteLimiter(Protocol):
    """What a loaded limiter offers: the core Limiter protocol with a settable switch."""

    enabled: bool

    @property
    def source(self) -> str:
        """Label of the limiter in the merge."""
        ...

    def controls(self, now: datetime) -> Controls:
        """The controls asked for at ``now``."""
        ...


@dataclass(slots=True)
class LimiterHandle:
    """A limiter subentry and its running limiter."""

    subentry: ConfigSubentry
    limiter: SiteLimiter


def fixed_limiter_controls(data: Any) -> Controls:
    """Controls of a fixed limiter subentry; connect/energize True mean "no opinion"."""
    limits = {key: None if data.get(key) is None else float(data[key]) for key in WATT_LIMIT_KEYS}
    return Controls(
        connect=None if data.get(CONF_CONNECT, True) else False,
        energize=None if data.get(CONF_ENERGIZE, True) else False,
        **limits,
    )


def apply_live_data(handle: LimiterHandle) -> None:
    """Apply what may change without a reload: the switch, and a fixed limiter's values."""
    data = handle.subentry.data
    handle.limiter.enabled = bool(data.get(CONF_ENABLED, True))
    if isinstance(handle.limiter, FixedLimiter):
        handle.limiter.settings = fixed_limiter_controls(data)


async def async_build_limiter(
    hass: HomeAssistant, entry: ConfigEntry, sub: ConfigSubentry, store: SiteStore
) -> LimiterHandle | None:
    """Create the limiter of one subentry (None for subentries that are not limiters)."""
    data = sub.data
    enabled = bool(data.get(CONF_ENABLED, True))
    limiter: SiteLimiter
    if sub.subentry_type == SUBENTRY_FIXED_LIMITER:
        limiter = FixedLimiter(sub.title, fixed_limiter_controls(data), enabled)
    elif sub.subentry_type == SUBENTRY_AMBER:
        limiter = await _async_amber(hass, entry, sub, store)
    elif sub.subentry_type == SUBENTRY_TARIFF:
        limiter = TariffLimiter(sub.title, await async_tariff_schedule(hass, data))
    elif sub.subentry_type == SUBENTRY_SOC:
        limiter = _soc(hass, entry, sub)
    elif sub.subentry_type == SUBENTRY_MQTT:
        limiter = await _async_mqtt(hass, entry, sub)
    else:
        return None
    limiter.enabled = enabled
    return LimiterHandle(sub, limiter)


async def async_tariff_schedule(hass: HomeAssistant, data: Any) -> TariffSchedule:
    """The schedule of a tariff subentry (a preset, or the user's own windows)."""
    export_limit = float(data.get(CONF_EXPORT_LIMIT) or 0.0)
    preset = PRESETS.get(data.get(CONF_PRESET, PRESET_CUSTOM))
    timezone = preset.timezone if preset else data.get(CONF_TIMEZONE) or hass.config.time_zone
    # Load the zone off the event loop; the schedule then finds it in zoneinfo's cache.
    await dt_util.async_get_time_zone(timezone)
    if preset is not None:
        return preset.schedule(export_limit)
    return TariffSchedule(custom_windows(data.get(CONF_WINDOWS) or [], export_limit), timezone)


def custom_windows(windows: Iterable[Any], export_limit: float) -> list[TariffWindow]:
    """The user's windows; one that sets no export limit of its own takes ``export_limit``."""
    return windows_from_list(
        {CONF_EXPORT_LIMIT: export_limit, **window} if isinstance(window, Mapping) else window
        for window in windows
    )


async def _async_amber(
    hass: HomeAssistant, entry: ConfigEntry, sub: ConfigSubentry, store: SiteStore
) -> AmberLimiter:
    data = sub.data
    client = amber_client(hass, data[CONF_API_TOKEN])
    limiter = AmberLimiter(
        sub.title,
        client,
        AmberSettings(
            threshold=float(data.get(CONF_THRESHOLD, 0.0)),
            export_limit=float(data.get(CONF_EXPORT_LIMIT, 0.0)),
            fallback=AmberFallback(data.get(CONF_FALLBACK, AmberFallback.LIMIT)),
        ),
        site_id=data.get(CONF_SITE_ID),
    )
    key = f"amber.{sub.subentry_id}"
    if saved := store.data.get(key):
        limiter.restore(saved, dt_util.utcnow())
    cancel: list[Any] = []
    stopped = False
    failing = False

    issue_id = f"amber_{sub.subentry_id}"

    async def _refresh(_now: datetime | None = None) -> None:
        # The limiter never raises; this is for whatever else fails here. Either way the
        # next poll is scheduled, or prices would stop updating until a restart.
        nonlocal failing
        next_at = dt_util.utcnow() + AMBER_RETRY_AFTER_FAILURE
        try:
            next_at = await limiter.async_refresh(dt_util.utcnow())
            store.schedule_save(key, limiter.to_dict())
            status = limiter.status(dt_util.utcnow())
            _raise_or_clear_issue(hass, issue_id, sub.title, status)
            if status.attention is AmberAttention.AUTH_FAILED:
                entry.async_start_reauth(hass)  # the site's flow asks for a new token
        except Exception:
            if not failing:
                _LOGGER.exception("%s: price refresh failed; retrying", sub.title)
            failing = True
        else:
            failing = False
        if not stopped:
            cancel[:] = [async_track_point_in_utc_time(hass, _refresh, next_at)]

    @callback
    def _stop() -> None:
        nonlocal stopped
        stopped = True
        for unsubscribe in cancel:
            unsubscribe()

    entry.async_on_unload(_stop)
    await _refresh()
    return limiter


ATTENTION_TEXT = {
    AmberAttention.AUTH_FAILED: "Amber refused the API token.",
    AmberAttention.SITE: "The configured site is not in the Amber account any more.",
    AmberAttention.NO_PRICE: "No price is known for now: Amber has not been reachable for a while.",
}


def _raise_or_clear_issue(
    hass: HomeAssistant, issue_id: str, name: str, status: AmberStatus
) -> None:
    """A repair issue while the limiter needs the user, removed once it recovers."""
    if status.attention is None:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="amber_attention",
        translation_placeholders={"name": name, "problem": ATTENTION_TEXT[status.attention]},
    )


def _soc(hass: HomeAssistant, entry: ConfigEntry, sub: ConfigSubentry) -> SocLimiter:
    data = sub.data
    high = data.get(CONF_HIGH_EXPORT_LIMIT)
    limiter = SocLimiter(
        sub.title,
        SocSettings(
            threshold=float(data[CONF_THRESHOLD]),
            hysteresis=float(data.get(CONF_HYSTERESIS, 5.0)),
            low_export_limit=float(data.get(CONF_LOW_EXPORT_LIMIT, 0.0)),
            high_export_limit=None if high is None else float(high),
            max_age=timedelta(minutes=float(data.get(CONF_MAX_AGE, 15.0))),
        ),
    )
    entity_id = data[CONF_SOC_ENTITY]

    def _update(state: State | None) -> None:
        limiter.update(_state_number(state), state.last_reported if state else dt_util.utcnow())

    @callback
    def _changed(event: Event[EventStateChangedData] | Event[EventStateReportedData]) -> None:
        _update(event.data["new_state"])

    _update(hass.states.get(entity_id))
    entry.async_on_unload(async_track_state_change_event(hass, [entity_id], _changed))
    # A steady charge (a full battery at 100 %) is reported again without changing: each
    # report is a fresh reading, or the rule would call it stale after max_age.
    entry.async_on_unload(async_track_state_report_event(hass, [entity_id], _changed))
    return limiter


def _state_number(state: State | None) -> float | None:
    if state is None or state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        return None
    try:
        return float(state.state)
    except ValueError:
        return None


async def _async_mqtt(hass: HomeAssistant, entry: ConfigEntry, sub: ConfigSubentry) -> MqttLimiter:
    # Imported here: only sites with an MQTT limiter load the MQTT integration's code.
    from homeassistant.components import mqtt  # noqa: PLC0415

    data = sub.data
    limiter = MqttLimiter(sub.title, max_age=timedelta(seconds=float(data[CONF_MAX_AGE])))

    @callback
    def _received(message: mqtt.ReceiveMessage) -> None:
        try:
            limiter.receive(message.payload, dt_util.utcnow())
        except MqttPayloadError as err:
            _LOGGER.warning("%s: ignored MQTT message on %s: %s", sub.title, message.topic, err)

    try:
        unsubscribe = await mqtt.async_subscribe(hass, data[CONF_TOPIC], _received)
    except HomeAssistantError as err:
        _LOGGER.error("%s: cannot subscribe to %s: %s", sub.title, data[CONF_TOPIC], err)
    else:
        entry.async_on_unload(unsubscribe)
    return limiter
