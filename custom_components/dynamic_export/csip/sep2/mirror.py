"""Metering mirror: the usage points the client creates and the readings it posts there."""

from __future__ import annotations

from dataclasses import dataclass

from .codes import SERVICE_KIND_ELECTRICITY, USAGE_POINT_STATUS_ON


@dataclass(frozen=True, slots=True)
class TimePeriod:
    """A DateTimeInterval: start in Unix seconds, duration in seconds."""

    start: int
    duration: int


@dataclass(frozen=True, slots=True)
class ReadingType:
    """What a mirrored reading measures; value = Reading.value × 10^power_of_ten_multiplier."""

    accumulation_behaviour: int | None = None
    commodity: int | None = None
    data_qualifier: int | None = None
    flow_direction: int | None = None
    interval_length: int | None = None
    kind: int | None = None
    phase: int | None = None
    power_of_ten_multiplier: int | None = None
    uom: int | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One mirrored measurement; ``value`` is already scaled by the ReadingType multiplier."""

    value: int | None = None
    time_period: TimePeriod | None = None
    quality_flags: int | None = None


@dataclass(frozen=True, slots=True)
class MirrorMeterReading:
    """A reading definition (with ReadingType) or a posted value (with Reading)."""

    mrid: str
    description: str | None = None
    reading_type: ReadingType | None = None
    reading: Reading | None = None
    last_update_time: int | None = None
    next_update_time: int | None = None
    href: str | None = None


@dataclass(frozen=True, slots=True)
class MirrorUsagePoint:
    """A usage point the client mirrors telemetry into (site or DER)."""

    mrid: str
    role_flags: int
    device_lfdi: str
    service_category_kind: int = SERVICE_KIND_ELECTRICITY
    status: int = USAGE_POINT_STATUS_ON
    description: str | None = None
    href: str | None = None
    post_rate: int | None = None
    """Seconds between posts the server asks for; None when it did not say."""
    readings: tuple[MirrorMeterReading, ...] = ()
