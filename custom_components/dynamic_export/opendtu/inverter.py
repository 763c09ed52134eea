"""A Hoymiles inverter behind OpenDTU as a core.devices.Inverter.

**Rating.** The controller works in % of ``rated_power_w``. That is the inverter's own max
power as the DTU reports it (relative limits refer to it), times the temperature derating
share when one is set: a hot inverter then reports less rating, the controller gives it a
smaller part of the target, and its limits are capped at the derated value too.

**Revert timeout 0.** Non-persistent limits have no dead-man timer: the inverter keeps the
last one until it restarts (every morning, when the panels wake it), then starts at its
persistent limit. So nothing needs refreshing, and a dead controller leaves the last limit in
force for the rest of the day, which errs on the side of the grid limit.

**Release** restores the limit the inverter had before we first wrote one (non-persistently),
rather than 100 %, so a persistent limit the owner set stays respected. After a restart in
the middle of the day the limit found may be our own earlier one, so that baseline must
outlive a restart: ``on_baseline`` is told it just before our first limit goes out (and
``None`` once a release has restored it), and the caller passes what it stored back as
``baseline_pct``. A stored baseline means our limit may still be in force, so release
restores it even if nothing was written since the restart. ``release_limit_pct`` (a
configured limit to restore) wins over both.

**Freshness.** The DTU polls each inverter every few seconds; the reading's timestamp is
when the DTU got the values (``data_age``), and data older than ``max_data_age_s`` or from an
unreachable inverter is an error, not a reading.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import InvalidDeviceDataError
from ..core.measurements import InverterCommand, InverterReading
from .client import OpenDtuClient
from .data import InverterLiveData, LimitStatus
from .errors import InverterUnreachableError, LimitTypeUnsupportedError, UnknownInverterError
from .limits import (
    DEFAULT_MIN_LIMIT_PCT,
    DEFAULT_PENDING_TIMEOUT_S,
    MAX_MIN_LIMIT_PCT,
    LimitRequest,
    LimitType,
    PendingLimit,
    TemperatureDerating,
    limit_request,
)

DEFAULT_MAX_DATA_AGE_S = 60.0
STATUS_MAX_AGE_S = 0.5  # a status answer this recent is reused rather than asked again


@dataclass(frozen=True, slots=True)
class OpenDtuInverterInfo:
    """What set-up learned; ``serial`` is the unique id."""

    serial: str
    name: str
    max_power_w: float | None  # None until the DTU has talked to the inverter


class OpenDtuInverter:
    """Implements core.devices.Inverter for one serial on an :class:`OpenDtuClient`."""

    def __init__(
        self,
        client: OpenDtuClient,
        serial: str,
        *,
        rated_power_w: float | None = None,
        release_limit_pct: float | None = None,
        baseline_pct: float | None = None,
        on_baseline: Callable[[float | None], None] | None = None,
        min_limit_pct: float = DEFAULT_MIN_LIMIT_PCT,
        derating: TemperatureDerating | None = None,
        pending_timeout_s: float = DEFAULT_PENDING_TIMEOUT_S,
        max_data_age_s: float = DEFAULT_MAX_DATA_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``rated_power_w`` is only used while the DTU does not know the max power yet."""
        if not 0.0 <= min_limit_pct <= MAX_MIN_LIMIT_PCT:
            raise ValueError(f"min_limit_pct must be 0-{MAX_MIN_LIMIT_PCT:g} %")
        if rated_power_w is not None and not rated_power_w > 0:
            raise ValueError("rated_power_w must be positive")
        if release_limit_pct is not None and not 0.0 <= release_limit_pct <= 100.0:
            raise ValueError("release_limit_pct must be 0-100 %")
        if baseline_pct is not None and not 0.0 <= baseline_pct <= 100.0:
            raise ValueError("baseline_pct must be 0-100 %")
        self._client = client
        self._serial = serial.strip()
        self._fallback_rating = rated_power_w
        self._min_limit_pct = min_limit_pct
        self.derating = derating
        self._max_data_age_s = max_data_age_s
        self._clock = clock
        self._pending = PendingLimit(pending_timeout_s)
        self._max_power_w: float | None = None
        self._absolute = True  # until the firmware answers 5003
        self._release_pct = release_limit_pct
        self._baseline_pct = release_limit_pct if release_limit_pct is not None else baseline_pct
        self._on_baseline = on_baseline
        # A stored baseline: our limit from before a restart may still be in force.
        self._stored = baseline_pct is not None
        self._wrote = self._stored
        self._powered_off = False
        self._info: OpenDtuInverterInfo | None = None
        self.data: InverterLiveData | None = None  # last values, for sensors
        self.limit_status: LimitStatus | None = None
        self.share_pct = 100.0  # derating share applied to the last reading

    @property
    def serial(self) -> str:
        """Inverter serial number (hex string)."""
        return self._serial

    @property
    def info(self) -> OpenDtuInverterInfo | None:
        """Set by :meth:`async_setup`."""
        return self._info

    @property
    def revert_timeout_s(self) -> float:
        """0: non-persistent limits stay until the inverter restarts (see module doc)."""
        return 0.0

    @property
    def supports_connect(self) -> bool:
        """True: connect=False powers the inverter off through the DTU."""
        return True

    @property
    def limit_step_pct(self) -> float:
        """One watt of the absolute limit the DTU sends (0 while the max power is unknown)."""
        rating = self._max_power_w or self._fallback_rating
        return 100.0 / rating if rating else 0.0

    @property
    def temperature_c(self) -> float | None:
        """Inverter temperature from the last reading."""
        return self.data.temperature_c if self.data else None

    @property
    def response_time_s(self) -> float | None:
        """Smoothed seconds from sending a limit to its radio acknowledgement.

        Measured at the pace the status is read (once a cycle), so it is an upper bound;
        a controller should not expect a new limit to show in the output sooner.
        """
        return self._pending.response_time_s

    @property
    def baseline_limit_pct(self) -> float | None:
        """The limit (%) release restores: as configured, or as found before our first write."""
        return self._baseline_pct

    @property
    def max_power_w(self) -> float | None:
        """The inverter's max power as the DTU reports it (None until known)."""
        return self._max_power_w

    @property
    def pending_limit(self) -> PendingLimit:
        """The acknowledgement tracker (in-flight and queued requests, last outcome)."""
        return self._pending

    async def async_setup(self) -> OpenDtuInverterInfo:
        """Check the DTU knows the serial and learn its name and max power."""
        summary = next(
            (s for s in await self._client.async_inverters() if s.serial == self._serial), None
        )
        if summary is None:
            raise UnknownInverterError(f"OpenDTU has no inverter {self._serial}", None)
        _, statuses = await self._client.async_limit_status()
        status = statuses.get(self._serial)
        self._max_power_w = status.max_power_w if status else None
        self._info = OpenDtuInverterInfo(self._serial, summary.name, self._max_power_w)
        return self._info

    async def async_read(self) -> InverterReading:
        """Read output, temperature and the limit in force; send a queued limit if due."""
        now = self._clock()
        live = await self._client.async_livedata(self._serial)
        # Any status asked for since this read began will do: with a slow DTU, the
        # inverters read in one cycle still share one answer.
        status = await self._read_status(STATUS_MAX_AGE_S, since=now)
        self.data = live
        summary = live.summary
        if not summary.reachable:
            raise InverterUnreachableError(f"inverter {self._serial} is not reachable by radio")
        age = summary.data_age_s or 0.0
        if age > self._max_data_age_s:
            raise InverterUnreachableError(
                f"inverter {self._serial}: the DTU's data is {age:.0f} s old"
            )
        if live.ac_power_w is None:
            raise InvalidDeviceDataError(f"inverter {self._serial}: no AC power in livedata")
        nominal = self._nominal()
        self.share_pct = self.derating.share_pct(live.temperature_c) if self.derating else 100.0
        limit = status.limit_relative_pct
        if limit is None:
            limit = summary.limit_relative_pct
        if not self._wrote and self._baseline_pct is None and limit is not None:
            self._baseline_pct = limit
        return InverterReading(
            timestamp=now - age,
            ac_power_w=live.ac_power_w,
            rated_power_w=nominal * self.share_pct / 100.0,
            # % of the derated rating: above 100 while an older, higher limit is in force.
            limit_pct=None if limit is None else limit * 100.0 / self.share_pct,
            limit_enabled=None if limit is None else True,
            connected=False if self._powered_off else None,
            status="producing" if summary.producing else "idle",
            lifetime_energy_wh=live.yield_total_wh,
        )

    async def async_apply(self, command: InverterCommand) -> None:
        """Power off for connect=False; otherwise send the limit (or queue it, see limits)."""
        if not isinstance(command.connect, bool):
            raise TypeError(f"connect must be a bool, got {command.connect!r}")
        if not math.isfinite(command.limit_pct):
            raise ValueError(f"limit {command.limit_pct!r} % is not a finite number")
        if not command.connect:
            if not self._powered_off:
                await self._client.async_set_power(self._serial, on=False)
                self._powered_off = True
            return
        if self._powered_off:
            await self._client.async_set_power(self._serial, on=True)
            self._powered_off = False
        if self._max_power_w is None:
            await self._read_status(STATUS_MAX_AGE_S)
        due = self._pending.submit(self._request(command.limit_pct), self._clock())
        if due is not None:
            await self._send(due)
        elif self._pending.queued is not None:
            # Queued behind a pending one: if that has resolved meanwhile, this sends it now.
            await self._read_status(STATUS_MAX_AGE_S)

    async def async_release(self) -> None:
        """Power on if we switched it off; restore the limit it had before we started."""
        if self._powered_off:
            await self._client.async_set_power(self._serial, on=True)
            self._powered_off = False
        if not self._wrote and self._release_pct is None:
            return  # nothing of ours to undo
        await self._send(LimitRequest(LimitType.RELATIVE, self._restore_pct()), ours=False)
        if self._stored:
            self._stored = False
            self._notify(None)

    def _restore_pct(self) -> float:
        pct = 100.0 if self._baseline_pct is None else self._baseline_pct
        return min(100.0, max(0.0, pct))

    def _notify(self, pct: float | None) -> None:
        if self._on_baseline is not None and self._release_pct is None:
            self._on_baseline(pct)

    def _nominal(self) -> float:
        rating = self._max_power_w or self._fallback_rating
        if rating is None:
            raise InvalidDeviceDataError(
                f"inverter {self._serial}: the DTU does not know its max power yet "
                "and no rated power is configured"
            )
        return rating

    def _request(self, limit_pct: float) -> LimitRequest:
        return limit_request(
            limit_pct,
            max_power_w=self._nominal(),
            share_pct=self.share_pct,
            min_limit_pct=self._min_limit_pct,
            absolute=self._absolute,
        )

    async def _read_status(self, max_age_s: float, since: float | None = None) -> LimitStatus:
        fetched_at, statuses = await self._client.async_limit_status(
            max_age_s=max_age_s, since=since
        )
        status = statuses.get(self._serial)
        if status is None:
            raise UnknownInverterError(f"OpenDTU has no inverter {self._serial}", None)
        self.limit_status = status
        if status.max_power_w is not None:
            self._max_power_w = status.max_power_w
        due = self._pending.observe(status.set_status, fetched_at, self._clock())
        if due is not None:
            await self._send(due)
        return status

    async def _send(self, request: LimitRequest, *, ours: bool = True) -> None:
        if ours and not self._stored:
            # Stored before it is needed: a crash right after the write still knows it.
            self._stored = True
            self._notify(self._restore_pct())
        try:
            await self._client.async_set_limit(self._serial, request.type, request.value)
        except LimitTypeUnsupportedError as err:
            if request.type is not LimitType.ABSOLUTE:
                raise _no_limit_type(err) from err
            # Fall back for good: this firmware does not take absolute limits.
            self._absolute = False
            watts = request.value
            request = LimitRequest(
                LimitType.RELATIVE, min(100.0, math.floor(1000.0 * watts / self._nominal()) / 10)
            )
            try:
                await self._client.async_set_limit(self._serial, request.type, request.value)
            except LimitTypeUnsupportedError as again:
                raise _no_limit_type(again) from again
        self._wrote = True
        self._pending.sent(request, self._clock())


def _no_limit_type(err: LimitTypeUnsupportedError) -> LimitTypeUnsupportedError:
    return LimitTypeUnsupportedError(
        f"{err}; this firmware takes neither non-persistent limit type "
        "(0 absolute, 1 relative), and persistent ones would wear the inverter: update OpenDTU",
        err.code,
    )
