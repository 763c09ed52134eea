"""What each check of a procedure checks, against what the in-repo server stored.

Written from the check's meaning in the reference runner (facts, not its code): DER
resources must have been sent; readings are judged on the usage points of the device's own
reading types (uom, kind power, average qualifier, site roleFlags 0x03 or DER 0x49) with
PEN-carrying mRIDs, whole-minute periods and the count and level bounds asked for;
Responses by their status, optionally only the latest, for a tagged control, or for all.
A check type not known here raises :class:`UnknownCheckError`: a procedure never passes
on something nobody looked at.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..server.app import RequestRecord
from ..server.state import MirrorUsagePoint
from ..server.xml import XmlElement

if TYPE_CHECKING:
    from .runner import ProcedureRun

SITE_ROLE = 0x03
DER_ROLE = 0x49
UOM_W, UOM_VAR, UOM_V = 38, 63, 29
KIND_POWER = 37
AVERAGE = 2


class UnknownCheckError(AssertionError):
    """A check type (or parameter) this runner does not implement."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Passed or not, and why."""

    passed: bool
    detail: str


def _ok(detail: str = "") -> CheckResult:
    return CheckResult(True, detail)


def _fail(detail: str) -> CheckResult:
    return CheckResult(False, detail)


def _number(doc: XmlElement | None, name: str) -> float | None:
    """A numeric field: plain, or an element with value and multiplier."""
    if doc is None:
        return None
    node = doc.find(name)
    if node is None:
        return None
    if node.text is not None and node.text.strip():
        return float(node.text)
    value = node.value("value")
    if value is None:
        return None
    return float(value) * 10.0 ** int(node.value("multiplier") or "0")


def _hex(doc: XmlElement | None, name: str) -> int | None:
    raw = None if doc is None else doc.value(name)
    return None if raw is None else int(raw, 16)


def _fields(
    doc: XmlElement | None, what: str, params: dict[str, Any], known: Iterable[str]
) -> CheckResult:
    """The generic DER resource checks: present, and any set/unset bits and values."""
    if doc is None:
        return _fail(f"no {what} was sent")
    known_set = set(known)
    for key, want in params.items():
        if key.endswith(("_set", "_unset")):
            name, _, mode = key.rpartition("_")
            mask = int(str(want), 16)
            have = _hex(doc, name)
            if have is None:
                return _fail(f"{what}.{name} is not set")
            if mode == "set" and have & mask != mask:
                return _fail(f"{what}.{name} {have:#x} lacks bits {mask:#x}")
            if mode == "unset" and have & mask:
                return _fail(f"{what}.{name} {have:#x} has bits {mask:#x} set")
        elif key in known_set and isinstance(want, bool):
            present = doc.find(key) is not None
            if present != want:
                return _fail(f"{what}.{key} is {'missing' if want else 'set'}")
        elif key in known_set:
            have_value = _number(doc, key)
            if have_value is None or not math.isclose(have_value, float(want)):
                return _fail(f"{what}.{key} is {have_value}, expected {want}")
        else:
            raise UnknownCheckError(f"{what} check parameter {key!r} is not implemented")
    return _ok()


_SETTINGS = (
    "setGradW", "doeModesEnabled", "modesEnabled", "vppModesEnabled", "setMaxVA",
    "setMaxVar", "setMaxVarNeg", "setMaxW", "setMaxChargeRateW", "setMaxDischargeRateW",
    "setMaxWh", "setMinWh", "setMinPFOverExcited", "setMinPFUnderExcited",
)  # fmt: skip
_CAPABILITY = (
    "doeModesSupported", "modesSupported", "vppModesSupported", "rtgMaxVA", "rtgMaxVar",
    "rtgMaxVarNeg", "rtgMaxW", "rtgMaxChargeRateW", "rtgMaxDischargeRateW", "rtgMaxWh",
    "rtgMinPFOverExcited", "rtgMinPFUnderExcited",
)  # fmt: skip


def der_settings(run: ProcedureRun, params: dict[str, Any]) -> CheckResult:
    device = run.device_record()
    doc = None if device is None or device.der_settings is None else device.der_settings.doc
    return _fields(doc, "DERSettings", params, _SETTINGS)


def der_capability(run: ProcedureRun, params: dict[str, Any]) -> CheckResult:
    device = run.device_record()
    doc = None if device is None or device.der_capability is None else device.der_capability.doc
    return _fields(doc, "DERCapability", params, _CAPABILITY)


def der_status(run: ProcedureRun, params: dict[str, Any]) -> CheckResult:
    device = run.device_record()
    doc = None if device is None or device.der_status is None else device.der_status.doc
    if doc is None:
        return _fail("no DERStatus was sent")
    for key, want in params.items():
        name, _, bit = key.partition("_bit")
        raw = doc.value(f"{name}/value")
        if raw is None:
            return _fail(f"DERStatus.{name} is not set")
        have = int(raw, 16) if name == "genConnectStatus" else int(raw)
        if bit:
            if bool(have >> int(bit) & 1) != bool(want):
                return _fail(f"DERStatus.{name} {have:#x}: bit {bit} is not {want}")
        elif name in ("genConnectStatus", "operationalModeStatus", "alarmStatus"):
            if have != int(want):
                return _fail(f"DERStatus.{name} is {have}, expected {want}")
        else:
            raise UnknownCheckError(f"der-status-contents parameter {key!r} is not implemented")
    return _ok()


def end_device(run: ProcedureRun, params: dict[str, Any]) -> CheckResult:
    device = run.device_record()
    if device is None:
        return _fail("no EndDevice is registered for the client's certificate")
    for key, want in params.items():
        if key == "has_connection_point_id":
            if want and not device.nmi:
                return _fail(f"EndDevice {device.id} has no ConnectionPoint id")
        elif key == "check_lfdi":
            if want and device.lfdi != run.harness.device.lfdi.upper():
                return _fail(f"EndDevice LFDI {device.lfdi} is not the certificate's")
            if want and device.sfdi != run.harness.device.sfdi:
                return _fail(f"EndDevice SFDI {device.sfdi} is not the certificate's")
        elif key == "deviceCategory_anyset":
            category = None if device.posted is None else _hex(device.posted.doc, "deviceCategory")
            if category is None or not category & int(str(want), 16):
                return _fail(f"EndDevice deviceCategory {category} has none of {want}")
        else:
            raise UnknownCheckError(f"end-device-contents parameter {key!r} is not implemented")
    return _ok()


@dataclass(frozen=True, slots=True)
class _Reading:
    mrid: str
    start: int
    duration: int
    value: float


def _reading_types(mup: MirrorUsagePoint) -> dict[str, XmlElement]:
    return {mrid.upper(): rtype for mrid, rtype in mup.reading_types.items()}


def _readings(
    run: ProcedureRun, uom: int, role: int
) -> tuple[list[MirrorUsagePoint], dict[str, list[_Reading]], list[str]]:
    """Usage points of ``role``, readings of the matching types by mRID, and PEN problems."""
    lfdi = run.harness.device.lfdi.upper()
    mups = [m for m in run.state.mups.values() if (m.lfdi or "").upper() == lfdi]
    chosen: list[MirrorUsagePoint] = []
    by_mrid: dict[str, list[_Reading]] = {}
    pen_problems: list[str] = []
    pen = run.state.pen
    for mup in mups:
        if int(mup.body.doc.value("roleFlags") or "0", 16) != role:
            continue
        types = {
            mrid: rtype
            for mrid, rtype in _reading_types(mup).items()
            if int(rtype.value("uom") or "-1") == uom
            and int(rtype.value("kind") or "-1") == KIND_POWER
            and int(rtype.value("dataQualifier") or "-1") == AVERAGE
        }
        if not types:
            continue
        chosen.append(mup)
        if pen is not None:
            pen_problems.extend(
                mrid
                for mrid in (mup.mrid, *types)
                if not (mrid[-8:].isdigit() and int(mrid[-8:]) == pen)
            )
        for reading in mup.readings():
            mrid = (reading.value("mRID") or "").upper()
            if mrid not in types:
                continue
            scale = 10.0 ** int(types[mrid].value("powerOfTenMultiplier") or "0")
            rows = by_mrid.setdefault(mrid, [])
            for item in _reading_items(reading):
                period = item.find("timePeriod")
                value = item.value("value")
                if period is None or value is None:
                    continue
                rows.append(
                    _Reading(
                        mrid,
                        int(period.value("start") or "0"),
                        int(period.value("duration") or "0"),
                        float(value) * scale,
                    )
                )
    return chosen, by_mrid, pen_problems


def _reading_items(reading: XmlElement) -> list[XmlElement]:
    items = list(reading.iter_named("Reading"))
    for reading_set in reading.iter_named("MirrorReadingSet"):
        items.extend(reading_set.iter_named("Reading"))
    return items


def readings(run: ProcedureRun, params: dict[str, Any], uom: int, role: int) -> CheckResult:
    """One readings check (see the module doc)."""
    known = {"minimum_count", "minimum_level", "maximum_level", "window_seconds"}
    known.add("latest_reading_only")
    for key in params:
        if key not in known:
            raise UnknownCheckError(f"readings check parameter {key!r} is not implemented")
    where = "site" if role == SITE_ROLE else "DER"
    mups, by_mrid, pen_problems = _readings(run, uom, role)
    if not mups:
        return _fail(f"no {where} usage point with average readings of uom {uom}")
    if pen_problems:
        return _fail(f"{len(pen_problems)} mRIDs do not end with the PEN: {pen_problems[:3]}")
    every = [r for rows in by_mrid.values() for r in rows]
    bad = [r for r in every if r.duration <= 0 or r.duration % 60 or r.start % 60]
    if bad:
        return _fail(f"{len(bad)} readings not on whole minutes, e.g. {bad[0]}")
    minimum = params.get("minimum_count")
    if minimum is not None:
        best = max((len(rows) for rows in by_mrid.values()), default=0)
        if best < int(minimum):
            return _fail(f"no {where} reading of uom {uom} has {minimum} readings (best {best})")
    low, high = params.get("minimum_level"), params.get("maximum_level")
    window = params.get("window_seconds")
    if low is None and high is None:
        return _ok(f"{len(every)} readings")
    if window:
        if not every:
            return _fail("no readings")
        end = max(r.start + r.duration for r in every)
        values = [r.value for r in every if r.start >= end - int(window)]
    else:
        latest = [
            max(rows, key=lambda r: r.start + r.duration) for rows in by_mrid.values() if rows
        ]
        if len(latest) < len(by_mrid) or not latest:
            return _fail(f"no readings for {where} uom {uom}")
        values = [r.value for r in latest]
    out = [v for v in values if (low is not None and v < low) or (high is not None and v > high)]
    if out:
        return _fail(f"{where} uom {uom}: {out[:4]} outside [{low}, {high}]")
    return _ok(f"{len(values)} readings within [{low}, {high}]")


def readings_voltage(run: ProcedureRun, params: dict[str, Any]) -> CheckResult:
    site = readings(run, params, UOM_V, SITE_ROLE)
    return site if site.passed else readings(run, params, UOM_V, DER_ROLE)


def responses(run: ProcedureRun, params: dict[str, Any]) -> CheckResult:
    for key in params:
        if key not in {"latest", "status", "all", "subject_tag", "exists"}:
            raise UnknownCheckError(f"response-contents parameter {key!r} is not implemented")
    status = params.get("status")
    records = [r for r in run.state.responses if r.kind == "DERControlResponse"]
    if params.get("all"):
        controls = [m for p in run.state.programs.values() for m in p.controls]
        answered = {
            (r.subject or "").upper() for r in records if status is None or r.status == status
        }
        missing = [m for m in controls if m.upper() not in answered]
        if missing:
            return _fail(f"{len(missing)} DERControls have no Response of status {status}")
        return _ok(f"all {len(controls)} DERControls answered {status}")
    tag = params.get("subject_tag")
    if tag is not None:
        mrid = run.tags.get(tag)
        if mrid is None:
            return _fail(f"no DERControl tagged {tag}")
        records = [r for r in records if (r.subject or "").upper() == mrid.upper()]
    exists = params.get("exists", True)
    if params.get("latest"):
        if not records:
            return _fail(f"no Responses{f' for {tag}' if tag else ''}")
        latest = records[-1]
        good = status is None or latest.status == status
        return CheckResult(good, f"latest Response status {latest.status}, expected {status}")
    found = [r for r in records if status is None or r.status == status]
    if bool(found) != bool(exists):
        return _fail(f"Responses of status {status}{f' for {tag}' if tag else ''}: {len(found)}")
    return _ok(f"{len(found)} Responses of status {status}")


def polls_on_time(run: ProcedureRun, params: dict[str, Any]) -> CheckResult:
    """Every endpoint polled no less than once per 1.5 intervals (one miss per five
    intervals forgiven) and no more than 6 times per 3 intervals, from the test's start."""
    interval = int(params["poll_interval_seconds"])
    method = str(params["request_type_str"]).upper()
    started = run.started_at
    if started is None:
        return _fail("the test never started")
    for endpoint in params["endpoints"]:
        times = sorted(
            r.time
            for r in run.server.requests
            if r.method == method
            and r.time >= started
            and r.query.get("s", "0") == "0"
            and run.matches(endpoint, r)
        )
        if not times:
            return _fail(f"no {method} {endpoint} since the test started")
        gaps = [b for a, b in itertools.pairwise(times) if b - a > 1.5 * interval]
        window = started
        while window + 5 * interval <= times[-1]:
            missed = [g for g in gaps if window <= g < window + 5 * interval]
            if len(missed) > 1:
                return _fail(f"{endpoint}: {len(missed)} polls missed in {5 * interval} s")
            window += 5 * interval
        window = started
        most = math.floor(1.5 * 3 + 2)
        while window < times[-1]:
            count = sum(1 for t in times if window <= t < window + 3 * interval)
            if count > most:
                return _fail(f"{endpoint}: {count} polls in {3 * interval} s (at most {most})")
            window += 3 * interval
    return _ok()


_RESOURCES: dict[str, str] = {
    "DERProgramList": "/edev/*/fsa/*/derp",
    "DERProgram": "/edev/*/derp/*",
    "DERControlList": "/edev/*/derp/*/derc",
    "DERControl": "/edev/*/derp/*/derc/*",
    "DefaultDERControl": "/edev/*/derp/*/dderc",
}
"""A resource's path on the reference server, ``*`` one whole path component."""


def _component_match(path: str, pattern: str) -> bool:
    """``*`` matches exactly one path component, never part of one."""
    have = [c for c in path.split("/") if c]
    want = [c for c in pattern.split("/") if c]
    return len(have) == len(want) and all(w in ("*", h) for h, w in zip(have, want, strict=True))


def resource_requests(run: ProcedureRun, params: dict[str, Any]) -> CheckResult:
    """Requests for any of the resources, counted as the reference counts them: every
    request of the run (from the client's first, before the test started, to the finish),
    whatever its method and whatever it was answered (the forced 429s count), by path
    without the query (each page of a list counts)."""
    for key in params:
        if key not in {"resources", "minimum_count", "maximum_count"}:
            raise UnknownCheckError(f"resource-requests parameter {key!r} is not implemented")
    names = [str(r) for r in params["resources"]]
    unknown = [n for n in names if n not in _RESOURCES]
    if unknown:
        raise UnknownCheckError(f"resource-requests for {unknown} is not implemented")
    patterns = [_RESOURCES[n] for n in names]
    seen = [
        r
        for r in run.server.requests
        if any(_component_match(run.reference(r), pattern) for pattern in patterns)
    ]
    count = len(seen)
    shown = ", ".join(f"{r.method} {r.time - run.begin:.0f}s {r.status}" for r in seen[:12])
    low, high = params.get("minimum_count"), params.get("maximum_count")
    if low is not None and count < int(low):
        return _fail(f"{count} requests for {names}, expected at least {low}: {shown}")
    if high is not None and count > int(high):
        return _fail(f"{count} requests for {names}, expected at most {high}: {shown}")
    return _ok(f"{count} requests for {names}: {shown}")


def all_steps_complete(run: ProcedureRun, params: dict[str, Any]) -> CheckResult:
    ignored = set(params.get("ignored_steps") or [])
    left = [name for name in run.listeners if name not in ignored]
    return _fail(f"steps not completed: {left}") if left else _ok()


CHECKS: dict[str, Callable[[ProcedureRun, dict[str, Any]], CheckResult]] = {
    "all-steps-complete": all_steps_complete,
    "end-device-contents": end_device,
    "der-settings-contents": der_settings,
    "der-capability-contents": der_capability,
    "der-status-contents": der_status,
    "readings-site-active-power": lambda run, p: readings(run, p, UOM_W, SITE_ROLE),
    "readings-site-reactive-power": lambda run, p: readings(run, p, UOM_VAR, SITE_ROLE),
    "readings-der-active-power": lambda run, p: readings(run, p, UOM_W, DER_ROLE),
    "readings-der-reactive-power": lambda run, p: readings(run, p, UOM_VAR, DER_ROLE),
    "readings-voltage": readings_voltage,
    "response-contents": responses,
    "all-polls-at-correct-time": polls_on_time,
    "resource-requests": resource_requests,
}


def run_check(run: ProcedureRun, check_type: str, params: dict[str, Any]) -> CheckResult:
    """Run one check; an unknown type fails the procedure loudly."""
    check = CHECKS.get(check_type)
    if check is None:
        raise UnknownCheckError(f"check type {check_type!r} is not implemented by the runner")
    return check(run, params)


__all__ = ["CHECKS", "CheckResult", "RequestRecord", "UnknownCheckError", "run_check"]
