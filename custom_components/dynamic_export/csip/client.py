"""The CSIP-AUS client: discovery, polling, control schedule, responses, DER reports, telemetry.

One :class:`CsipClient` talks to one utility server through an injected
:class:`~.transport.Sep2Transport`. It is driven from two sides:

* **Network work** happens in :meth:`CsipClient.run_due`, which does everything that is due
  at the clock's "now" (polls at every resource's ``pollRate``, Responses, DER reports,
  MirrorMeterReading posts) and returns when the next piece of work is due.
  :meth:`CsipClient.async_run` loops over it as a background task owned by the Home
  Assistant layer (stopped with :meth:`CsipClient.async_stop`); tests call ``run_due``
  directly with a fake clock, so no test sleeps through a poll interval.
* **The control cycle** calls :meth:`CsipClient.tick` with the site's measurements (no I/O:
  it feeds ramps, telemetry and DER reports, moves the schedule on and wakes the
  background task when something must be sent) and :meth:`CsipClient.controls` for the
  limits to apply (no I/O either).

Every schedule decision uses the server's clock: the client keeps the offset between its
own clock and the server's ``Time`` resource and converts. Drift beyond a minute is
logged once and shown; it is never fatal. Given a steady clock (``monotonic``), the
client counts time between Time polls on it, so a jump of the local wall clock (a manual
change, NTP stepping it) neither ends a control early nor makes it run late, and its own
deadlines (polls, retries) keep their pace. A Time that stops advancing is not followed:
the client keeps counting from the last good reading and shows the error.

Failures never escape: a server that cannot be reached, refuses our certificate, or sends
a broken document leaves the last known controls (and then the defaults) in force and is
reported through :attr:`CsipClient.comms`, :meth:`CsipClient.status` and the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from ..core.controls import Controls, ControlType
from .config import CsipConfig
from .control_base import to_controls
from .ramp import ControlRamps
from .reporting import DerReporter, Kind, default_set_grad_w
from .responses import ResponseTracker
from .schedule import ControlSchedule
from .selection import Selection, Source
from .sep2.discovery import (
    DEFAULT_POST_RATE_S,
    RETRY_S,
    Listing,
    fetch_list,
    poll_rate,
    retry_delay,
)
from .sep2.identity import DeviceIdentity, same_lfdi
from .sep2.parse import (
    parse_default_der_control,
    parse_der,
    parse_der_control_list,
    parse_der_list,
    parse_der_program_list,
    parse_device_capability,
    parse_end_device,
    parse_end_device_list,
    parse_function_set_assignments_list,
    parse_mirror_usage_point,
    parse_mirror_usage_point_list,
    parse_registration,
    parse_time,
)
from .sep2.resources import (
    DER,
    DefaultDERControl,
    DERControl,
    DERProgram,
    DeviceCapability,
    EndDevice,
    FunctionSetAssignments,
    ListPage,
    Response,
)
from .sep2.serialise import (
    connection_point_xml,
    end_device_xml,
    mirror_meter_reading_list_xml,
    mirror_usage_point_xml,
    response_xml,
)
from .sep2.transport import (
    CertificateRejectedError,
    HttpStatusError,
    Sep2Transport,
    ServerCertificateError,
    ServerUnreachableError,
    TlsHandshakeError,
    TransportError,
)
from .sep2.xml import XmlError
from .status import (
    CommsState,
    CsipStatus,
    RegistrationState,
    active_controls,
    contributions,
    next_control,
)
from .telemetry import Role, SiteMeasurements, Telemetry

_LOGGER = logging.getLogger(__name__)

_T = TypeVar("_T")

DRIFT_WARNING_S = 60
"""Clock difference to the server that is logged (once) and shown."""
HANDSHAKE_FAILURES_REJECTED = 3
"""Consecutive TLS handshake failures (TCP fine) taken as the server refusing our certificate."""
CLOCK_JUMP_S = 5.0
"""A move of the local clock against the steady clock beyond this is a jump (logged)."""
TIME_STALL_MIN_S = 10.0
"""Steady seconds between two Time readings before a server clock that does not advance
(at least half as fast as ours) counts as stalled."""
MIN_SLEEP_S = 1.0
MAX_SLEEP_S = 60.0
"""Bounds of the background task's sleep between passes."""
_FORMAT = 1
_DISCOVERY_JOBS = frozenset({"dcap", "tm", "edev", "rg"})


def _utcnow() -> datetime:
    return datetime.now(UTC)


def pin_matches(configured: int, registered: int) -> bool:
    """Whether the installer's PIN is the server's (with or without its check digit)."""
    return configured == registered or (configured < 100000 and configured == registered // 10)


# --- internals -------------------------------------------------------------------------------


class _AbortError(Exception):
    """The server cannot be talked to now: end the pass."""


class _FailedError(Exception):
    """One request failed (already recorded); ``status`` is its HTTP status, if any."""

    def __init__(self, status: int | None = None) -> None:
        super().__init__(status)
        self.status = status

    @property
    def permanent(self) -> bool:
        """A 4xx other than timeout/too-many-requests: repeating will not help."""
        return (
            self.status is not None
            and 400 <= self.status < 500
            and self.status
            not in (
                408,
                429,
            )
        )


@dataclass(slots=True)
class _MupLink:
    href: str
    post_rate: int | None


class CsipClient:
    """An IEEE 2030.5 / CSIP-AUS client for one server (see the module docstring)."""

    def __init__(
        self,
        transport: Sep2Transport,
        identity: DeviceIdentity,
        config: CsipConfig,
        *,
        clock: Callable[[], datetime] = _utcnow,
        rng: random.Random | None = None,
        on_change: Callable[[], None] | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        """Wire the client.

        ``clock`` gives the local time (aware UTC); ``on_change`` is called when state worth
        saving changed (e.g. to schedule a debounced save of :meth:`to_dict`).
        ``monotonic`` is a clock in seconds that never jumps (e.g. ``time.monotonic``):
        with it, jumps of ``clock`` are seen and kept out of every schedule decision;
        without it, ``clock`` is trusted as it is.
        """
        self.transport = transport
        self.identity = identity
        self.config = config
        self.lfdi = identity.lfdi
        self.sfdi = identity.sfdi
        self._clock = clock
        self._rng = rng
        self.on_change = on_change
        self.schedule = ControlSchedule(
            fixed_default=config.fixed_default, gap_bridge_s=config.gap_bridge_s, rng=rng
        )
        self.tracker = ResponseTracker()
        self.ramps = ControlRamps()
        self.reporter = DerReporter(config.enforced)
        self.telemetry = Telemetry(self.lfdi, config.pen)
        # what the server told us
        self._dcap: DeviceCapability | None = None
        self._edev: EndDevice | None = None
        self._edev_found: bool | None = None
        self._in_band = False
        self._pin_ok: bool | None = None
        self._cp_sent_for: str | None = None
        self._der: DER | None = None
        self._der_rate: float = float(poll_rate("der", None))
        self._fsas: dict[str, FunctionSetAssignments] = {}
        self._programs: dict[str, tuple[DERProgram, ...]] = {}
        self._mups: dict[Role, _MupLink] = {}
        self._offset: float | None = None
        """Server time minus steady local time (see :meth:`_steady`)."""
        self._monotonic = monotonic
        self._skew = 0.0
        """The local clock's jumps seen so far: wall time minus steady time."""
        self._anchor: tuple[float, float] | None = None
        """(wall, monotonic) when the clock was last looked at."""
        self._time_sample: tuple[int, float] | None = None
        """(server time, steady time) of the last Time reading taken."""
        self._drift_logged = False
        self._warned: set[str] = set()
        # scheduling and health
        self._due: dict[str, float] = {}
        self._backoff_until = 0.0
        self._fatal: CommsState | None = None
        self._fatal_error: str | None = None
        self._handshake_failures = 0
        self._errors: dict[str, str] = {}
        self._last_success: datetime | None = None
        # the control cycle's side
        self._measurements: SiteMeasurements | None = None
        self._limiter_enabled = True
        self._site_control = True
        self._opted_out = False
        self._selections: dict[ControlType, Selection] = {}
        self._applied = Controls()
        # the background task
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- time -------------------------------------------------------------------------------

    @property
    def server_offset(self) -> float | None:
        """Server clock minus ours, in seconds (None until the first Time poll)."""
        return None if self._offset is None else self._offset - self._skew

    def server_time(self, now: datetime | None = None) -> int:
        """``now`` (local, default the clock) on the server's clock, in Unix seconds."""
        self._watch_clock()
        return self._server_at(self._steady(now))

    def _steady(self, now: datetime | None = None) -> float:
        """Local seconds without the clock's jumps: what deadlines and ramps count in."""
        moment = self._clock() if now is None else now
        return moment.timestamp() - self._skew

    def _server_at(self, steady: float) -> int:
        # Before the first Time reading the wall clock is the best guess of the server's.
        return int(steady + (self._skew if self._offset is None else self._offset))

    def _local(self, server_seconds: float) -> float:
        """A server time as steady local seconds."""
        return server_seconds - (self._skew if self._offset is None else self._offset)

    def _watch_clock(self) -> None:
        """Notice a jump of the local clock against the steady one and keep it out."""
        if self._monotonic is None:
            return
        wall, steady = self._clock().timestamp(), self._monotonic()
        anchor, self._anchor = self._anchor, (wall, steady)
        if anchor is None:
            return
        jump = (wall - anchor[0]) - (steady - anchor[1])
        if abs(jump) <= CLOCK_JUMP_S:
            return
        self._skew += jump
        _LOGGER.warning(
            "The local clock jumped by %+.0f s; CSIP-AUS controls keep the server's time",
            jump,
        )
        self._due["tm"] = 0.0  # confirm the server's time at the next pass
        self._wake.set()

    # -- the control cycle's side (no I/O) --------------------------------------------------

    def tick(self, now: datetime, measurements: SiteMeasurements) -> None:
        """Take one control cycle's measurements; move the schedule on (no I/O)."""
        self._watch_clock()
        self._measurements = measurements
        self._site_control = measurements.control_enabled
        server_now = self.server_time(now)
        self._update_opt_out(server_now)
        self.telemetry.add(server_now, measurements, self._post_rate())
        self._observe(measurements, server_now)
        self._advance(server_now)
        if self._work_waiting(self._steady(now), server_now):
            self._wake.set()

    def _observe(self, measurements: SiteMeasurements, server_now: int) -> None:
        try:
            self.reporter.observe(
                measurements,
                server_now,
                set_grad_w=default_set_grad_w(self.schedule.set_grad_w),
                control_enabled=not self._opted_out,
            )
        except ValueError as err:
            self._warn_once("observe", "DER values cannot be reported: %s", err)

    def set_limiter_enabled(self, enabled: bool, now: datetime | None = None) -> None:
        """The user switched the CSIP limiter on or off (off: running events opted out)."""
        if enabled and not self._limiter_enabled:
            self.ramps = ControlRamps()
        if not enabled:
            self._applied = Controls()
        self._limiter_enabled = enabled
        self._update_opt_out(self.server_time(now))
        self._wake.set()

    def _update_opt_out(self, server_now: int) -> None:
        opted_out = not (self._limiter_enabled and self._site_control)
        if opted_out and not self._opted_out:
            running = self.schedule.running(server_now)
            if running:
                _LOGGER.info("Control is off: opting out of %s", ", ".join(r.mrid for r in running))
            self.tracker.opt_out(running, server_now)
            self._changed()
        self._opted_out = opted_out

    def controls(self, now: datetime) -> Controls:
        """The controls to apply at ``now``, ramped from what the site does (no I/O)."""
        server_now = self.server_time(now)
        if self._pin_ok is False:
            # A PIN mismatch means this may not be our registration: nothing from the server.
            fixed = self.config.fixed_default
            selections = {
                t: Selection(t, value, Source.FIXED)
                for t in ControlType
                if (value := fixed.get(t)) is not None
            }
        else:
            selections = self.schedule.selections(server_now)
        targets = to_controls({t: s.value for t, s in selections.items()})
        m = self._measurements
        present: dict[ControlType, float | None] = {}
        rated: float | None = None
        if m is not None:
            present = {
                ControlType.EXPORT_LIMIT: m.export_w,
                ControlType.GENERATION_LIMIT: m.der_power_w,
                ControlType.IMPORT_LIMIT: m.site_power_w,
                ControlType.LOAD_LIMIT: m.load_w,
            }
            rated = m.rated_w
        applied = self.ramps.step(
            self._steady(now),
            targets,
            present_w=present,
            rated_w=rated,
            ramp_tms={t: s.ramp_tms for t, s in selections.items()},
            set_grad_w=self.schedule.set_grad_w,
        )
        self._selections, self._applied = selections, applied
        return applied

    def _advance(self, server_now: int) -> None:
        events = self.schedule.advance(server_now)
        if events:
            self.tracker.record(events, opted_out=self._opted_out)
            self._changed()

    def _work_waiting(self, now: float, server_now: int) -> bool:
        registered = (RegistrationState.REGISTERED, RegistrationState.REGISTERED_IN_BAND)
        if now < self._backoff_until or self.registration not in registered:
            return False
        if self.tracker.due(server_now):
            return True
        end = self.telemetry.period_end
        if self.telemetry.pending or (end is not None and server_now >= end):
            return self._due.get("mmr", 0.0) <= now and bool(self._mups)
        next_report = self.reporter.next_due(self._der_rate, self._report_kinds())
        return self._der is not None and next_report is not None and next_report <= now

    # -- state ------------------------------------------------------------------------------

    @property
    def registration(self) -> RegistrationState:
        """What the server knows of our EndDevice."""
        if self._edev_found is None:
            return RegistrationState.UNKNOWN
        if not self._edev_found:
            return RegistrationState.NOT_REGISTERED
        if self._edev is not None and self._edev.enabled is False:
            return RegistrationState.DISABLED
        if self._pin_ok is False:
            return RegistrationState.PIN_MISMATCH
        return (
            RegistrationState.REGISTERED_IN_BAND if self._in_band else RegistrationState.REGISTERED
        )

    @property
    def comms(self) -> CommsState:
        """How talking to the server goes, worst first."""
        if self._fatal is not None:
            return self._fatal
        registration = self.registration
        if registration is RegistrationState.NOT_REGISTERED:
            return CommsState.NOT_REGISTERED
        if registration is RegistrationState.DISABLED:
            return CommsState.END_DEVICE_DISABLED
        if registration is RegistrationState.PIN_MISMATCH:
            return CommsState.REGISTRATION_PIN_MISMATCH
        if self._errors:
            return CommsState.SERVER_ERROR
        if self._last_success is None:
            return CommsState.CONNECTING
        return CommsState.OK

    def status(self, now: datetime | None = None) -> CsipStatus:
        """A snapshot for entities (cheap; no I/O)."""
        moment = self._clock() if now is None else now
        server_now = self.server_time(moment)
        selections = self._selections or self.schedule.selections(server_now)
        errors = dict(self._errors)
        if self._fatal_error is not None:
            errors["connection"] = self._fatal_error
        return CsipStatus(
            comms=self.comms,
            connected=self._fatal is None and self._last_success is not None,
            last_success=self._last_success,
            last_error=self._fatal_error or next(reversed(self._errors.values()), None),
            errors=errors,
            registration=self.registration,
            lfdi=self.lfdi,
            sfdi=self.sfdi,
            end_device_href=None if self._edev is None else self._edev.href,
            server_offset_s=(offset := self.server_offset),
            clock_drift=offset is not None and abs(offset) > DRIFT_WARNING_S,
            active_controls=active_controls(selections),
            next_control=next_control(self.schedule.next_control(server_now)),
            server_defaults=self.schedule.defaults,
            fixed_default=self.config.fixed_default,
            applied=self._applied,
            contributions=contributions(self._applied, selections),
            opted_out=self._opted_out,
            certificate_days_left=self.identity.days_left(moment),
            pending_responses=len(self.tracker.pending),
            pending_batches=len(self.telemetry.pending),
            mirror_usage_points={
                r.value: (None if (link := self._mups.get(r)) is None else link.href) for r in Role
            },
        )

    # -- the background side ----------------------------------------------------------------

    async def async_run(self) -> None:
        """Do due work forever (a background task), until :meth:`async_stop`."""
        self._task = asyncio.current_task()
        self._stopping = False
        while not self._stopping:
            self._wake.clear()
            next_at = await self.run_due()
            delay = (next_at - self._clock()).total_seconds()
            delay = min(MAX_SLEEP_S, max(MIN_SLEEP_S, delay))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def async_stop(self) -> None:
        """Stop the background task (also while a request is under way)."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            await asyncio.wait([task])

    def wake(self) -> None:
        """Run a pass soon (e.g. after a configuration change)."""
        self._wake.set()

    async def run_due(self) -> datetime:
        """Do all work due now; return when the next work is due (local time).

        Never raises for server or network faults.
        """
        self._watch_clock()
        now = self._steady()
        if now >= self._backoff_until:
            try:
                await self._pass(now)
            except _AbortError:
                pass
            except asyncio.CancelledError:
                raise
            except Exception:
                _LOGGER.exception("CSIP-AUS client: unexpected error; continuing")
                self._errors["client"] = "unexpected error (see the log)"
        return datetime.fromtimestamp(self._next_due(now) + self._skew, UTC)

    def _next_due(self, now: float) -> float:
        if now < self._backoff_until:
            return self._backoff_until
        registered = (RegistrationState.REGISTERED, RegistrationState.REGISTERED_IN_BAND)
        if self._dcap is None or self.registration not in registered:
            # Only discovery can run until the server accepts us.
            times = [t for job, t in self._due.items() if job in _DISCOVERY_JOBS]
            return max(now, min(times, default=now + MAX_SLEEP_S))
        times = [t for job, t in self._due.items() if job != "mmr"]
        server_now = self._server_at(now)
        if (attempt := self.tracker.next_attempt()) is not None:
            times.append(self._local(attempt))
        if self._der is not None:
            report = self.reporter.next_due(self._der_rate, self._report_kinds())
            if report is not None:
                times.append(report)
        if self._mups and (end := self.telemetry.period_end) is not None:
            times.append(max(self._local(end), self._due.get("mmr", 0.0)))
        if self.telemetry.pending and self._mups:
            times.append(self._due.get("mmr", 0.0))
        upcoming = self.schedule.next_control(server_now)
        if upcoming is not None:
            times.append(self._local(upcoming.start))
        times.extend(self._local(r.end) for r in self.schedule.running(server_now))
        return max(now, min(times, default=now + MAX_SLEEP_S))

    # -- one pass ---------------------------------------------------------------------------

    async def _pass(self, now: float) -> None:
        await self._step_dcap(now)
        if self._dcap is None:
            return
        await self._step_time(now)
        if not await self._step_end_device(now):
            return
        await self._step_der(now)
        await self._step_programs(now)
        self._advance(self.server_time())
        await self._step_responses()
        await self._step_reports(now)
        await self._step_telemetry(now)

    def _is_due(self, job: str, now: float) -> bool:
        return self._due.get(job, 0.0) <= now

    def _plan(self, job: str, now: float, rate: float) -> None:
        self._due[job] = now + rate

    def _retry(self, job: str, now: float, rate: float) -> None:
        self._due[job] = now + retry_delay(rate)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _LOGGER.warning(message, *args)

    # -- requests ---------------------------------------------------------------------------

    async def _send(
        self,
        resource: str,
        call: Awaitable[_T],
        *,
        refused_is_fatal: bool = True,
        expected: tuple[int, ...] = (),
    ) -> _T:
        """Await a request, sorting failures into "stop the pass" and "this one failed"."""
        try:
            answer = await call
        except CertificateRejectedError as err:
            if not refused_is_fatal:
                self._record_error(resource, str(err))
                raise _FailedError(403) from err
            self._abort(CommsState.CERTIFICATE_REJECTED, err)
        except ServerCertificateError as err:
            self._abort(CommsState.SERVER_CERTIFICATE_UNTRUSTED, err)
        except TlsHandshakeError as err:
            # TCP works but TLS keeps failing: most likely the server drops our certificate
            # without an alert. A single failure may be the network; repeated ones are not.
            self._handshake_failures += 1
            rejected = self._handshake_failures >= HANDSHAKE_FAILURES_REJECTED
            self._abort(
                CommsState.CERTIFICATE_REJECTED if rejected else CommsState.UNREACHABLE, err
            )
        except ServerUnreachableError as err:
            self._handshake_failures = 0
            self._abort(CommsState.UNREACHABLE, err)
        except HttpStatusError as err:
            if err.status not in expected:
                self._record_error(resource, str(err))
            raise _FailedError(err.status) from err
        except TransportError as err:
            self._record_error(resource, str(err))
            raise _FailedError() from err
        if self._fatal is not None:
            _LOGGER.info("CSIP-AUS server reachable again")
        self._fatal, self._fatal_error = None, None
        self._handshake_failures = 0
        self._last_success = self._clock()
        return answer

    def _abort(self, state: CommsState, err: Exception) -> None:
        if self._fatal is not state:
            _LOGGER.warning("CSIP-AUS server: %s (%s)", state.value.replace("_", " "), err)
        self._fatal, self._fatal_error = state, str(err)
        self._backoff_until = self._steady() + RETRY_S
        raise _AbortError from err

    def _record_error(self, resource: str, message: str) -> None:
        if self._errors.get(resource) != message:
            _LOGGER.warning("CSIP-AUS %s: %s", resource, message)
        self._errors[resource] = message

    def _resolved(self, resource: str) -> None:
        self._errors.pop(resource, None)

    def _parse(self, resource: str, parse: Callable[[bytes], _T], body: bytes) -> _T:
        try:
            value = parse(body)
        except XmlError as err:
            self._record_error(resource, f"unusable document: {err}")
            raise _FailedError() from err
        self._resolved(resource)
        return value

    async def _get(self, resource: str, href: str, parse: Callable[[bytes], _T]) -> _T:
        answer = await self._send(resource, self.transport.get(href))
        return self._parse(resource, parse, answer.body)

    async def _get_optional(
        self, resource: str, href: str, parse: Callable[[bytes], _T]
    ) -> _T | None:
        """A resource a server may leave out: 404, 204 or an empty body mean None."""
        try:
            answer = await self._send(resource, self.transport.get(href), expected=(404,))
        except _FailedError as failure:
            if failure.status == 404:
                self._resolved(resource)
                return None
            raise
        if answer.status == 204 or not answer.body.strip():
            self._resolved(resource)
            return None
        return self._parse(resource, parse, answer.body)

    async def _get_list(
        self,
        resource: str,
        href: str,
        parse: Callable[[bytes], ListPage[_T]],
        *,
        found: Callable[[_T], bool] | None = None,
    ) -> Listing[_T]:
        def checked(body: bytes) -> ListPage[_T]:
            return self._parse(resource, parse, body)

        return await self._send(
            resource,
            fetch_list(self.transport, href, checked, page_size=self.config.page_size, found=found),
        )

    # -- discovery steps --------------------------------------------------------------------

    async def _step_dcap(self, now: float) -> None:
        if self._dcap is not None and not self._is_due("dcap", now):
            return
        try:
            dcap = await self._get(
                "DeviceCapability", self.config.dcap_href, parse_device_capability
            )
        except _FailedError:
            self._retry("dcap", now, poll_rate("dcap", None))
            return
        if self._dcap is not None and dcap.end_device_list_href != self._dcap.end_device_list_href:
            self._forget_end_device()
        self._dcap = dcap
        self._plan("dcap", now, poll_rate("dcap", dcap.poll_rate))

    async def _step_time(self, now: float) -> None:
        assert self._dcap is not None
        href = self._dcap.time_href
        if href is None or (self._offset is not None and not self._is_due("tm", now)):
            return
        before = self._steady()
        try:
            answer = await self._send("Time", self.transport.get(href))
            server = self._parse("Time", parse_time, answer.body)
        except _FailedError:
            self._retry("tm", now, poll_rate("tm", None))
            return
        middle = (before + self._steady()) / 2
        self._plan("tm", now, poll_rate("tm", server.poll_rate))
        if self._time_stalled(server.current_time, middle):
            return
        self._time_sample = (server.current_time, middle)
        self._offset = float(round(server.current_time - middle))
        offset = self._offset - self._skew  # against the wall clock, as shown
        if abs(offset) > DRIFT_WARNING_S:
            if not self._drift_logged:
                _LOGGER.warning(
                    "This clock is %+.0f s off the CSIP-AUS server's; "
                    "the server's time is used for its controls",
                    -offset,
                )
                self._drift_logged = True
        elif self._drift_logged:
            _LOGGER.info("Clock back within %d s of the CSIP-AUS server's", DRIFT_WARNING_S)
            self._drift_logged = False

    def _time_stalled(self, server_time: int, steady: float) -> bool:
        """Whether a Time reading shows the server's clock standing still (then not taken).

        Since the last reading taken the server's clock must have advanced at least half
        as far as ours: one that stands still (or steps back) would hold every control
        forever. A server that really set its clock back is followed once it has advanced
        again past the last reading's pace.
        """
        last = self._time_sample
        if last is None:
            return False
        elapsed, advanced = steady - last[1], server_time - last[0]
        if elapsed < TIME_STALL_MIN_S or advanced >= elapsed / 2:
            return False
        self._record_error(
            "Time",
            f"the server's clock stands still ({advanced:+.0f} s in {elapsed:.0f} s); "
            "keeping time from its last good reading",
        )
        return True

    def _forget_end_device(self) -> None:
        self._edev = None
        self._der = None
        self._fsas.clear()
        self._programs.clear()
        self._cp_sent_for = None
        for job in [j for j in self._due if j.startswith("derp ")]:
            del self._due[job]

    async def _step_end_device(self, now: float) -> bool:
        """Find (or register) our EndDevice; False when nothing more may be done."""
        assert self._dcap is not None
        if self._edev is None or self._is_due("edev", now):
            await self._poll_end_device(now)
        edev = self._edev
        if edev is None or edev.enabled is False:
            return False
        await self._check_pin(now, edev)
        return self._pin_ok is not False

    async def _poll_end_device(self, now: float) -> None:
        assert self._dcap is not None
        href = self._dcap.end_device_list_href
        if href is None:
            self._record_error("DeviceCapability", "no EndDeviceListLink")
            self._retry("edev", now, poll_rate("edev", None))
            return
        try:
            listing = await self._get_list(
                "EndDeviceList",
                href,
                parse_end_device_list,
                found=lambda d: same_lfdi(d.lfdi, self.lfdi),
            )
        except _FailedError:
            self._retry("edev", now, poll_rate("edev", None))
            return
        rate = poll_rate("edev", listing.poll_rate)
        ours = next((d for d in listing.items if same_lfdi(d.lfdi, self.lfdi)), None)
        if ours is None:
            ours = await self._register(href)
            if ours is None:
                self._forget_end_device()
                self._edev_found = False
                self._plan("edev", now, rate)
                return
        elif ours.href and (ours.fsa_list_href is None or ours.der_list_href is None):
            with contextlib.suppress(_FailedError):
                ours = await self._get("EndDevice", ours.href, parse_end_device)
        self._resolved("EndDevice registration")
        if self._edev is not None and self._edev.href != ours.href:
            self._forget_end_device()
        was_enabled = self._edev is None or self._edev.enabled is not False
        self._edev, self._edev_found = ours, True
        self._plan("edev", now, rate)
        if ours.enabled is False:
            if was_enabled:
                _LOGGER.error("The CSIP-AUS server has disabled this device (LFDI %s)", self.lfdi)
            return
        await self._put_connection_point(ours)
        if self.config.pin is not None and ours.registration_href is not None:
            self._due["rg"] = 0.0  # check the PIN whenever the EndDevice is read

    async def _register(self, href: str) -> EndDevice | None:
        """In-band registration: POST our EndDevice and read it back from Location."""
        body = end_device_xml(
            EndDevice(href=None, lfdi=self.lfdi, sfdi=self.sfdi, changed_time=self.server_time())
        )
        try:
            answer = await self._send(
                "EndDevice registration", self.transport.post(href, body), refused_is_fatal=False
            )
        except _FailedError:
            self._warn_once(
                "not-registered",
                "The CSIP-AUS server does not know this device (LFDI %s, SFDI %s) and refused "
                "to register it: ask the utility to register it",
                self.lfdi,
                self.sfdi,
            )
            return None
        self._resolved("EndDevice registration")
        self._in_band = True
        _LOGGER.info("Registered with the CSIP-AUS server in band (LFDI %s)", self.lfdi)
        if answer.location:
            with contextlib.suppress(_FailedError):
                return await self._get("EndDevice", answer.location, parse_end_device)
        with contextlib.suppress(_FailedError):
            listing = await self._get_list(
                "EndDeviceList", href, parse_end_device_list, found=lambda d: d.lfdi is not None
            )
            return next((d for d in listing.items if same_lfdi(d.lfdi, self.lfdi)), None)
        return None

    async def _put_connection_point(self, edev: EndDevice) -> None:
        nmi, href = self.config.nmi, edev.connection_point_href
        if not nmi or href is None or self._cp_sent_for == edev.href:
            return
        try:
            await self._send("ConnectionPoint", self.transport.put(href, connection_point_xml(nmi)))
        except _FailedError:
            return
        self._resolved("ConnectionPoint")
        self._cp_sent_for = edev.href
        _LOGGER.info("Sent NMI %s to the CSIP-AUS server", nmi)

    async def _check_pin(self, now: float, edev: EndDevice) -> None:
        pin = self.config.pin
        if pin is None:
            self._pin_ok = None
            return
        href = edev.registration_href
        if href is None:
            self._warn_once(
                "no-registration",
                "The CSIP-AUS server offers no Registration: the PIN cannot be checked",
            )
            self._pin_ok = None
            return
        if self._pin_ok is not None and not self._is_due("rg", now):
            return
        try:
            registration = await self._get("Registration", href, parse_registration)
        except _FailedError:
            self._retry("rg", now, poll_rate("rg", None))
            return
        ok = pin_matches(pin, registration.pin)
        if not ok and self._pin_ok is not False:
            _LOGGER.error(
                "The CSIP-AUS server's registration PIN differs from the configured one: "
                "no control from this server is applied until they match"
            )
        elif ok and self._pin_ok is False:
            _LOGGER.info("The CSIP-AUS registration PIN matches again")
        self._pin_ok = ok
        self._plan("rg", now, poll_rate("rg", registration.poll_rate))

    async def _step_der(self, now: float) -> None:
        edev = self._edev
        assert edev is not None
        href = edev.der_list_href
        if href is None or (self._der is not None and not self._is_due("der", now)):
            return
        try:
            listing = await self._get_list("DERList", href, parse_der_list)
        except _FailedError:
            self._retry("der", now, self._der_rate)
            return
        self._der_rate = float(poll_rate("der", listing.poll_rate))
        self._plan("der", now, self._der_rate)
        if not listing.items:
            self._record_error("DERList", "the server lists no DER for this device")
            return
        if len(listing.items) > 1:
            self._warn_once(
                "many-der",
                "The server lists %d DERs; the whole site is reported as the first",
                len(listing.items),
            )
        der = listing.items[0]
        if der.href and der.der_capability_href is None and der.der_status_href is None:
            with contextlib.suppress(_FailedError):
                der = await self._get("DER", der.href, parse_der)
        if der != self._der:
            self.reporter.resend_all()
        self._der = der

    async def _step_programs(self, now: float) -> None:
        edev = self._edev
        assert edev is not None
        changed = False
        if edev.fsa_list_href is not None and (not self._fsas or self._is_due("fsa", now)):
            try:
                listing = await self._get_list(
                    "FunctionSetAssignmentsList",
                    edev.fsa_list_href,
                    parse_function_set_assignments_list,
                )
            except _FailedError:
                self._retry("fsa", now, poll_rate("fsa", None))
            else:
                fsas = {
                    f.der_program_list_href: f for f in listing.items if f.der_program_list_href
                }
                if fsas.keys() != self._fsas.keys():
                    changed = True
                for gone in self._fsas.keys() - fsas.keys():
                    self._programs.pop(gone, None)
                    self._due.pop(f"derp {gone}", None)
                self._fsas = fsas
                self._plan("fsa", now, poll_rate("fsa", listing.poll_rate))
        for href in self._fsas:
            job = f"derp {href}"
            if href in self._programs and not self._is_due(job, now):
                continue
            try:
                programs, rate = await self._fetch_programs(href)
            except _FailedError:
                self._retry(job, now, poll_rate("derp", None))
                continue
            self._programs[href] = programs
            self._plan(job, now, rate)
            changed = True
        if changed and all(href in self._programs for href in self._fsas):
            self._apply_programs()

    async def _fetch_programs(self, href: str) -> tuple[tuple[DERProgram, ...], int]:
        listing = await self._get_list(f"DERProgramList {href}", href, parse_der_program_list)
        programs: list[DERProgram] = []
        for program in listing.items:
            default: DefaultDERControl | None = None
            if program.default_control_href is not None:
                default = await self._get_optional(
                    f"DefaultDERControl {program.default_control_href}",
                    program.default_control_href,
                    functools.partial(parse_default_der_control, program=program),
                )
            controls: tuple[DERControl, ...] = ()
            if program.control_list_href is not None:
                control_list = await self._get_list(
                    f"DERControlList {program.control_list_href}",
                    program.control_list_href,
                    functools.partial(parse_der_control_list, program=program),
                )
                controls = control_list.items
            programs.append(replace(program, default_control=default, controls=controls))
        return tuple(programs), poll_rate("derp", listing.poll_rate)

    def _apply_programs(self) -> None:
        unique: dict[str, DERProgram] = {}
        for programs in self._programs.values():
            for program in programs:
                unique.setdefault(program.mrid, program)
        events = self.schedule.update(list(unique.values()), self.server_time())
        self.tracker.record(events, opted_out=self._opted_out)
        self._changed()

    # -- sending ----------------------------------------------------------------------------

    async def _step_responses(self) -> None:
        for _round in range(16):
            server_now = self.server_time()
            due = self.tracker.due(server_now)
            if not due:
                return
            for outgoing in due:
                try:
                    body = response_xml(
                        Response(
                            subject=outgoing.mrid,
                            end_device_lfdi=self.lfdi,
                            status=int(outgoing.status),
                            created_date_time=outgoing.created,
                        )
                    )
                except ValueError as err:
                    self._record_error("Response", f"cannot answer {outgoing.mrid!r}: {err}")
                    self.tracker.failed(outgoing.mrid, outgoing.status, server_now, permanent=True)
                    continue
                try:
                    await self._send("Response", self.transport.post(outgoing.reply_to, body))
                except _FailedError as failure:
                    self.tracker.failed(
                        outgoing.mrid, outgoing.status, server_now, permanent=failure.permanent
                    )
                else:
                    self._resolved("Response")
                    self.tracker.sent(outgoing.mrid, outgoing.status)
                    _LOGGER.debug("Response %s sent for %s", outgoing.status.name, outgoing.mrid)
                self._changed()

    def _report_kinds(self) -> list[Kind]:
        der = self._der
        if der is None:
            return []
        links = {
            Kind.CAPABILITY: der.der_capability_href,
            Kind.SETTINGS: der.der_settings_href,
            Kind.STATUS: der.der_status_href,
            Kind.AVAILABILITY: der.der_availability_href,
        }
        return [kind for kind, href in links.items() if href is not None]

    async def _step_reports(self, now: float) -> None:
        der = self._der
        if der is None or self._measurements is None:
            return
        links = {
            Kind.CAPABILITY: der.der_capability_href,
            Kind.SETTINGS: der.der_settings_href,
            Kind.STATUS: der.der_status_href,
            Kind.AVAILABILITY: der.der_availability_href,
        }
        self._observe(self._measurements, self.server_time())
        try:
            reports = self.reporter.due(
                now, self._der_rate, self.server_time(), self._report_kinds()
            )
        except ValueError as err:
            self._record_error("DER reports", f"cannot be written: {err}")
            return
        for report in reports:
            href = links[report.kind]
            assert href is not None
            resource = f"DER{report.kind.value.capitalize()}"
            try:
                await self._send(resource, self.transport.put(href, report.body))
            except _FailedError:
                self.reporter.failed(report, now, retry_delay(self._der_rate))
            else:
                self._resolved(resource)
                self.reporter.sent(report, now)

    def _post_rate(self) -> int:
        for role in Role:
            link = self._mups.get(role)
            if link is not None and link.post_rate:
                return link.post_rate
        return DEFAULT_POST_RATE_S

    async def _step_telemetry(self, now: float) -> None:
        assert self._dcap is not None
        href = self._dcap.mirror_usage_point_list_href
        if href is None:
            return
        if self._is_due("mup", now):
            await self._sync_usage_points(now, href)
        self.telemetry.close_due(self.server_time())
        if not self.telemetry.pending or not self._is_due("mmr", now):
            return
        for batch in list(self.telemetry.pending):
            link = self._mups.get(batch.role)
            if link is None:
                continue
            body = mirror_meter_reading_list_xml(batch.readings())
            try:
                try:
                    await self._send(
                        "MirrorMeterReading",
                        self.transport.post(link.href, body),
                        expected=(404,),
                    )
                except _FailedError as failure:
                    if failure.status != 404:
                        raise
                    self._resolved("MirrorMeterReading")
                    _LOGGER.info(
                        "The server lost the %s usage point; creating it again", batch.role
                    )
                    self._mups.pop(batch.role, None)
                    link = await self._create_usage_point(href, batch.role)
                    await self._send("MirrorMeterReading", self.transport.post(link.href, body))
            except _FailedError:
                self._retry("mmr", now, self._post_rate())
                if batch.role not in self._mups:
                    self._retry("mup", now, poll_rate("mup", None))
                self._changed()
                return
            self._resolved("MirrorMeterReading")
            self.telemetry.sent(batch)
            self._changed()

    async def _sync_usage_points(self, now: float, href: str) -> None:
        """Learn our usage points (href, postRate) from the list; create missing ones."""
        try:
            listing = await self._get_list(
                "MirrorUsagePointList", href, parse_mirror_usage_point_list
            )
            for role in Role:
                mrid = self.telemetry.usage_point(role).mrid
                known = next((m for m in listing.items if m.mrid.upper() == mrid), None)
                if known is not None and known.href:
                    self._mups[role] = _MupLink(known.href, known.post_rate)
                else:
                    self._mups.pop(role, None)
                    await self._create_usage_point(href, role)
        except _FailedError:
            self._retry("mup", now, poll_rate("mup", None))
            return
        self._plan("mup", now, poll_rate("mup", listing.poll_rate))
        self._changed()

    async def _create_usage_point(self, list_href: str, role: Role) -> _MupLink:
        point = self.telemetry.usage_point(role)
        resource = "MirrorUsagePoint"
        answer = await self._send(
            resource, self.transport.post(list_href, mirror_usage_point_xml(point))
        )
        if not answer.location:
            self._record_error(resource, "the server gave no Location for the new usage point")
            raise _FailedError()
        created = await self._get(resource, answer.location, parse_mirror_usage_point)
        link = _MupLink(created.href or answer.location, created.post_rate)
        self._mups[role] = link
        _LOGGER.info("Created the %s usage point at %s", role.value, link.href)
        return link

    # -- persistence ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """What must survive a restart (JSON-friendly): controls, responses, readings."""
        return {
            "format": _FORMAT,
            "lfdi": self.lfdi,
            "dcap": self.config.dcap_href,
            "schedule": self.schedule.to_dict(),
            "responses": self.tracker.to_dict(),
            "telemetry": self.telemetry.to_dict(),
            "usage_points": {
                role.value: {"href": link.href, "post_rate": link.post_rate}
                for role, link in self._mups.items()
            },
            "end_device": None if self._edev is None else self._edev.href,
            "in_band": self._in_band,
            "last_success": None if self._last_success is None else self._last_success.isoformat(),
        }

    def restore(self, data: Mapping[str, Any]) -> bool:
        """Take back what :meth:`to_dict` saved.

        False (and a fresh start) when it belongs to another identity or server, or is
        unreadable.
        """
        if data.get("format") != _FORMAT:
            return False
        if not same_lfdi(data.get("lfdi"), self.lfdi) or data.get("dcap") != self.config.dcap_href:
            _LOGGER.info("Stored CSIP-AUS state belongs to another identity or server; ignored")
            return False
        try:
            schedule = ControlSchedule.from_dict(
                dict(data["schedule"]),
                fixed_default=self.config.fixed_default,
                gap_bridge_s=self.config.gap_bridge_s,
                rng=self._rng,
            )
            tracker = ResponseTracker.from_dict(dict(data["responses"]))
            mups = {
                Role(role): _MupLink(str(item["href"]), item.get("post_rate"))
                for role, item in dict(data.get("usage_points") or {}).items()
            }
            last = data.get("last_success")
            last_success = None if last is None else datetime.fromisoformat(str(last))
        except (KeyError, TypeError, ValueError) as err:
            _LOGGER.warning("Stored CSIP-AUS state is unreadable (%s); starting afresh", err)
            return False
        self.schedule, self.tracker, self._mups = schedule, tracker, mups
        self.telemetry.restore(dict(data.get("telemetry") or {}))
        self._in_band = bool(data.get("in_band", False))
        self._last_success = last_success
        return True

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        transport: Sep2Transport,
        identity: DeviceIdentity,
        config: CsipConfig,
        **kwargs: Any,
    ) -> CsipClient:
        """A client that starts from saved state (see :meth:`restore`)."""
        client = cls(transport, identity, config, **kwargs)
        client.restore(data)
        return client
