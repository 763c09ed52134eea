"""Safe reading and writing of application/sep+xml documents.

Servers are outside our control, so a body is checked before and while it is parsed: a size
cap, no DOCTYPE at all (which rules out entity expansion, XXE and "billion laughs"), and a
nesting cap. Elements are matched by namespace URI, never by prefix, because servers use
``ns2:`` and other prefixes as freely as a default namespace.

Parsing goes through xmltodict with every option we rely on passed explicitly, so the result
is the same on the xmltodict versions Home Assistant pins (0.13 and 1.0).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

import xmltodict  # type: ignore[import-untyped,unused-ignore]

SEP_NS = "urn:ieee:std:2030.5:ns"
CSIPAUS_NS = "https://csipaus.org/ns"
CSIPAUS_PREFIX = "csipaus"
CONTENT_TYPE = "application/sep+xml"

MAX_BODY_BYTES = 1 << 20
"""Largest body parsed; a full page of DERControls is a few tens of KiB."""
MAX_DEPTH = 32
"""Deepest element nesting accepted; 2030.5 documents stay under ten levels."""

_NS_SEP = "|"  # expat's namespace separator: cannot occur in an element's local name
_KNOWN_NS = (SEP_NS, CSIPAUS_NS)


class XmlError(ValueError):
    """A body is not a document we can use."""


class XmlTooLargeError(XmlError):
    """The body exceeds the size limit; it was not parsed."""


class XmlForbiddenError(XmlError):
    """The body uses a construct we refuse (DOCTYPE, entities, excessive nesting)."""


class XmlMalformedError(XmlError):
    """The body is not well-formed XML."""


class XmlNamespaceError(XmlError):
    """The root element is not the expected 2030.5 or CSIP-AUS element."""


class XmlContentError(XmlError):
    """A well-formed document lacks an element or holds a value of the wrong type.

    ``path`` names the element, e.g. ``DERControlList/DERControl[2]/interval/start``.
    """

    def __init__(self, path: str, problem: str) -> None:
        """Keep the path separately so callers can log it."""
        super().__init__(f"{path}: {problem}")
        self.path = path


@dataclass(frozen=True, slots=True)
class Element:
    """One parsed element: namespace URI, local name, unqualified attributes, text, children.

    Children are grouped by name (as xmltodict returns them), in document order within a name;
    2030.5 readers look children up by name, so the interleaving does not matter.
    """

    ns: str
    name: str
    path: str
    attrs: Mapping[str, str] = field(default_factory=dict)
    text: str | None = None
    children: tuple[Element, ...] = ()

    def find_all(self, name: str, ns: str = SEP_NS) -> list[Element]:
        """All children with this name in this namespace."""
        return [c for c in self.children if c.name == name and c.ns == ns]

    def find(self, name: str, ns: str = SEP_NS) -> Element | None:
        """The first child with this name, or None."""
        for child in self.children:
            if child.name == name and child.ns == ns:
                return child
        return None

    def require(self, name: str, ns: str = SEP_NS) -> Element:
        """The first child with this name; a missing one is a content error."""
        child = self.find(name, ns)
        if child is None:
            raise XmlContentError(self.path, f"missing mandatory element {_qname(name, ns)}")
        return child

    def text_of(self, name: str, ns: str = SEP_NS) -> str | None:
        """The text of a child, None when the child is absent or empty."""
        child = self.find(name, ns)
        return None if child is None else child.text

    def attr(self, name: str) -> str | None:
        """An unqualified attribute, or None."""
        return self.attrs.get(name)


def _qname(name: str, ns: str) -> str:
    return f"{CSIPAUS_PREFIX}:{name}" if ns == CSIPAUS_NS else name


class _RefusedError(Exception):
    """Raised inside expat callbacks; turned into XmlForbiddenError."""


def _refuse_doctype(*_args: object) -> None:
    raise _RefusedError("DOCTYPE declarations are not accepted")


def _refuse_entity(*_args: object) -> None:
    raise _RefusedError("entity declarations are not accepted")


class _GuardedExpat:
    """Stands in for the expat module so xmltodict's parser refuses any DOCTYPE.

    xmltodict's own ``disable_entities`` differs between versions; refusing the DOCTYPE
    itself leaves no room for entity definitions, external or internal.
    """

    ExpatError = expat.ExpatError
    error = expat.error

    @staticmethod
    def ParserCreate(  # noqa: N802 - the expat module's name, called by xmltodict
        encoding: str | None = None, namespace_separator: str | None = None
    ) -> expat.XMLParserType:
        parser = expat.ParserCreate(encoding, namespace_separator)
        parser.StartDoctypeDeclHandler = _refuse_doctype
        parser.EntityDeclHandler = _refuse_entity
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        return parser


def parse_xml(
    body: bytes | str,
    *,
    expected: str | Iterable[str] | None = None,
    max_bytes: int = MAX_BODY_BYTES,
) -> Element:
    """Parse a sep+xml body into an Element tree.

    ``expected`` names the acceptable root element(s): plain for 2030.5 (``EndDevice``),
    ``csipaus:`` prefixed for CSIP-AUS (``csipaus:ConnectionPoint``). The root must be in one
    of those two namespaces in any case.
    """
    data = body.encode("utf-8") if isinstance(body, str) else body
    if len(data) > max_bytes:
        raise XmlTooLargeError(f"body of {len(data)} bytes exceeds the {max_bytes} byte limit")
    if not data.strip():
        raise XmlMalformedError("empty body")
    try:
        raw = xmltodict.parse(
            data,
            encoding=None,
            expat=_GuardedExpat,
            process_namespaces=True,
            namespace_separator=_NS_SEP,
            namespaces={},
            disable_entities=True,
            process_comments=False,
            xml_attribs=True,
            attr_prefix="@",
            cdata_key="#text",
            force_cdata=False,
            cdata_separator="",
            strip_whitespace=True,
            force_list=None,
            postprocessor=None,
            item_depth=0,
            dict_constructor=dict,
        )
    except _RefusedError as err:
        raise XmlForbiddenError(str(err)) from None
    except expat.ExpatError as err:
        raise XmlMalformedError(f"not well-formed XML: {err}") from None
    except (ValueError, LookupError) as err:  # unknown or unsupported declared encoding
        raise XmlMalformedError(f"unreadable body: {err}") from None
    if not isinstance(raw, dict) or len(raw) != 1:
        raise XmlMalformedError("document has no single root element")
    ((key, value),) = cast("dict[str, Any]", raw).items()
    ns, name = _split(key)
    if ns not in _KNOWN_NS:
        raise XmlNamespaceError(
            f"root element {name!r} is in namespace {ns or '(none)'!r}, "
            f"not {SEP_NS!r} or {CSIPAUS_NS!r}"
        )
    root = _convert(ns, name, value, _qname(name, ns), 1)
    if expected is not None:
        wanted = {expected} if isinstance(expected, str) else set(expected)
        if _qname(name, ns) not in wanted:
            raise XmlNamespaceError(
                f"root element is {_qname(name, ns)!r}, expected {' or '.join(sorted(wanted))}"
            )
    return root


def _split(key: str) -> tuple[str, str]:
    ns, sep, name = key.rpartition(_NS_SEP)
    return (ns, name) if sep else ("", key)


def _convert(ns: str, name: str, value: object, path: str, depth: int) -> Element:
    if depth > MAX_DEPTH:
        raise XmlForbiddenError(f"{path}: nesting deeper than {MAX_DEPTH} levels")
    if value is None:
        return Element(ns, name, path)
    if isinstance(value, str):
        return Element(ns, name, path, text=value)
    attrs: dict[str, str] = {}
    text: str | None = None
    children: list[Element] = []
    counts: dict[str, int] = {}
    for key, item in cast("dict[str, Any]", value).items():
        if key == "#text":
            text = str(item)
        elif key.startswith("@"):
            # Namespace declarations arrive as a dict; qualified attributes are not ours.
            if isinstance(item, str) and _NS_SEP not in key:
                attrs[key[1:]] = item
        else:
            child_ns, child_name = _split(key)
            for child in item if isinstance(item, list) else [item]:
                counts[key] = counts.get(key, 0) + 1
                label = _qname(child_name, child_ns) if child_ns in _KNOWN_NS else child_name
                child_path = f"{path}/{label}"
                if isinstance(item, list):
                    child_path += f"[{counts[key]}]"
                children.append(_convert(child_ns, child_name, child, child_path, depth + 1))
    return Element(ns, name, path, attrs, text, tuple(children))


# --- writing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """An element to write. ``name`` is plain for 2030.5, ``csipaus:`` prefixed for CSIP-AUS."""

    name: str
    children: Sequence[Node] = ()
    text: str | None = None
    attrs: Mapping[str, str] = field(default_factory=dict)


def node(name: str, *children: Node | None, attrs: Mapping[str, str] | None = None) -> Node:
    """An element with children; None children (absent optional fields) are left out."""
    return Node(name, tuple(c for c in children if c is not None), None, dict(attrs or {}))


def leaf(name: str, value: str | int | None) -> Node | None:
    """A text element, or None for an absent optional field."""
    if value is None:
        return None
    return Node(name, (), str(value))


def _uses_csipaus(root: Node) -> bool:
    stack = [root]
    while stack:
        current = stack.pop()
        if current.name.startswith(f"{CSIPAUS_PREFIX}:"):
            return True
        stack.extend(current.children)
    return False


def to_xml(root: Node, *, declaration: bool = True) -> bytes:
    """Write a document: 2030.5 as the default namespace, ``csipaus`` declared when used."""
    ns_attrs = {"xmlns": SEP_NS}
    if _uses_csipaus(root):
        ns_attrs[f"xmlns:{CSIPAUS_PREFIX}"] = CSIPAUS_NS
    top = Node(root.name, root.children, root.text, {**ns_attrs, **root.attrs})
    parts = ['<?xml version="1.0" encoding="UTF-8"?>'] if declaration else []
    parts.extend(_write(top))
    return "".join(parts).encode("utf-8")


def _write(current: Node) -> Iterator[str]:
    attrs = "".join(f" {k}={quoteattr(v)}" for k, v in current.attrs.items())
    if not current.children and current.text is None:
        yield f"<{current.name}{attrs}/>"
        return
    yield f"<{current.name}{attrs}>"
    if current.text is not None:
        yield escape(current.text)
    for child in current.children:
        yield from _write(child)
    yield f"</{current.name}>"
