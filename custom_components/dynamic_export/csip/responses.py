"""Which DERControl Responses to send, each at most once, and when to retry.

Decision logic only: the client POSTs what :meth:`ResponseTracker.due` yields
and reports back with :meth:`~ResponseTracker.sent` or
:meth:`~ResponseTracker.failed`. Time is server-time Unix seconds.

The user's choice follows the site: control or the CSIP limiter off answers running
events "opted out" (4) and a start "opted out" instead of "started"; switched on again
during an event, it is "opted in" (5) and its end "completed" (3) again. Each change of
mind is told once; after an opt-out that stands, neither "started" nor "completed" is
sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .entries import ControlRef
from .schedule import ScheduleEvent
from .sep2.codes import ResponseStatus

MESSAGE_RECEIVED = 0x01
"""responseRequired bit 0: acknowledge receipt (status 1) only."""
SPECIFIC_RESPONSE = 0x02
"""responseRequired bit 1: report the event's fate (started, completed, ...)."""
USER_RESPONSE = 0x04
"""responseRequired bit 2: report the user's choice (opt out / opt in)."""

_FORMAT = 1
_AFTER_OPT_OUT = (ResponseStatus.STARTED, ResponseStatus.COMPLETED)
"""Not sent while the user has opted out of the event."""
_CHOICES = (ResponseStatus.OPTED_OUT, ResponseStatus.OPTED_IN)


def wanted(response_required: int, status: ResponseStatus) -> bool:
    """Whether the server asked for ``status`` through its responseRequired bits."""
    if status == ResponseStatus.RECEIVED:
        return bool(response_required & MESSAGE_RECEIVED)
    if status in (ResponseStatus.OPTED_OUT, ResponseStatus.OPTED_IN):
        return bool(response_required & (SPECIFIC_RESPONSE | USER_RESPONSE))
    return bool(response_required & SPECIFIC_RESPONSE)


@dataclass(frozen=True, slots=True)
class OutgoingResponse:
    """One Response to POST to ``reply_to`` about control ``mrid``."""

    reply_to: str
    mrid: str
    status: ResponseStatus
    created: int
    """When what it reports happened (the Response's createdDateTime)."""


@dataclass(slots=True)
class _Pending:
    response: OutgoingResponse
    expires: int | None
    """Started is retried until the event ends; others until attempts run out."""
    attempts: int = 0
    next_try: int = 0


class ResponseTracker:
    """Queue of Responses with duplicate suppression and a retry policy."""

    def __init__(
        self,
        *,
        max_attempts: int = 5,
        retry_s: int = 30,
        max_backoff_s: int = 600,
        history_s: int = 7 * 86400,
    ) -> None:
        """Set how often and how long to retry, and how long to remember sends."""
        self.max_attempts = max_attempts
        self.retry_s = retry_s
        self.max_backoff_s = max_backoff_s
        self.history_s = history_s
        self._pending: list[_Pending] = []
        self._history: dict[tuple[str, ResponseStatus], int] = {}
        """(mRID, status) ever queued, with when: the duplicate filter."""
        self._choice: dict[str, ResponseStatus] = {}
        """The user's last answer per mRID (opted out or back in); absent: taking part."""

    # -- intake -------------------------------------------------------------------------

    def record(self, events: Iterable[ScheduleEvent], *, opted_out: bool = False) -> None:
        """Queue the Responses the schedule's events call for.

        With ``opted_out`` (control switched off, limiter disabled) a start is
        answered with "opted out" instead of "started".
        """
        for event in events:
            status = event.status
            if opted_out and status == ResponseStatus.STARTED:
                status = ResponseStatus.OPTED_OUT
            self._queue(event.control, status, event.at)

    def opt_out(self, controls: Iterable[ControlRef], now: int) -> bool:
        """Tell the server we left these running events (control or the limiter off).

        True when a Response was queued: an event already opted out is not told again.
        """
        return self._choose(controls, ResponseStatus.OPTED_OUT, now)

    def opt_in(self, controls: Iterable[ControlRef], now: int) -> bool:
        """Tell the server we take part again in these running events we had left.

        Only events opted out get "opted in"; after it, their end is answered "completed"
        again. True when a Response was queued.
        """
        return self._choose(controls, ResponseStatus.OPTED_IN, now)

    def _choose(self, controls: Iterable[ControlRef], status: ResponseStatus, now: int) -> bool:
        queued = False
        for control in controls:  # every control, not only up to the first queued
            queued = self._queue(control, status, now) or queued
        return queued

    def _queue(self, control: ControlRef, status: ResponseStatus, at: int) -> bool:
        """Queue one Response unless it is unwanted or already told; True if queued."""
        key = (control.mrid, status)
        if control.reply_to is None or not wanted(control.response_required, status):
            return False
        if status in _CHOICES:
            # The user may change their mind again: each change is told once.
            if self._choice.get(control.mrid, ResponseStatus.OPTED_IN) == status:
                return False
            self._choice[control.mrid] = status
        elif key in self._history:
            return False
        if status in _AFTER_OPT_OUT and self._choice.get(control.mrid) == ResponseStatus.OPTED_OUT:
            return False
        self._history[key] = at
        if status == ResponseStatus.OPTED_OUT:
            self._pending = [
                p
                for p in self._pending
                if not (p.response.mrid == control.mrid and p.response.status in _AFTER_OPT_OUT)
            ]
        expires = control.end if status == ResponseStatus.STARTED else None
        response = OutgoingResponse(control.reply_to, control.mrid, status, at)
        self._pending.append(_Pending(response, expires, next_try=at))
        return True

    # -- sending ------------------------------------------------------------------------

    def due(self, now: int) -> list[OutgoingResponse]:
        """Responses to send now, oldest first, at most one per control (keeps order)."""
        self._pending = [p for p in self._pending if p.expires is None or now < p.expires]
        self._forget(now)
        out: list[OutgoingResponse] = []
        blocked: set[str] = set()
        for pending in self._pending:
            mrid = pending.response.mrid
            if mrid not in blocked:
                blocked.add(mrid)
                if pending.next_try <= now:
                    out.append(pending.response)
        return out

    def sent(self, mrid: str, status: ResponseStatus) -> None:
        """The server accepted the Response: stop tracking the oldest such one.

        A user who changed their mind twice has two opt-outs queued.
        """
        for pending in self._pending:
            if _is(pending, mrid, status):
                self._pending.remove(pending)
                return

    def failed(
        self, mrid: str, status: ResponseStatus, now: int, *, permanent: bool = False
    ) -> None:
        """A send failed: back off exponentially, give up after the attempt limit."""
        for pending in self._pending:
            if not _is(pending, mrid, status):
                continue
            pending.attempts += 1
            spent = pending.expires is None and pending.attempts >= self.max_attempts
            if permanent or spent:
                self._pending.remove(pending)
            else:
                backoff = self.retry_s * 2 ** (pending.attempts - 1)
                pending.next_try = now + min(backoff, self.max_backoff_s)
            return

    @property
    def pending(self) -> list[OutgoingResponse]:
        """Everything still to be sent (for diagnostics)."""
        return [p.response for p in self._pending]

    def next_attempt(self) -> int | None:
        """The earliest time a queued Response may be sent (server time), if any."""
        return min((p.next_try for p in self._pending), default=None)

    def _forget(self, now: int) -> None:
        """Drop old history; keys of queued Responses stay so nothing is duplicated."""
        queued = {(p.response.mrid, p.response.status) for p in self._pending}
        self._history = {
            k: at for k, at in self._history.items() if k in queued or now - at < self.history_s
        }
        known = {mrid for mrid, _ in self._history}
        self._choice = {m: c for m, c in self._choice.items() if m in known}

    # -- persistence --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Queue and history as JSON-friendly data."""
        return {
            "format": _FORMAT,
            "pending": [
                {
                    "reply_to": p.response.reply_to,
                    "mrid": p.response.mrid,
                    "status": int(p.response.status),
                    "created": p.response.created,
                    "expires": p.expires,
                    "attempts": p.attempts,
                    "next_try": p.next_try,
                }
                for p in self._pending
            ],
            "history": [[m, int(s), at] for (m, s), at in self._history.items()],
            "choices": [[m, int(c)] for m, c in self._choice.items()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], **settings: int) -> ResponseTracker:
        """Rebuild a tracker saved by :meth:`to_dict`; settings are given anew."""
        if data.get("format") != _FORMAT:
            raise ValueError(f"unknown response tracker format {data.get('format')!r}")
        tracker = cls(**settings)
        for item in data["pending"]:
            response = OutgoingResponse(
                str(item["reply_to"]),
                str(item["mrid"]),
                ResponseStatus(item["status"]),
                int(item["created"]),
            )
            expires = item["expires"]
            tracker._pending.append(
                _Pending(
                    response,
                    None if expires is None else int(expires),
                    int(item["attempts"]),
                    int(item["next_try"]),
                )
            )
        for mrid, status, at in data["history"]:
            tracker._history[(str(mrid), ResponseStatus(status))] = int(at)
        if "choices" in data:
            for mrid, choice in data["choices"]:
                tracker._choice[str(mrid)] = ResponseStatus(choice)
        else:  # saved before opting back in existed: an opt-out was final
            for mrid, status in tracker._history:
                if status == ResponseStatus.OPTED_OUT:
                    tracker._choice[mrid] = status
        return tracker


def _is(pending: _Pending, mrid: str, status: ResponseStatus) -> bool:
    return pending.response.mrid == mrid and pending.response.status == status
