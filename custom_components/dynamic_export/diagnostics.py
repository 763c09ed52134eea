"""Diagnostics: configuration, device identities and the latest control cycle."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_API_TOKEN, CONF_HOST, CONF_PASSWORD
from homeassistant.core import HomeAssistant

from .const import CONF_CERT_PEM, CONF_CSR_PEM, CONF_KEY_PEM, CONF_NMI, CONF_PIN
from .runtime import DynamicExportConfigEntry

TO_REDACT = {
    CONF_HOST,
    CONF_PASSWORD,
    CONF_API_TOKEN,
    CONF_KEY_PEM,
    CONF_CERT_PEM,
    CONF_CSR_PEM,
    CONF_NMI,
    CONF_PIN,
    "lfdi",
    "sfdi",
    "serial",
    "serial_number",
    "unique_id",
    "identifiers",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: DynamicExportConfigEntry
) -> dict[str, Any]:
    """Return what a developer needs to understand a site's behaviour."""
    runtime = entry.runtime_data
    snapshot = runtime.coordinator.data
    return async_redact_data(
        {
            "entry": entry.as_dict(),
            "inverters": {
                key: _plain(handle.identity) for key, handle in runtime.inverters.items()
            },
            "meter": _plain(runtime.meter.identity) if runtime.meter else None,
            "last_cycle": _plain(snapshot),
        },
        TO_REDACT,
    )


def _plain(value: Any) -> Any:
    """Turn dataclasses, enums and datetimes into JSON-friendly values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)
