"""One control cycle: measure -> limits -> merge -> setpoints -> write.

:class:`ControlLoop` owns the site's devices and limiters and runs one cycle
at a time. Every failure is caught here and reported in the returned
:class:`CycleSnapshot`: a device or limiter that misbehaves never stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from .available_power import AvailablePower, AvailablePowerEstimator, site_available_power
from .capability import SiteCapability, site_capability
from .controller import Constraint, Controller, ControlPlan, ControlState, FailSafeReason
from .controls import Controls, LimitRequest
from .devices import Inverter, SiteMeter
from .errors import CredentialsRejectedError, DeviceError
from .limiter import Limiter
from .measurements import InverterCommand, InverterReading, MeterReading
from .merge import MergedControls, merge_requests
from .silence import SLOW_FAILURE_S, SilenceBackoff
from .write_policy import WritePolicy

_LOGGER = logging.getLogger(__name__)

_READ = "read"
_WRITE = "write"
_LIMITER = "limiter"


@dataclass(frozen=True, slots=True)
class InverterStatus:
    """An inverter as seen in one cycle."""

    reading: InverterReading | None
    error: str | None = None
    command: InverterCommand | None = None
    """The command in force (the last one written)."""
    wrote: bool = False
    available_power: AvailablePower | None = None
    """What it could produce now, curtailed or not (None: it did not answer)."""

    @property
    def available(self) -> bool:
        """True when the inverter answered this cycle."""
        return self.reading is not None and self.error is None


@dataclass(frozen=True, slots=True)
class CycleSnapshot:
    """Everything one cycle saw and did, for entities and diagnostics."""

    time: float
    wall_time: datetime
    meter: MeterReading | None
    meter_error: str | None
    requests: tuple[LimitRequest, ...]
    limiter_errors: dict[str, str]
    merged: MergedControls
    plan: ControlPlan
    inverters: dict[str, InverterStatus]
    control_enabled: bool
    writes: int = 0
    duration_s: float = 0.0
    write_errors: dict[str, str] = field(default_factory=dict)
    credentials_rejected: frozenset[str] = frozenset()
    """Devices (inverter keys, ``"meter"``) whose last answer refused our password."""
    available_power: AvailablePower | None = None
    """What the inverters that answered could produce together now."""

    @property
    def state(self) -> ControlState:
        """Controlling, monitor-only or fail-safe."""
        if self.plan.state is ControlState.FAIL_SAFE:
            return ControlState.FAIL_SAFE
        return ControlState.CONTROLLING if self.control_enabled else ControlState.MONITOR_ONLY


@dataclass(frozen=True, slots=True)
class SiteDevices:
    """The site's devices as known after a cycle, for reporting the site to a utility.

    Read-only, so whoever reports sees what the loop knows without reaching into it.
    """

    ratings: Mapping[str, float]
    """Every inverter's rating known now, also of those that did not answer this cycle."""
    capability: SiteCapability
    """What the devices can enforce (see ``core.capability``)."""


class ControlLoop:
    """Run control cycles over one site's meter, inverters and limiters."""

    def __init__(
        self,
        *,
        meter: SiteMeter | None,
        inverters: Mapping[str, Inverter],
        ratings: Mapping[str, float],
        limiters: Sequence[Limiter],
        controller: Controller,
        write_policy: WritePolicy,
        control_enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        device_timeout_s: float = 5.0,
        on_rating: Callable[[str, float], None] | None = None,
        names: Mapping[str, str] | None = None,
        slow_failure_s: float = SLOW_FAILURE_S,
        site_name: str = "",
    ) -> None:
        """Wire the loop.

        ``ratings`` are the inverters' rated powers known before any read (stored from an
        earlier read, or given by the user); an inverter missing from it has no known
        rating until it answers. ``on_rating`` is told when a read brings a new rating, so
        the caller can store it for the next start. ``names`` are what log lines call the
        inverters (by key) and the meter (``"meter"``); the keys themselves by default.
        ``slow_failure_s``: an inverter whose read fails after this long is asked less often
        until it answers (``core.silence``). ``site_name`` starts the site's own lines
        (fail-safe, no meter), which would otherwise read the same for every site.
        """
        self.meter = meter
        self.inverters = dict(inverters)
        self.ratings = {key: value for key, value in ratings.items() if value > 0}
        self.on_rating = on_rating
        self.limiters = list(limiters)
        self.controller = controller
        self.write_policy = write_policy
        self._available_power = AvailablePowerEstimator()
        self.clock = clock
        self.wall_clock = wall_clock
        self.device_timeout_s = device_timeout_s
        self._silence = SilenceBackoff(slow_failure_s)
        self._control_enabled = control_enabled
        self._needs_release = False
        self._last_meter: MeterReading | None = None
        self.names = dict(names or {})
        self._site = f"{site_name}: " if site_name else ""
        self._failing: set[tuple[str, str]] = set()
        self._refused: set[str] = set()
        self._last_controls: dict[str, Controls] = {}
        """Each limiter's last answer, kept while it fails."""
        """Inverters whose last write failed: they may not hold what the plan gives them."""
        self._cycle_lock = asyncio.Lock()
        self._closed = False
        self._credentials_rejected: set[str] = set()

    @property
    def control_enabled(self) -> bool:
        """False in monitor-only mode: the loop computes but does not write."""
        return self._control_enabled

    @property
    def credentials_rejected(self) -> frozenset[str]:
        """Devices (inverter keys, ``"meter"``) whose last answer refused our password."""
        return frozenset(self._credentials_rejected)

    def site_devices(self) -> SiteDevices:
        """The ratings and capability as known now (a copy: later cycles do not change it)."""
        ratings = MappingProxyType(dict(self.ratings))
        capability = site_capability(meter=self.meter, inverters=self.inverters, ratings=ratings)
        return SiteDevices(ratings=ratings, capability=capability)

    def set_control_enabled(self, enabled: bool) -> None:
        """Switch control on or off; switching off hands the inverters back next cycle."""
        if enabled == self._control_enabled:
            return
        self._control_enabled = enabled
        self.controller.reset()
        self.write_policy.forget()
        self._refused.clear()
        self._needs_release = not enabled

    async def async_run_cycle(self) -> CycleSnapshot:
        """Run one cycle and report what happened; never raises for device faults.

        Cycles never overlap: a cycle asked for while one runs (an action's refresh next to
        the timer's) waits for it, then measures afresh.
        """
        async with self._cycle_lock:
            return await self._async_run_cycle()

    async def _async_run_cycle(self) -> CycleSnapshot:
        started = self.clock()
        meter, meter_error, readings, read_errors = await self._async_measure()
        now = self.clock()
        wall_time = self.wall_clock()
        requests, limiter_errors = self._collect_requests(wall_time)
        merged = merge_requests(requests)
        plan = self.controller.compute(
            merged,
            meter,
            readings,
            self.ratings,
            now,
            meter_fresh=meter_error is None,
            not_following=self._refused,
        )
        self._log_transitions(plan)

        wrote: set[str] = set()
        write_errors: dict[str, str] = {}
        if self._closed:
            pass  # released for good (the site is unloading): never write again
        elif self._control_enabled:
            wrote, write_errors = await self._async_write(plan, readings, now)
        elif self._needs_release:
            write_errors = await self._async_release()

        available = self._available_power.estimate(now, readings)
        inverters = {
            key: InverterStatus(
                reading=readings.get(key),
                error=read_errors.get(key) or write_errors.get(key),
                command=self.write_policy.last_command(key),
                wrote=key in wrote,
                available_power=available.get(key),
            )
            for key in self.inverters
        }
        return CycleSnapshot(
            time=now,
            wall_time=wall_time,
            meter=meter,
            meter_error=meter_error,
            requests=tuple(requests),
            limiter_errors=limiter_errors,
            merged=merged,
            plan=plan,
            inverters=inverters,
            control_enabled=self._control_enabled,
            writes=len(wrote),
            duration_s=self.clock() - started,
            write_errors=write_errors,
            credentials_rejected=self.credentials_rejected,
            available_power=site_available_power(available),
        )

    async def async_close(self) -> dict[str, str]:
        """Stop writing for good and hand back the inverters that would stay limited.

        An inverter with a revert timer drops our limit by itself soon after the last
        write, which also covers a reload (the next start writes again at once). One
        without a timer (a Home Assistant number, OpenDTU's non-persistent limit) keeps our
        limit until someone changes it, so it is released now. Waits for a running cycle.
        Returns the inverters that could not be released, with the reason.
        """
        async with self._cycle_lock:
            self._closed = True
            keys = [k for k, inv in self.inverters.items() if inv.revert_timeout_s <= 0]
            errors = await self._async_release(keys)
        for key, error in errors.items():
            _LOGGER.warning("%s could not be handed back: %s", self._name(key), error)
        return errors

    async def _async_measure(
        self,
    ) -> tuple[MeterReading | None, str | None, dict[str, InverterReading | None], dict[str, str]]:
        """Read the meter and every inverter concurrently (a silent one less often)."""
        started = self.clock()
        keys = [key for key in self.inverters if self._silence.due(key, started)]
        meter_call = self._guarded(self.meter.async_read(), "meter") if self.meter else _no_meter()
        meter_result, inverter_results = await asyncio.gather(
            meter_call,
            asyncio.gather(*(self._timed_read(key) for key in keys)),
        )
        meter_error: str | None = None
        if isinstance(meter_result, MeterReading):
            self._last_meter = meter_result
        elif isinstance(meter_result, str):
            meter_error = meter_result
            self._note_failure(_READ, "meter", meter_error)
        if meter_error is None and self.meter is not None:
            self._note_recovery(_READ, "meter")
        readings: dict[str, InverterReading | None] = {}
        errors: dict[str, str] = {}
        now = self.clock()
        asked = dict(zip(keys, inverter_results, strict=True))
        for key in self.inverters:
            if key not in asked:  # silent: not asked this cycle
                readings[key] = None
                errors[key] = self._silence.waiting_error(key)
                continue
            result, took_s = asked[key]
            if isinstance(result, InverterReading):
                readings[key] = result
                self._note_rating(key, result.rated_power_w)
                self._note_recovery(_READ, key)
                self._silence.record(key, now, error=None, took_s=took_s)
            else:
                readings[key] = None
                errors[key] = str(result)
                if key not in self.ratings:
                    errors[key] += " (rating never read: counted as unlimited)"
                self._note_failure(_READ, key, errors[key])
                self._silence.record(key, now, error=errors[key], took_s=took_s)
        return self._last_meter, meter_error, readings, errors

    async def _timed_read(self, key: str) -> tuple[InverterReading | str, float]:
        """Read an inverter, guarded; also how long it took on the wall clock.

        Real time, not the loop's clock: what a silent device costs is real waiting.
        """
        started = time.monotonic()
        result = await self._guarded(self.inverters[key].async_read(), key)
        return result, time.monotonic() - started

    async def _guarded[T](self, awaitable: Awaitable[T], key: str | None = None) -> T | str:
        """Await a device call; turn its failure into an error message.

        For a call on a device (``key`` given), note whether it refused our credentials.
        """
        try:
            async with asyncio.timeout(self.device_timeout_s):
                result = await awaitable
        except TimeoutError:
            return f"no answer within {self.device_timeout_s:g} s"
        except CredentialsRejectedError as err:
            if key is not None:
                self._credentials_rejected.add(key)
            return str(err) or type(err).__name__
        except DeviceError as err:
            return str(err) or type(err).__name__
        except Exception as err:
            _LOGGER.exception("Unexpected error talking to a device")
            return f"unexpected error: {err!r}"
        if key is not None:
            self._credentials_rejected.discard(key)
        return result

    def _collect_requests(self, now: datetime) -> tuple[list[LimitRequest], dict[str, str]]:
        """Ask every enabled limiter for its controls; a failing limiter is reported.

        A limiter that fails keeps its last answer: dropping it would lift its limits (fail
        open), while merging its last limits can only hold the site tighter. Its failure is
        logged once per streak, with the traceback.
        """
        requests: list[LimitRequest] = []
        errors: dict[str, str] = {}
        for limiter in self.limiters:
            if not limiter.enabled:
                continue
            source = limiter.source
            try:
                controls = limiter.controls(now)
            except Exception as err:
                last = self._last_controls.get(source)
                errors[source] = repr(err) + ("" if last is None else " (last limits kept)")
                if (_LIMITER, source) not in self._failing:
                    self._failing.add((_LIMITER, source))
                    _LOGGER.exception(
                        "Limiter %s failed; %s",
                        source,
                        "no limits from it until it works"
                        if last is None
                        else "its last limits stay in force until it works",
                    )
                if last is not None:
                    requests.append(LimitRequest(source, last))
                continue
            if (_LIMITER, source) in self._failing:
                self._failing.discard((_LIMITER, source))
                _LOGGER.info("Limiter %s works again", source)
            self._last_controls[source] = controls
            requests.append(LimitRequest(source, controls))
        return requests, errors

    async def _async_write(
        self,
        plan: ControlPlan,
        readings: Mapping[str, InverterReading | None],
        now: float,
    ) -> tuple[set[str], dict[str, str]]:
        """Write the commands that the write policy lets through."""
        # Out of bounds: any decrease is written, however small (a limit lowered by less
        # than the deadband would otherwise stay exceeded on an inverter without a timer).
        urgent = (
            plan.over_export_limit
            or plan.over_generation_limit
            or plan.state is ControlState.FAIL_SAFE
        )

        def due_writes(urgent: bool) -> list[str]:
            return [
                key
                for key, command in plan.commands.items()
                if self.write_policy.should_write(
                    key,
                    command,
                    readings.get(key),
                    self.inverters[key].revert_timeout_s,
                    now,
                    urgent=urgent,
                    step_pct=self.inverters[key].limit_step_pct,
                )
            ]

        due = due_writes(urgent)
        if not urgent and any(self._rises(key, plan.commands[key]) for key in due):
            # Shares move together: when one rises, every fall is written too, however
            # small, or the inverters could make more than the target until the next cycle.
            due = due_writes(urgent=True)
        results = await asyncio.gather(
            *(
                self._guarded(self.inverters[key].async_apply(plan.commands[key]), key)
                for key in due
            )
        )
        wrote: set[str] = set()
        errors: dict[str, str] = {}
        for key, result in zip(due, results, strict=True):
            if isinstance(result, str):
                errors[key] = result
                self.write_policy.forget(key)
                self._refused.add(key)
                self._note_failure(_WRITE, key, result)
            else:
                wrote.add(key)
                self.write_policy.record(key, plan.commands[key], now)
                self._refused.discard(key)
                self._note_recovery(_WRITE, key)
        return wrote, errors

    def _rises(self, key: str, command: InverterCommand) -> bool:
        """True when writing ``command`` may let ``key`` make more than it may now."""
        last = self.write_policy.last_command(key)
        if last is None or not last.connect:
            return True
        return command.connect and command.limit_pct > last.limit_pct

    async def _async_release(self, keys: list[str] | None = None) -> dict[str, str]:
        keys = list(self.inverters) if keys is None else keys
        results = await asyncio.gather(
            *(self._guarded(self.inverters[key].async_release()) for key in keys)
        )
        errors = {key: r for key, r in zip(keys, results, strict=True) if isinstance(r, str)}
        if not errors:
            self._needs_release = False
            if keys:
                names = ", ".join(self._name(key) for key in keys)
                _LOGGER.info("Handed back to their own settings: %s", names)
        return errors

    def _note_rating(self, key: str, rating_w: float) -> None:
        """Keep the rating a read reports (a plausible one) for when the inverter is away."""
        if not rating_w > 0 or not math.isfinite(rating_w) or self.ratings.get(key) == rating_w:
            return
        self.ratings[key] = rating_w
        if self.on_rating is not None:
            self.on_rating(key, rating_w)

    def _name(self, key: str) -> str:
        return self.names.get(key, key)

    def _note_failure(self, what: str, key: str, error: str) -> None:
        """Log the start of a failure streak once (reads and writes apart)."""
        if (what, key) in self._failing:
            return
        self._failing.add((what, key))
        if what == _READ:
            _LOGGER.warning("%s unavailable: %s", self._name(key), error)
        else:
            _LOGGER.warning(
                "%s does not take its limit: %s (the others get only what it may leave)",
                self._name(key),
                error,
            )

    def _note_recovery(self, what: str, key: str) -> None:
        if (what, key) not in self._failing:
            return
        self._failing.discard((what, key))
        if what == _READ:
            _LOGGER.info("%s is back", self._name(key))
        else:
            _LOGGER.info("%s takes its limit again", self._name(key))

    _last_state: tuple[ControlState, object] | None = None

    def _log_transitions(self, plan: ControlPlan) -> None:
        state = (plan.state, plan.fail_safe_reason)
        if state == self._last_state:
            return
        if plan.fail_safe_reason is FailSafeReason.NO_METER:
            # Configuration, not a fault (often a site being set up): said once, plainly.
            _LOGGER.info(
                "%sNo site meter is configured: %s until one is added",
                self._site,
                "no export limit applies, nothing is limited"
                if plan.constraint is Constraint.RATING
                else f"generation is held to {plan.generation_target_w:.0f} W, the export "
                "limit with no load",
            )
        elif plan.state is ControlState.FAIL_SAFE:
            _LOGGER.warning(
                "%sFail-safe (%s): generation limited to %.0f W",
                self._site,
                plan.fail_safe_reason,
                plan.generation_target_w,
            )
        elif self._last_state is not None and self._last_state[0] is ControlState.FAIL_SAFE:
            _LOGGER.info("%sMeter data is fresh again: normal control resumed", self._site)
        self._last_state = state


async def _no_meter() -> MeterReading | str | None:
    return None
