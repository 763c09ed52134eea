"""Connection test for the config flow: identify a GoodWe ET-family inverter without writing.

Failures are distinct errors the flow maps to form errors: DeviceUnavailableError (nothing
answers on UDP 8899), NotGoodWeEtError (it answers, but not with the ET device info),
NoGoodWeMeterError (its meter is silent, so an export limit would do nothing) and
InvalidDeviceDataError.
"""

from __future__ import annotations

from dataclasses import dataclass

from .client import EXPORT_ENABLED, EXPORT_LIMIT, EtIdentity, GoodWeEtClient
from .errors import NoGoodWeMeterError


@dataclass(frozen=True, slots=True)
class GoodWeProbe:
    """What the flow shows and stores; the export limit the installer set (W, None: off)."""

    info: EtIdentity
    own_export_limit_w: int | None


async def async_probe(client: GoodWeEtClient) -> GoodWeProbe:
    """Read the identity, the runtime data (the meter must answer) and the export settings."""
    info = await client.async_identify()
    runtime = await client.async_runtime()
    if not runtime.meter_ok:
        raise NoGoodWeMeterError(
            f"GoodWe at {client.host}: its meter does not communicate; the export limit "
            "needs the GoodWe meter"
        )
    enabled = await client.async_read_setting(EXPORT_ENABLED)
    limit = await client.async_read_setting(EXPORT_LIMIT)
    return GoodWeProbe(info, limit if enabled == 1 else None)
