"""The test server's resource tree as plain data, and the Python API tests use to change it.

Nothing here speaks HTTP or XML; ``app.py`` renders this state and stores what clients send
into it. Every mutator may be called while the server runs (same event loop, no locking).
Times are Unix seconds. Paths are given without the server's ``prefix``; ``href`` adds it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal, Protocol

from .certs import sfdi_of
from .xml import XmlElement, XmlStyle


class EventStatus(IntEnum):
    """EventStatus.currentStatus values (IEEE 2030.5)."""

    SCHEDULED = 0
    ACTIVE = 1
    CANCELLED = 2
    CANCELLED_WITH_RANDOMIZATION = 3
    SUPERSEDED = 4


class HasLfdi(Protocol):
    """Anything with an ``lfdi`` (e.g. ``certs.Credentials``)."""

    @property
    def lfdi(self) -> str:
        """The LFDI."""
        ...


DefaultAbsent = Literal["404", "204", "empty", "no_link"]
"""How a program without a DefaultDERControl answers: 404, 204 No Content, 200 with an empty
body, or no DefaultDERControlLink in the DERProgram at all."""


def new_mrid() -> str:
    """A random mRID: 32 upper-case hex digits (HexBinary128)."""
    return uuid.uuid4().hex.upper()


@dataclass(frozen=True, slots=True)
class ActivePower:
    """An ActivePower on the wire: ``value`` (Int16) × 10^``multiplier`` watts."""

    value: int
    multiplier: int = 0

    @classmethod
    def of(cls, watts: float) -> ActivePower:
        """The exact representation with the smallest multiplier whose value fits Int16."""
        multiplier = 0
        scaled = float(watts)
        while not scaled.is_integer() and multiplier > -3:
            multiplier -= 1
            scaled = watts * 10.0**-multiplier
        while abs(scaled) > 32767:
            multiplier += 1
            scaled = watts / 10.0**multiplier
        return cls(round(scaled), multiplier)

    @property
    def watts(self) -> float:
        """The value in watts."""
        return self.value * 10.0**self.multiplier


PowerArg = ActivePower | float | None


def _power(value: PowerArg) -> ActivePower | None:
    if value is None or isinstance(value, ActivePower):
        return value
    return ActivePower.of(value)


@dataclass(slots=True)
class ControlBase:
    """The DERControlBase fields CSIP-AUS uses (``ramp_tms`` in hundredths of a second)."""

    op_mod_connect: bool | None = None
    op_mod_energize: bool | None = None
    op_mod_exp_lim_w: ActivePower | None = None
    op_mod_gen_lim_w: ActivePower | None = None
    op_mod_imp_lim_w: ActivePower | None = None
    op_mod_load_lim_w: ActivePower | None = None
    ramp_tms: int | None = None

    @classmethod
    def make(
        cls,
        *,
        op_mod_connect: bool | None = None,
        op_mod_energize: bool | None = None,
        op_mod_exp_lim_w: PowerArg = None,
        op_mod_gen_lim_w: PowerArg = None,
        op_mod_imp_lim_w: PowerArg = None,
        op_mod_load_lim_w: PowerArg = None,
        ramp_tms: int | None = None,
    ) -> ControlBase:
        """Build one; powers may be given as watts (converted by ``ActivePower.of``)."""
        return cls(
            op_mod_connect,
            op_mod_energize,
            _power(op_mod_exp_lim_w),
            _power(op_mod_gen_lim_w),
            _power(op_mod_imp_lim_w),
            _power(op_mod_load_lim_w),
            ramp_tms,
        )


@dataclass(slots=True)
class DERControl:
    """One event of a program's DERControlList."""

    mrid: str
    program_id: str
    start: int
    duration: int
    base: ControlBase
    creation_time: int
    current_status: int = EventStatus.SCHEDULED
    status_time: int = 0
    potentially_superseded: bool = False
    randomize_start: int | None = None
    randomize_duration: int | None = None
    response_required: int = 0x03
    reply_to: str | None = None
    description: str | None = None

    @property
    def end(self) -> int:
        """Start plus duration (without randomisation)."""
        return self.start + self.duration


@dataclass(slots=True)
class DefaultControl:
    """A program's DefaultDERControl."""

    mrid: str
    base: ControlBase
    set_grad_w: int | None = None
    set_soft_grad_w: int | None = None
    description: str | None = None


@dataclass(slots=True)
class Program:
    """A DERProgram, its optional DefaultDERControl and its DERControls (by mRID)."""

    id: str
    mrid: str
    primacy: int
    description: str | None = None
    default: DefaultControl | None = None
    default_absent: DefaultAbsent = "404"
    controls: dict[str, DERControl] = field(default_factory=dict)

    def sorted_controls(self) -> list[DERControl]:
        """In list order: start ascending, then creationTime descending, then mRID descending."""
        by_mrid = sorted(self.controls.values(), key=lambda c: c.mrid, reverse=True)
        by_created = sorted(by_mrid, key=lambda c: c.creation_time, reverse=True)
        return sorted(by_created, key=lambda c: c.start)


@dataclass(slots=True)
class FunctionSetAssignments:
    """An FSA: which programs it groups and the path of its DERProgramList."""

    id: str
    mrid: str
    derp_path: str
    program_ids: list[str] = field(default_factory=list)
    description: str | None = None


@dataclass(slots=True)
class StoredBody:
    """A body a client sent: raw bytes, the parsed document, and who sent it when."""

    raw: bytes
    doc: XmlElement
    lfdi: str | None
    path: str
    time: float

    def value(self, path: str) -> str | None:
        """The text at a ``/``-separated path of local names below the root."""
        return self.doc.value(path)


@dataclass(slots=True)
class EndDevice:
    """A registered EndDevice and everything its client PUT or POSTed under it."""

    id: int
    lfdi: str
    sfdi: int
    enabled: bool = True
    changed_time: int = 0
    pin: int = 111115
    registered_time: int = 0
    in_band: bool = False
    posted: StoredBody | None = None
    nmi: str | None = None
    connection_point_puts: list[StoredBody] = field(default_factory=list)
    der_count: int = 1
    der: dict[tuple[int, str], StoredBody] = field(default_factory=dict)
    der_puts: list[tuple[int, str, StoredBody]] = field(default_factory=list)

    def der_resource(self, kind: str, der: int = 1) -> StoredBody | None:
        """The latest body PUT to ``dercap``, ``derg``, ``ders`` or ``dera`` of a DER."""
        return self.der.get((der, kind))

    @property
    def der_capability(self) -> StoredBody | None:
        """The latest DERCapability of DER 1."""
        return self.der_resource("dercap")

    @property
    def der_settings(self) -> StoredBody | None:
        """The latest DERSettings of DER 1."""
        return self.der_resource("derg")

    @property
    def der_status(self) -> StoredBody | None:
        """The latest DERStatus of DER 1."""
        return self.der_resource("ders")

    @property
    def der_availability(self) -> StoredBody | None:
        """The latest DERAvailability of DER 1."""
        return self.der_resource("dera")


@dataclass(slots=True)
class MirrorUsagePoint:
    """A MUP a client created, its reading definitions and the readings it posted since."""

    id: int
    mrid: str
    lfdi: str | None
    body: StoredBody
    reading_mrids: set[str] = field(default_factory=set)
    posts: list[StoredBody] = field(default_factory=list)
    post_rate: int | None = None
    reading_types: dict[str, XmlElement] = field(default_factory=dict)
    """The ReadingType defined for each reading mRID (upper case)."""

    def readings(self) -> list[XmlElement]:
        """Every MirrorMeterReading posted to it, flattening MirrorMeterReadingLists."""
        result: list[XmlElement] = []
        for post in self.posts:
            if post.doc.name == "MirrorMeterReadingList":
                result.extend(post.doc.iter_named("MirrorMeterReading"))
            else:
                result.append(post.doc)
        return result


@dataclass(slots=True)
class ResponseRecord:
    """A Response (e.g. DERControlResponse) POSTed by a client."""

    path: str
    lfdi: str | None
    kind: str
    subject: str | None
    status: int | None
    created: int | None
    end_device_lfdi: str | None
    body: StoredBody


POLL_RATE_DEFAULTS: dict[str, int | None] = {
    "dcap": 300,
    "tm": 900,
    "edev": 300,
    "rg": 300,
    "der": 300,
    "fsa": 300,
    "derp": 300,
    "mup": 300,
}


class CsipState:
    """The server's resources and settings.

    Behaviour switches (plain attributes, change them freely):

    - ``clock_offset``: seconds added to /tm currentTime (simulated drift).
    - ``time_stalled_at``: /tm currentTime stands still at this value (a stalled server
      clock; ``None``: it runs). ``stall_time()`` sets it to the time /tm shows now.
    - ``tz_offset``, ``dst_offset``, ``dst_start``, ``dst_end``, ``time_quality``: /tm fields.
    - ``poll_rates``: pollRate attributes by resource key (see ``POLL_RATE_DEFAULTS``);
      ``None`` leaves the attribute out. ``post_rate``: MirrorUsagePoint postRate.
    - ``default_page_limit``: the ``l`` used when a list GET has none (2030.5 says 1).
      ``max_page_limit``: the most items one page returns whatever ``l`` asks (``None``: no cap).
    - ``allow_in_band_registration``: POST /edev registers a new device (else 403).
    - ``registration_links``: EndDevices carry a RegistrationLink (a server may leave it
      out; the client must then carry on without checking its PIN).
      ``enable_in_band_devices``: such devices start enabled.
    - ``allow_unregistered_discovery``: unknown certificates may GET /dcap, /tm, /edev.
    - ``edev_list_shows_all``: /edev lists every device, not only the caller's.
    - ``strict``: check bodies against the schema structure, content types, LFDIs (→ 400/415).
    - ``xml_style`` (EndDevice, ConnectionPoint and the rest) and ``control_xml_style``
      (DERControl, DERControlList, DefaultDERControl): namespace prefixes written.
    - ``boolean_digits``: write booleans as 1/0 instead of true/false.
    - ``default_reply_to``: replyTo of new DERControls (a path without the prefix).
    - ``pen``: the manufacturer's PEN; when set, MirrorUsagePoint and MirrorMeterReading
      mRIDs must end with it as 8 decimal digits (CSIP-AUS; the reference runner's check),
      else 400.
    - ``check_readings``: (with ``strict``) reading definitions must be ones CSIP-AUS
      reports (uom W/var/V/Hz, kind power, an average/min/max qualifier, a site or DER
      roleFlags), every reading posted must have been defined, and its period must start on
      a minute and last whole minutes (the reference runner's checks), else 400.
    """

    def __init__(self, *, prefix: str = "", clock: Callable[[], float] = time.time) -> None:
        self.prefix = prefix.rstrip("/")
        self.clock = clock
        self.clock_offset = 0
        self.time_stalled_at: int | None = None
        self.tz_offset = 36000
        self.dst_offset = 0
        self.dst_start = 0
        self.dst_end = 0
        self.time_quality = 4
        self.poll_rates: dict[str, int | None] = dict(POLL_RATE_DEFAULTS)
        self.post_rate: int | None = 300
        self.default_page_limit = 1
        self.max_page_limit: int | None = None
        self.allow_in_band_registration = True
        self.registration_links = True
        self.enable_in_band_devices = True
        self.allow_unregistered_discovery = True
        self.edev_list_shows_all = False
        self.strict = True
        self.xml_style = XmlStyle(csip_prefix="csipaus")
        self.control_xml_style = XmlStyle(csip_prefix="ns2")
        self.boolean_digits = False
        self.default_pin = 111115
        self.default_reply_to = "/rsps/1/rsp"
        self.pen: int | None = None
        self.check_readings = True
        self.devices: dict[int, EndDevice] = {}
        self.programs: dict[str, Program] = {}
        self.fsas: dict[str, FunctionSetAssignments] = {}
        self.mups: dict[int, MirrorUsagePoint] = {}
        self.responses: list[ResponseRecord] = []
        self.removed_controls: set[str] = set()
        self._next_device = 1
        self._next_mup = 1
        self._next_program = 1
        self._next_fsa = 1

    # -- helpers ---------------------------------------------------------------------------

    def now(self) -> int:
        """The real time as whole seconds (the drift applies to /tm only)."""
        return int(self.clock())

    def href(self, path: str) -> str:
        """A path as the server writes it in links (with the prefix)."""
        return f"{self.prefix}{path}"

    def server_time(self) -> int:
        """What /tm shows as currentTime now (drift and a stall included)."""
        if self.time_stalled_at is not None:
            return self.time_stalled_at
        return self.now() + self.clock_offset

    def stall_time(self) -> int:
        """Make /tm's currentTime stand still at what it shows now; returns that time."""
        self.time_stalled_at = self.server_time()
        return self.time_stalled_at

    # -- programs and FSAs -------------------------------------------------------------------

    def add_fsa(
        self,
        *,
        fsa_id: str | None = None,
        mrid: str | None = None,
        description: str | None = None,
        program_ids: Iterable[str] = (),
        derp_path: str | None = None,
    ) -> FunctionSetAssignments:
        """A new FSA. The first one's DERProgramList is /derp, later ones' /fsa/{id}/derp."""
        if fsa_id is None:
            while str(self._next_fsa) in self.fsas:
                self._next_fsa += 1
            fsa_id = str(self._next_fsa)
        if derp_path is None:
            derp_path = "/derp" if not self.fsas else f"/fsa/{fsa_id}/derp"
        fsa = FunctionSetAssignments(
            fsa_id, mrid or new_mrid(), derp_path, list(program_ids), description
        )
        self.fsas[fsa_id] = fsa
        return fsa

    def remove_fsa(self, fsa_id: str) -> FunctionSetAssignments:
        """Take an FSA out (its programs stay)."""
        return self.fsas.pop(fsa_id)

    def add_program(
        self,
        primacy: int,
        *,
        program_id: str | None = None,
        mrid: str | None = None,
        description: str | None = None,
        fsa_id: str | None = "1",
    ) -> Program:
        """A new DERProgram, added to FSA ``fsa_id`` (``None``: to none)."""
        if program_id is None:
            while str(self._next_program) in self.programs:
                self._next_program += 1
            program_id = str(self._next_program)
        program = Program(program_id, mrid or new_mrid(), primacy, description)
        self.programs[program_id] = program
        if fsa_id is not None:
            self.fsas[fsa_id].program_ids.append(program_id)
        return program

    def remove_program(self, program_id: str) -> Program:
        """Take a program out of the tree and every FSA."""
        for fsa in self.fsas.values():
            if program_id in fsa.program_ids:
                fsa.program_ids.remove(program_id)
        return self.programs.pop(program_id)

    def set_default_control(
        self,
        program_id: str,
        *,
        mrid: str | None = None,
        description: str | None = None,
        set_grad_w: int | None = None,
        set_soft_grad_w: int | None = None,
        op_mod_connect: bool | None = None,
        op_mod_energize: bool | None = None,
        op_mod_exp_lim_w: PowerArg = None,
        op_mod_gen_lim_w: PowerArg = None,
        op_mod_imp_lim_w: PowerArg = None,
        op_mod_load_lim_w: PowerArg = None,
        ramp_tms: int | None = None,
    ) -> DefaultControl:
        """Set (replace) a program's DefaultDERControl."""
        base = ControlBase.make(
            op_mod_connect=op_mod_connect,
            op_mod_energize=op_mod_energize,
            op_mod_exp_lim_w=op_mod_exp_lim_w,
            op_mod_gen_lim_w=op_mod_gen_lim_w,
            op_mod_imp_lim_w=op_mod_imp_lim_w,
            op_mod_load_lim_w=op_mod_load_lim_w,
            ramp_tms=ramp_tms,
        )
        default = DefaultControl(mrid or new_mrid(), base, set_grad_w, set_soft_grad_w, description)
        self.programs[program_id].default = default
        return default

    def remove_default_control(self, program_id: str, *, absent: DefaultAbsent = "404") -> None:
        """Drop a program's DefaultDERControl; ``absent`` picks how its link then answers."""
        program = self.programs[program_id]
        program.default = None
        program.default_absent = absent

    # -- DERControls -------------------------------------------------------------------------

    def add_control(
        self,
        program_id: str = "1",
        *,
        start: float | None = None,
        duration: int = 300,
        mrid: str | None = None,
        creation_time: float | None = None,
        status: int = EventStatus.SCHEDULED,
        potentially_superseded: bool = False,
        randomize_start: int | None = None,
        randomize_duration: int | None = None,
        response_required: int = 0x03,
        reply_to: str | None = "",
        description: str | None = None,
        op_mod_connect: bool | None = None,
        op_mod_energize: bool | None = None,
        op_mod_exp_lim_w: PowerArg = None,
        op_mod_gen_lim_w: PowerArg = None,
        op_mod_imp_lim_w: PowerArg = None,
        op_mod_load_lim_w: PowerArg = None,
        ramp_tms: int | None = None,
    ) -> DERControl:
        """Add a DERControl to a program.

        ``start`` defaults to now; ``reply_to`` ``""`` means ``default_reply_to`` and
        ``None`` leaves the attribute out. ``response_required`` is the bitmap (0x03 =
        message received + specific response).
        """
        now = self.now()
        base = ControlBase.make(
            op_mod_connect=op_mod_connect,
            op_mod_energize=op_mod_energize,
            op_mod_exp_lim_w=op_mod_exp_lim_w,
            op_mod_gen_lim_w=op_mod_gen_lim_w,
            op_mod_imp_lim_w=op_mod_imp_lim_w,
            op_mod_load_lim_w=op_mod_load_lim_w,
            ramp_tms=ramp_tms,
        )
        control = DERControl(
            mrid=mrid or new_mrid(),
            program_id=program_id,
            start=int(now if start is None else start),
            duration=duration,
            base=base,
            creation_time=int(now if creation_time is None else creation_time),
            current_status=int(status),
            status_time=now,
            potentially_superseded=potentially_superseded,
            randomize_start=randomize_start,
            randomize_duration=randomize_duration,
            response_required=response_required,
            reply_to=self.default_reply_to if reply_to == "" else reply_to,
            description=description,
        )
        program = self.programs[program_id]
        if control.mrid in program.controls:
            raise ValueError(f"mRID {control.mrid} is already in program {program_id}")
        program.controls[control.mrid] = control
        return control

    def add_controls(
        self,
        program_id: str,
        count: int,
        *,
        start: float | None = None,
        duration: int = 300,
        gap: int = 0,
        **kwargs: object,
    ) -> list[DERControl]:
        """``count`` back-to-back controls (``gap`` seconds apart), other arguments as
        ``add_control``'s."""
        first = self.now() if start is None else int(start)
        return [
            self.add_control(
                program_id,
                start=first + i * (duration + gap),
                duration=duration,
                **kwargs,  # type: ignore[arg-type]
            )
            for i in range(count)
        ]

    def control(self, mrid: str) -> DERControl:
        """A DERControl by mRID, in any program."""
        for program in self.programs.values():
            if mrid in program.controls:
                return program.controls[mrid]
        raise KeyError(mrid)

    def set_control_status(self, mrid: str, status: int) -> DERControl:
        """Change a control's EventStatus (and its dateTime to now)."""
        control = self.control(mrid)
        control.current_status = int(status)
        control.status_time = self.now()
        return control

    def cancel_control(self, mrid: str, *, randomized: bool = False) -> DERControl:
        """Cancel: currentStatus 2, or 3 (cancelled with randomization)."""
        status = EventStatus.CANCELLED_WITH_RANDOMIZATION if randomized else EventStatus.CANCELLED
        return self.set_control_status(mrid, status)

    def supersede_control(self, mrid: str) -> DERControl:
        """Mark a control superseded (currentStatus 4)."""
        return self.set_control_status(mrid, EventStatus.SUPERSEDED)

    def remove_control(self, mrid: str) -> DERControl:
        """Delete a control from its list (which, per 2030.5, is not a cancellation)."""
        control = self.control(mrid)
        self.removed_controls.add(mrid.upper())
        return self.programs[control.program_id].controls.pop(mrid)

    def control_mrids(self) -> set[str]:
        """Every DERControl mRID this server has published, removed ones too (upper case):
        what a Response may name, as the reference server keeps deleted controls archived."""
        live = {m.upper() for p in self.programs.values() for m in p.controls}
        return live | self.removed_controls

    # -- EndDevices --------------------------------------------------------------------------

    def register_device(
        self,
        lfdi: str | HasLfdi,
        *,
        sfdi: int | None = None,
        enabled: bool = True,
        pin: int | None = None,
        nmi: str | None = None,
        der_count: int = 1,
        in_band: bool = False,
    ) -> EndDevice:
        """Register an EndDevice out of band (as a utility portal would)."""
        key = (lfdi if isinstance(lfdi, str) else lfdi.lfdi).upper()
        if self.device_for(key) is not None:
            raise ValueError(f"LFDI {key} is already registered")
        now = self.now()
        device = EndDevice(
            id=self.next_device_id(),
            lfdi=key,
            sfdi=sfdi_of(key) if sfdi is None else sfdi,
            enabled=enabled,
            changed_time=now,
            pin=self.default_pin if pin is None else pin,
            registered_time=now,
            in_band=in_band,
            nmi=nmi,
            der_count=der_count,
        )
        self.devices[device.id] = device
        return device

    def device_for(self, lfdi: str | HasLfdi | None) -> EndDevice | None:
        """The EndDevice registered for an LFDI (case-insensitive), if any."""
        if lfdi is None:
            return None
        key = (lfdi if isinstance(lfdi, str) else lfdi.lfdi).upper()
        return next((d for d in self.devices.values() if d.lfdi == key), None)

    def set_device_enabled(self, lfdi: str | HasLfdi, enabled: bool) -> EndDevice:
        """Enable or disable a registered device."""
        device = self.device_for(lfdi)
        if device is None:
            raise KeyError(lfdi)
        device.enabled = enabled
        device.changed_time = self.now()
        return device

    def remove_device(self, lfdi: str | HasLfdi) -> EndDevice:
        """Deregister a device: its certificate becomes unknown again."""
        device = self.device_for(lfdi)
        if device is None:
            raise KeyError(lfdi)
        return self.devices.pop(device.id)

    def set_pin(self, pin: int, lfdi: str | HasLfdi | None = None) -> None:
        """Set one device's registration PIN, or (no LFDI) the PIN for devices to come."""
        if lfdi is None:
            self.default_pin = pin
            return
        device = self.device_for(lfdi)
        if device is None:
            raise KeyError(lfdi)
        device.pin = pin

    # -- rates -------------------------------------------------------------------------------

    def set_poll_rate(self, resource: str, seconds: int | None) -> None:
        """Set the pollRate of a resource key (dcap, tm, edev, rg, der, fsa, derp, mup)."""
        if resource not in self.poll_rates:
            raise KeyError(resource)
        self.poll_rates[resource] = seconds

    def set_post_rate(self, seconds: int | None) -> None:
        """The postRate every MirrorUsagePoint advertises (unless one sets its own)."""
        self.post_rate = seconds

    # -- MUPs and responses ------------------------------------------------------------------

    def mup_by_mrid(self, mrid: str) -> MirrorUsagePoint | None:
        """A live MUP by mRID (case-insensitive)."""
        return next((m for m in self.mups.values() if m.mrid.upper() == mrid.upper()), None)

    def delete_mup(self, mup: int | str) -> MirrorUsagePoint:
        """Forget a MUP (by id or mRID), as a server that lost it would; posts to it → 404."""
        if isinstance(mup, str):
            found = self.mup_by_mrid(mup)
            if found is None:
                raise KeyError(mup)
            mup = found.id
        return self.mups.pop(mup)

    def responses_for(self, mrid: str) -> list[ResponseRecord]:
        """Responses whose subject is ``mrid``, in arrival order."""
        return [r for r in self.responses if (r.subject or "").upper() == mrid.upper()]

    def response_statuses(self, mrid: str) -> list[int | None]:
        """The statuses of ``responses_for(mrid)``."""
        return [r.status for r in self.responses_for(mrid)]

    # -- internal counters used by the app ---------------------------------------------------

    def next_device_id(self) -> int:
        """Reserve an EndDevice id."""
        value = self._next_device
        self._next_device += 1
        return value

    def next_mup_id(self) -> int:
        """Reserve a MirrorUsagePoint id."""
        value = self._next_mup
        self._next_mup += 1
        return value


def default_tree(state: CsipState | None = None) -> CsipState:
    """The default CSIP-AUS tree: one FSA with two programs.

    Program "1" (primacy 1) has a DefaultDERControl (export 1500 W, generation 10 kW,
    connect and energize true, setGradW 28); program "2" (primacy 2) has none (404).
    No EndDevice is registered: register one out of band, or let the client POST.
    """
    state = state or CsipState()
    state.add_fsa(fsa_id="1", description="CSIP-AUS DNSP")
    state.add_program(1, program_id="1", description="DNSP dynamic limits")
    state.add_program(2, program_id="2", description="Site program")
    state.set_default_control(
        "1",
        description="Default limits",
        op_mod_connect=True,
        op_mod_energize=True,
        op_mod_exp_lim_w=1500,
        op_mod_gen_lim_w=10000,
        set_grad_w=28,
    )
    return state
