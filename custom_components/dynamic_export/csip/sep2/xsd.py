"""Values read out of 2030.5 documents, checked against their XSD types.

A broken server document must fail while it is read, with an XmlContentError naming the
element, never later as a wrong limit; so every reader here checks type and range, and a
mandatory element that is absent is an error while an absent optional one is None. The
integer bounds are shared with the writers in ``serialise``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .resources import ListPage
from .units import ActivePower
from .xml import CSIPAUS_NS, SEP_NS, Element, XmlContentError, parse_xml

type Body = bytes | str | Element
"""A document as received, or an element already parsed out of one."""

INT8 = (-0x80, 0x7F)
UINT8 = (0, 0xFF)
INT16 = (-0x8000, 0x7FFF)
UINT16 = (0, 0xFFFF)
INT32 = (-0x8000_0000, 0x7FFF_FFFF)
UINT32 = (0, 0xFFFF_FFFF)
UINT40 = (0, 0xFF_FFFF_FFFF)
INT48 = (-0x8000_0000_0000, 0x7FFF_FFFF_FFFF)
INT64 = (-0x8000_0000_0000_0000, 0x7FFF_FFFF_FFFF_FFFF)
TIME = INT64

_INTEGER = re.compile(r"[+-]?[0-9]+")
_HEX = re.compile(r"[0-9A-Fa-f]*")


# --- text ---------------------------------------------------------------------------------------


def int_value(text: str | None, path: str, bounds: tuple[int, int]) -> int:
    """An integer within ``bounds``; ``path`` names the element in the error."""
    if text is None or not _INTEGER.fullmatch(text.strip()):
        raise XmlContentError(path, f"{text!r} is not an integer")
    value = int(text.strip())
    if not bounds[0] <= value <= bounds[1]:
        raise XmlContentError(path, f"{value} is outside {bounds[0]}..{bounds[1]}")
    return value


def bool_value(text: str | None, path: str) -> bool:
    """An XSD boolean: ``true``/``1`` or ``false``/``0``, nothing else."""
    match (text or "").strip():
        case "true" | "1":
            return True
        case "false" | "0":
            return False
        case _:
            raise XmlContentError(path, f"{text!r} is not a boolean")


def hex_value(text: str | None, path: str, octets: int) -> int:
    """A hexBinary bitmap of at most ``octets`` as a number (empty is 0)."""
    raw = (text or "").strip()
    if not _HEX.fullmatch(raw) or len(raw) > 2 * octets:
        raise XmlContentError(path, f"{text!r} is not hexBinary of at most {octets} octets")
    return int(raw, 16) if raw else 0


def hex_id(text: str | None, path: str, octets: int) -> str:
    """A hexBinary identifier (mRID, LFDI) kept as the server wrote it."""
    raw = (text or "").strip()
    if not raw or not _HEX.fullmatch(raw) or len(raw) > 2 * octets:
        raise XmlContentError(path, f"{text!r} is not a hex identifier of at most {octets} octets")
    return raw


# --- an element's children and attributes -------------------------------------------------------


def child_path(el: Element, name: str, ns: str = SEP_NS) -> str:
    """The path of ``el``'s child ``name``, also when it is missing (for errors)."""
    child = el.find(name, ns)
    return child.path if child is not None else f"{el.path}/{name}"


def integer(el: Element, name: str, bounds: tuple[int, int], ns: str = SEP_NS) -> int:
    """A mandatory integer child."""
    return int_value(el.require(name, ns).text, child_path(el, name, ns), bounds)


def opt_integer(el: Element, name: str, bounds: tuple[int, int], ns: str = SEP_NS) -> int | None:
    """An optional integer child."""
    child = el.find(name, ns)
    return None if child is None else int_value(child.text, child.path, bounds)


def opt_boolean(el: Element, name: str, ns: str = SEP_NS) -> bool | None:
    """An optional boolean child."""
    child = el.find(name, ns)
    return None if child is None else bool_value(child.text, child.path)


def hex_int(el: Element, name: str, octets: int, ns: str = SEP_NS) -> int:
    """A mandatory hexBinary bitmap child."""
    return hex_value(el.require(name, ns).text, child_path(el, name, ns), octets)


def opt_hex_int(el: Element, name: str, octets: int, ns: str = SEP_NS) -> int | None:
    """An optional hexBinary bitmap child."""
    child = el.find(name, ns)
    return None if child is None else hex_value(child.text, child.path, octets)


def mrid(el: Element) -> str:
    """The element's mandatory mRID (16 octets)."""
    return hex_id(el.require("mRID").text, child_path(el, "mRID"), 16)


def link(el: Element, name: str, ns: str = SEP_NS) -> str | None:
    """The href of a Link/ListLink child, or None when the link is absent."""
    child = el.find(name, ns)
    if child is None:
        return None
    href = child.attr("href")
    if not href:
        raise XmlContentError(child.path, "link has no href")
    return href


def opt_attr_int(el: Element, name: str, bounds: tuple[int, int]) -> int | None:
    """An optional integer attribute."""
    raw = el.attr(name)
    return None if raw is None else int_value(raw, f"{el.path}/@{name}", bounds)


def attr_int(el: Element, name: str) -> int:
    """A mandatory UInt32 attribute (a list's ``all`` and ``results``)."""
    value = opt_attr_int(el, name, UINT32)
    if value is None:
        raise XmlContentError(el.path, f"missing mandatory attribute {name}")
    return value


def poll_rate_of(el: Element) -> int | None:
    """The resource's pollRate attribute, seconds (None when the server left it out)."""
    return opt_attr_int(el, "pollRate", UINT32)


def scaled[T](
    el: Element, name: str, cls: Callable[[int, int], T], bounds: tuple[int, int], ns: str = SEP_NS
) -> T | None:
    """An optional value × 10^multiplier child, as ``cls(value, multiplier)``."""
    child = el.find(name, ns)
    if child is None:
        return None
    return cls(integer(child, "value", bounds), integer(child, "multiplier", INT8))


def active_power(el: Element, name: str, ns: str = SEP_NS) -> ActivePower | None:
    """An optional ActivePower child (Int16 value)."""
    return scaled(el, name, ActivePower, INT16, ns)


# --- documents ----------------------------------------------------------------------------------


def root(body: Body, *names: str) -> Element:
    """The document's root element, checked to be one of ``names``."""
    if not isinstance(body, Element):
        return parse_xml(body, expected=names)
    qname = f"csipaus:{body.name}" if body.ns == CSIPAUS_NS else body.name
    if body.ns not in (SEP_NS, CSIPAUS_NS) or qname not in names:
        raise XmlContentError(body.path, f"expected element {' or '.join(names)}")
    return body


def page[T](
    body: Body, list_name: str, item_name: str, item: Callable[[Element], T]
) -> ListPage[T]:
    """One page of a 2030.5 list, each ``item_name`` child read by ``item``."""
    el = root(body, list_name)
    return ListPage(
        href=el.attr("href"),
        all=attr_int(el, "all"),
        results=attr_int(el, "results"),
        items=tuple(item(child) for child in el.find_all(item_name)),
        poll_rate=poll_rate_of(el),
    )
