"""Run one reference procedure: its actions on the in-repo server, its events from the client's
requests, its checks, and the physical site in lock-step, all on one fake clock.

Each simulated second: the site's physics moves 1 s, the control loop runs one cycle (the
CSIP limiter's controls merged into setpoints, then the limiter fed the measurements), and
the real CSIP client does whatever is due over mutual TLS on loopback. Requests reach the
procedure through the server's ``on_request`` hook: an event without
``serve_request_first`` runs its actions before the request is answered (the answer
already shows them), one with it after.

Idle time is skipped: once the site has stood still for :data:`SETTLE_S` seconds (same
export, generation, inverter commands and limiter requests) and nothing is due in the next
two seconds (a client timer, a control's start or end as the server or the client has it,
a load step or site act, a step's wait, a forced status expiring, the start, the end), the
clock moves on by up to :data:`IDLE_STEP_S` at once, to one second before the next due
moment, with one physics step, one sample and one control cycle; the physical check
judges that sample for every second it stands for. Everything else runs second by second.

The procedure's phases are the reference runner's: ``init_actions`` before the client
starts (the EndDevice is not registered: the client registers in band, unless a
``register-end-device`` action registers it out of band); then, unless
``immediate_start``, an *init* phase until every precondition check passes (the tester
starts :data:`START_DELAY_S` later); then the precondition ``actions`` and the steps. A
step is listening from the start when no ``enable-steps`` names it. The run ends at
``finish-test``, or once no step listens and the schedule has run out, or at
:data:`MAX_RUN_S`; then the criteria are checked.

Anything the runner does not know (an action, event, check, variable or an instruction to
do something to the site it cannot do) raises: the procedure fails loudly.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cactus_test_definitions.client.actions import Action
from cactus_test_definitions.client.checks import Check
from cactus_test_definitions.client.test_procedures import Step, TestProcedure
from cactus_test_definitions.variable_expressions import (
    Constant,
    Expression,
    NamedVariable,
    NamedVariableType,
    Negate,
    OperationType,
)

from custom_components.dynamic_export.core.write_policy import MIN_REVERT_CYCLES
from custom_components.dynamic_export.csip.client import CsipClient
from custom_components.dynamic_export.csip.limiter import CsipLimiter

from ..client_harness import Harness
from ..server.app import CsipTestServer, Fault, RequestRecord
from ..server.certs import check_digit
from ..server.state import ActivePower, CsipState, EndDevice, EventStatus, Program
from .checks import CheckResult, run_check
from .paths import matches, reference_path
from .physical import PhysicalCheck
from .site import RATING_W, REVERT_S, PhysicalSite

_LOGGER = logging.getLogger(__name__)

MAX_RUN_S = 3 * 3600
"""A procedure still listening after this long (plus all its steps' waits) fails (its steps
never completed)."""
TAIL_S = 120
"""After the last step and the last control's end, time for the client's last Responses."""
PROCEED_S = 300
"""How long a tester watches before pressing *proceed* when the step gives no timeout."""
START_DELAY_S = 20
"""A tester starts the procedure this long after its preconditions are met (not in the
very second after the client's poll, which would make a one-minute control end before
the client's next poll could see it)."""
MAX_INIT_S = 30 * 60
IDLE_STEP_S = int(REVERT_S / MIN_REVERT_CYCLES)
"""The longest idle step: the control loop keeps the inverter's revert timer refreshed
only with cycles at most this far apart (core.write_policy)."""
SETTLE_S = 5
"""Seconds the site must stand still before idle time is skipped."""
"""Time the client gets to meet the preconditions."""
PIN = 111115
NMI = "3062345678"
EXPORT_SITE = (5000.0, 0.0)
"""(PV available, load) in W: the site exports its whole rating, as the generation
procedures ask ("at least 50 % of its rating at the connection point")."""
IMPORT_SITE = (5000.0, 8000.0)
"""(PV available, load) in W: the site imports 60 % of the rating with all its solar on,
as the load procedures ask ("importing at least 50 % at the connection point")."""

_LOAD_NOW = re.compile(
    r"Set the load to consume (?:(?P<pct>\d+)% of the DER's rated active power|(?P<w>\d+) ?W)\.?$"
)
_LOAD_AT = re.compile(
    r"At t=(?P<t>\d+)s, set the load to consume "
    r"(?:(?P<pct>\d+)% of the DER's rated active power|(?P<w>\d+) ?W)\.?$"
)
_INFORMATION = re.compile(
    r"^(DER (shall|should|is)|The DER shall|The device should|Device telemetry|The test cannot|"
    r"Connect a test load|An EndDevice has already|If you are connecting|LFDI:|SFDI:|"
    r"\[Aggregator Client Only\]|The client should|Client shall|This step is|Upon completion|"
    r"Observe that|After cancellation|Each DERControl should|This will need|Please note|"
    r"New DERControls|No more new|The test is now|This delay is|This step will|"
    r"The controlled device (is|should)|EndDevice should be registered|"
    r"Re-establish communications|Click this button once)"
)
"""Instructions that describe what to observe or how the site already is; anything else
asks the tester to do something, which the runner must model or refuse."""


_SITE_ACTS: dict[str, str] = {
    "Disconnect all DER from the grid.": "isolate",
    "Reconnect all DER to the grid.": "reconnect",
    "Stop DER from generating or consuming active power. (e.g. power source/sink is set to 0W)": (
        "pv_off"
    ),
    "Re-enable ability of DER to generate or consume active power.": "pv_on",
    "Power cycle (turn off then back on again) the communications client, and while it is "
    "offline, disable the communications interface between the client and utility server "
    "(e.g. by unplugging an appropriate network cable).": "restart",
}
"""Instructions to do something to the site that the simulated site can do."""


class UnknownProcedureElementError(AssertionError):
    """An action, event, variable or instruction the runner does not implement."""


@dataclass(slots=True)
class Listener:
    """A step and when it started listening."""

    name: str
    step: Step
    enabled_at: float


@dataclass(slots=True)
class RunResult:
    """What a run produced, for the test and the README table."""

    started: bool
    finished: bool
    criteria: list[tuple[str, CheckResult]]
    physical: PhysicalCheck
    elapsed_s: float
    errors: list[str]

    @property
    def protocol_passed(self) -> bool:
        return self.started and not self.errors and all(r.passed for _, r in self.criteria)

    def describe(self) -> str:
        lines = [f"started={self.started} finished={self.finished} ran {self.elapsed_s:.0f} s"]
        lines += [
            f"  {'PASS' if r.passed else 'FAIL'} {name}: {r.detail}" for name, r in self.criteria
        ]
        lines += [f"  ERROR {e}" for e in self.errors]
        lines.append(f"  physical: {self.physical.summary()}")
        return "\n".join(lines)


@dataclass(slots=True)
class ProcedureRun:
    """One procedure against one fresh server, client and site."""

    pid: str
    procedure: TestProcedure
    harness: Harness
    listeners: dict[str, Listener] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    program_tags: dict[str, str] = field(default_factory=dict)
    physical: PhysicalCheck = field(default_factory=PhysicalCheck)
    errors: list[str] = field(default_factory=list)
    begin: float = 0.0
    """When the run began (the reference's test creation: its request log starts here)."""
    started_at: float | None = None
    ready_at: float | None = None
    finished: bool = False
    site_default: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    load_steps: list[tuple[float, float]] = field(default_factory=list)
    site_acts: list[tuple[float, str]] = field(default_factory=list)
    comms_fault: Fault | None = None
    forced: list[tuple[float, Fault]] = field(default_factory=list)
    """``force-response-status`` overrides with a duration, and when each expires."""
    client: CsipClient | None = None
    site: PhysicalSite | None = None
    follow_utility: bool = True
    """False: the CSIP limiter is switched off (the site ignores the server), so the
    physical check has something to catch."""
    _wake: bool = False
    still: list[tuple[object, ...]] = field(default_factory=list)
    """What the site and its loop did in the last cycles (see :meth:`_settled`)."""
    idle_s: float = 0.0
    """Seconds skipped in idle steps (a figure for the report)."""

    @property
    def state(self) -> CsipState:
        return self.harness.state

    @property
    def server(self) -> CsipTestServer:
        return self.harness.server

    def now(self) -> float:
        return self.harness.clock.t

    def device_record(self) -> EndDevice | None:
        return self.state.device_for(self.harness.device.lfdi)

    def edev_id(self) -> int:
        device = self.device_record()
        return 1 if device is None else device.id

    def reference(self, record: RequestRecord) -> str:
        """The request's path as the reference server lays it out (no query)."""
        local = record.path[len(self.state.prefix) :] if self.state.prefix else record.path
        return reference_path(self.state, local, self.edev_id())

    def matches(self, endpoint: str, record: RequestRecord) -> bool:
        return matches(endpoint, self.reference(record))

    # -- the whole run -------------------------------------------------------------------

    async def run(self) -> RunResult:
        """Run the procedure to its end and check its criteria."""
        self.begin = begin = self.now()
        procedure = self.procedure
        pre = procedure.preconditions
        self.server.on_request = self._on_request
        self.state.add_fsa(fsa_id="1", derp_path="/derp")
        pv_w, load_w = self._site_setup()
        for action in (pre.init_actions or []) if pre else []:
            self._act(action)
        client = self.harness.client(pin=PIN, nmi=NMI if self._wants_nmi() else None)
        self.client = client
        limiter = CsipLimiter("CSIP-AUS", client, enabled=self.follow_utility)
        self.site = PhysicalSite(limiter, start=self.now(), pv_w=pv_w, load_w=load_w)
        self._instruct((pre.instructions or []) if pre else [], self.now())
        if pre is None or pre.immediate_start:
            self._start()
        next_due = self.now()
        while not self.finished and self.now() - begin < self._max_run_s():
            # Every step done: like a tester, let the schedule run out (its Completed
            # Responses are part of the criteria) before finishing.
            done = self.started_at is not None and not self.listeners
            if done and self.now() >= self._schedule_end() + TAIL_S:
                break
            if self.started_at is None:
                if self.now() - begin > MAX_INIT_S:
                    self.errors.append(f"preconditions never met: {self._precondition_report()}")
                    break
                if self.ready_at is None and self._preconditions_met():
                    self.ready_at = self.now()
                if self.ready_at is not None and self.now() >= self.ready_at + START_DELAY_S:
                    self._start()
            step = self._idle_step(next_due)
            next_due = await self._second(self.client, next_due, step)
            self._fire_waits()
            if self.errors:
                break
        criteria = [
            (check.type, self._check(check))
            for check in ((procedure.criteria.checks or []) if procedure.criteria else [])
        ]
        self.server.on_request = None
        return RunResult(
            started=self.started_at is not None,
            finished=self.finished,
            criteria=criteria,
            physical=self.physical,
            elapsed_s=self.now() - begin,
            errors=list(self.errors),
        )

    async def _second(self, client: CsipClient, next_due: float, seconds: int = 1) -> float:
        """One lock-step second (or an idle step of ``seconds``): physics, a control
        cycle, the client's due work."""
        site = self.site
        assert site is not None
        self.harness.clock.advance(float(seconds))
        if seconds > 1:
            self.idle_s += seconds
        while self.load_steps and self.load_steps[0][0] <= self.now():
            site.set_load(self.load_steps.pop(0)[1])
            self.physical.load_changed(self.now())
        for at, act in [a for a in self.site_acts if a[0] <= self.now()]:
            self.site_acts.remove((at, act))
            if act == "restart":
                await self._restart()
                client = self.client
                assert client is not None
            elif act in ("isolate", "reconnect"):
                site.isolate(act == "isolate")
            else:
                site.set_pv(site.pv_w if act == "pv_on" else 0.0)
            self.physical.load_changed(self.now())
        if self.physical.load_steps and self.physical.load_steps[-1] == self.now():
            self.still.clear()
        site.advance(float(seconds), settled=seconds > 1)
        self.physical.observe(site.samples[-1], seconds)
        snapshot = await site.cycle()
        inverter = site.sim.inverters[0]
        sample = site.samples[-1]
        self.still.append(
            (
                round(sample.export_w, 1),
                round(sample.generation_w, 1),
                inverter.limit_pct,
                inverter.limit_enabled,
                inverter.connected,
                snapshot.requests,
                snapshot.merged,
            )
        )
        del self.still[: -SETTLE_S - 1]
        self._expire_forced()
        if self.now() >= next_due or self._wake or client._wake.is_set():
            # As the client's own background task does: clear the wake, then do the work.
            self._wake = False
            client._wake.clear()
            self.still.clear()  # what it fetched moves the site from the next cycle on
            due = await client.run_due()
            return due.timestamp()
        return next_due

    # -- idle time ---------------------------------------------------------------------------

    def _max_run_s(self) -> float:
        waits = [
            int(step.event.parameters["duration_seconds"])
            for step in self.procedure.steps.values()
            if step.event.type == "wait"
        ]
        return MAX_RUN_S + sum(waits)

    def _settled(self) -> bool:
        """The site, its commands and its limiter's requests stood still for SETTLE_S."""
        return len(self.still) > SETTLE_S and all(x == self.still[-1] for x in self.still)

    def _due_moments(self, next_due: float) -> list[float]:
        """Every moment something may happen that the runner or the site must see."""
        moments = [next_due, self.begin + self._max_run_s()]
        moments += [at for at, _ in self.load_steps]
        moments += [at for at, _ in self.site_acts]
        moments += [at for at, _ in self.forced]
        if self.started_at is None:
            moments.append(self.begin + MAX_INIT_S)
            if self.ready_at is not None:
                moments.append(self.ready_at + START_DELAY_S)
        for listener in self.listeners.values():
            event = listener.step.event
            if event.type == "wait":
                moments.append(listener.enabled_at + int(event.parameters["duration_seconds"]))
            elif event.type == "proceed":
                wait = int(event.parameters.get("timeout_seconds") or PROCEED_S)
                moments.append(listener.enabled_at + wait)
        for program in self.state.programs.values():
            for control in program.controls.values():
                spread = abs(control.randomize_start or 0)
                moments += [control.start, control.start + spread]
                moments += [control.end, control.end + spread]
        for known in self.physical.instructions.controls.values():
            moments += [known.start, known.end, known.start + known.randomize_s]
            moments.append(known.end + known.randomize_s)
        if self.started_at is not None:
            moments.append(self._schedule_end() + TAIL_S)
        return moments

    def _idle_step(self, next_due: float) -> int:
        """Seconds to move on now: 1, or an idle step (see the module doc)."""
        client = self.client
        if client is None or self._wake or client._wake.is_set() or not self._settled():
            return 1
        now = self.now()
        upcoming = [m for m in self._due_moments(next_due) if m > now]
        gap = math.floor(min(upcoming, default=now + IDLE_STEP_S + 1) - now) - 1
        return max(1, min(IDLE_STEP_S, gap))

    # -- phases ----------------------------------------------------------------------------

    def _site_setup(self) -> tuple[float, float]:
        """Exporting, or importing when the procedure asks for an importing site."""
        pre = self.procedure.preconditions
        texts = list((pre.instructions or []) if pre else [])
        importing = any(
            "importing" in t
            and "exporting or importing" not in t
            and "importing/exporting" not in t
            for t in texts
        )
        return IMPORT_SITE if importing else EXPORT_SITE

    async def _restart(self) -> None:
        """Home Assistant restarts: the client stops, its saved state is restored into a
        new client, limiter and control loop (the network stays as the procedure set it)."""
        old, site = self.client, self.site
        assert old is not None
        assert site is not None
        saved = old.to_dict()
        await old.async_stop()
        self.client = self.harness.client(
            pin=PIN, nmi=NMI if self._wants_nmi() else None, restore=saved
        )
        site.restart(CsipLimiter("CSIP-AUS", self.client, enabled=self.follow_utility))
        self._wake = True

    def _wants_nmi(self) -> bool:
        """The procedure looks for a ConnectionPoint: the installer filled in the NMI."""
        text = repr(self.procedure)
        return "has_connection_point_id" in text or "/cp'" in text

    def _schedule_end(self) -> float:
        """When the last control still on the server's schedule ends (0: none)."""
        ends = [
            c.end
            for p in self.state.programs.values()
            for c in p.controls.values()
            if c.current_status in (EventStatus.SCHEDULED, EventStatus.ACTIVE)
        ]
        return max(ends, default=0)

    def _preconditions_met(self) -> bool:
        pre = self.procedure.preconditions
        checks = (pre.checks or []) if pre else []
        return all(self._check(c).passed for c in checks)

    def _precondition_report(self) -> str:
        pre = self.procedure.preconditions
        checks = (pre.checks or []) if pre else []
        return "; ".join(f"{c.type}: {self._check(c).detail}" for c in checks)

    def _start(self) -> None:
        self.started_at = self.now()
        pre = self.procedure.preconditions
        for action in (pre.actions or []) if pre else []:
            self._act(action)
        named = {
            step
            for definition in self.procedure.steps.values()
            for action in definition.actions
            if action.type == "enable-steps"
            for step in action.parameters["steps"]
        }
        if pre is not None:
            named |= {
                step
                for action in (pre.actions or []) + (pre.init_actions or [])
                if action.type == "enable-steps"
                for step in action.parameters["steps"]
            }
        for name, definition in self.procedure.steps.items():
            if name not in named:
                self._enable(name, definition)

    def _enable(self, name: str, step: Step) -> None:
        self.listeners[name] = Listener(name, step, self.now())
        self._instruct(step.instructions or [], self.now())

    def _instruct(self, instructions: list[str], at: float) -> None:
        """Do what the tester is told to do to the site (only the load is modelled)."""
        for raw in instructions:
            text = raw.strip()
            if (m := _LOAD_NOW.match(text)) is not None:
                self._load_at(at, m)
            elif (m := _LOAD_AT.match(text)) is not None:
                self._load_at(at + int(m["t"]), m)
            elif text in _SITE_ACTS:
                self.site_acts.append((at, _SITE_ACTS[text]))
            elif not _INFORMATION.match(text):
                raise UnknownProcedureElementError(f"instruction not modelled: {text!r}")

    def _load_at(self, at: float, m: re.Match[str]) -> None:
        watts = RATING_W * int(m["pct"]) / 100.0 if m["pct"] else float(m["w"])
        self.load_steps.append((at, watts))
        self.load_steps.sort()

    def _fire_waits(self) -> None:
        for listener in list(self.listeners.values()):
            event = listener.step.event
            if listener.name not in self.listeners:
                continue
            if event.type == "wait":
                if self.now() - listener.enabled_at >= int(event.parameters["duration_seconds"]):
                    self._trigger(listener)
            elif event.type == "proceed":
                # The tester proceeds once they have watched what the step describes:
                # after its timeout, else after PROCEED_S.
                wait = int(event.parameters.get("timeout_seconds") or PROCEED_S)
                if self.now() - listener.enabled_at >= wait:
                    self._trigger(listener)

    # -- events from requests ------------------------------------------------------------

    def _on_request(self, record: RequestRecord, local: str, served: bool) -> None:
        try:
            reference = reference_path(self.state, local, self.edev_id())
            if served and record.method == "GET" and record.status == 200:
                self._client_saw(reference)
            if self.started_at is None or self.finished:
                return
            kind = f"{record.method}-request-received"
            for listener in list(self.listeners.values()):
                event = listener.step.event
                if event.type not in (
                    "GET-request-received",
                    "POST-request-received",
                    "PUT-request-received",
                    "DELETE-request-received",
                    "wait",
                    "proceed",
                ):
                    raise UnknownProcedureElementError(f"event type {event.type!r}")
                if event.type != kind or listener.name not in self.listeners:
                    continue
                if bool(event.parameters.get("serve_request_first", False)) != served:
                    continue
                if not matches(str(event.parameters["endpoint"]), reference):
                    continue
                if all(self._check(c).passed for c in event.checks or []):
                    self._trigger(listener)
        except Exception as err:  # a failure inside the server must fail the test, loudly
            _LOGGER.debug("procedure runner failed in a request hook", exc_info=True)
            self.errors.append(f"{type(err).__name__}: {err}")

    def _client_saw(self, reference: str) -> None:
        m = re.fullmatch(r"/edev/\d+/derp/(?P<p>[^/]+)/(?P<what>derc|dderc)", reference)
        if m is None:
            return
        if m["what"] == "derc":
            self.physical.instructions.saw_controls(self.state, m["p"])
        else:
            self.physical.instructions.saw_default(self.state, m["p"])

    def _trigger(self, listener: Listener) -> None:
        _LOGGER.debug("step %s triggered at %s", listener.name, self.now())
        self.still.clear()
        for action in listener.step.actions:
            self._act(action)

    def _check(self, check: Check) -> CheckResult:
        params = {k: self._resolve(v) for k, v in check.parameters.items()}
        return run_check(self, check.type, params)

    # -- actions ---------------------------------------------------------------------------

    def _act(self, action: Action) -> None:
        params = {k: self._resolve(v) for k, v in action.parameters.items()}
        handler = getattr(self, "_do_" + action.type.replace("-", "_"), None)
        if handler is None:
            raise UnknownProcedureElementError(f"action type {action.type!r} is not implemented")
        handler(params)

    def _do_enable_steps(self, p: dict[str, Any]) -> None:
        for name in p["steps"]:
            self._enable(name, self.procedure.steps[name])

    def _do_remove_steps(self, p: dict[str, Any]) -> None:
        for name in p["steps"]:
            self.listeners.pop(name, None)

    def _do_finish_test(self, p: dict[str, Any]) -> None:
        if p.get("fail_message"):
            self.errors.append(f"finished as failed: {p['fail_message']}")
        self.finished = True

    def _do_set_comms_rate(self, p: dict[str, Any]) -> None:
        keys = {
            "dcap_poll_seconds": "dcap",
            "edev_list_poll_seconds": "edev",
            "fsa_list_poll_seconds": "fsa",
            "der_list_poll_seconds": "der",
            "derp_list_poll_seconds": "derp",
            "mup_list_poll_seconds": "mup",
        }
        for name, value in p.items():
            if name in keys:
                self.state.set_poll_rate(keys[name], int(value))
            elif name == "mup_post_seconds":
                self.state.set_post_rate(int(value))
            else:
                raise UnknownProcedureElementError(f"set-comms-rate {name} is not implemented")

    def _do_register_end_device(self, p: dict[str, Any]) -> None:
        pin = p.get("registration_pin")
        if pin is not None and pin < 100000:
            pin = pin * 10 + check_digit(pin)
        self.state.register_device(
            self.harness.device, pin=PIN if pin is None else pin, nmi=p.get("nmi")
        )

    def _program(self, primacy: int, tag: str | None, fsa_id: int | None) -> Program:
        """A control's program: by tag, else the first of this primacy (in this FSA, if
        given); made when there is none (as the reference runner does)."""
        if tag is not None:
            return self.state.programs[self.program_tags[tag]]
        for program in self.state.programs.values():
            in_fsa = fsa_id is None or program.id in self.state.fsas[str(fsa_id)].program_ids
            if program.primacy == primacy and in_fsa:
                return program
        return self._new_program(primacy, None, fsa_id)

    def _new_program(self, primacy: int, tag: str | None, fsa_id: int | None) -> Program:
        fsa = str(fsa_id or 1)
        if fsa not in self.state.fsas:
            self.state.add_fsa(fsa_id=fsa)
        program = self.state.add_program(primacy, fsa_id=fsa, description=f"primacy {primacy}")
        if tag is not None:
            self.program_tags[tag] = program.id
        self.defaults[program.id] = dict(self.site_default)
        self._apply_default(program.id)
        return program

    def _do_create_der_program(self, p: dict[str, Any]) -> None:
        if p.get("end_device_indexes") not in (None, [0]):
            raise UnknownProcedureElementError("a program shared by several EndDevices")
        self._new_program(int(p["primacy"]), p.get("tag"), p.get("fsa_id"))

    def _do_set_default_der_control(self, p: dict[str, Any]) -> None:
        """Fields given replace those set before; without ``derp_id`` for every program
        (and those made later), as the reference server's site-wide default."""
        if "opModStorageTargetW" in p:
            raise UnknownProcedureElementError("storage target: the site has no battery")
        fields = {k: v for k, v in p.items() if k not in ("derp_id", "cancelled")}
        if p.get("derp_id") is not None:
            targets = [str(p["derp_id"])]
        else:
            targets = list(self.state.programs)
            self.site_default = {} if p.get("cancelled") else self.site_default | fields
        for program_id in targets:
            current = self.defaults.get(program_id, {})
            self.defaults[program_id] = {} if p.get("cancelled") else current | fields
            self._apply_default(program_id)

    def _apply_default(self, program_id: str) -> None:
        d = self.defaults.get(program_id, {})
        program = self.state.programs[program_id]
        if not d:
            self.state.remove_default_control(program_id)
            return
        self.state.set_default_control(
            program_id,
            mrid=program.default.mrid if program.default is not None else None,
            description="site default",
            set_grad_w=d.get("setGradW"),
            op_mod_exp_lim_w=d.get("opModExpLimW"),
            op_mod_imp_lim_w=d.get("opModImpLimW"),
            op_mod_gen_lim_w=d.get("opModGenLimW"),
            op_mod_load_lim_w=d.get("opModLoadLimW"),
        )

    def _do_create_der_control(self, p: dict[str, Any]) -> None:
        if p.get("end_device_indexes") not in (None, [0]):
            raise UnknownProcedureElementError("a control shared by several EndDevices")
        if "opModStorageTargetW" in p or "opModFixedW" in p:
            raise UnknownProcedureElementError("storage controls: the site has no battery")
        tag = p.get("der_program_tag")
        program = self._program(int(p.get("primacy", 0)), tag, p.get("fsa_id"))
        start = int(p["start"].timestamp())
        duration = int(p["duration_seconds"])
        multiplier = p.get("pow_10_multipliers")

        def power(name: str) -> ActivePower | None:
            watts = p.get(name)
            if watts is None:
                return None
            if multiplier is None:
                return ActivePower.of(float(watts))
            return ActivePower(round(float(watts) / 10.0**multiplier), int(multiplier))

        # A newer control over the same time in the same program supersedes the older.
        for older in program.controls.values():
            overlaps = older.start < start + duration and start < older.end
            live = older.current_status in (EventStatus.SCHEDULED, EventStatus.ACTIVE)
            if overlaps and live and older.end > self.now():
                self.state.supersede_control(older.mrid)
        ramp = p.get("ramp_time_seconds")
        control = self.state.add_control(
            program.id,
            start=start,
            duration=duration,
            randomize_start=p.get("randomizeStart_seconds"),
            op_mod_connect=p.get("opModConnect"),
            op_mod_energize=p.get("opModEnergize"),
            op_mod_exp_lim_w=power("opModExpLimW"),
            op_mod_imp_lim_w=power("opModImpLimW"),
            op_mod_gen_lim_w=power("opModGenLimW"),
            op_mod_load_lim_w=power("opModLoadLimW"),
            ramp_tms=None if ramp is None else round(float(ramp) * 100),
        )
        if p.get("tag"):
            self.tags[str(p["tag"])] = control.mrid

    def _do_cancel_active_der_controls(self, p: dict[str, Any]) -> None:
        for program in self.state.programs.values():
            for control in program.controls.values():
                live = control.current_status in (EventStatus.SCHEDULED, EventStatus.ACTIVE)
                if live and control.end > self.now():
                    self.state.cancel_control(control.mrid)

    def _do_communications_status(self, p: dict[str, Any]) -> None:
        if not p["enabled"] and self.comms_fault is None:
            # As the reference runner does: every request is answered HTTP 500.
            self.comms_fault = self.server.inject("*", "status", status=500, body=b"COMMS DISABLED")
        elif p["enabled"] and self.comms_fault is not None:
            self.server.faults.remove(self.comms_fault)
            self.comms_fault = None

    def _do_force_response_status(self, p: dict[str, Any]) -> None:
        """Answer requests for the endpoint with the status (and Retry-After) instead of
        the resource; from now, the request that triggered the step included, until
        ``duration_seconds`` have passed (whatever Retry-After says), else until the end."""
        endpoint = str(p["endpoint"])
        m = re.fullmatch(r"/edev/[^/]+(?P<local>/derp/[^/]+(?:/derc(?:/[^/]+)?|/dderc)?)", endpoint)
        if m is None:
            raise UnknownProcedureElementError(f"force-response-status on {endpoint!r}")
        retry_after = p.get("retry_after_seconds")
        headers = {} if retry_after is None else {"Retry-After": str(int(retry_after))}
        status = int(p["status"])
        fault = self.server.inject(m["local"], "status", status=status, headers=headers)
        if p.get("duration_seconds") is not None:
            self.forced.append((self.now() + int(p["duration_seconds"]), fault))

    def _expire_forced(self) -> None:
        for expiry, fault in [f for f in self.forced if f[0] <= self.now()]:
            self.forced.remove((expiry, fault))
            self.server.faults.remove(fault)

    def _do_edev_registration_links(self, p: dict[str, Any]) -> None:
        self.state.registration_links = bool(p["enabled"])

    def _do_remove_function_set_assignment(self, p: dict[str, Any]) -> None:
        self.state.remove_fsa(str(p["fsa_id"]))

    # -- variables ---------------------------------------------------------------------------

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        if isinstance(value, Constant):
            return value.value
        if isinstance(value, Negate):
            return -self._resolve(value.operand)
        if isinstance(value, NamedVariable):
            return self._variable(value.variable)
        if isinstance(value, Expression):
            lhs, rhs = self._resolve(value.lhs_operand), self._resolve(value.rhs_operand)
            ops = {
                OperationType.ADD: lambda a, b: a + b,
                OperationType.SUBTRACT: lambda a, b: a - b,
                OperationType.MULTIPLY: lambda a, b: a * b,
                OperationType.DIVIDE: lambda a, b: a / b,
                OperationType.EQ: lambda a, b: a == b,
                OperationType.NE: lambda a, b: a != b,
                OperationType.LT: lambda a, b: a < b,
                OperationType.LTE: lambda a, b: a <= b,
                OperationType.GT: lambda a, b: a > b,
                OperationType.GTE: lambda a, b: a >= b,
            }
            return ops[value.operation](lhs, rhs)
        return value

    def _variable(self, variable: NamedVariableType) -> Any:
        now = datetime.fromtimestamp(self.now(), UTC)
        aest = now + timedelta(hours=10)
        if variable == NamedVariableType.NOW:
            return now
        if variable == NamedVariableType.NOW_HOUR:
            return aest.replace(minute=0, second=0, microsecond=0) - timedelta(hours=10)
        if variable == NamedVariableType.NOW_DAY:
            return aest.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=10)
        device = self.device_record()
        settings = (
            None if device is None or device.der_settings is None else device.der_settings.doc
        )
        capability = (
            None if device is None or device.der_capability is None else device.der_capability.doc
        )
        from .checks import _number

        def need(doc: Any, name: str) -> float:
            found = _number(doc, name)
            if found is None:
                raise UnknownProcedureElementError(f"{name} is not known yet (not sent)")
            return found

        match variable:
            case NamedVariableType.DERSETTING_SET_MAX_W:
                return need(settings, "setMaxW")
            case NamedVariableType.DERSETTING_MAX_EXPORT_W:
                found = _number(settings, "setMaxDischargeRateW")
                return found if found is not None else need(settings, "setMaxW")
            case NamedVariableType.DERSETTING_MAX_IMPORT_W:
                found = _number(settings, "setMaxChargeRateW")
                return found if found is not None else need(settings, "setMaxW")
            case NamedVariableType.DERCAPABILITY_RTG_MAX_W:
                return need(capability, "rtgMaxW")
            case NamedVariableType.DERSETTING_SET_MAX_VA:
                return need(settings, "setMaxVA")
            case NamedVariableType.DERCAPABILITY_RTG_MAX_VA:
                return need(capability, "rtgMaxVA")
        raise UnknownProcedureElementError(f"variable {variable.name} is not implemented")
