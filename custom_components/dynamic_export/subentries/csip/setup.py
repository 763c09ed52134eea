"""Run a CSIP-AUS limiter inside Home Assistant.

The client (``csip/``) is plain Python; here it gets Home Assistant's shared HTTP
session, a background task for its polls, the site's measurements after every control
cycle, a place in the site's storage, and repair issues for what the user must fix.
"""

from __future__ import annotations

import functools
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from ...const import (
    CONF_CA_PEM,
    CONF_CERT_PEM,
    CONF_DCAP_URL,
    CONF_DEFAULT_EXPORT_LIMIT,
    CONF_DEFAULT_IMPORT_LIMIT,
    CONF_ENABLED,
    CONF_KEY_PEM,
    CONF_NMI,
    CONF_PEN,
    CONF_PIN,
    CONF_VERIFY_SERVER,
    DOMAIN,
)
from ...coordinator import CycleHook
from ...core.controls import Controls
from ...core.cycle import CycleSnapshot, SiteDevices
from ...csip.client import CsipClient
from ...csip.config import CsipConfig, split_dcap_url
from ...csip.limiter import CsipLimiter
from ...csip.sep2.identity import DeviceIdentity
from ...csip.sep2.tls import client_tls_context
from ...csip.sep2.transport import Sep2Transport
from ...csip.status import CsipStatus
from ...csip.telemetry import measurements_from_cycle
from ...storage import SiteStore

_LOGGER = logging.getLogger(__name__)

REPAIRS: tuple[tuple[str, Callable[[CsipStatus], bool]], ...] = (
    ("csip_certificate_expiring", lambda status: status.certificate_expiring),
    ("csip_certificate_rejected", lambda status: status.certificate_rejected),
    ("csip_server_untrusted", lambda status: status.server_certificate_untrusted),
    ("csip_end_device_disabled", lambda status: status.end_device_disabled),
    ("csip_pin_mismatch", lambda status: status.pin_mismatch),
)


def build_tls(data: Any) -> tuple[DeviceIdentity, ssl.SSLContext]:
    """The device identity and its TLS context from a subentry (blocking: run in an executor).

    Raises the ``csip.sep2.identity`` errors for PEM text that cannot be used.
    """
    return client_tls_context(
        data[CONF_CERT_PEM],
        data[CONF_KEY_PEM],
        data.get(CONF_CA_PEM),
        verify_server=bool(data.get(CONF_VERIFY_SERVER, True)),
    )


def steady_clock() -> Callable[[], float]:
    """Seconds that never jump with the wall clock, for the client's schedule.

    ``CLOCK_BOOTTIME`` where the system has it: unlike ``time.monotonic`` it keeps counting
    while the machine is suspended, so a suspend is not taken for a clock jump.
    """
    boottime: int | None = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is None:
        return time.monotonic
    return functools.partial(time.clock_gettime, boottime)


def csip_config(data: Any) -> CsipConfig:
    """The client's settings from a subentry."""
    _base, href = split_dcap_url(data[CONF_DCAP_URL])
    export_default = data.get(CONF_DEFAULT_EXPORT_LIMIT)
    import_default = data.get(CONF_DEFAULT_IMPORT_LIMIT)
    pin = data.get(CONF_PIN)
    return CsipConfig(
        dcap_href=href,
        pen=int(data.get(CONF_PEN) or 0),
        nmi=(data.get(CONF_NMI) or None),
        pin=None if pin in (None, "") else int(pin),
        fixed_default=Controls(
            export_limit=None if export_default is None else float(export_default),
            import_limit=None if import_default is None else float(import_default),
        ),
    )


async def async_build_csip(
    hass: HomeAssistant, entry: ConfigEntry, sub: ConfigSubentry, store: SiteStore
) -> tuple[CsipLimiter, CycleHook] | None:
    """Start the client of a CSIP-AUS subentry; None while it has no certificate yet."""
    data = sub.data
    if not data.get(CONF_CERT_PEM):
        _LOGGER.warning("%s: waiting for the device certificate (reconfigure to add it)", sub.title)
        return None
    identity, context = await hass.async_add_executor_job(build_tls, data)
    base, _href = split_dcap_url(data[CONF_DCAP_URL])
    transport = Sep2Transport(async_get_clientsession(hass), base, context)
    key = f"csip.{sub.subentry_id}"
    holder: list[CsipLimiter] = []

    def _changed() -> None:
        if holder:
            store.schedule_save(key, holder[0].to_dict())

    client = CsipClient(
        transport, identity, csip_config(data), on_change=_changed, monotonic=steady_clock()
    )
    limiter = CsipLimiter(sub.title, client, enabled=bool(data.get(CONF_ENABLED, True)))
    holder.append(limiter)
    if saved := store.data.get(key):
        limiter.restore(saved)
    entry.async_create_background_task(hass, limiter.async_run(), f"csip {sub.title}")
    raised: set[str] = set()

    async def _stop() -> None:
        await limiter.async_stop()
        store.schedule_save(key, limiter.to_dict())

    entry.async_on_unload(_stop)

    async def _after_cycle(snapshot: CycleSnapshot, devices: SiteDevices) -> None:
        # Ratings of every inverter, also of those that did not answer this cycle, and the
        # capability of the devices as known now, so DERCapability follows them.
        measurements = measurements_from_cycle(
            snapshot, devices.ratings, capability=devices.capability
        )
        await limiter.async_tick(snapshot.wall_time, measurements)
        _sync_repairs(hass, sub, limiter.status(snapshot.wall_time), raised)

    return limiter, _after_cycle


def _sync_repairs(
    hass: HomeAssistant, sub: ConfigSubentry, status: CsipStatus, raised: set[str]
) -> None:
    """Raise each repair issue once when its condition appears; remove it when it clears."""
    for key, condition in REPAIRS:
        issue_id = f"{key}_{sub.subentry_id}"
        if condition(status):
            if issue_id not in raised:
                raised.add(issue_id)
                ir.async_create_issue(
                    hass,
                    DOMAIN,
                    issue_id,
                    is_fixable=False,
                    severity=ir.IssueSeverity.ERROR,
                    translation_key=key,
                    translation_placeholders={
                        "name": sub.title,
                        "days": f"{status.certificate_days_left:.0f}",
                        "error": status.last_error or "",
                    },
                )
        elif issue_id in raised:
            raised.discard(issue_id)
            ir.async_delete_issue(hass, DOMAIN, issue_id)
