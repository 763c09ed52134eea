"""Build a site's devices, limiters and control loop from its config entry."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigEntryState, ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from .const import (
    CONF_CONTROL_ENABLED,
    CONF_CONTROL_INTERVAL,
    CONF_DEADBAND,
    CONF_ENABLED,
    CONF_METER_MAX_AGE,
    CONF_RAMP_UP_RATE,
    CONF_REVERT_TIMEOUT,
    DEFAULT_CONTROL_INTERVAL,
    DEFAULT_DEADBAND,
    DEFAULT_METER_MAX_AGE,
    DEFAULT_RAMP_UP_RATE,
    DEFAULT_REVERT_TIMEOUT,
    LIMITER_SUBENTRIES,
    OVERRIDE_SOURCE,
    SUBENTRY_CSIP,
    SUBENTRY_FIXED_LIMITER,
    SUBENTRY_INVERTER,
    SUBENTRY_METER,
)
from .coordinator import CycleHook, SiteCoordinator
from .core.controller import Controller, ControllerSettings
from .core.cycle import ControlLoop
from .core.write_policy import WritePolicy, min_revert_timeout
from .csip.limiter import CsipLimiter
from .csip.sep2.identity import IdentityError
from .limiters.override import OverrideLimiter
from .storage import SiteStore
from .subentries.csip.setup import async_build_csip
from .subentries.devices.handles import InverterHandle, MeterHandle
from .subentries.devices.setup import DeviceContext, async_build_inverters, async_build_meter
from .subentries.limiters.setup import LimiterHandle, apply_live_data, async_build_limiter
from .sunspec.connection import ConnectionPool

_LOGGER = logging.getLogger(__name__)

# Options that can change while the site runs, without a reload.
LIVE_OPTIONS = (CONF_CONTROL_ENABLED,)


@dataclass(slots=True)
class SiteRuntime:
    """Everything a loaded site holds; stored in ``entry.runtime_data``."""

    loop: ControlLoop
    coordinator: SiteCoordinator
    pool: ConnectionPool
    inverters: dict[str, InverterHandle]
    """Every inverter by its key (the key the control loop uses)."""
    meter: MeterHandle | None
    limiters: dict[str, LimiterHandle]
    override: OverrideLimiter
    store: SiteStore
    structure: Any = field(default=None)


type DynamicExportConfigEntry = ConfigEntry[SiteRuntime]


def controller_settings(entry: ConfigEntry) -> ControllerSettings:
    """Controller tuning from the entry's options."""
    return ControllerSettings(
        meter_max_age_s=float(entry.options.get(CONF_METER_MAX_AGE, DEFAULT_METER_MAX_AGE)),
        ramp_up_pct_per_s=float(entry.options.get(CONF_RAMP_UP_RATE, DEFAULT_RAMP_UP_RATE)),
    )


def control_interval(entry: ConfigEntry) -> float:
    """Seconds between control cycles, whole and at least one.

    The options flow only offers whole seconds; an older configuration with a fraction
    is rounded here, so every part of the site (revert timers, the schedule) agrees.
    """
    value = float(entry.options.get(CONF_CONTROL_INTERVAL, DEFAULT_CONTROL_INTERVAL))
    return float(max(1, round(value)))


def revert_timeout(entry: ConfigEntry) -> float:
    """The inverters' revert timer, never shorter than the control interval can refresh.

    The options flow refuses a shorter one; an older configuration is raised here, so an
    inverter is never left unlimited between two refreshes.
    """
    value = float(entry.options.get(CONF_REVERT_TIMEOUT, DEFAULT_REVERT_TIMEOUT))
    floor = min_revert_timeout(control_interval(entry))
    if value < floor:
        _LOGGER.warning(
            "%s: revert timeout %.0f s is too short for a %.0f s control interval; using %.0f s",
            entry.title,
            value,
            control_interval(entry),
            floor,
        )
        return floor
    return value


def control_enabled(entry: ConfigEntry) -> bool:
    """False when the site is in monitor-only mode."""
    return bool(entry.options.get(CONF_CONTROL_ENABLED, True))


def structure_of(entry: ConfigEntry) -> Any:
    """What cannot change without a reload: devices, options, limiters' settings.

    Limiter switches, fixed limits and the control switch are applied live, so moving a
    number slider never interrupts control.
    """
    options = {k: v for k, v in entry.options.items() if k not in LIVE_OPTIONS}
    subentries: list[tuple[str, str, str, Any]] = []
    for sub in entry.subentries.values():
        data = dict(sub.data)
        if sub.subentry_type in LIMITER_SUBENTRIES:
            data.pop(CONF_ENABLED, None)
        if sub.subentry_type == SUBENTRY_FIXED_LIMITER:
            data = {}
        subentries.append(
            (sub.subentry_id, sub.subentry_type, sub.title, tuple(sorted(map(repr, data.items()))))
        )
    return (tuple(sorted(entry.data.items())), tuple(sorted(options.items())), tuple(subentries))


async def async_build_runtime(hass: HomeAssistant, entry: DynamicExportConfigEntry) -> SiteRuntime:
    """Create clients for every subentry and the control loop that drives them.

    Builds from one snapshot of the entry, taken before the first await: a subentry added
    while this runs is then a difference between ``structure`` and the entry, which the
    caller turns into a reload, rather than a subentry counted but never built.
    """
    structure = structure_of(entry)
    subentries = list(entry.subentries.values())
    pool = ConnectionPool()
    store = SiteStore(hass, entry.entry_id)
    await store.async_load()
    override = _restore_override(store)
    inverters: dict[str, InverterHandle] = {}
    meter: MeterHandle | None = None
    limiters: dict[str, LimiterHandle] = {}
    devices = DeviceContext(
        hass,
        pool,
        revert_timeout(entry),
        store,
        meter_max_age_s=controller_settings(entry).meter_max_age_s,
    )
    hooks: list[CycleHook] = []
    for sub in subentries:
        if sub.subentry_type == SUBENTRY_INVERTER:
            for inverter in await async_build_inverters(devices, sub):
                inverters[inverter.key] = inverter
        elif sub.subentry_type == SUBENTRY_METER:
            meter = await async_build_meter(devices, sub)
        elif sub.subentry_type == SUBENTRY_CSIP:
            if (built := await _async_csip(hass, entry, sub, store)) is not None:
                limiters[sub.subentry_id] = LimiterHandle(sub, built[0])
                hooks.append(built[1])
        elif (handle := await async_build_limiter(hass, entry, sub, store)) is not None:
            limiters[sub.subentry_id] = handle

    loop = ControlLoop(
        meter=meter.client if meter else None,
        inverters={key: handle.client for key, handle in inverters.items()},
        ratings={
            key: handle.rated_power_w
            for key, handle in inverters.items()
            if handle.rated_power_w is not None
        },
        limiters=[override, *(handle.limiter for handle in limiters.values())],
        controller=Controller(controller_settings(entry)),
        write_policy=WritePolicy(float(entry.options.get(CONF_DEADBAND, DEFAULT_DEADBAND))),
        control_enabled=control_enabled(entry),
        on_rating=store.set_rating,
        names={
            **{key: handle.name for key, handle in inverters.items()},
            **({"meter": meter.name} if meter else {}),
        },
        site_name=entry.title,
    )
    coordinator = SiteCoordinator(hass, entry, loop, control_interval(entry))
    coordinator.after_cycle.extend(hooks)
    return SiteRuntime(
        loop=loop,
        coordinator=coordinator,
        pool=pool,
        inverters=inverters,
        meter=meter,
        limiters=limiters,
        override=override,
        store=store,
        structure=structure,
    )


async def _async_csip(
    hass: HomeAssistant, entry: ConfigEntry, sub: ConfigSubentry, store: SiteStore
) -> tuple[CsipLimiter, CycleHook] | None:
    """Start a CSIP-AUS limiter; a certificate that cannot be used is logged, not fatal."""
    try:
        return await async_build_csip(hass, entry, sub, store)
    except (IdentityError, ValueError, OSError) as err:
        _LOGGER.error("%s cannot start: %s", sub.title, err)
        return None


def _restore_override(store: SiteStore) -> OverrideLimiter:
    """The automation override saved before a restart, if it has not expired."""
    try:
        return OverrideLimiter.from_dict(
            OVERRIDE_SOURCE, store.data.get("override") or {}, dt_util.utcnow()
        )
    except (ValueError, TypeError, KeyError) as err:
        _LOGGER.warning("Ignoring a stored override that cannot be read: %s", err)
        return OverrideLimiter(OVERRIDE_SOURCE)


def loaded_pool(entry: DynamicExportConfigEntry) -> ConnectionPool | None:
    """The connections of a loaded site (None otherwise).

    A flow that probes a device on a serial bus the site already uses must go through the
    site's own connection, or it would talk over the control loop.
    """
    return entry.runtime_data.pool if entry.state is ConfigEntryState.LOADED else None


def apply_live_settings(entry: DynamicExportConfigEntry) -> None:
    """Apply limiter values and the control switch without a reload."""
    runtime = entry.runtime_data
    runtime.loop.set_control_enabled(control_enabled(entry))
    for sub_id, handle in runtime.limiters.items():
        handle.subentry = entry.subentries[sub_id]
        apply_live_data(handle)
