"""The test server's own XML: writing its documents and reading (and checking) the client's.

This module is deliberately independent of the client's ``csip`` package so the two
implementations check each other. Writing uses a small element tree with an explicit
serializer, so tests can choose how namespaces are declared (default namespace, ``ns2``,
``csipaus`` or a fresh default declaration on every CSIP-AUS element). Reading goes through
``defusedxml`` and refuses DTDs and entities. ``validate`` checks a parsed document against
element names, orders, cardinalities and simple types transcribed from IEEE 2030.5 sep.xsd
and the CSIP-AUS extension schemas, for the resources a client sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape, quoteattr

import defusedxml
from defusedxml.ElementTree import fromstring

SEP_NS = "urn:ieee:std:2030.5:ns"
CSIP_NS = "https://csipaus.org/ns"
SEP_XML = "application/sep+xml"


# --------------------------------------------------------------------------------------------
# Writing


@dataclass(slots=True)
class Node:
    """One element to write: a local name in a namespace, attributes, text or children."""

    name: str
    ns: str = SEP_NS
    attrs: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    children: list[Node] = field(default_factory=list)

    def add(self, *nodes: Node | None) -> Node:
        """Append the given children (``None`` is skipped) and return self."""
        self.children.extend(n for n in nodes if n is not None)
        return self


def el(name: str, *children: Node | None, ns: str = SEP_NS, **attrs: object) -> Node:
    """An element with child elements; attributes whose value is ``None`` are left out."""
    node = Node(name, ns, {k: _attr(v) for k, v in attrs.items() if v is not None})
    return node.add(*children)


def leaf(name: str, value: object, ns: str = SEP_NS) -> Node | None:
    """A simple-content element, or ``None`` (left out) when the value is ``None``."""
    if value is None:
        return None
    return Node(name, ns, text=_attr(value))


def _attr(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class XmlStyle:
    """How namespaces are written.

    ``sep_prefix``: ``None`` makes IEEE 2030.5 the default namespace, else its prefix.
    ``csip_prefix``: the prefix for CSIP-AUS elements, or ``None`` to write each CSIP-AUS
    element with its own default-namespace declaration (``<opModExpLimW xmlns="...">``),
    whose IEEE 2030.5 children then re-declare theirs.
    """

    sep_prefix: str | None = None
    csip_prefix: str | None = "csipaus"
    declaration: bool = True


DEFAULT_STYLE = XmlStyle()


def render(root: Node, style: XmlStyle = DEFAULT_STYLE) -> bytes:
    """Serialize ``root``; prefixed namespaces are declared on the root element."""
    prefixes: dict[str, str] = {}
    if style.sep_prefix is not None:
        prefixes[SEP_NS] = style.sep_prefix
    if style.csip_prefix is not None and _uses(root, CSIP_NS):
        prefixes[CSIP_NS] = style.csip_prefix
    out: list[str] = []
    if style.declaration:
        out.append('<?xml version="1.0" encoding="UTF-8"?>\n')
    root_decls = [f"xmlns:{p}={quoteattr(ns)}" for ns, p in prefixes.items()]
    _write(root, prefixes, None, root_decls, out)
    return "".join(out).encode()


def _uses(node: Node, ns: str) -> bool:
    return node.ns == ns or any(_uses(c, ns) for c in node.children)


def _write(
    node: Node, prefixes: dict[str, str], default_ns: str | None, decls: list[str], out: list[str]
) -> None:
    decls = list(decls)
    if node.ns in prefixes:
        tag = f"{prefixes[node.ns]}:{node.name}"
    else:
        tag = node.name
        if node.ns != default_ns:
            decls.append(f"xmlns={quoteattr(node.ns)}")
            default_ns = node.ns
    parts = [tag, *decls, *(f"{k}={quoteattr(v)}" for k, v in node.attrs.items())]
    start = " ".join(parts)
    if node.children:
        out.append(f"<{start}>")
        for child in node.children:
            _write(child, prefixes, default_ns, [], out)
        out.append(f"</{tag}>")
    elif node.text is not None:
        out.append(f"<{start}>{escape(node.text)}</{tag}>")
    else:
        out.append(f"<{start}/>")


# --------------------------------------------------------------------------------------------
# Reading


class XmlError(ValueError):
    """A body that is not acceptable XML (malformed, DTD or entities, wrong root)."""


@dataclass(slots=True)
class XmlElement:
    """A parsed element: local name, namespace, attributes, stripped text and children."""

    name: str
    ns: str
    attrs: dict[str, str]
    text: str | None
    children: list[XmlElement]

    def child(self, name: str, ns: str | None = None) -> XmlElement | None:
        """The first child with this local name (and namespace, if given)."""
        return next(self.iter_named(name, ns), None)

    def iter_named(self, name: str, ns: str | None = None) -> Iterator[XmlElement]:
        """Children with this local name (and namespace, if given)."""
        return (c for c in self.children if c.name == name and (ns is None or c.ns == ns))

    def find(self, path: str) -> XmlElement | None:
        """Follow a ``/``-separated path of local names."""
        node: XmlElement | None = self
        for part in path.split("/"):
            if node is None:
                return None
            node = node.child(part)
        return node

    def value(self, path: str) -> str | None:
        """The text at a ``/``-separated path of local names, or ``None``."""
        node = self.find(path)
        return None if node is None else node.text

    def to_dict(self) -> dict[str, object]:
        """A plain nested dict: attributes as ``@name``, repeated children as lists."""
        result: dict[str, object] = {f"@{k}": v for k, v in self.attrs.items()}
        for c in self.children:
            value: object = c.to_dict() if c.children or c.attrs else c.text
            if c.name in result:
                existing = result[c.name]
                if isinstance(existing, list):
                    existing.append(value)
                else:
                    result[c.name] = [existing, value]
            else:
                result[c.name] = value
        if self.text is not None and not self.children:
            result["#text"] = self.text
        return result


def parse(body: bytes) -> XmlElement:
    """Parse a body; DTDs, entity declarations and external references are refused."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, defusedxml.DefusedXmlException) as err:
        raise XmlError(f"{type(err).__name__}: {err}") from err
    return _convert(root)


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def _convert(element: Element) -> XmlElement:
    ns, name = _split(element.tag)
    attrs = {}
    for key, value in element.attrib.items():
        attr_ns, local = _split(key)
        attrs[local if not attr_ns else key] = value
    text = element.text.strip() if element.text and element.text.strip() else None
    return XmlElement(name, ns, attrs, text, [_convert(c) for c in element])


# --------------------------------------------------------------------------------------------
# Checking what a client sends, against the published schemas' structure


@dataclass(frozen=True, slots=True)
class Particle:
    """One element of a sequence: name, namespace, occurrences and its type name."""

    name: str
    type: str
    min: int = 0
    max: int | None = 1
    ns: str = SEP_NS


def _p(name: str, type_: str, min_: int = 0, max_: int | None = 1, ns: str = SEP_NS) -> Particle:
    return Particle(name, type_, min_, max_, ns)


def _req(name: str, type_: str, ns: str = SEP_NS) -> Particle:
    return Particle(name, type_, 1, 1, ns)


@dataclass(frozen=True, slots=True)
class ComplexType:
    """A sequence of particles plus the attributes allowed on the element."""

    particles: tuple[Particle, ...]
    attrs: dict[str, str] = field(default_factory=dict)
    required_attrs: frozenset[str] = frozenset()


_RES = {"href": "anyURI"}
_SUB = {"href": "anyURI", "subscribable": "UInt8"}

_UNIT_VALUE = (_req("multiplier", "Int8"), _req("value", "UInt16"))


def _status(values: str) -> tuple[Particle, ...]:
    """A DERStatus value whose UInt8 must be one of the enumeration ``values``."""
    return (_req("dateTime", "Int64"), _req("value", values))


# Link and ListLink elements an EndDevice may carry, in schema order (with their kind).
_EDEV_PARTICLES = (
    _p("ConfigurationLink", "Link"),
    _p("DERListLink", "ListLink"),
    _p("deviceCategory", "HexBinary32"),
    _p("DeviceInformationLink", "Link"),
    _p("DeviceStatusLink", "Link"),
    _p("FileStatusLink", "Link"),
    _p("IPInterfaceListLink", "ListLink"),
    _p("lFDI", "HexBinary160"),
    _p("LoadShedAvailabilityListLink", "ListLink"),
    _p("LogEventListLink", "ListLink"),
    _p("PowerStatusLink", "Link"),
    _req("sFDI", "UInt40"),
    _req("changedTime", "Int64"),
    _p("enabled", "boolean"),
    _p("FlowReservationRequestListLink", "ListLink"),
    _p("FlowReservationResponseListLink", "ListLink"),
    _p("FunctionSetAssignmentsListLink", "ListLink"),
    _p("postRate", "UInt32"),
    _p("RegistrationLink", "Link"),
    _p("SubscriptionListLink", "ListLink"),
    _p("ConnectionPointLink", "Link", ns=CSIP_NS),
)

_MRID_HEAD = (_req("mRID", "HexBinary128"), _p("description", "String32"), _p("version", "UInt16"))

SCHEMA: dict[str, ComplexType] = {
    "Link": ComplexType((), {"href": "anyURI"}, frozenset({"href"})),
    "ListLink": ComplexType((), {"href": "anyURI", "all": "UInt32"}, frozenset({"href"})),
    "ActivePower": ComplexType((_req("multiplier", "Int8"), _req("value", "Int16"))),
    "ReactivePower": ComplexType((_req("multiplier", "Int8"), _req("value", "Int16"))),
    "ApparentPower": ComplexType(_UNIT_VALUE),
    "CurrentRMS": ComplexType(_UNIT_VALUE),
    "AmpereHour": ComplexType(_UNIT_VALUE),
    "VoltageRMS": ComplexType(_UNIT_VALUE),
    "WattHour": ComplexType(_UNIT_VALUE),
    "ReactiveSusceptance": ComplexType(_UNIT_VALUE),
    "PowerFactor": ComplexType((_req("displacement", "UInt16"), _req("multiplier", "Int8"))),
    "UnitValueType": ComplexType(
        (_req("multiplier", "Int8"), _req("unit", "UInt8"), _req("value", "Int32"))
    ),
    "DateTimeInterval": ComplexType((_req("duration", "UInt32"), _req("start", "Int64"))),
    "ConnectStatusType": ComplexType((_req("dateTime", "Int64"), _req("value", "HexBinary8"))),
    "InverterStatusType": ComplexType(_status("InverterStatus")),
    "LocalControlModeStatusType": ComplexType(_status("LocalControlMode")),
    "OperationalModeStatusType": ComplexType(_status("OperationalMode")),
    "StorageModeStatusType": ComplexType(_status("StorageMode")),
    "StateOfChargeStatusType": ComplexType((_req("dateTime", "Int64"), _req("value", "UInt16"))),
    "ManufacturerStatusType": ComplexType((_req("dateTime", "Int64"), _req("value", "String6"))),
    "EndDevice": ComplexType(_EDEV_PARTICLES, _SUB),
    "ConnectionPoint": ComplexType((_req("connectionPointId", "String32", CSIP_NS),), _RES),
    "DERCapability": ComplexType(
        (
            _req("modesSupported", "HexBinary32"),
            _p("rtgAbnormalCategory", "UInt8"),
            _p("rtgMaxA", "CurrentRMS"),
            _p("rtgMaxAh", "AmpereHour"),
            _p("rtgMaxChargeRateVA", "ApparentPower"),
            _p("rtgMaxChargeRateW", "ActivePower"),
            _p("rtgMaxDischargeRateVA", "ApparentPower"),
            _p("rtgMaxDischargeRateW", "ActivePower"),
            _p("rtgMaxV", "VoltageRMS"),
            _p("rtgMaxVA", "ApparentPower"),
            _p("rtgMaxVar", "ReactivePower"),
            _p("rtgMaxVarNeg", "ReactivePower"),
            _req("rtgMaxW", "ActivePower"),
            _p("rtgMaxWh", "WattHour"),
            _p("rtgMinPFOverExcited", "PowerFactor"),
            _p("rtgMinPFUnderExcited", "PowerFactor"),
            _p("rtgMinV", "VoltageRMS"),
            _p("rtgNormalCategory", "UInt8"),
            _p("rtgOverExcitedPF", "PowerFactor"),
            _p("rtgOverExcitedW", "ActivePower"),
            _p("rtgReactiveSusceptance", "ReactiveSusceptance"),
            _p("rtgUnderExcitedPF", "PowerFactor"),
            _p("rtgUnderExcitedW", "ActivePower"),
            _p("rtgVNom", "VoltageRMS"),
            _req("type", "DERType"),
            _req("doeModesSupported", "HexBinary8", CSIP_NS),
        ),
        _RES,
    ),
    "DERSettings": ComplexType(
        (
            _p("modesEnabled", "HexBinary32"),
            _p("setESDelay", "UInt32"),
            _p("setESHighFreq", "UInt16"),
            _p("setESHighVolt", "Int16"),
            _p("setESLowFreq", "UInt16"),
            _p("setESLowVolt", "Int16"),
            _p("setESRampTms", "UInt32"),
            _p("setESRandomDelay", "UInt32"),
            _req("setGradW", "UInt16"),
            _p("setMaxA", "CurrentRMS"),
            _p("setMaxAh", "AmpereHour"),
            _p("setMaxChargeRateVA", "ApparentPower"),
            _p("setMaxChargeRateW", "ActivePower"),
            _p("setMaxDischargeRateVA", "ApparentPower"),
            _p("setMaxDischargeRateW", "ActivePower"),
            _p("setMaxV", "VoltageRMS"),
            _p("setMaxVA", "ApparentPower"),
            _p("setMaxVar", "ReactivePower"),
            _p("setMaxVarNeg", "ReactivePower"),
            _req("setMaxW", "ActivePower"),
            _p("setMaxWh", "WattHour"),
            _p("setMinPFOverExcited", "PowerFactor"),
            _p("setMinPFUnderExcited", "PowerFactor"),
            _p("setMinV", "VoltageRMS"),
            _p("setSoftGradW", "UInt16"),
            _p("setVNom", "VoltageRMS"),
            _p("setVRef", "VoltageRMS"),
            _p("setVRefOfs", "VoltageRMS"),
            _req("updatedTime", "Int64"),
            _p("doeModesEnabled", "HexBinary8", ns=CSIP_NS),
        ),
        _SUB,
    ),
    "DERStatus": ComplexType(
        (
            _p("alarmStatus", "HexBinary32"),
            _p("genConnectStatus", "ConnectStatusType"),
            _p("inverterStatus", "InverterStatusType"),
            _p("localControlModeStatus", "LocalControlModeStatusType"),
            _p("manufacturerStatus", "ManufacturerStatusType"),
            _p("operationalModeStatus", "OperationalModeStatusType"),
            _req("readingTime", "Int64"),
            _p("stateOfChargeStatus", "StateOfChargeStatusType"),
            _p("storageModeStatus", "StorageModeStatusType"),
            _p("storConnectStatus", "ConnectStatusType"),
        ),
        _SUB,
    ),
    "DERAvailability": ComplexType(
        (
            _p("availabilityDuration", "UInt32"),
            _p("maxChargeDuration", "UInt32"),
            _req("readingTime", "Int64"),
            _p("reserveChargePercent", "UInt16"),
            _p("reservePercent", "UInt16"),
            _p("statVarAvail", "ReactivePower"),
            _p("statWAvail", "ActivePower"),
        ),
        _SUB,
    ),
    "Response": ComplexType(
        (
            _p("createdDateTime", "Int64"),
            _req("endDeviceLFDI", "HexBinary160"),
            _p("status", "UInt8"),
            _req("subject", "HexBinary128"),
        ),
        _RES,
    ),
    "Reading": ComplexType(
        (
            _p("consumptionBlock", "UInt8"),
            _p("qualityFlags", "HexBinary16"),
            _p("timePeriod", "DateTimeInterval"),
            _p("touTier", "UInt8"),
            _p("value", "Int48"),
            _p("localID", "HexBinary16"),
        ),
        _SUB,
    ),
    "ReadingType": ComplexType(
        (
            _p("accumulationBehaviour", "UInt8"),
            _p("calorificValue", "UnitValueType"),
            _p("commodity", "UInt8"),
            _p("conversionFactor", "UnitValueType"),
            _p("dataQualifier", "UInt8"),
            _p("flowDirection", "UInt8"),
            _p("intervalLength", "UInt32"),
            _p("kind", "UInt8"),
            _p("maxNumberOfIntervals", "UInt8"),
            _p("numberOfConsumptionBlocks", "UInt8"),
            _p("numberOfTouTiers", "UInt8"),
            _p("phase", "UInt8"),
            _p("powerOfTenMultiplier", "Int8"),
            _p("subIntervalLength", "UInt32"),
            _p("supplyLimit", "UInt48"),
            _p("tieredConsumptionBlocks", "boolean"),
            _p("uom", "UInt8"),
        ),
        _RES,
    ),
    "MirrorReadingSet": ComplexType(
        (*_MRID_HEAD, _req("timePeriod", "DateTimeInterval"), _p("Reading", "Reading", 0, None)),
        _RES,
    ),
    "MirrorMeterReading": ComplexType(
        (
            *_MRID_HEAD,
            _p("lastUpdateTime", "Int64"),
            _p("MirrorReadingSet", "MirrorReadingSet", 0, None),
            _p("nextUpdateTime", "Int64"),
            _p("Reading", "Reading"),
            _p("ReadingType", "ReadingType"),
        ),
        _RES,
    ),
    "MirrorMeterReadingList": ComplexType(
        (_p("MirrorMeterReading", "MirrorMeterReading", 0, None),),
        {"href": "anyURI", "all": "UInt32", "results": "UInt32"},
        frozenset({"all", "results"}),
    ),
    "MirrorUsagePoint": ComplexType(
        (
            *_MRID_HEAD,
            _req("roleFlags", "HexBinary16"),
            _req("serviceCategoryKind", "UInt8"),
            _req("status", "UInt8"),
            _req("deviceLFDI", "HexBinary160"),
            _p("MirrorMeterReading", "MirrorMeterReading", 0, None),
            _p("postRate", "UInt32"),
        ),
        _RES,
    ),
}

# Root elements a client may send, by (namespace, name) → type name.
ROOTS: dict[tuple[str, str], str] = {
    (SEP_NS, "EndDevice"): "EndDevice",
    (CSIP_NS, "ConnectionPoint"): "ConnectionPoint",
    (SEP_NS, "DERCapability"): "DERCapability",
    (SEP_NS, "DERSettings"): "DERSettings",
    (SEP_NS, "DERStatus"): "DERStatus",
    (SEP_NS, "DERAvailability"): "DERAvailability",
    (SEP_NS, "Response"): "Response",
    (SEP_NS, "DERControlResponse"): "Response",
    (SEP_NS, "MirrorUsagePoint"): "MirrorUsagePoint",
    (SEP_NS, "MirrorMeterReading"): "MirrorMeterReading",
    (SEP_NS, "MirrorMeterReadingList"): "MirrorMeterReadingList",
}

_INT_RANGES = {
    "Int8": (-(2**7), 2**7 - 1),
    "Int16": (-(2**15), 2**15 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "Int48": (-(2**47), 2**47),
    "Int64": (-(2**63), 2**63 - 1),
    "UInt8": (0, 2**8 - 1),
    "UInt16": (0, 2**16 - 1),
    "UInt32": (0, 2**32 - 1),
    "UInt40": (0, 2**40 - 1),
    "UInt48": (0, 2**48 - 1),
}
_HEX_OCTETS = {
    "HexBinary8": 1,
    "HexBinary16": 2,
    "HexBinary32": 4,
    "HexBinary128": 16,
    "HexBinary160": 20,
}
_STRING_MAX = {"String6": 6, "String32": 32, "String192": 192}
_ENUMS: dict[str, frozenset[int]] = {
    "DERType": frozenset({0, 1, 2, 3, 4, 5, 6, 80, 81, 82, 83}),
    "InverterStatus": frozenset(range(11)),
    "LocalControlMode": frozenset({0, 1}),
    "OperationalMode": frozenset(range(4)),
    "StorageMode": frozenset(range(3)),
}
"""UInt8 values restricted to IEEE 2030.5 enumerations, as the reference server reads them
(a value outside is refused, not stored)."""
_INT_RE = re.compile(r"[+-]?[0-9]+")
_HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{2})*")


def check_simple(type_name: str, text: str | None) -> str | None:
    """Why ``text`` is not a valid value of the simple type, or ``None`` when it is."""
    value = text or ""
    if type_name in _ENUMS:
        problem = check_simple("UInt8", text)
        if problem is None and int(value) not in _ENUMS[type_name]:
            problem = f"{value} is not a {type_name} value"
        return problem
    if type_name in _INT_RANGES:
        low, high = _INT_RANGES[type_name]
        if not _INT_RE.fullmatch(value):
            return f"{value!r} is not an integer ({type_name})"
        if not low <= int(value) <= high:
            return f"{value} is out of range for {type_name}"
        return None
    if type_name in _HEX_OCTETS:
        if not _HEX_RE.fullmatch(value):
            return f"{value!r} is not hexBinary (an even number of hex digits)"
        if len(value) // 2 > _HEX_OCTETS[type_name]:
            return f"{value!r} is longer than {type_name}"
        return None
    if type_name in _STRING_MAX:
        if len(value) > _STRING_MAX[type_name]:
            return f"{value!r} is longer than {type_name}"
        return None
    if type_name == "boolean":
        if value not in {"true", "false", "1", "0"}:
            return f"{value!r} is not a boolean"
        return None
    if type_name == "anyURI":
        return None
    raise KeyError(type_name)


def validate(doc: XmlElement, allowed_roots: Iterable[str] | None = None) -> list[str]:
    """Schema errors of a client's document (empty when it is valid).

    ``allowed_roots`` limits the root element's local names accepted here.
    """
    type_name = ROOTS.get((doc.ns, doc.name))
    if type_name is None:
        return [f"unexpected root element {{{doc.ns}}}{doc.name}"]
    if allowed_roots is not None and doc.name not in set(allowed_roots):
        return [f"{doc.name} is not accepted here (expected one of {sorted(allowed_roots)})"]
    errors: list[str] = []
    _validate_complex(doc, type_name, doc.name, errors)
    return errors


def _validate_complex(node: XmlElement, type_name: str, where: str, errors: list[str]) -> None:
    ctype = SCHEMA[type_name]
    for attr, value in node.attrs.items():
        if attr not in ctype.attrs:
            errors.append(f"{where}: unexpected attribute {attr}")
            continue
        problem = check_simple(ctype.attrs[attr], value)
        if problem:
            errors.append(f"{where}@{attr}: {problem}")
    errors.extend(
        f"{where}: missing attribute {attr}" for attr in ctype.required_attrs - node.attrs.keys()
    )
    if node.text is not None and node.children:
        errors.append(f"{where}: mixed content")
    index = 0
    particles = ctype.particles
    counts = [0] * len(particles)
    for child in node.children:
        path = f"{where}/{child.name}"
        while index < len(particles) and not (
            particles[index].name == child.name and particles[index].ns == child.ns
        ):
            index += 1
        if index == len(particles):
            known = any(p.name == child.name and p.ns == child.ns for p in particles)
            reason = "out of schema order" if known else "not allowed here"
            if not known and any(p.name == child.name for p in particles):
                reason = f"in the wrong namespace {child.ns!r}"
            errors.append(f"{path}: {reason}")
            # Resume after the matching particle if it exists, to report later errors too.
            index = next(
                (i for i, p in enumerate(particles) if p.name == child.name and p.ns == child.ns),
                len(particles),
            )
            if index == len(particles):
                index = 0
                continue
        particle = particles[index]
        counts[index] += 1
        if particle.max is not None and counts[index] > particle.max:
            errors.append(f"{path}: more than {particle.max} occurrence(s)")
        if particle.type in SCHEMA:
            _validate_complex(child, particle.type, path, errors)
        else:
            if child.children:
                errors.append(f"{path}: expected simple content")
            problem = check_simple(particle.type, child.text)
            if problem:
                errors.append(f"{path}: {problem}")
    errors.extend(
        f"{where}: missing required {p.name}"
        for p, n in zip(particles, counts, strict=True)
        if n < p.min
    )
