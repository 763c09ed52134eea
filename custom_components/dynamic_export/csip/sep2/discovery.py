"""Polling rates and list paging for the 2030.5 client.

A 2030.5 list is read in pages (``?s=<start>&l=<limit>``) until the client holds as many
items as the list's ``all`` says or a page comes back empty. A server that keeps
answering full pages forever is cut off after :data:`MAX_PAGES`.

Default rates are those of the CSIP-AUS / Energex SEP2 client handbook where the server
gives no ``pollRate``; a rate below :data:`MIN_POLL_S` is raised to it so a server that
says 0 cannot make the client spin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .resources import ListPage
from .transport import Sep2Transport

_LOGGER = logging.getLogger(__name__)

DEFAULT_POLL_S: dict[str, int] = {
    "dcap": 300,
    "tm": 900,
    "edev": 300,
    "rg": 300,
    "der": 300,
    "fsa": 300,
    "derp": 300,
    "mup": 300,
}
"""Seconds between polls when the server gives no pollRate (``tm`` uses the XSD default)."""
DEFAULT_POST_RATE_S = 300
"""Seconds between MirrorMeterReading posts when the MirrorUsagePoint gives no postRate."""
MIN_POLL_S = 5
"""The shortest poll interval the client accepts from a server."""
RETRY_S = 60
"""How soon a failed poll or post is tried again (or the resource's rate, if shorter)."""
PAGE_SIZE = 20
"""Items asked for per page (``l``)."""
MAX_PAGES = 500
"""Pages read from one list before giving up on it."""


def poll_rate(resource: str, server_rate: int | None) -> int:
    """Seconds until ``resource`` is polled again: the server's rate or the default."""
    rate = DEFAULT_POLL_S[resource] if server_rate is None else server_rate
    return max(MIN_POLL_S, rate)


def retry_delay(rate: float) -> float:
    """Seconds until a failed request for a resource polled every ``rate`` is retried."""
    return max(float(MIN_POLL_S), min(float(RETRY_S), rate))


@dataclass(frozen=True, slots=True)
class Listing[T]:
    """A whole list, read page by page."""

    href: str
    items: tuple[T, ...]
    all: int
    poll_rate: int | None
    complete: bool
    """False when the server stopped short of ``all`` (or the page limit was hit)."""


async def fetch_list[T](
    transport: Sep2Transport,
    href: str,
    parse: Callable[[bytes], ListPage[T]],
    *,
    page_size: int = PAGE_SIZE,
    found: Callable[[T], bool] | None = None,
) -> Listing[T]:
    """Read every page of the list at ``href``.

    ``found`` stops early once an item matches (e.g. our own EndDevice); the listing is
    then marked complete. Transport and parse errors propagate to the caller.
    """
    items: list[T] = []
    total = 0
    rate: int | None = None
    start = 0
    for page_number in range(MAX_PAGES):
        answer = await transport.get(href, query={"s": start, "l": page_size})
        page = parse(answer.body)
        if page_number == 0:
            total, rate = page.all, page.poll_rate
        items.extend(page.items)
        if found is not None and any(found(item) for item in page.items):
            return Listing(href, tuple(items), total, rate, complete=True)
        if not page.items or len(items) >= total:
            break
        start += len(page.items)
    complete = len(items) >= total
    if not complete:
        _LOGGER.warning(
            "%s: the server listed %d of the %d items it announced", href, len(items), total
        )
    return Listing(href, tuple(items), total, rate, complete)
