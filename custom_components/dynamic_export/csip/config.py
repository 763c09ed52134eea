"""What an installer configures for one CSIP-AUS server."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from ..core.controls import Controls, ControlType
from .reporting import DEFAULT_ENFORCED
from .schedule import DEFAULT_GAP_BRIDGE_S
from .sep2.discovery import PAGE_SIZE


@dataclass(frozen=True, slots=True)
class CsipConfig:
    """What an installer configures for one CSIP-AUS server.

    ``dcap_href`` is the DeviceCapability path on the transport's base URL (see
    :func:`split_dcap_url`). ``pin`` is the registration PIN the utility issued (checked
    against the server's Registration; the five-digit form without the check digit is
    accepted too). ``pen`` is the IANA Private Enterprise Number that ends the mRIDs we
    create. ``fixed_default`` applies when the server never gave a default for a control.
    ``enforced`` lists the controls the site acts on: DERCapability advertises those the
    measurements' ``capability`` (the devices) can hold.
    """

    dcap_href: str
    pen: int
    nmi: str | None = None
    pin: int | None = None
    fixed_default: Controls = field(default_factory=Controls)
    enforced: frozenset[ControlType] = DEFAULT_ENFORCED
    page_size: int = PAGE_SIZE
    gap_bridge_s: int = DEFAULT_GAP_BRIDGE_S


def split_dcap_url(url: str) -> tuple[str, str]:
    """``https://host:port/path/dcap`` → (``https://host:port``, ``/path/dcap``)."""
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError(f"{url!r} is not an https:// URL")
    base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    href = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    return base, href
