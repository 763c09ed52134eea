"""Set-up check for the config flow: find the DTU, check the password, list its inverters.

Failures are distinct errors the flow can map to form errors: DeviceUnavailableError
(nothing answers), NotOpenDtuError, InvalidPasswordError, InvalidDeviceDataError.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from ..core.errors import DeviceResponseError, InvalidDeviceDataError
from .client import DEFAULT_PORT, DEFAULT_TIMEOUT_S, OpenDtuClient
from .errors import InvalidPasswordError, NotOpenDtuError


@dataclass(frozen=True, slots=True)
class DtuInverter:
    """One inverter to offer in the flow; ``serial`` is its unique id."""

    serial: str
    name: str
    max_power_w: float | None  # None until the DTU has talked to it (ask the user then)
    reachable: bool
    producing: bool


@dataclass(frozen=True, slots=True)
class DtuInfo:
    """The DTU and its inverters."""

    version: str
    hostname: str | None
    inverters: tuple[DtuInverter, ...]


async def async_probe(
    session: aiohttp.ClientSession,
    host: str,
    password: str,
    *,
    port: int = DEFAULT_PORT,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> DtuInfo:
    """Identify the DTU, check the admin password and list its inverters."""
    client = OpenDtuClient(session, host, password, port=port, timeout_s=timeout_s)
    try:
        system = await client.async_system_status()
    except InvalidPasswordError:
        raise
    except (InvalidDeviceDataError, DeviceResponseError) as err:
        raise NotOpenDtuError(f"{host}:{port} does not answer like OpenDTU: {err}") from err
    await client.async_check_password()
    summaries = await client.async_inverters()
    _, statuses = await client.async_limit_status()
    inverters = []
    for summary in summaries:
        status = statuses.get(summary.serial)
        inverters.append(
            DtuInverter(
                serial=summary.serial,
                name=summary.name,
                max_power_w=status.max_power_w if status else None,
                reachable=summary.reachable,
                producing=summary.producing,
            )
        )
    return DtuInfo(system.version, system.hostname, tuple(inverters))
