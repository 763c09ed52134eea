"""What the client sends without being asked: Responses, DER reports, metering readings.

Deciding what is due lives elsewhere and does no I/O (``responses``, ``reporting``,
``telemetry``); here it is sent, and what failed is handed back to be tried again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .connection import Connection, RequestFailedError
from .reporting import DerReporter, Kind
from .responses import ResponseTracker
from .sep2.discovery import DEFAULT_POST_RATE_S, poll_rate, retry_delay
from .sep2.parse import (
    parse_der,
    parse_der_list,
    parse_mirror_usage_point,
    parse_mirror_usage_point_list,
)
from .sep2.resources import DER, Response
from .sep2.serialise import mirror_meter_reading_list_xml, mirror_usage_point_xml, response_xml
from .telemetry import Role, Telemetry, mup_mrid
from .timetable import Timetable

_LOGGER = logging.getLogger(__name__)

_RESPONSE_ROUNDS = 16
"""Passes over the due Responses in one go (sending one can make another due)."""


async def send_responses(
    connection: Connection,
    tracker: ResponseTracker,
    lfdi: str,
    server_time: Callable[[], int],
    changed: Callable[[], None],
) -> None:
    """POST every Response the tracker has due, and tell it how each went."""
    for _round in range(_RESPONSE_ROUNDS):
        server_now = server_time()
        due = tracker.due(server_now)
        if not due:
            return
        for outgoing in due:
            try:
                body = response_xml(
                    Response(
                        subject=outgoing.mrid,
                        end_device_lfdi=lfdi,
                        status=int(outgoing.status),
                        created_date_time=outgoing.created,
                    )
                )
            except ValueError as err:
                connection.record_error("Response", f"cannot answer {outgoing.mrid!r}: {err}")
                tracker.failed(outgoing.mrid, outgoing.status, server_now, permanent=True)
                continue
            try:
                await connection.post("Response", outgoing.reply_to, body)
            except RequestFailedError as failure:
                tracker.failed(
                    outgoing.mrid, outgoing.status, server_now, permanent=failure.permanent
                )
            else:
                connection.resolved("Response")
                tracker.sent(outgoing.mrid, outgoing.status)
                _LOGGER.debug("Response %s sent for %s", outgoing.status.name, outgoing.mrid)
            changed()


class DerReports:
    """Our DER on the server, and the reports about it that the reporter makes due."""

    def __init__(
        self,
        connection: Connection,
        timetable: Timetable,
        reporter: DerReporter,
        server_time: Callable[[], int],
    ) -> None:
        """No DER known yet."""
        self._connection = connection
        self._timetable = timetable
        self._reporter = reporter
        self._server_time = server_time
        self.der: DER | None = None
        self.rate = float(poll_rate("der", None))
        """The DERList's pollRate: each report is sent at least this often."""

    def forget(self) -> None:
        """The EndDevice it belonged to is not ours any more."""
        self.der = None

    def _links(self) -> dict[Kind, str | None]:
        der = self.der
        if der is None:
            return {}
        return {
            Kind.CAPABILITY: der.der_capability_href,
            Kind.SETTINGS: der.der_settings_href,
            Kind.STATUS: der.der_status_href,
            Kind.AVAILABILITY: der.der_availability_href,
        }

    def kinds(self) -> list[Kind]:
        """The reports the server has a place for."""
        return [kind for kind, href in self._links().items() if href is not None]

    def next_due(self) -> float | None:
        """When the next report could be due (steady seconds); None without a DER."""
        if self.der is None:
            return None
        return self._reporter.next_due(self.rate, self.kinds())

    async def refresh(self, now: float, der_list_href: str | None) -> None:
        """Read our DER from the EndDevice's DERList when due."""
        if der_list_href is None or (
            self.der is not None and not self._timetable.is_due("der", now)
        ):
            return
        connection = self._connection
        try:
            listing = await connection.get_list("DERList", der_list_href, parse_der_list)
        except RequestFailedError as err:
            self._timetable.retry("der", now, self.rate, after=err.retry_after)
            return
        self.rate = float(poll_rate("der", listing.poll_rate))
        self._timetable.plan("der", now, self.rate)
        if not listing.items:
            connection.record_error("DERList", "the server lists no DER for this device")
            return
        if len(listing.items) > 1:
            connection.warn_once(
                "many-der",
                "The server lists %d DERs; the whole site is reported as the first",
                len(listing.items),
            )
        der = listing.items[0]
        if der.href and der.der_capability_href is None and der.der_status_href is None:
            with contextlib.suppress(RequestFailedError):
                der = await connection.get("DER", der.href, parse_der)
        if der != self.der:
            self._reporter.resend_all()
        self.der = der

    async def send(self, now: float) -> None:
        """PUT every report that is due."""
        links = self._links()
        try:
            reports = self._reporter.due(now, self.rate, self._server_time(), self.kinds())
        except ValueError as err:
            self._connection.record_error("DER reports", f"cannot be written: {err}")
            return
        for report in reports:
            href = links[report.kind]
            assert href is not None
            resource = f"DER{report.kind.value.capitalize()}"
            try:
                await self._connection.put(resource, href, report.body)
            except RequestFailedError as err:
                wait = max(retry_delay(self.rate), err.retry_after or 0.0)
                self._reporter.failed(report, now, wait)
            else:
                self._connection.resolved(resource)
                self._reporter.sent(report, now)


@dataclass(slots=True)
class MupLink:
    """Where one of our MirrorUsagePoints is, and how often the server wants readings."""

    href: str
    post_rate: int | None


class UsagePoints:
    """Our MirrorUsagePoints (found or created) and the readings posted to them."""

    def __init__(
        self,
        connection: Connection,
        timetable: Timetable,
        telemetry: Telemetry,
        server_time: Callable[[], int],
        changed: Callable[[], None],
    ) -> None:
        """No usage point known yet."""
        self._connection = connection
        self._timetable = timetable
        self._telemetry = telemetry
        self._server_time = server_time
        self._changed = changed
        self.links: dict[Role, MupLink] = {}
        self._announced: dict[Role, set[str]] = {}
        """Per role, the reading mRIDs we know its usage point defines."""

    def post_rate(self) -> int:
        """Seconds between reading posts: the first postRate the server gave, else the default."""
        for role in Role:
            link = self.links.get(role)
            if link is not None and link.post_rate:
                return link.post_rate
        return DEFAULT_POST_RATE_S

    def hrefs(self) -> dict[str, str | None]:
        """Per role, where its usage point is (None while unknown)."""
        return {r.value: (None if (link := self.links.get(r)) is None else link.href) for r in Role}

    async def send(self, now: float, list_href: str) -> None:
        """Sync the usage points when due, then post the readings of every closed period."""
        timetable, telemetry = self._timetable, self._telemetry
        if timetable.is_due("mup", now):
            await self._sync(now, list_href)
        telemetry.close_due(self._server_time())
        if not telemetry.pending or not timetable.is_due("mmr", now):
            return
        for batch in list(telemetry.pending):
            body = mirror_meter_reading_list_xml(batch.readings())
            try:
                link = self.links.get(batch.role)
                if link is None or not {m for m, _v in batch.values} <= self._announced.get(
                    batch.role, set()
                ):
                    # New (or unknown to us) readings: announce them before posting.
                    link = await self._create(list_href, batch.role)
                await self._post_readings(list_href, batch.role, link, body)
            except RequestFailedError as err:
                timetable.retry("mmr", now, self.post_rate(), after=err.retry_after)
                if batch.role not in self.links:
                    timetable.retry("mup", now, poll_rate("mup", None), after=err.retry_after)
                self._changed()
                return
            self._connection.resolved("MirrorMeterReading")
            telemetry.sent(batch)
            self._changed()

    async def _post_readings(self, list_href: str, role: Role, link: MupLink, body: bytes) -> None:
        """POST a batch; a usage point the server lost is created again and posted to."""
        connection = self._connection
        try:
            await connection.post("MirrorMeterReading", link.href, body, expected=(404,))
        except RequestFailedError as failure:
            if failure.status != 404:
                raise
            connection.resolved("MirrorMeterReading")
            _LOGGER.info("The server lost the %s usage point; creating it again", role)
            self.links.pop(role, None)
            link = await self._create(list_href, role)
            await connection.post("MirrorMeterReading", link.href, body)

    async def _sync(self, now: float, href: str) -> None:
        """Learn our usage points (href, postRate) from the list; create missing ones.

        One is created only once the site measured something for it, so it never
        announces readings that are not then posted.
        """
        try:
            listing = await self._connection.get_list(
                "MirrorUsagePointList", href, parse_mirror_usage_point_list
            )
            for role in Role:
                mrid = mup_mrid(self._telemetry.lfdi, role, self._telemetry.pen)
                known = next((m for m in listing.items if m.mrid.upper() == mrid), None)
                if known is not None and known.href:
                    if (old := self.links.get(role)) is None or old.href != known.href:
                        self._announced.pop(role, None)  # what it defines is not known
                    self.links[role] = MupLink(known.href, known.post_rate)
                else:
                    self.links.pop(role, None)
                    self._announced.pop(role, None)
                    if self._telemetry.announced(role):
                        await self._create(href, role)
        except RequestFailedError as err:
            self._timetable.retry("mup", now, poll_rate("mup", None), after=err.retry_after)
            return
        self._timetable.plan("mup", now, poll_rate("mup", listing.poll_rate))
        self._changed()

    async def _create(self, list_href: str, role: Role) -> MupLink:
        """POST the usage point with every reading measured so far (again, if it exists)."""
        connection = self._connection
        point = self._telemetry.usage_point(role)
        resource = "MirrorUsagePoint"
        answer = await connection.post(resource, list_href, mirror_usage_point_xml(point))
        known = self.links.get(role)
        if not answer.location:
            if known is not None:  # an update of the one we know
                self._announced[role] = {r.mrid for r in point.readings}
                return known
            connection.record_error(resource, "the server gave no Location for the new usage point")
            raise RequestFailedError()
        created = await connection.get(resource, answer.location, parse_mirror_usage_point)
        link = MupLink(created.href or answer.location, created.post_rate)
        self.links[role] = link
        self._announced[role] = {r.mrid for r in point.readings}
        if known is None or known.href != link.href:
            _LOGGER.info("Created the %s usage point at %s", role.value, link.href)
        return link
