"""HTTP for the 2030.5 client: Home Assistant's shared session, mutual TLS per request.

Every request carries the device's SSL context (``ssl=``), so one shared aiohttp
session serves the client. Bodies are read up to a limit before any parsing, and
failures are sorted into what the client must react to differently: the server is
unreachable (keep going on stored controls), it rejected our certificate (a repair
issue), or it answered with an HTTP error for one resource.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin

import aiohttp

from .xml import MAX_BODY_BYTES

_LOGGER = logging.getLogger(__name__)

CONTENT_TYPE = "application/sep+xml"
DEFAULT_TIMEOUT_S = 10.0
RETRY_DELAYS_S = (0.5, 2.0)
"""Pauses before the second and third attempt of an idempotent request."""
MAX_RETRY_AFTER_S = 3600.0
"""The longest Retry-After honoured: a server asking for more is waited on this long."""


class TransportError(Exception):
    """A request did not give a usable answer."""


class ServerUnreachableError(TransportError):
    """No answer: connection refused, timeout, TLS handshake failure on the network."""


class TlsHandshakeError(ServerUnreachableError):
    """TCP connected but TLS failed: often the server refusing our certificate silently."""


class CertificateRejectedError(TransportError):
    """The server refused our client certificate (TLS alert, or HTTP 401/403)."""


class ServerCertificateError(TransportError):
    """The server's certificate did not verify against the configured CA chain."""


class HttpStatusError(TransportError):
    """The server answered with an HTTP error status."""

    def __init__(
        self, method: str, url: str, status: int, retry_after: float | None = None
    ) -> None:
        """Keep the status (callers treat 404 differently) and the server's Retry-After."""
        wait = f", retry after {retry_after:.0f} s" if retry_after is not None else ""
        super().__init__(f"{method} {url}: HTTP {status}{wait}")
        self.status = status
        self.retry_after = retry_after
        """Seconds the server asked us to wait before asking again (429, 503), if it said."""


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The wait a Retry-After header asks for, in seconds (0-MAX_RETRY_AFTER_S), or None.

    Either delay-seconds or an HTTP date; a date is read against the response's own Date
    header (the server's clock), so our clock being off does not shorten or stretch it.
    """
    value = headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        until = parsedate_to_datetime(value)
        sent = parsedate_to_datetime(headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    if until.tzinfo is None or sent.tzinfo is None:
        return None
    return min(max(0.0, (until - sent).total_seconds()), MAX_RETRY_AFTER_S)


class BodyTooLargeError(TransportError):
    """The answer is larger than any 2030.5 resource we read should be."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful response: status, body and the Location header of a POST."""

    status: int
    body: bytes
    location: str | None


class Sep2Transport:
    """Requests to one 2030.5 server, relative to its base URL."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        ssl_context: ssl.SSLContext,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_body: int = MAX_BODY_BYTES,
        retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
    ) -> None:
        """``base_url`` is the server root; hrefs from the server are joined to it."""
        self._session = session
        self.base_url = base_url
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_body = max_body
        self._retry_delays = retry_delays_s

    def url(self, href: str) -> str:
        """Absolute URL of an href the server gave (absolute or relative)."""
        return urljoin(self.base_url, href)

    async def get(self, href: str, *, query: dict[str, int] | None = None) -> Answer:
        """GET a resource (retried on network errors and 5xx)."""
        return await self._request("GET", href, None, query=query, retry=True)

    async def put(self, href: str, body: bytes) -> Answer:
        """PUT a document (idempotent, retried like GET)."""
        return await self._request("PUT", href, body, retry=True)

    async def post(self, href: str, body: bytes, *, retry: bool = False) -> Answer:
        """POST a document; retried only when the caller says repeating it is harmless."""
        return await self._request("POST", href, body, retry=retry)

    async def _request(
        self,
        method: str,
        href: str,
        body: bytes | None,
        *,
        query: dict[str, int] | None = None,
        retry: bool,
    ) -> Answer:
        url = self.url(href)
        delays = self._retry_delays if retry else ()
        for attempt in range(len(delays) + 1):
            try:
                return await self._once(method, url, body, query)
            except (ServerUnreachableError, HttpStatusError) as err:
                # A server that says when to come back is not asked again sooner.
                retryable = isinstance(err, ServerUnreachableError) or (
                    isinstance(err, HttpStatusError)
                    and err.status >= 500
                    and err.retry_after is None
                )
                if not retryable or attempt == len(delays):
                    raise
                _LOGGER.debug("%s %s failed (%s); retrying", method, url, err)
                await asyncio.sleep(delays[attempt])
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self, method: str, url: str, body: bytes | None, query: dict[str, int] | None
    ) -> Answer:
        headers = {"Accept": CONTENT_TYPE}
        if body is not None:
            headers["Content-Type"] = CONTENT_TYPE
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                params=query,
                headers=headers,
                ssl=self._ssl,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                data = await self._read_limited(response, method, url)
                if response.status in (401, 403):
                    raise CertificateRejectedError(
                        f"{method} {url}: HTTP {response.status}, the server refused this device"
                    )
                if response.status >= 400:
                    wait = (
                        retry_after_s(response.headers) if response.status in (429, 503) else None
                    )
                    raise HttpStatusError(method, url, response.status, wait)
                return Answer(response.status, data, response.headers.get("Location"))
        except aiohttp.ClientConnectorCertificateError as err:
            raise ServerCertificateError(f"{url}: server certificate not trusted ({err})") from err
        except aiohttp.ClientSSLError as err:
            if _is_certificate_alert(err):
                raise CertificateRejectedError(
                    f"{url}: TLS refused our certificate ({err})"
                ) from err
            raise TlsHandshakeError(f"{url}: TLS handshake failed ({err})") from err
        except aiohttp.ClientConnectorError as err:
            if isinstance(err.os_error, ConnectionResetError):
                raise TlsHandshakeError(
                    f"{url}: the server closed the connection during the TLS handshake; it may "
                    "not accept this device's certificate"
                ) from err
            raise ServerUnreachableError(f"{method} {url}: {err}") from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise ServerUnreachableError(f"{method} {url}: {err or type(err).__name__}") from err

    async def _read_limited(self, response: aiohttp.ClientResponse, method: str, url: str) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self._max_body:
            raise BodyTooLargeError(f"{method} {url}: {declared} bytes is too large")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self._max_body:
                raise BodyTooLargeError(f"{method} {url}: more than {self._max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _is_certificate_alert(err: aiohttp.ClientSSLError) -> bool:
    """True when the server's TLS alert says it did not accept our certificate."""
    text = str(err).lower()
    return any(
        marker in text
        for marker in (
            "certificate unknown",
            "bad certificate",
            "unknown ca",
            "certificate required",
            "certificate expired",
            "access denied",
        )
    )
