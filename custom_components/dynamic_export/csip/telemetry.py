"""Site and DER telemetry for CSIP-AUS: what the client measures and mirrors to the server.

The Home Assistant layer hands the client one :class:`SiteMeasurements` per control
cycle. Samples are gathered into periods aligned to the server's UTC clock (``postRate``
seconds long, starting at whole multiples of it); when a period ends, its average,
minimum and maximum of each quantity become one batch of MirrorMeterReadings for the site
MirrorUsagePoint and one for the DER MirrorUsagePoint. Batches wait in a bounded buffer
until the server accepted them, so readings survive an outage (and a restart).

Values are sent as integers scaled by the ReadingType's ``powerOfTenMultiplier``: watts
and vars as whole units, volts to 0.1 V and hertz to 0.01 Hz. Every reading covers the
period it describes: ``timePeriod.start`` is the period's start, not the time of posting.
A period is only posted for time it saw from its start: the first one starts at the first
boundary after start-up, and a new ``postRate`` ends the open period at the new rate's
next boundary, where the new rate's periods begin.

A usage point announces only the readings the site measures (seen so far), so every
MirrorMeterReading it defines is then posted; a quantity seen later is announced by posting
the usage point again (same mRID) before its first reading.

mRIDs end with the manufacturer's IANA Private Enterprise Number as 8 decimal digits, as
CSIP-AUS asks (62223 → ``…00062223``).

Sign conventions: site power is positive when the site imports (flowDirection forward),
DER power is positive when it generates (flowDirection reverse); reactive power follows
the same convention as the active power of the same device.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..core.capability import SiteCapability
from ..core.controller import FailSafeReason
from ..core.controls import ControlType
from ..core.cycle import CycleSnapshot
from ..core.measurements import InverterReading
from .sep2.codes import (
    COMMODITY_ELECTRICITY_SECONDARY,
    DataQualifier,
    DERType,
    FlowDirection,
    InverterStatus,
    Kind,
    PhaseCode,
    RoleFlags,
    Uom,
)
from .sep2.mirror import MirrorMeterReading, MirrorUsagePoint, Reading, ReadingType, TimePeriod

type Phases = tuple[float | None, float | None, float | None]

_INT48 = (-(2**47), 2**47 - 1)
"""Range of Reading.value; values beyond it (sensor nonsense) are not sent."""
MAX_BATCHES = 2 * 288
"""Unsent batches kept (both MUPs): a day of five-minute periods each; the oldest go first."""
_FORMAT = 2
_LEGACY_FORMAT = 1
"""Saved before mRIDs carried the PEN in decimal: their mRIDs are migrated on restore."""


@dataclass(frozen=True, slots=True)
class SiteMeasurements:
    """What the site measured in one control cycle; ``None`` is "not measured".

    Phase tuples are (A, B, C). ``rated_w`` and friends describe all inverters together;
    ``available_w`` is what they could produce now (e.g. the rating of those online).
    ``control_enabled`` False means the user turned control off (monitor only): running
    CSIP events are then answered "opted out". ``fail_safe`` and ``inverter_status`` feed
    DERStatus. ``capability`` describes what the site's
    devices can enforce; DERCapability and DERSettings advertise no more than that (without
    one, what the client's configuration says it enforces, rated at ``rated_w``).
    """

    site_power_w: float | None = None
    site_phase_power_w: Phases | None = None
    site_reactive_var: float | None = None
    site_phase_reactive_var: Phases | None = None
    site_voltage_v: Phases | None = None
    site_average_voltage_v: float | None = None
    site_frequency_hz: float | None = None
    der_power_w: float | None = None
    der_phase_power_w: Phases | None = None
    der_reactive_var: float | None = None
    der_phase_reactive_var: Phases | None = None
    der_voltage_v: Phases | None = None
    der_average_voltage_v: float | None = None
    der_frequency_hz: float | None = None
    rated_w: float | None = None
    rated_va: float | None = None
    rated_var: float | None = None
    der_type: int = DERType.PHOTOVOLTAIC
    connected: bool | None = None
    operating: bool | None = None
    fault: bool = False
    inverter_status: int | None = None
    """The site's 2030.5 InverterStatusType, from the inverters that report a state."""
    available_w: float | None = None
    control_enabled: bool = True
    fail_safe: bool = False
    """The site holds its fail-safe level (no usable meter), not the server's limits."""
    capability: SiteCapability | None = None

    @property
    def export_w(self) -> float | None:
        """Power exported to the grid now (negative while importing)."""
        return None if self.site_power_w is None else -self.site_power_w

    @property
    def load_w(self) -> float | None:
        """The site's own consumption: generation plus import."""
        if self.site_power_w is None or self.der_power_w is None:
            return None
        return self.der_power_w + self.site_power_w

    def present_w(self) -> dict[ControlType, float | None]:
        """What the site does now for each watt control: where a ramp to a new limit starts."""
        return {
            ControlType.EXPORT_LIMIT: self.export_w,
            ControlType.GENERATION_LIMIT: self.der_power_w,
            ControlType.IMPORT_LIMIT: self.site_power_w,
            ControlType.LOAD_LIMIT: self.load_w,
        }


def measurements_from_cycle(
    snapshot: CycleSnapshot,
    ratings: Mapping[str, float],
    *,
    der_type: int = DERType.PHOTOVOLTAIC,
    rated_va: float | None = None,
    capability: SiteCapability | None = None,
) -> SiteMeasurements:
    """What one control cycle saw, as :class:`SiteMeasurements`.

    ``ratings`` are the inverters' rated powers from set-up (also those that did not
    answer); ``capability`` is passed through for the DER reports. A meter that failed
    this cycle, or whose values are too old to control with (frozen data), gives no site
    values: the utility is never sent stale readings as new. Voltages are per phase where
    the device measures phases; a meter's single voltage is sent as an average, not as
    phase A. DER values: powers add up, voltages and frequency are averaged over the
    inverters that report them. The inverters' states give the site's inverterStatus and
    fault; the available power is the cycle's estimate (else the rating of those online).
    """
    stale = snapshot.plan.fail_safe_reason is FailSafeReason.METER_STALE
    meter = snapshot.meter if snapshot.meter_error is None and not stale else None
    readings = [s.reading for s in snapshot.inverters.values() if s.reading is not None]
    rated = sum(ratings.values()) or sum(r.rated_power_w for r in readings) or None
    site_phases = None if meter is None else meter.phase_voltage_v
    der_phases = _mean_phases([r.phase_voltage_v for r in readings])
    known = [s for r in readings if (s := inverter_status(r)) is not None]
    estimate = snapshot.available_power
    available = (
        estimate.watts
        if estimate is not None
        else sum(r.rated_power_w for r in readings if _connected(r))
    )
    return SiteMeasurements(
        site_power_w=None if meter is None else meter.grid_power_w,
        site_phase_power_w=None if meter is None else meter.phase_power_w,
        site_reactive_var=None if meter is None else meter.reactive_power_var,
        site_voltage_v=site_phases,
        site_average_voltage_v=None if meter is None or site_phases else meter.voltage_v,
        site_frequency_hz=None if meter is None else meter.frequency_hz,
        der_power_w=sum(r.ac_power_w for r in readings) if readings else None,
        der_reactive_var=_total([r.reactive_power_var for r in readings]),
        der_voltage_v=der_phases,
        der_frequency_hz=_mean([r.frequency_hz for r in readings]),
        rated_w=rated,
        rated_va=rated_va,
        der_type=der_type,
        connected=any(_connected(r) for r in readings) if readings else None,
        operating=any(_operating(r) for r in readings) if readings else None,
        fault=InverterStatus.FAULT in known,
        inverter_status=max(known, key=_STATUS_WEIGHT.__getitem__) if known else None,
        available_w=available,
        control_enabled=snapshot.control_enabled,
        fail_safe=snapshot.plan.fail_safe_reason is not None,
        capability=capability,
    )


_STATUS_NAMES: dict[str, InverterStatus] = {
    "off": InverterStatus.OFF,
    "sleeping": InverterStatus.SLEEPING,
    "idle": InverterStatus.SLEEPING,
    "starting": InverterStatus.STARTING,
    "mppt": InverterStatus.MPPT,
    "throttled": InverterStatus.THROTTLED,
    "shutting_down": InverterStatus.SHUTTING_DOWN,
    "fault": InverterStatus.FAULT,
    "standby": InverterStatus.STANDBY,
}
_STATUS_WEIGHT: dict[InverterStatus, int] = {
    status: weight
    for weight, status in enumerate(
        (
            InverterStatus.OFF,
            InverterStatus.SLEEPING,
            InverterStatus.STANDBY,
            InverterStatus.SHUTTING_DOWN,
            InverterStatus.STARTING,
            InverterStatus.MPPT,
            InverterStatus.THROTTLED,
            InverterStatus.FAULT,
        )
    )
}
"""Which inverter's state speaks for the site: a fault first, then one held below what it
could make, then one producing; the quieter states last."""
_PRODUCING = frozenset({InverterStatus.MPPT, InverterStatus.THROTTLED})


def inverter_status(reading: InverterReading) -> InverterStatus | None:
    """An inverter's state in 2030.5 terms (None when it does not say).

    OpenDTU only says "producing": held below its rating by a limit that counts as
    throttled, otherwise as tracking the maximum power point.
    """
    if reading.status == "producing":
        limited = reading.limit_enabled and (reading.limit_pct or 100.0) < 100.0
        return InverterStatus.THROTTLED if limited else InverterStatus.MPPT
    return None if reading.status is None else _STATUS_NAMES.get(reading.status)


def _connected(reading: InverterReading) -> bool:
    """On the grid: not reported open, and not switched off."""
    return reading.connected is not False and inverter_status(reading) is not InverterStatus.OFF


def _operating(reading: InverterReading) -> bool:
    return reading.ac_power_w > 0 or inverter_status(reading) in _PRODUCING


def _total(values: Iterable[float | None]) -> float | None:
    """Sum of the values reported (None when none is)."""
    known = [v for v in values if v is not None]
    return math.fsum(known) if known else None


def _mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values reported (None when none is)."""
    known = [v for v in values if v is not None]
    return math.fsum(known) / len(known) if known else None


def _mean_phases(values: Iterable[Phases | None]) -> Phases | None:
    """Per phase, the mean over the devices that measure it."""
    present = [v for v in values if v is not None]
    a, b, c = (_mean(v[i] for v in present) for i in range(3))
    return None if a is None and b is None and c is None else (a, b, c)


class Role(StrEnum):
    """The two mirrored usage points."""

    SITE = "site"
    DER = "der"


ROLE_FLAGS: dict[Role, int] = {
    Role.SITE: RoleFlags.IS_MIRROR | RoleFlags.IS_PREMISES_AGGREGATION_POINT,
    Role.DER: RoleFlags.IS_MIRROR | RoleFlags.IS_DER | RoleFlags.IS_SUBMETER,
}
_ROLE_LABEL = {Role.SITE: "Site", Role.DER: "DER"}
_FLOW = {Role.SITE: FlowDirection.FORWARD, Role.DER: FlowDirection.REVERSE}


@dataclass(frozen=True, slots=True)
class Quantity:
    """A measured quantity: unit, scaling and how it is named."""

    key: str
    uom: Uom
    multiplier: int
    label: str
    directional: bool


REAL_POWER = Quantity("w", Uom.WATT, 0, "Real Power", directional=True)
REACTIVE_POWER = Quantity("var", Uom.VAR, 0, "Reactive Power", directional=True)
VOLTAGE = Quantity("v", Uom.VOLT, -1, "Voltage", directional=False)
FREQUENCY = Quantity("hz", Uom.HERTZ, -2, "Frequency", directional=False)

_POWER_PHASES = (
    (PhaseCode.NOT_APPLICABLE, "Net"),
    (PhaseCode.A, "Phase A"),
    (PhaseCode.B, "Phase B"),
    (PhaseCode.C, "Phase C"),
)
_VOLTAGE_PHASES = (
    (PhaseCode.AN, "Phase AN"),
    (PhaseCode.BN, "Phase BN"),
    (PhaseCode.CN, "Phase CN"),
)
_QUALIFIERS = (
    (DataQualifier.AVERAGE, "Avg"),
    (DataQualifier.MAXIMUM, "Max"),
    (DataQualifier.MINIMUM, "Min"),
)


@dataclass(frozen=True, slots=True)
class ReadingDefinition:
    """One MirrorMeterReading of a usage point: a quantity, a phase and a statistic."""

    role: Role
    quantity: Quantity
    phase: PhaseCode
    qualifier: DataQualifier
    mrid: str
    description: str

    @property
    def series(self) -> tuple[Role, str, int]:
        """The measured series the statistic is taken of."""
        return (self.role, self.quantity.key, int(self.phase))

    def reading_type(self) -> ReadingType:
        """The ReadingType sent with the definition."""
        q = self.quantity
        return ReadingType(
            commodity=COMMODITY_ELECTRICITY_SECONDARY,
            data_qualifier=int(self.qualifier),
            flow_direction=int(_FLOW[self.role]) if q.directional else None,
            kind=int(Kind.POWER),
            phase=None if self.phase == PhaseCode.NOT_APPLICABLE else int(self.phase),
            power_of_ten_multiplier=q.multiplier,
            uom=int(q.uom),
        )

    def scaled(self, value: float) -> int:
        """``value`` in units of 10^multiplier, as Reading.value carries it."""
        return round(value * 10.0**-self.quantity.multiplier)


PEN_MAX = 99_999_999
"""Largest PEN that fits the 8 decimal digits ending an mRID."""


def pen_digits(pen: int) -> str:
    """A Private Enterprise Number as CSIP-AUS ends mRIDs with: 8 decimal digits."""
    if not 0 <= pen <= PEN_MAX:
        raise ValueError(f"PEN {pen} does not fit 8 decimal digits")
    return f"{pen:08d}"


def _legacy_pen(pen: int) -> str:
    """How releases before the fix wrote the PEN (8 hex digits): only to migrate them."""
    return f"{pen & 0xFFFF_FFFF:08X}"


def mup_mrid(lfdi: str, role: Role, pen: int) -> str:
    """The mRID of a usage point: 88 bits of the LFDI, the role flags, then the PEN."""
    return f"{lfdi[:22].upper()}{ROLE_FLAGS[role]:02X}{pen_digits(pen)}"


def _reading_mrid(lfdi: str, role: Role, name: str, pen_suffix: str) -> str:
    digest = hashlib.sha256(f"{lfdi.upper()}|{role.value}|{name}".encode()).hexdigest()
    return f"{digest[:24].upper()}{pen_suffix}"


def _series() -> list[tuple[Quantity, PhaseCode, str]]:
    """What a usage point can carry: W and var net and per phase, V per phase or one, Hz."""
    return [
        *((REAL_POWER, p, n) for p, n in _POWER_PHASES),
        *((REACTIVE_POWER, p, n) for p, n in _POWER_PHASES),
        *((VOLTAGE, p, n) for p, n in _VOLTAGE_PHASES),
        (VOLTAGE, PhaseCode.NOT_APPLICABLE, "Average"),
        (FREQUENCY, PhaseCode.NOT_APPLICABLE, ""),
    ]


def reading_definitions(
    lfdi: str, role: Role, pen: int, *, legacy: bool = False
) -> tuple[ReadingDefinition, ...]:
    """Every reading a usage point can carry (39), whether measured or not.

    ``legacy`` gives the mRIDs earlier releases used (PEN in hex), to migrate saved data.
    """
    suffix = _legacy_pen(pen) if legacy else pen_digits(pen)
    out: list[ReadingDefinition] = []
    for quantity, phase, phase_name in _series():
        for qualifier, qualifier_name in _QUALIFIERS:
            description = " ".join(
                part
                for part in (_ROLE_LABEL[role], qualifier_name, quantity.label, phase_name)
                if part
            )
            name = f"{quantity.key}|{int(phase)}|{int(qualifier)}"
            out.append(
                ReadingDefinition(
                    role,
                    quantity,
                    phase,
                    qualifier,
                    _reading_mrid(lfdi, role, name, suffix),
                    description,
                )
            )
    return tuple(out)


def usage_point(
    lfdi: str, role: Role, pen: int, definitions: Iterable[ReadingDefinition] | None = None
) -> MirrorUsagePoint:
    """The MirrorUsagePoint POSTed for ``role`` with ``definitions`` (default: all)."""
    chosen = reading_definitions(lfdi, role, pen) if definitions is None else definitions
    return MirrorUsagePoint(
        mrid=mup_mrid(lfdi, role, pen),
        role_flags=ROLE_FLAGS[role],
        device_lfdi=lfdi.upper(),
        description=f"{_ROLE_LABEL[role]} measurement",
        readings=tuple(
            MirrorMeterReading(d.mrid, d.description, reading_type=d.reading_type()) for d in chosen
        ),
    )


def _phased(
    role: Role, quantity: Quantity, net: float | None, phases: Phases | None
) -> Iterator[tuple[tuple[Role, str, int], float]]:
    if net is not None:
        yield (role, quantity.key, int(PhaseCode.NOT_APPLICABLE)), net
    for (code, _name), value in zip(_POWER_PHASES[1:], phases or (), strict=False):
        if value is not None:
            yield (role, quantity.key, int(code)), value


def _voltages(role: Role, phases: Phases | None) -> Iterator[tuple[tuple[Role, str, int], float]]:
    for (code, _name), value in zip(_VOLTAGE_PHASES, phases or (), strict=False):
        if value is not None:
            yield (role, VOLTAGE.key, int(code)), value


def samples(m: SiteMeasurements) -> dict[tuple[Role, str, int], float]:
    """The measured series of one cycle, keyed like ``ReadingDefinition.series``."""
    out: dict[tuple[Role, str, int], float] = {}
    for role, power, phase_power, var, phase_var, volts, average_volts, hz in (
        (
            Role.SITE,
            m.site_power_w,
            m.site_phase_power_w,
            m.site_reactive_var,
            m.site_phase_reactive_var,
            m.site_voltage_v,
            m.site_average_voltage_v,
            m.site_frequency_hz,
        ),
        (
            Role.DER,
            m.der_power_w,
            m.der_phase_power_w,
            m.der_reactive_var,
            m.der_phase_reactive_var,
            m.der_voltage_v,
            m.der_average_voltage_v,
            m.der_frequency_hz,
        ),
    ):
        out.update(_phased(role, REAL_POWER, power, phase_power))
        out.update(_phased(role, REACTIVE_POWER, var, phase_var))
        phased = dict(_voltages(role, volts))
        out.update(phased)
        if average_volts is not None and not phased:
            out[(role, VOLTAGE.key, int(PhaseCode.NOT_APPLICABLE))] = average_volts
        if hz is not None:
            out[(role, FREQUENCY.key, int(PhaseCode.NOT_APPLICABLE))] = hz
    return {k: float(v) for k, v in out.items() if math.isfinite(v)}


@dataclass(slots=True)
class _Stat:
    count: int = 0
    total: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)

    def statistic(self, qualifier: DataQualifier) -> float:
        if qualifier == DataQualifier.MAXIMUM:
            return self.high
        if qualifier == DataQualifier.MINIMUM:
            return self.low
        return self.total / self.count


@dataclass(frozen=True, slots=True)
class Batch:
    """The readings of one period for one usage point, waiting to be posted."""

    role: Role
    start: int
    duration: int
    values: tuple[tuple[str, int], ...]
    """(MirrorMeterReading mRID, scaled value)."""

    def readings(self) -> list[MirrorMeterReading]:
        """The MirrorMeterReadings to post."""
        end = self.start + self.duration
        period = TimePeriod(self.start, self.duration)
        return [
            MirrorMeterReading(
                mrid,
                last_update_time=end,
                next_update_time=end + self.duration,
                reading=Reading(value=value, time_period=period),
            )
            for mrid, value in self.values
        ]


def _floor(t: int, rate: int) -> int:
    return t - t % rate


def _ceil(t: int, rate: int) -> int:
    return -(-t // rate) * rate


@dataclass(slots=True)
class Telemetry:
    """Gathers samples into server-clock-aligned periods and buffers the batches."""

    lfdi: str
    pen: int
    max_batches: int = MAX_BATCHES
    pending: list[Batch] = field(default_factory=list)
    dropped: int = 0
    """Batches thrown away because the buffer was full."""
    _definitions: dict[Role, tuple[ReadingDefinition, ...]] = field(default_factory=dict)
    _period_start: int | None = None
    _period_end: int = 0
    _last_end: int | None = None
    """Where the last closed period ended: the next one follows on from it."""
    _rate: int = 300
    _stats: dict[tuple[Role, str, int], _Stat] = field(default_factory=dict)
    _seen: set[tuple[Role, str, int]] = field(default_factory=set)
    """Every series measured since start-up: what the usage points announce."""

    def __post_init__(self) -> None:
        self._definitions = {r: reading_definitions(self.lfdi, r, self.pen) for r in Role}

    def announced(self, role: Role) -> tuple[ReadingDefinition, ...]:
        """The readings ``role``'s usage point defines: measured ones and those waiting."""
        waiting = {mrid for b in self.pending if b.role is role for mrid, _value in b.values}
        return tuple(
            d for d in self._definitions[role] if d.series in self._seen or d.mrid in waiting
        )

    def usage_point(self, role: Role) -> MirrorUsagePoint:
        """The MirrorUsagePoint to create for ``role``, with the readings it announces."""
        return usage_point(self.lfdi, role, self.pen, self.announced(role))

    def add(self, server_time: int, m: SiteMeasurements, rate: int) -> None:
        """Take one cycle's measurements at ``server_time`` (seconds, server clock)."""
        rate = max(1, rate)
        t = server_time
        if self._period_start is not None and rate != self._rate:
            if t < self._period_start:
                self._period_start = None  # not begun: begin at the new rate's boundary
            else:
                # It ends at the new rate's next boundary (or its own end, if sooner).
                self._period_end = min(self._period_end, _ceil(t, rate))
            self._rate = rate
        if self._period_start is not None and t >= self._period_end:
            self._close()
        if self._period_start is None:
            start = _floor(t, rate)
            if start != self._last_end:
                # Not following on from the last period (start-up, a new rate, a gap):
                # begin at the next boundary, so no period is dated before its samples.
                start = _ceil(t, rate)
            self._period_start, self._period_end, self._rate = start, start + rate, rate
        values = samples(m)
        self._seen.update(values)
        if t >= self._period_start:
            for key, value in values.items():
                self._stats.setdefault(key, _Stat()).add(value)

    @property
    def period_end(self) -> int | None:
        """When the period being gathered ends (server time), if one is open."""
        return None if self._period_start is None else self._period_end

    def close_due(self, server_time: int) -> None:
        """Close the open period if it has ended, so its batches can be posted."""
        end = self.period_end
        if end is not None and server_time >= end:
            self._close()

    def _close(self) -> None:
        start, end, stats = self._period_start, self._period_end, self._stats
        self._period_start, self._stats = None, {}
        if start is None:
            return
        self._last_end = end
        if not stats:
            return
        for role, definitions in self._definitions.items():
            values = tuple(
                (d.mrid, value)
                for d in definitions
                if d.series in stats
                and _INT48[0]
                <= (value := d.scaled(stats[d.series].statistic(d.qualifier)))
                <= _INT48[1]
            )
            if values:
                self.pending.append(Batch(role, start, end - start, values))
        while len(self.pending) > self.max_batches:
            self.pending.pop(0)
            self.dropped += 1

    def sent(self, batch: Batch) -> None:
        """The server accepted ``batch``."""
        if batch in self.pending:
            self.pending.remove(batch)

    def to_dict(self) -> dict[str, Any]:
        """Unsent batches, JSON-friendly (the open period is not kept)."""
        return {
            "format": _FORMAT,
            "pending": [
                {
                    "role": b.role.value,
                    "start": b.start,
                    "duration": b.duration,
                    "values": [list(v) for v in b.values],
                }
                for b in self.pending
            ],
        }

    def restore(self, data: Mapping[str, Any]) -> bool:
        """Take back unsent batches saved by :meth:`to_dict` (unknown formats are ignored).

        True when they were saved with the PEN in hex: their mRIDs are rewritten to the
        decimal ones, and the usage points they were created under are not ours any more.
        """
        form = data.get("format")
        if form not in (_FORMAT, _LEGACY_FORMAT):
            return False
        legacy: bool = form == _LEGACY_FORMAT
        renamed: dict[str, str] = {}
        if legacy:
            for role in Role:
                old = reading_definitions(self.lfdi, role, self.pen, legacy=True)
                renamed.update(
                    (o.mrid, n.mrid) for o, n in zip(old, self._definitions[role], strict=True)
                )
        self.pending = [
            Batch(
                Role(item["role"]),
                int(item["start"]),
                int(item["duration"]),
                tuple(
                    (renamed.get(str(mrid), str(mrid)), int(value))
                    for mrid, value in item["values"]
                ),
            )
            for item in data.get("pending", [])
        ][-self.max_batches :]
        return legacy
