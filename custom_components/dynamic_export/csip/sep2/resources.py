"""IEEE 2030.5 resources the client reads, as plain dataclasses.

Function sets and their links (DeviceCapability, Time, EndDevice, Registration, DER), the
programs and controls the schedule works on, and the Response it sends about them. Parsing
lives in ``parse`` and writing in ``serialise``; the schedule never sees XML.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .codes import EventStatus
from .units import ActivePower


@dataclass(frozen=True, slots=True)
class ListPage[T]:
    """One page of a 2030.5 list.

    ``all`` counts the whole list on the server, ``results`` the items in this page; the client
    pages with ``?s=<start>&l=<limit>`` until it has ``all`` items or a page is empty.
    """

    href: str | None
    all: int
    results: int
    items: tuple[T, ...] = ()
    poll_rate: int | None = None
    """Seconds; None when the server did not say (the XSD default is 900)."""


@dataclass(frozen=True, slots=True)
class DeviceCapability:
    """The entry point (dcap): where the other resources live."""

    href: str | None
    poll_rate: int | None = None
    time_href: str | None = None
    end_device_list_href: str | None = None
    mirror_usage_point_list_href: str | None = None
    self_device_href: str | None = None
    der_program_list_href: str | None = None
    response_set_list_href: str | None = None


@dataclass(frozen=True, slots=True)
class Time:
    """Server time: all values in seconds (Unix time or offsets)."""

    href: str | None
    current_time: int
    dst_end_time: int
    dst_offset: int
    dst_start_time: int
    tz_offset: int
    quality: int
    local_time: int | None = None
    poll_rate: int | None = None


@dataclass(frozen=True, slots=True)
class EndDevice:
    """Our device as the server knows it (and as we POST it, where only the identity is used)."""

    href: str | None
    lfdi: str | None
    sfdi: int
    changed_time: int
    enabled: bool | None = None
    """None when the server left it out."""
    device_category: int | None = None
    post_rate: int | None = None
    der_list_href: str | None = None
    fsa_list_href: str | None = None
    registration_href: str | None = None
    connection_point_href: str | None = None
    """csipaus:ConnectionPointLink: where to PUT the NMI (in-band registration)."""
    subscription_list_href: str | None = None
    device_information_href: str | None = None
    device_status_href: str | None = None


@dataclass(frozen=True, slots=True)
class Registration:
    """The registration record of our EndDevice; ``pin`` is checked against the installer's."""

    href: str | None
    date_time_registered: int
    pin: int
    poll_rate: int | None = None


@dataclass(frozen=True, slots=True)
class FunctionSetAssignments:
    """A group of programs assigned to our device."""

    href: str | None
    mrid: str
    description: str | None = None
    der_program_list_href: str | None = None
    time_href: str | None = None


@dataclass(frozen=True, slots=True)
class DER:
    """One DER of our EndDevice: links to where its capability, settings and status go."""

    href: str | None
    der_capability_href: str | None = None
    der_settings_href: str | None = None
    der_status_href: str | None = None
    der_availability_href: str | None = None
    associated_der_program_list_href: str | None = None
    current_der_program_href: str | None = None
    associated_usage_point_href: str | None = None


@dataclass(frozen=True, slots=True)
class DERProgram:
    """A DER program with its default control and its events."""

    mrid: str
    href: str | None
    primacy: int
    description: str | None = None
    default_control: DefaultDERControl | None = None
    controls: tuple[DERControl, ...] = field(default_factory=tuple)
    default_control_href: str | None = None
    control_list_href: str | None = None
    active_control_list_href: str | None = None


@dataclass(frozen=True, slots=True)
class DERControlBase:
    """The controls of a DERControl or DefaultDERControl (only what CSIP-AUS uses).

    ``ramp_tms`` is in hundredths of a second, as on the wire.
    """

    op_mod_connect: bool | None = None
    op_mod_energize: bool | None = None
    op_mod_exp_lim_w: ActivePower | None = None
    op_mod_gen_lim_w: ActivePower | None = None
    op_mod_imp_lim_w: ActivePower | None = None
    op_mod_load_lim_w: ActivePower | None = None
    ramp_tms: int | None = None


@dataclass(frozen=True, slots=True)
class DERControl:
    """One scheduled event of a DER program."""

    mrid: str
    href: str | None
    creation_time: int
    """Unix seconds (server time)."""
    start: int
    """interval.start, Unix seconds (server time)."""
    duration: int
    """interval.duration, seconds."""
    status: EventStatus
    base: DERControlBase
    randomize_start: int = 0
    randomize_duration: int = 0
    response_required: int = 0
    """Bit field: 1 message received, 2 specific response (started/completed...)."""
    reply_to: str | None = None
    description: str | None = None
    program_mrid: str | None = None
    primacy: int | None = None
    """Primacy of the program the control came from (lower wins)."""


@dataclass(frozen=True, slots=True)
class DefaultDERControl:
    """The control a program applies when none of its events is active."""

    mrid: str
    base: DERControlBase
    set_grad_w: int | None = None
    """Ramp rate in hundredths of a percent of rated power per second (0: no limit)."""
    program_mrid: str | None = None
    primacy: int | None = None
    href: str | None = None
    set_soft_grad_w: int | None = None
    """Soft-start ramp rate, hundredths of a percent of rated power per second."""


@dataclass(frozen=True, slots=True)
class Response:
    """A (DER control) response POSTed to an event's replyTo."""

    subject: str
    """mRID of the event."""
    end_device_lfdi: str
    status: int | None
    """ResponseStatus."""
    created_date_time: int | None = None
