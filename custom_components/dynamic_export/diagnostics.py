"""Diagnostics: configuration, device identities and the latest control cycle.

Users post diagnostics in public issues, so nothing in them may identify their site. Redacting
by key is not enough: an error string names the host it could not reach, a subentry title or a
device key carries a serial number. Every value found under a sensitive key (in the entry, its
subentries and the devices' identities) is therefore also scrubbed wherever it appears inside
another string or key, and so is anything shaped like an IP address.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from homeassistant.components.diagnostics import REDACTED, async_redact_data
from homeassistant.const import CONF_API_TOKEN, CONF_HOST, CONF_PASSWORD
from homeassistant.core import HomeAssistant

from .const import (
    CONF_CERT_PEM,
    CONF_CSR_PEM,
    CONF_DCAP_URL,
    CONF_FINGERPRINT,
    CONF_KEY_PEM,
    CONF_NMI,
    CONF_PIN,
    CONF_SERIAL,
    CONF_SERIAL_PORT,
    CONF_SITE_ID,
)
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
    CONF_DCAP_URL,
    CONF_FINGERPRINT,
    CONF_SERIAL_PORT,
    CONF_SITE_ID,
    CONF_SERIAL,
    "lfdi",
    "sfdi",
    "serial_number",
    "unique_id",
    "identifiers",
}

MIN_SECRET_LENGTH = 4
"""Shorter values (a unit id, "1") would scrub ordinary text; they are only redacted by key."""

_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])\[?[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}\]?(?![\w:])")


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: DynamicExportConfigEntry
) -> dict[str, Any]:
    """Return what a developer needs to understand a site's behaviour, and nothing personal."""
    runtime = entry.runtime_data
    snapshot = runtime.coordinator.data
    identities = [handle.identity for handle in runtime.inverters.values()]
    if runtime.meter:
        identities.append(runtime.meter.identity)
    report = {
        "entry": entry.as_dict(),
        "inverters": {key: _plain(handle.identity) for key, handle in runtime.inverters.items()},
        "meter": _plain(runtime.meter.identity) if runtime.meter else None,
        "last_cycle": _plain(snapshot),
    }
    secrets = set(_secrets(report["entry"]))
    secrets.update(i.serial_number for i in identities if i is not None and i.serial_number)
    scrubbed: dict[str, Any] = scrub(async_redact_data(report, TO_REDACT), secrets)
    return scrubbed


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """Replace every secret, and every IP address, inside the strings and keys of ``value``."""
    ordered = sorted(
        {s for s in secrets if len(s) >= MIN_SECRET_LENGTH and s != REDACTED}, key=len, reverse=True
    )
    pattern = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None

    def text(raw: str) -> str:
        if pattern is not None:
            raw = pattern.sub(REDACTED, raw)
        raw = _IPV4.sub(REDACTED, raw)
        return _IPV6.sub(lambda m: REDACTED if _is_ipv6(m.group(0)) else m.group(0), raw)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return text(item)
        if isinstance(item, Mapping):
            return {walk(k) if isinstance(k, str) else k: walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        if isinstance(item, int | float) and not isinstance(item, bool) and str(item) in ordered:
            return REDACTED
        return item

    return walk(value)


def _is_ipv6(candidate: str) -> bool:
    try:
        ipaddress.IPv6Address(candidate.strip("[]"))
    except ValueError:
        return False
    return True


def _secrets(value: Any, sensitive: bool = False) -> Iterator[str]:
    """Every value under a key of TO_REDACT (and a URL's host), as text."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _secrets(item, sensitive or key in TO_REDACT)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secrets(item, sensitive)
    elif sensitive and isinstance(value, str | int) and not isinstance(value, bool):
        text = str(value).strip()
        yield text
        host = urlsplit(text).hostname if "://" in text else None
        if host:
            yield host


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
