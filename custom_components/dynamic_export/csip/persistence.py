"""What the client keeps across restarts, and checking it still belongs to this client.

Controls in force, Responses not yet sent, readings not yet posted, the usage points made
and how we registered: a restart must neither drop a control the server gave nor answer an
event twice. Stored state of another identity or server is never taken.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .config import CsipConfig
from .responses import ResponseTracker
from .schedule import ControlSchedule
from .sep2.identity import same_lfdi
from .telemetry import Role
from .uploads import MupLink

_LOGGER = logging.getLogger(__name__)

_FORMAT = 1


@dataclass(frozen=True, slots=True)
class SavedState:
    """The parts of a client that are saved."""

    schedule: ControlSchedule
    tracker: ResponseTracker
    usage_points: dict[Role, MupLink]
    telemetry: Mapping[str, Any] | None
    """As ``Telemetry.to_dict`` wrote it (the telemetry restores itself)."""
    in_band: bool
    last_success: datetime | None


def dump(
    state: SavedState, *, lfdi: str, dcap_href: str, end_device_href: str | None
) -> dict[str, Any]:
    """``state`` as JSON-friendly data, marked with whose it is."""
    return {
        "format": _FORMAT,
        "lfdi": lfdi,
        "dcap": dcap_href,
        "schedule": state.schedule.to_dict(),
        "responses": state.tracker.to_dict(),
        "telemetry": state.telemetry,
        "usage_points": {
            role.value: {"href": link.href, "post_rate": link.post_rate}
            for role, link in state.usage_points.items()
        },
        "end_device": end_device_href,
        "in_band": state.in_band,
        "last_success": None if state.last_success is None else state.last_success.isoformat(),
    }


def load(
    data: Mapping[str, Any], *, lfdi: str, config: CsipConfig, rng: random.Random | None
) -> SavedState | None:
    """What :func:`dump` saved, rebuilt for a client of ``lfdi`` and ``config``.

    None (start afresh) when it belongs to another identity or server, or is unreadable.
    """
    if data.get("format") != _FORMAT:
        return None
    if not same_lfdi(data.get("lfdi"), lfdi) or data.get("dcap") != config.dcap_href:
        _LOGGER.info("Stored CSIP-AUS state belongs to another identity or server; ignored")
        return None
    try:
        schedule = ControlSchedule.from_dict(
            dict(data["schedule"]),
            fixed_default=config.fixed_default,
            gap_bridge_s=config.gap_bridge_s,
            rng=rng,
        )
        tracker = ResponseTracker.from_dict(dict(data["responses"]))
        usage_points = {
            Role(role): MupLink(str(item["href"]), item.get("post_rate"))
            for role, item in dict(data.get("usage_points") or {}).items()
        }
        last = data.get("last_success")
        last_success = None if last is None else datetime.fromisoformat(str(last))
    except (KeyError, TypeError, ValueError) as err:
        _LOGGER.warning("Stored CSIP-AUS state is unreadable (%s); starting afresh", err)
        return None
    return SavedState(
        schedule,
        tracker,
        usage_points,
        telemetry=data.get("telemetry"),
        in_band=bool(data.get("in_band", False)),
        last_success=last_success,
    )
