"""Requests to the server, and the health record they leave.

Every request goes through :meth:`Connection.send`, which sorts failures in two: the server
cannot be talked to now (unreachable, our certificate refused, its certificate untrusted),
which backs off and ends the pass (:class:`PassAbortedError`), or this one request failed
(an HTTP error, an unusable document), which is recorded against its resource and raised as
:class:`RequestFailedError` for the caller to try again later. Failures never get further:
the last known controls stay in force and the record says what is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from .sep2.discovery import RETRY_S, Listing, fetch_list
from .sep2.resources import ListPage
from .sep2.transport import (
    Answer,
    CertificateRejectedError,
    HttpStatusError,
    Sep2Transport,
    ServerCertificateError,
    ServerUnreachableError,
    TlsHandshakeError,
    TransportError,
)
from .sep2.xml import XmlError
from .status import CommsState

_LOGGER = logging.getLogger(__name__)

HANDSHAKE_FAILURES_REJECTED = 3
"""Consecutive TLS handshake failures (TCP fine) taken as the server refusing our certificate."""


class PassAbortedError(Exception):
    """The server cannot be talked to now: end the pass."""


class RequestFailedError(Exception):
    """One request failed (already recorded); ``status`` is its HTTP status, if any."""

    def __init__(self, status: int | None = None, retry_after: float | None = None) -> None:
        """Keep the HTTP status, if there was one, and the server's Retry-After."""
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after
        """Seconds the server asked for before this resource is asked for again, if it did."""

    @property
    def permanent(self) -> bool:
        """A 4xx other than timeout/too-many-requests: repeating will not help."""
        return (
            self.status is not None and 400 <= self.status < 500 and self.status not in (408, 429)
        )


class Connection:
    """The client's requests to one server, and what they say about its health."""

    def __init__(
        self,
        transport: Sep2Transport,
        *,
        now: Callable[[], datetime],
        steady: Callable[[], float],
        page_size: int,
    ) -> None:
        """``now`` is the wall clock (for the last success), ``steady`` times the back-off."""
        self.transport = transport
        self._now = now
        self._steady = steady
        self._page_size = page_size
        self.fatal: CommsState | None = None
        """Why the server cannot be talked to now, until a request succeeds."""
        self.fatal_error: str | None = None
        self.errors: dict[str, str] = {}
        """The last failure per resource, until that resource works again."""
        self.last_success: datetime | None = None
        self.backoff_until = 0.0
        """Steady time before which nothing is sent after the server was unreachable."""
        self._handshake_failures = 0
        self._warned: set[str] = set()

    # -- health -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the server answered, and has not become unreachable since."""
        return self.fatal is None and self.last_success is not None

    @property
    def last_error(self) -> str | None:
        """The most pressing error: the connection's, else the latest resource's."""
        return self.fatal_error or next(reversed(self.errors.values()), None)

    def all_errors(self) -> dict[str, str]:
        """Every current error by resource (``connection`` for the connection's own)."""
        errors = dict(self.errors)
        if self.fatal_error is not None:
            errors["connection"] = self.fatal_error
        return errors

    def record_error(self, resource: str, message: str) -> None:
        """Note that ``resource`` fails (logged when the message changes)."""
        if self.errors.get(resource) != message:
            _LOGGER.warning("CSIP-AUS %s: %s", resource, message)
        self.errors[resource] = message

    def resolved(self, resource: str) -> None:
        """``resource`` works again."""
        self.errors.pop(resource, None)

    def warn_once(self, key: str, message: str, *args: object) -> None:
        """Log a warning the first time only: a condition seen on every pass is said once."""
        if key not in self._warned:
            self._warned.add(key)
            _LOGGER.warning(message, *args)

    # -- requests ---------------------------------------------------------------------------

    async def send[T](
        self,
        resource: str,
        call: Awaitable[T],
        *,
        refused_is_fatal: bool = True,
        expected: tuple[int, ...] = (),
    ) -> T:
        """Await a request, sorting failures into "stop the pass" and "this one failed".

        ``expected`` statuses are raised as RequestFailedError without being recorded;
        ``refused_is_fatal=False`` takes a refused certificate as this request's failure.
        """
        try:
            answer = await call
        except CertificateRejectedError as err:
            if not refused_is_fatal:
                self.record_error(resource, str(err))
                raise RequestFailedError(403) from err
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
                self.record_error(resource, str(err))
            raise RequestFailedError(err.status, err.retry_after) from err
        except TransportError as err:
            self.record_error(resource, str(err))
            raise RequestFailedError() from err
        if self.fatal is not None:
            _LOGGER.info("CSIP-AUS server reachable again")
        self.fatal, self.fatal_error = None, None
        self._handshake_failures = 0
        self.last_success = self._now()
        return answer

    def _abort(self, state: CommsState, err: Exception) -> None:
        if self.fatal is not state:
            _LOGGER.warning("CSIP-AUS server: %s (%s)", state.value.replace("_", " "), err)
        self.fatal, self.fatal_error = state, str(err)
        self.backoff_until = self._steady() + RETRY_S
        raise PassAbortedError from err

    def parse[T](self, resource: str, parse: Callable[[bytes], T], body: bytes) -> T:
        """``parse(body)``; an unusable document is recorded and raised as RequestFailedError."""
        try:
            value = parse(body)
        except XmlError as err:
            self.record_error(resource, f"unusable document: {err}")
            raise RequestFailedError() from err
        self.resolved(resource)
        return value

    async def get[T](self, resource: str, href: str, parse: Callable[[bytes], T]) -> T:
        """GET and parse a resource."""
        answer = await self.send(resource, self.transport.get(href))
        return self.parse(resource, parse, answer.body)

    async def get_optional[T](
        self, resource: str, href: str, parse: Callable[[bytes], T]
    ) -> T | None:
        """A resource a server may leave out: 404, 204 or an empty body mean None."""
        try:
            answer = await self.send(resource, self.transport.get(href), expected=(404,))
        except RequestFailedError as failure:
            if failure.status == 404:
                self.resolved(resource)
                return None
            raise
        if answer.status == 204 or not answer.body.strip():
            self.resolved(resource)
            return None
        return self.parse(resource, parse, answer.body)

    async def get_list[T](
        self,
        resource: str,
        href: str,
        parse: Callable[[bytes], ListPage[T]],
        *,
        found: Callable[[T], bool] | None = None,
    ) -> Listing[T]:
        """Every page of a list (``found`` stops at the first page holding a match)."""

        def checked(body: bytes) -> ListPage[T]:
            return self.parse(resource, parse, body)

        return await self.send(
            resource,
            fetch_list(self.transport, href, checked, page_size=self._page_size, found=found),
        )

    async def post(
        self,
        resource: str,
        href: str,
        body: bytes,
        *,
        refused_is_fatal: bool = True,
        expected: tuple[int, ...] = (),
    ) -> Answer:
        """POST a document (see :meth:`send` for the options)."""
        return await self.send(
            resource,
            self.transport.post(href, body),
            refused_is_fatal=refused_is_fatal,
            expected=expected,
        )

    async def put(self, resource: str, href: str, body: bytes) -> Answer:
        """PUT a document."""
        return await self.send(resource, self.transport.put(href, body))
