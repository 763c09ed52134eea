"""The server's clock as seen from here.

Every schedule decision uses the server's clock: the client keeps the offset between its
own clock and the server's ``Time`` resource and converts. Drift beyond a minute is logged
once and shown; it is never fatal. Given a steady clock (``monotonic``), time between Time
polls is counted on it, so a jump of the local wall clock (a manual change, NTP stepping
it) neither ends a control early nor makes it run late, and the client's own deadlines
(polls, retries) keep their pace. A Time that stops advancing is not followed: the client
keeps counting from the last good reading and shows the error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from .connection import Connection, RequestFailedError
from .sep2.discovery import poll_rate
from .sep2.parse import parse_time
from .timetable import Timetable

_LOGGER = logging.getLogger(__name__)

DRIFT_WARNING_S = 60
"""Clock difference to the server that is logged (once) and shown."""
CLOCK_JUMP_S = 5.0
"""A move of the local clock against the steady clock beyond this is a jump (logged)."""
TIME_STALL_MIN_S = 10.0
"""Steady seconds between two Time readings before a server clock that does not advance
(at least half as fast as ours) counts as stalled."""


class ServerClock:
    """Local time, steady time and the server's time, converted into one another."""

    def __init__(
        self,
        wall: Callable[[], datetime],
        monotonic: Callable[[], float] | None,
        *,
        on_jump: Callable[[], None],
    ) -> None:
        """``wall`` gives the local time (aware UTC).

        ``monotonic`` is a clock in seconds that never jumps (e.g. ``time.monotonic``):
        with it, jumps of ``wall`` are seen (``on_jump`` is called) and kept out of every
        schedule decision; without it, ``wall`` is trusted as it is.
        """
        self.wall = wall
        self._monotonic = monotonic
        self._on_jump = on_jump
        self._offset: float | None = None
        """Server time minus steady local time (see :meth:`steady`)."""
        self._skew = 0.0
        """The local clock's jumps seen so far: wall time minus steady time."""
        self._anchor: tuple[float, float] | None = None
        """(wall, monotonic) when the clock was last looked at."""
        self._sample: tuple[int, float] | None = None
        """(server time, steady time) of the last Time reading taken."""
        self._drift_logged = False

    @property
    def synced(self) -> bool:
        """Whether a Time reading has been taken."""
        return self._offset is not None

    @property
    def offset(self) -> float | None:
        """Server clock minus ours, in seconds (None until the first Time poll)."""
        return None if self._offset is None else self._offset - self._skew

    @property
    def drifting(self) -> bool:
        """Whether the server's clock is further from ours than :data:`DRIFT_WARNING_S`."""
        offset = self.offset
        return offset is not None and abs(offset) > DRIFT_WARNING_S

    def now(self) -> datetime:
        """The local wall time."""
        return self.wall()

    def server_time(self, now: datetime | None = None) -> int:
        """``now`` (local, default the wall clock) on the server's clock, in Unix seconds."""
        self.watch()
        return self.server_at(self.steady(now))

    def steady(self, now: datetime | None = None) -> float:
        """Local seconds without the clock's jumps: what deadlines and ramps count in."""
        moment = self.wall() if now is None else now
        return moment.timestamp() - self._skew

    def server_at(self, steady: float) -> int:
        """A steady local time on the server's clock."""
        # Before the first Time reading the wall clock is the best guess of the server's.
        return int(steady + (self._skew if self._offset is None else self._offset))

    def local(self, server_seconds: float) -> float:
        """A server time as steady local seconds."""
        return server_seconds - (self._skew if self._offset is None else self._offset)

    def wall_at(self, steady: float) -> datetime:
        """A steady local time on the wall clock."""
        return datetime.fromtimestamp(steady + self._skew, UTC)

    def watch(self) -> None:
        """Notice a jump of the local clock against the steady one and keep it out."""
        if self._monotonic is None:
            return
        wall, steady = self.wall().timestamp(), self._monotonic()
        anchor, self._anchor = self._anchor, (wall, steady)
        if anchor is None:
            return
        jump = (wall - anchor[0]) - (steady - anchor[1])
        if abs(jump) <= CLOCK_JUMP_S:
            return
        self._skew += jump
        _LOGGER.warning(
            "The local clock jumped by %+.0f s; CSIP-AUS controls keep the server's time",
            jump,
        )
        self._on_jump()

    def take(self, server_time: int, steady: float) -> str | None:
        """Take a Time reading made at ``steady``; why it was not taken, if it was not.

        Since the last reading taken the server's clock must have advanced at least half
        as far as ours: one that stands still (or steps back) would hold every control
        forever. A server that really set its clock back is followed once it has advanced
        again past the last reading's pace.
        """
        last = self._sample
        if last is not None:
            elapsed, advanced = steady - last[1], server_time - last[0]
            if elapsed >= TIME_STALL_MIN_S and advanced < elapsed / 2:
                return (
                    f"the server's clock stands still ({advanced:+.0f} s in {elapsed:.0f} s); "
                    "keeping time from its last good reading"
                )
        self._sample = (server_time, steady)
        self._offset = float(round(server_time - steady))
        self._log_drift(self._offset - self._skew)  # against the wall clock, as shown
        return None

    def _log_drift(self, offset: float) -> None:
        if abs(offset) > DRIFT_WARNING_S:
            if not self._drift_logged:
                _LOGGER.warning(
                    "This clock is %+.0f s off the CSIP-AUS server's; "
                    "the server's time is used for its controls",
                    -offset,
                )
                self._drift_logged = True
        elif self._drift_logged:
            _LOGGER.info("Clock back within %d s of the CSIP-AUS server's", DRIFT_WARNING_S)
            self._drift_logged = False


async def poll_time(
    clock: ServerClock, connection: Connection, timetable: Timetable, href: str | None, now: float
) -> None:
    """Read the server's Time when due (and at once until a reading was taken)."""
    if href is None or (clock.synced and not timetable.is_due("tm", now)):
        return
    before = clock.steady()
    try:
        server = await connection.get("Time", href, parse_time)
    except RequestFailedError as err:
        timetable.retry("tm", now, poll_rate("tm", None), after=err.retry_after)
        return
    middle = (before + clock.steady()) / 2
    timetable.plan("tm", now, poll_rate("tm", server.poll_rate))
    if (stalled := clock.take(server.current_time, middle)) is not None:
        connection.record_error("Time", stalled)
