"""What the client shows: how talking to the server goes and what is in force.

A :class:`CsipStatus` is a snapshot for entities, repair issues and diagnostics; the
Home Assistant layer reads it and never the client's internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ..core.controls import Controls, ControlType
from .control_base import to_controls
from .schedule import UpcomingControl
from .selection import Selection, Source

CERTIFICATE_WARNING_DAYS = 30
"""A device certificate expiring sooner than this raises a flag for a repair issue."""


class CommsState(StrEnum):
    """How talking to the server goes."""

    CONNECTING = "connecting"
    OK = "ok"
    UNREACHABLE = "unreachable"
    CERTIFICATE_REJECTED = "certificate_rejected"
    SERVER_CERTIFICATE_UNTRUSTED = "server_certificate_untrusted"
    NOT_REGISTERED = "not_registered"
    REGISTRATION_PIN_MISMATCH = "registration_pin_mismatch"
    END_DEVICE_DISABLED = "end_device_disabled"
    SERVER_ERROR = "server_error"
    """The server answers, but some resource fails (HTTP error, unusable document)."""


class RegistrationState(StrEnum):
    """What the server knows of our EndDevice."""

    UNKNOWN = "unknown"
    REGISTERED = "registered"
    """Found in the EndDeviceList (registered out of band, e.g. on a utility portal)."""
    REGISTERED_IN_BAND = "registered_in_band"
    """We POSTed our EndDevice and the server accepted it."""
    NOT_REGISTERED = "not_registered"
    PIN_MISMATCH = "pin_mismatch"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class ActiveControl:
    """A server control in force (or the next one); times are server time."""

    mrid: str
    program_mrid: str | None
    start: datetime | None
    end: datetime | None
    controls: Controls
    bridged: bool = False
    """True while it is held across a short gap before the next control."""


@dataclass(frozen=True, slots=True)
class Contribution:
    """What the CSIP limiter asks for one control type, and why."""

    control_type: ControlType
    value: bool | float | None
    """What is applied now (after ramping)."""
    target: bool | float | None
    """What the schedule asks (the ramp moves towards it)."""
    source: Source | None
    mrid: str | None = None


@dataclass(frozen=True, slots=True)
class CsipStatus:
    """A snapshot of the client for entities, repair issues and diagnostics."""

    comms: CommsState
    connected: bool
    last_success: datetime | None
    last_error: str | None
    errors: dict[str, str]
    registration: RegistrationState
    lfdi: str
    sfdi: int
    end_device_href: str | None
    server_offset_s: float | None
    clock_drift: bool
    active_controls: tuple[ActiveControl, ...]
    next_control: ActiveControl | None
    server_defaults: Controls
    fixed_default: Controls
    applied: Controls
    contributions: dict[ControlType, Contribution]
    opted_out: bool
    certificate_days_left: float
    pending_responses: int
    pending_batches: int
    mirror_usage_points: dict[str, str | None]
    import_limit_unheld: bool = False
    """The site has imported above the import limit in force for a while: its inverters
    cannot make up for the load (a solar-only site cannot hold an import cap above its
    solar)."""

    @property
    def active_control(self) -> ActiveControl | None:
        """The first active control (most entities show one)."""
        return self.active_controls[0] if self.active_controls else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (diagnostics, entity attributes)."""
        plain: dict[str, Any] = _plain(self)
        return plain | {
            "certificate_expiring": self.certificate_expiring,
            "certificate_rejected": self.certificate_rejected,
            "server_certificate_untrusted": self.server_certificate_untrusted,
            "end_device_disabled": self.end_device_disabled,
            "pin_mismatch": self.pin_mismatch,
        }

    @property
    def certificate_expiring(self) -> bool:
        """Repair issue: the device certificate expires within 30 days."""
        return self.certificate_days_left < CERTIFICATE_WARNING_DAYS

    @property
    def certificate_rejected(self) -> bool:
        """Repair issue: the server refuses our certificate."""
        return self.comms is CommsState.CERTIFICATE_REJECTED

    @property
    def server_certificate_untrusted(self) -> bool:
        """Repair issue: the server's certificate does not verify against the CA."""
        return self.comms is CommsState.SERVER_CERTIFICATE_UNTRUSTED

    @property
    def end_device_disabled(self) -> bool:
        """Repair issue: the utility disabled our EndDevice."""
        return self.registration is RegistrationState.DISABLED

    @property
    def pin_mismatch(self) -> bool:
        """Repair issue: the registration PIN differs from the configured one."""
        return self.registration is RegistrationState.PIN_MISMATCH


def contributions(
    applied: Controls, selections: Mapping[ControlType, Selection]
) -> dict[ControlType, Contribution]:
    """Per control type: what is applied, what the schedule asks and where that comes from."""
    return {
        t: Contribution(
            t,
            applied.get(t),
            None if (s := selections.get(t)) is None else s.value,
            None if s is None else s.source,
            None if s is None else s.mrid,
        )
        for t in ControlType
    }


def active_controls(selections: Mapping[ControlType, Selection]) -> tuple[ActiveControl, ...]:
    """The server controls behind the selections (one per mRID), earliest first."""
    grouped: dict[str, list[Selection]] = {}
    for selection in selections.values():
        if selection.source in (Source.CONTROL, Source.BRIDGE) and selection.mrid is not None:
            grouped.setdefault(selection.mrid, []).append(selection)
    out = [
        ActiveControl(
            mrid,
            items[0].program_mrid,
            _as_datetime(items[0].start),
            _as_datetime(items[0].end),
            to_controls({s.control_type: s.value for s in items}),
            bridged=all(s.source is Source.BRIDGE for s in items),
        )
        for mrid, items in grouped.items()
    ]
    return tuple(sorted(out, key=lambda a: (a.start or datetime.min.replace(tzinfo=UTC), a.mrid)))


def next_control(upcoming: UpcomingControl | None) -> ActiveControl | None:
    """The schedule's next control as shown."""
    if upcoming is None:
        return None
    return ActiveControl(
        upcoming.mrid,
        upcoming.program_mrid,
        _as_datetime(upcoming.start),
        _as_datetime(upcoming.end),
        upcoming.controls,
    )


def _as_datetime(server_seconds: int | None) -> datetime | None:
    return None if server_seconds is None else datetime.fromtimestamp(server_seconds, UTC)


def _plain(value: Any) -> Any:
    """Dataclasses, enums, datetimes and mappings as JSON-friendly values."""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Controls):
        return value.as_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
