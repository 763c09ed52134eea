"""Set-up check for the config flow: everything that can be wrong is found before saving.

Each failure is a distinct error the flow can map to a form error:
DeviceUnavailableError (nothing answers), NotPowerwallError, InvalidPasswordError,
LoginThrottledError, GatewayStoppedError (answers but has no data: try again later),
CertificateChangedError (only when a pinned fingerprint was passed) and
InvalidDeviceDataError (answers nonsense).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from ..core.errors import DeviceResponseError
from .client import DEFAULT_PORT, DEFAULT_TIMEOUT_S, PowerwallClient, async_fetch_fingerprint


@dataclass(frozen=True, slots=True)
class PowerwallInfo:
    """What the flow stores (``fingerprint``) and shows; ``din`` is the unique id."""

    din: str
    version: str | None
    fingerprint: str
    phases: int | None  # None: /api/meters/site gave nothing usable
    meter_type: str | None
    has_solar: bool
    has_battery: bool


async def async_probe(
    session: aiohttp.ClientSession,
    host: str,
    password: str,
    *,
    port: int = DEFAULT_PORT,
    fingerprint: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> PowerwallInfo:
    """Pin the certificate, log in, and read identity and meters once.

    Pass ``fingerprint`` when re-checking an existing entry (reconfigure, repair), so a
    changed certificate is reported instead of silently pinned again.
    """
    if fingerprint is None:
        fingerprint = await async_fetch_fingerprint(session, host, port=port, timeout_s=timeout_s)
    client = PowerwallClient(
        session, host, password, fingerprint=fingerprint, port=port, timeout_s=timeout_s
    )
    await client.async_login()
    status = await client.async_status()
    aggregates = await client.async_aggregates()
    try:
        site = await client.async_site_meter()
    except DeviceResponseError:
        site = None  # older firmware; per-phase values are optional
    return PowerwallInfo(
        din=status.din,
        version=status.version,
        fingerprint=client.fingerprint,
        phases=site.phase_count or None if site else None,
        meter_type=site.meter_type if site else None,
        has_solar=aggregates.solar is not None,
        has_battery=aggregates.battery is not None,
    )
