"""The CSIP-AUS client: one utility server, driven from the network side and the control cycle.

One :class:`CsipClient` talks to one utility server through an injected
:class:`~.sep2.transport.Sep2Transport`. It only composes the parts that do the work
(``clock``, ``connection``, ``registration``, ``programs``, ``uploads``, ``persistence``,
and the decision-only ``schedule``, ``responses``, ``reporting``, ``telemetry`` and
``ramp``) and is driven from two sides:

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

Every schedule decision uses the server's clock (see ``clock``). Failures never escape: a
server that cannot be reached, refuses our certificate, or sends a broken document leaves
the last known controls (and then the defaults) in force and is reported through
:attr:`CsipClient.comms`, :meth:`CsipClient.status` and the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..core.controls import Controls, ControlType
from . import persistence
from .clock import ServerClock, poll_time
from .config import CsipConfig
from .connection import Connection, PassAbortedError, RequestFailedError
from .control_base import to_controls
from .programs import Programs
from .ramp import ControlRamps
from .registration import DeviceRegistration
from .reporting import DerReporter, default_set_grad_w
from .responses import ResponseTracker
from .schedule import ControlSchedule
from .selection import Selection, fixed_selections
from .sep2.discovery import poll_rate
from .sep2.identity import DeviceIdentity
from .sep2.parse import parse_device_capability
from .sep2.resources import DERProgram, DeviceCapability
from .sep2.transport import Sep2Transport
from .status import (
    CommsState,
    CsipStatus,
    RegistrationState,
    active_controls,
    contributions,
    next_control,
)
from .telemetry import SiteMeasurements, Telemetry
from .timetable import Timetable
from .uploads import DerReports, UsagePoints, send_responses

_LOGGER = logging.getLogger(__name__)

MIN_SLEEP_S = 1.0
MAX_SLEEP_S = 60.0
"""Bounds of the background task's sleep between passes."""
_DISCOVERY_JOBS = frozenset({"dcap", "tm", "edev", "rg"})
IMPORT_MARGIN_W = 50.0
"""Import above the import limit that counts as not holding it."""
IMPORT_UNHELD_S = 30.0
"""How long the site must be over (or back within) the import limit before it is said:
long enough for the inverters to have raised their output if they could."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
        self._rng = rng
        self.on_change = on_change
        self.schedule = ControlSchedule(
            fixed_default=config.fixed_default, gap_bridge_s=config.gap_bridge_s, rng=rng
        )
        self.tracker = ResponseTracker()
        self.ramps = ControlRamps()
        self.reporter = DerReporter(config.enforced)
        self.telemetry = Telemetry(self.lfdi, config.pen)
        self._timetable = Timetable()
        self.server_clock = ServerClock(clock, monotonic, on_jump=self._clock_jumped)
        self._connection = Connection(
            transport,
            now=self.server_clock.now,
            steady=self.server_clock.steady,
            page_size=config.page_size,
        )
        self._device = DeviceRegistration(
            self._connection,
            self._timetable,
            identity,
            config,
            server_time=self.server_time,
            on_forget=self._forget_end_device,
        )
        self._programs = Programs(self._connection, self._timetable)
        self._der_reports = DerReports(
            self._connection, self._timetable, self.reporter, self.server_time
        )
        self._usage_points = UsagePoints(
            self._connection, self._timetable, self.telemetry, self.server_time, self._changed
        )
        self._dcap: DeviceCapability | None = None
        # the control cycle's side
        self._measurements: SiteMeasurements | None = None
        self._measured_at: int | None = None
        """Server time of the cycle that gave ``_measurements``."""
        self._limiter_enabled = True
        self._site_control = True
        self._opted_out = False
        self._selections: dict[ControlType, Selection] = {}
        self._applied = Controls()
        self._import_unheld = False
        self._import_changed_at: float | None = None
        """Since when (steady seconds) the import limit's held state differs from what was said."""
        # the background task
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- time -------------------------------------------------------------------------------

    @property
    def server_offset(self) -> float | None:
        """Server clock minus ours, in seconds (None until the first Time poll)."""
        return self.server_clock.offset

    def server_time(self, now: datetime | None = None) -> int:
        """``now`` (local, default the clock) on the server's clock, in Unix seconds."""
        return self.server_clock.server_time(now)

    def _clock_jumped(self) -> None:
        self._timetable.due_now("tm")  # confirm the server's time at the next pass
        self._wake.set()

    # -- the control cycle's side (no I/O) --------------------------------------------------

    def tick(self, now: datetime, measurements: SiteMeasurements) -> None:
        """Take one control cycle's measurements; move the schedule on (no I/O)."""
        self.server_clock.watch()
        self._measurements = measurements
        self._site_control = measurements.control_enabled
        server_now = self.server_time(now)
        self._measured_at = server_now
        self._update_opt_out(server_now)
        self.telemetry.add(server_now, measurements, self._usage_points.post_rate())
        self._watch_import(self.server_clock.steady(now), measurements)
        self._observe(measurements, server_now)
        self._advance(server_now)
        if self._work_waiting(self.server_clock.steady(now), server_now):
            self._wake.set()

    def _observe(self, measurements: SiteMeasurements, server_now: int) -> None:
        try:
            self.reporter.observe(
                measurements,
                server_now,
                set_grad_w=default_set_grad_w(self.schedule.set_grad_w),
                control_enabled=not self._opted_out,
                measured_at=self._measured_at,
            )
        except ValueError as err:
            self._connection.warn_once("observe", "DER values cannot be reported: %s", err)

    def _watch_import(self, steady_now: float, m: SiteMeasurements) -> None:
        """Say once (not every cycle) when the import limit in force cannot be held.

        A solar-only site holds an import cap by generating; when the load is above what
        its solar gives, the import stays over the cap whatever is written. This is logged
        and shown in the status, not answered as an opt-out: the site does not refuse the
        control, it does all it can.
        """
        limit = self._applied.import_limit
        imported = m.site_power_w
        over = (
            self._limiter_enabled
            and limit is not None
            and imported is not None
            and imported > limit + IMPORT_MARGIN_W
        )
        if over == self._import_unheld:
            self._import_changed_at = None
            return
        if self._import_changed_at is None:
            self._import_changed_at = steady_now
            return
        if steady_now - self._import_changed_at < IMPORT_UNHELD_S:
            return
        self._import_unheld, self._import_changed_at = over, None
        if over:
            _LOGGER.warning(
                "The site cannot hold the utility's import limit of %.0f W: it imports %.0f W "
                "while its inverters produce %.0f W. The load is above what the solar gives; "
                "only less load (or a battery) would hold the limit",
                limit,
                imported,
                m.der_power_w or 0.0,
            )
        else:
            _LOGGER.info("The site holds the utility's import limit again")

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
        """Answer running events by whether the site follows them now.

        Control or the limiter off: opted out; on again: opted back in (each change once
        per event; also for an event left before a restart).
        """
        opted_out = not (self._limiter_enabled and self._site_control)
        running = self.schedule.running(server_now)
        if opted_out != self._opted_out and running:
            _LOGGER.info(
                "Control is %s: opting %s %s",
                "off" if opted_out else "on",
                "out of" if opted_out else "back in to",
                ", ".join(r.mrid for r in running),
            )
        choose = self.tracker.opt_out if opted_out else self.tracker.opt_in
        if choose(running, server_now) or opted_out != self._opted_out:
            self._changed()
        self._opted_out = opted_out

    def controls(self, now: datetime) -> Controls:
        """The controls to apply at ``now``, ramped from what the site does (no I/O)."""
        server_now = self.server_time(now)
        if self._device.pin_ok is False:
            # A PIN mismatch means this may not be our registration: nothing from the server.
            selections = fixed_selections(self.config.fixed_default)
        else:
            selections = self.schedule.selections(server_now)
        targets = to_controls({t: s.value for t, s in selections.items()})
        m = self._measurements
        applied = self.ramps.step(
            self.server_clock.steady(now),
            targets,
            present_w={} if m is None else m.present_w(),
            rated_w=None if m is None else m.rated_w,
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
        if now < self._connection.backoff_until or not self._device.registered:
            return False
        if self.tracker.due(server_now):
            return True
        end = self.telemetry.period_end
        if self.telemetry.pending or (end is not None and server_now >= end):
            return self._timetable.due_at("mmr") <= now and self._can_post()
        next_report = self._der_reports.next_due()
        return next_report is not None and next_report <= now

    def _can_post(self) -> bool:
        """Readings can go out: the server has usage points (ours are made when needed)."""
        dcap = self._dcap
        return dcap is not None and dcap.mirror_usage_point_list_href is not None

    # -- state ------------------------------------------------------------------------------

    @property
    def registration(self) -> RegistrationState:
        """What the server knows of our EndDevice."""
        return self._device.state

    @property
    def comms(self) -> CommsState:
        """How talking to the server goes, worst first."""
        connection = self._connection
        if connection.fatal is not None:
            return connection.fatal
        registration = self.registration
        if registration is RegistrationState.NOT_REGISTERED:
            return CommsState.NOT_REGISTERED
        if registration is RegistrationState.DISABLED:
            return CommsState.END_DEVICE_DISABLED
        if registration is RegistrationState.PIN_MISMATCH:
            return CommsState.REGISTRATION_PIN_MISMATCH
        if connection.errors:
            return CommsState.SERVER_ERROR
        if connection.last_success is None:
            return CommsState.CONNECTING
        return CommsState.OK

    def status(self, now: datetime | None = None) -> CsipStatus:
        """A snapshot for entities (cheap; no I/O)."""
        moment = self.server_clock.now() if now is None else now
        server_now = self.server_time(moment)
        selections = self._selections or self.schedule.selections(server_now)
        connection = self._connection
        return CsipStatus(
            comms=self.comms,
            connected=connection.connected,
            last_success=connection.last_success,
            last_error=connection.last_error,
            errors=connection.all_errors(),
            registration=self.registration,
            lfdi=self.lfdi,
            sfdi=self.sfdi,
            end_device_href=self._device.end_device_href,
            server_offset_s=self.server_offset,
            clock_drift=self.server_clock.drifting,
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
            mirror_usage_points=self._usage_points.hrefs(),
            import_limit_unheld=self._import_unheld,
        )

    # -- the background side ----------------------------------------------------------------

    async def async_run(self) -> None:
        """Do due work forever (a background task), until :meth:`async_stop`."""
        self._task = asyncio.current_task()
        self._stopping = False
        while not self._stopping:
            self._wake.clear()
            next_at = await self.run_due()
            delay = (next_at - self.server_clock.now()).total_seconds()
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
        self.server_clock.watch()
        now = self.server_clock.steady()
        if now >= self._connection.backoff_until:
            try:
                await self._pass(now)
            except PassAbortedError:
                pass
            except asyncio.CancelledError:
                raise
            except Exception:
                _LOGGER.exception("CSIP-AUS client: unexpected error; continuing")
                self._connection.errors["client"] = "unexpected error (see the log)"
        return self.server_clock.wall_at(self._next_due(now))

    def _next_due(self, now: float) -> float:
        if now < self._connection.backoff_until:
            return self._connection.backoff_until
        timetable, clock = self._timetable, self.server_clock
        if self._dcap is None or not self._device.registered:
            # Only discovery can run until the server accepts us.
            times = timetable.times(lambda job: job in _DISCOVERY_JOBS)
            return max(now, min(times, default=now + MAX_SLEEP_S))
        times = timetable.times(lambda job: job != "mmr")
        server_now = clock.server_at(now)
        if (attempt := self.tracker.next_attempt()) is not None:
            times.append(clock.local(attempt))
        if (report := self._der_reports.next_due()) is not None:
            times.append(report)
        posting = self._can_post()
        if posting and (end := self.telemetry.period_end) is not None:
            times.append(max(clock.local(end), timetable.due_at("mmr")))
        if self.telemetry.pending and posting:
            times.append(timetable.due_at("mmr"))
        upcoming = self.schedule.next_control(server_now)
        if upcoming is not None:
            times.append(clock.local(upcoming.start))
        times.extend(clock.local(r.end) for r in self.schedule.running(server_now))
        return max(now, min(times, default=now + MAX_SLEEP_S))

    # -- one pass ---------------------------------------------------------------------------

    async def _pass(self, now: float) -> None:
        await self._step_dcap(now)
        dcap = self._dcap
        if dcap is None:
            return
        await poll_time(self.server_clock, self._connection, self._timetable, dcap.time_href, now)
        if not await self._device.step(now, dcap.end_device_list_href):
            return
        edev = self._device.end_device
        assert edev is not None
        await self._der_reports.refresh(now, edev.der_list_href)
        programs = await self._programs.refresh(now, edev.fsa_list_href)
        if programs is not None:
            self._apply_programs(programs)
        self._advance(self.server_time())
        await send_responses(
            self._connection, self.tracker, self.lfdi, self.server_time, self._changed
        )
        if self._der_reports.der is not None and self._measurements is not None:
            self._observe(self._measurements, self.server_time())
            await self._der_reports.send(now)
        if dcap.mirror_usage_point_list_href is not None:
            await self._usage_points.send(now, dcap.mirror_usage_point_list_href)

    async def _step_dcap(self, now: float) -> None:
        if self._dcap is not None and not self._timetable.is_due("dcap", now):
            return
        try:
            dcap = await self._connection.get(
                "DeviceCapability", self.config.dcap_href, parse_device_capability
            )
        except RequestFailedError as err:
            self._timetable.retry("dcap", now, poll_rate("dcap", None), after=err.retry_after)
            return
        if self._dcap is not None and dcap.end_device_list_href != self._dcap.end_device_list_href:
            self._device.forget()
        self._dcap = dcap
        self._timetable.plan("dcap", now, poll_rate("dcap", dcap.poll_rate))

    def _forget_end_device(self) -> None:
        """What hung off the EndDevice we knew goes with it."""
        self._der_reports.forget()
        self._programs.forget()

    def _apply_programs(self, programs: list[DERProgram]) -> None:
        events = self.schedule.update(programs, self.server_time())
        self.tracker.record(events, opted_out=self._opted_out)
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- persistence ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """What must survive a restart (JSON-friendly): controls, responses, readings."""
        state = persistence.SavedState(
            schedule=self.schedule,
            tracker=self.tracker,
            usage_points=self._usage_points.links,
            telemetry=self.telemetry.to_dict(),
            in_band=self._device.in_band,
            last_success=self._connection.last_success,
        )
        return persistence.dump(
            state,
            lfdi=self.lfdi,
            dcap_href=self.config.dcap_href,
            end_device_href=self._device.end_device_href,
        )

    def restore(self, data: Mapping[str, Any]) -> bool:
        """Take back what :meth:`to_dict` saved.

        False (and a fresh start) when it belongs to another identity or server, or is
        unreadable.
        """
        state = persistence.load(data, lfdi=self.lfdi, config=self.config, rng=self._rng)
        if state is None:
            return False
        self.schedule, self.tracker = state.schedule, state.tracker
        migrated = self.telemetry.restore(dict(state.telemetry or {}))
        # Usage points saved before the PEN was decimal carry the old mRIDs: new ones are made.
        self._usage_points.links = {} if migrated else state.usage_points
        self._device.in_band = state.in_band
        self._connection.last_success = state.last_success
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
