"""What the client tells the server about its DER: capability, settings, status, availability.

Each of the four documents is rebuilt from every cycle's measurements and PUT when its
content changes (at most every :data:`MIN_CHANGE_S`) and, changed or not, once every
DERList ``pollRate``: every time, not once (open-dynamic-export sent DERStatus once).
Timestamps inside a document (``readingTime``, a status value's ``dateTime``,
``updatedTime``) say when the content last changed, so they never count as a change.

What is advertised is what the site enforces: the controls the client is configured to
act on (``enforced``), narrowed to what the configured devices can do
(:class:`~..core.capability.SiteCapability`, carried by every cycle's measurements and
read afresh at each report). ``modesSupported`` carries opModConnect and opModEnergize,
only for inverters that all really disconnect; ``doeModesSupported`` the CSIP-AUS dynamic
operating envelope modes: export and import limits need a site meter, a generation limit
only inverters, and a site without controllable load cannot enforce a load limit, so
opModLoadLimW is not advertised unless the site says it can. ``rtgMaxW`` (and DERSettings'
``setMaxW``) is the capability's sum of ratings. While control is off (monitor only, or
the CSIP limiter disabled) DERSettings reports no mode enabled.

DERStatus says what the inverters say: genConnectStatus (connected, available unless
one is in fault, operating, fault), inverterStatus (the most telling inverter state:
fault, then throttled, then tracking MPPT, ...; left out when no inverter reports one),
operationalModeStatus, and localControlModeStatus: remote only while the site follows
the server (control on, limiter on, not in fail-safe), local otherwise. No state of
charge: the site has no storage. ``readingTime`` is when the site was last measured.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from ..core.controls import ControlType
from .ramp import AS4777_GRAD_W
from .sep2.codes import (
    ConnectStatus,
    DERControlType,
    DOEControlType,
    LocalControlModeStatus,
    OperationalModeStatus,
)
from .sep2.der import DERAvailability, DERCapability, DERSettings, DERStatus, StatusValue
from .sep2.serialise import (
    der_availability_xml,
    der_capability_xml,
    der_settings_xml,
    der_status_xml,
)
from .sep2.units import ActivePower, ApparentPower, ReactivePower
from .telemetry import SiteMeasurements

MIN_CHANGE_S = 10.0
"""Shortest interval between two change-driven PUTs of one document."""

DEFAULT_ENFORCED: frozenset[ControlType] = frozenset(
    {
        ControlType.CONNECT,
        ControlType.ENERGIZE,
        ControlType.EXPORT_LIMIT,
        ControlType.GENERATION_LIMIT,
        ControlType.IMPORT_LIMIT,
    }
)
"""What a site with inverters and a meter, but no controllable load, enforces."""

_MODE_BITS = {
    ControlType.CONNECT: DERControlType.OP_MOD_CONNECT,
    ControlType.ENERGIZE: DERControlType.OP_MOD_ENERGIZE,
}
_DOE_BITS = {
    ControlType.EXPORT_LIMIT: DOEControlType.OP_MOD_EXP_LIM_W,
    ControlType.IMPORT_LIMIT: DOEControlType.OP_MOD_IMP_LIM_W,
    ControlType.GENERATION_LIMIT: DOEControlType.OP_MOD_GEN_LIM_W,
    ControlType.LOAD_LIMIT: DOEControlType.OP_MOD_LOAD_LIM_W,
}


def modes_bits(enforced: Iterable[ControlType]) -> int:
    """DERControlType bits (modesSupported) for the enforced controls."""
    bits = 0
    for control in enforced:
        bits |= int(_MODE_BITS.get(control, 0))
    return bits


def doe_bits(enforced: Iterable[ControlType]) -> int:
    """CSIP-AUS DOEControlType bits (doeModesSupported) for the enforced controls."""
    bits = 0
    for control in enforced:
        bits |= int(_DOE_BITS.get(control, 0))
    return bits


def default_set_grad_w(server_set_grad_w: int | None) -> int:
    """The setGradW in use: the server's default control's, else AS/NZS 4777.2's 16.67 %/min."""
    return round(AS4777_GRAD_W) if server_set_grad_w is None else server_set_grad_w


class Kind(StrEnum):
    """The four DER documents, by the DER link they go to."""

    CAPABILITY = "capability"
    SETTINGS = "settings"
    STATUS = "status"
    AVAILABILITY = "availability"


type Document = DERCapability | DERSettings | DERStatus | DERAvailability


@dataclass(frozen=True, slots=True)
class Report:
    """One document to PUT; ``content`` identifies it for :meth:`DerReporter.sent`."""

    kind: Kind
    body: bytes
    content: Document


@dataclass(slots=True)
class _Track:
    current: Document | None = None
    sent: Document | None = None
    sent_at: float | None = None
    retry_at: float = 0.0


def _connect_bits(m: SiteMeasurements) -> int:
    bits = ConnectStatus(0)
    if m.connected or m.operating:
        bits |= ConnectStatus.CONNECTED
        if not m.fault:
            bits |= ConnectStatus.AVAILABLE
    if m.operating:
        bits |= ConnectStatus.OPERATING
    if m.fault:
        bits |= ConnectStatus.FAULT
    return int(bits)


def _operational_mode(m: SiteMeasurements) -> int:
    if m.operating is None:
        return int(OperationalModeStatus.NOT_APPLICABLE)
    return int(OperationalModeStatus.OPERATIONAL if m.operating else OperationalModeStatus.OFF)


class DerReporter:
    """Builds the DER documents and decides when each is due."""

    def __init__(self, enforced: Iterable[ControlType] = DEFAULT_ENFORCED) -> None:
        """``enforced``: the controls the site acts on (at most what is advertised)."""
        self.enforced = frozenset(enforced)
        self._tracks = {kind: _Track() for kind in Kind}
        self._status_since: dict[str, tuple[int, int]] = {}
        self._settings_since: tuple[DERSettings, int] | None = None
        self._observed_at: int | None = None
        """Server time of the measurements the documents stand on (their readingTime)."""

    def observe(
        self,
        m: SiteMeasurements,
        server_now: int,
        *,
        set_grad_w: int,
        control_enabled: bool,
        measured_at: int | None = None,
    ) -> None:
        """Rebuild the documents from one cycle's measurements (no I/O).

        ``measured_at`` (server time, default ``server_now``) is when ``m`` was measured:
        the readingTime of DERStatus and DERAvailability, so measurements that stopped
        coming are not passed off as new.
        """
        tracks = self._tracks
        site = m.capability
        advertised = self.enforced if site is None else self.enforced & site.controls
        rated = m.rated_w if site is None else site.rated_w
        if rated is not None and rated > 0:
            tracks[Kind.CAPABILITY].current = DERCapability(
                der_type=int(m.der_type),
                modes_supported=modes_bits(advertised),
                doe_modes_supported=doe_bits(advertised),
                rtg_max_w=ActivePower.from_watts(rated),
                rtg_max_va=None if not m.rated_va else ApparentPower.from_va(m.rated_va),
                rtg_max_var=None if not m.rated_var else ReactivePower.from_var(m.rated_var),
            )
            enabled = control_enabled
            settings = DERSettings(
                updated_time=0,
                set_max_w=ActivePower.from_watts(rated),
                set_grad_w=set_grad_w,
                modes_enabled=modes_bits(advertised) if enabled else 0,
                doe_modes_enabled=doe_bits(advertised) if enabled else 0,
                set_max_va=None if not m.rated_va else ApparentPower.from_va(m.rated_va),
            )
            if self._settings_since is None or self._settings_since[0] != settings:
                self._settings_since = (settings, server_now)
            tracks[Kind.SETTINGS].current = replace(settings, updated_time=self._settings_since[1])
        remote = control_enabled and not m.fail_safe
        local_mode = LocalControlModeStatus.REMOTE if remote else LocalControlModeStatus.LOCAL
        tracks[Kind.STATUS].current = DERStatus(
            reading_time=0,
            gen_connect_status=self._since("gen", _connect_bits(m), server_now),
            inverter_status=(
                None
                if m.inverter_status is None
                else self._since("inverter", m.inverter_status, server_now)
            ),
            local_control_mode_status=self._since("local", int(local_mode), server_now),
            operational_mode_status=self._since("mode", _operational_mode(m), server_now),
        )
        self._observed_at = server_now if measured_at is None else measured_at
        available = m.available_w
        if available is None and m.rated_w is not None and m.connected is not False:
            available = m.rated_w
        tracks[Kind.AVAILABILITY].current = DERAvailability(
            reading_time=0,
            stat_w_avail=None if available is None else ActivePower.from_watts(max(0.0, available)),
        )

    def _since(self, name: str, value: int, server_now: int) -> StatusValue:
        known = self._status_since.get(name)
        if known is None or known[0] != value:
            known = (value, server_now)
            self._status_since[name] = known
        return StatusValue(value=known[0], date_time=known[1])

    def due(
        self, now: float, rate: float, server_now: int, kinds: Iterable[Kind] = tuple(Kind)
    ) -> list[Report]:
        """Documents of ``kinds`` to PUT at ``now`` (local seconds), timestamps in server time."""
        out: list[Report] = []
        wanted = set(kinds)
        for kind, track in self._tracks.items():
            if kind not in wanted or track.current is None or now < track.retry_at:
                continue
            if track.sent_at is not None:
                elapsed = now - track.sent_at
                changed = track.current != track.sent and elapsed >= MIN_CHANGE_S
                if not changed and elapsed < rate:
                    continue
            reading_time = server_now if self._observed_at is None else self._observed_at
            out.append(Report(kind, _body(track.current, reading_time), track.current))
        return out

    def next_due(self, rate: float, kinds: Iterable[Kind] = tuple(Kind)) -> float | None:
        """The earliest local time a document of ``kinds`` could be due, if any."""
        times: list[float] = []
        wanted = set(kinds)
        for kind, track in self._tracks.items():
            if kind not in wanted or track.current is None:
                continue
            if track.sent_at is None:
                times.append(track.retry_at)
                continue
            wait = MIN_CHANGE_S if track.current != track.sent else rate
            times.append(max(track.retry_at, track.sent_at + wait))
        return min(times, default=None)

    def sent(self, report: Report, now: float) -> None:
        """The server took ``report``."""
        track = self._tracks[report.kind]
        track.sent, track.sent_at, track.retry_at = report.content, now, 0.0

    def failed(self, report: Report, now: float, retry_s: float) -> None:
        """The PUT failed: try again after ``retry_s``."""
        self._tracks[report.kind].retry_at = now + retry_s

    def resend_all(self) -> None:
        """Forget what was sent (new DER links): every document is due again."""
        for track in self._tracks.values():
            track.sent, track.sent_at, track.retry_at = None, None, 0.0

    def last_sent(self, kind: Kind) -> float | None:
        """When ``kind`` was last accepted (local seconds)."""
        return self._tracks[kind].sent_at


def _body(document: Document, reading_time: int) -> bytes:
    """The XML of ``document``; status and availability read at ``reading_time``."""
    if isinstance(document, DERCapability):
        return der_capability_xml(document)
    if isinstance(document, DERSettings):
        return der_settings_xml(document)
    if isinstance(document, DERStatus):
        return der_status_xml(replace(document, reading_time=reading_time))
    return der_availability_xml(replace(document, reading_time=reading_time))
