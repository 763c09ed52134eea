"""The Powerwall gateway as the site meter (core.devices.SiteMeter).

Control needs grid power every cycle, and that is one GET of /api/meters/aggregates, which
also carries solar, battery and load power. Per-phase values (/api/meters/site) and the
battery's charge (/api/system_status/soe) change slowly and only feed sensors, so they are
fetched every ``phase_interval_s`` / ``soe_interval_s`` alongside a cycle's read; if one of
them fails the meter reading still stands, and values older than three intervals are dropped
rather than shown as current.

**Freshness.** A gateway can keep answering with values it stopped updating, so a reading is
dated when the gateway last heard from its site meter (``last_communication_time``), not when
we asked; the controller's meter age limit then sends the site to fail-safe. When a new
``last_communication_time`` appears, its age is taken on the gateway's own clock (its HTTP
Date), clamped at 0 for a time in the future, and the reading is dated that long before we
read it; from then on that date stays, so a time that stops changing ages on our monotonic
clock, whatever the clocks do. Without a usable Date our wall clock stands in, which may be
skewed or jump: a time that changed since the previous read was heard after that read, so
its age is capped at the time since then. Go's zero time (never heard) is no reading at all.
A missing or unusable time cannot be judged: the reading is dated when it was read, as
before, with one warning.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..core.errors import DeviceError
from ..core.measurements import MeterReading
from .client import PowerwallClient
from .data import NEVER, Aggregates, SitePhases
from .errors import SiteMeterSilentError

_LOGGER = logging.getLogger(__name__)

DEFAULT_PHASE_INTERVAL_S = 10.0
DEFAULT_SOE_INTERVAL_S = 30.0
STALE_AFTER_INTERVALS = 3.0
DEFAULT_FROZEN_AFTER_S = 5.0  # the controller's default meter age limit

type Phases = tuple[float | None, float | None, float | None]


@dataclass(frozen=True, slots=True)
class PowerwallData:
    """The latest values, for sensors. Powers in W with the gateway's signs."""

    timestamp: float
    grid_power_w: float  # +import / −export
    solar_power_w: float | None
    battery_power_w: float | None  # +discharge / −charge
    load_power_w: float | None
    battery_soe_pct: float | None  # the gateway's raw value, see data.parse_soe
    phase_power_w: Phases | None
    phase_voltage_v: Phases | None
    frequency_hz: float | None
    grid_import_wh: float | None
    grid_export_wh: float | None


@dataclass(slots=True)
class _Slow[T]:
    """A value fetched every ``interval_s``."""

    interval_s: float
    value: T | None = None
    fetched_at: float | None = None
    attempted_at: float | None = None

    def due(self, now: float) -> bool:
        return self.attempted_at is None or now - self.attempted_at >= self.interval_s

    def current(self, now: float) -> T | None:
        if self.fetched_at is None or now - self.fetched_at > STALE_AFTER_INTERVALS * (
            self.interval_s
        ):
            return None
        return self.value


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PowerwallMeter:
    """Implements core.devices.SiteMeter over a :class:`PowerwallClient`."""

    def __init__(
        self,
        client: PowerwallClient,
        *,
        phase_interval_s: float = DEFAULT_PHASE_INTERVAL_S,
        soe_interval_s: float = DEFAULT_SOE_INTERVAL_S,
        frozen_after_s: float = DEFAULT_FROZEN_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """Wrap a client; the intervals pace the slow sensor-only reads.

        ``frozen_after_s`` only decides when a frozen gateway is logged; the controller's own
        meter age limit decides what it does about it.
        """
        if phase_interval_s <= 0 or soe_interval_s <= 0 or frozen_after_s <= 0:
            raise ValueError("intervals must be positive")
        self._client = client
        self._clock = clock
        self._wall_clock = wall_clock
        self._frozen_after_s = frozen_after_s
        self._phases: _Slow[SitePhases] = _Slow(phase_interval_s)
        self._soe: _Slow[float] = _Slow(soe_interval_s)
        self._data: PowerwallData | None = None
        self._heard: datetime | None = None  # the site meter's last_communication_time
        self._heard_dated = 0.0  # that time on our clock
        self._read_at: float | None = None  # when (our clock) the previous dated read was
        self._frozen = False
        self._warned_undated = False

    @property
    def client(self) -> PowerwallClient:
        """The gateway client."""
        return self._client

    @property
    def data(self) -> PowerwallData | None:
        """Values from the last successful read, for sensors."""
        return self._data

    async def async_read(self) -> MeterReading:
        """Read grid power now (plus the slow values when they are due)."""
        now = self._clock()
        slow = asyncio.ensure_future(self._refresh_due(now))
        try:
            aggregates = await self._client.async_aggregates()
        except DeviceError:
            # The sensor reads have the same timeout: let them end rather than reset their
            # connections mid-handshake, which the gateway sees as failed connections.
            await asyncio.gather(slow, return_exceptions=True)
            raise
        except BaseException:
            slow.cancel()
            await asyncio.gather(slow, return_exceptions=True)
            raise
        await slow
        return self._reading(aggregates, now)

    async def _refresh_due(self, now: float) -> None:
        slow: list[Awaitable[None]] = []
        if self._phases.due(now):
            slow.append(self._refresh(self._phases, self._client.async_site_meter, now))
        if self._soe.due(now):
            slow.append(self._refresh(self._soe, self._client.async_soe, now))
        await asyncio.gather(*slow)

    async def _refresh[T](
        self, slot: _Slow[T], fetch: Callable[[], Awaitable[T | None]], now: float
    ) -> None:
        slot.attempted_at = now
        try:
            slot.value = await fetch()
        except DeviceError as err:
            _LOGGER.debug("Powerwall %s: slow read failed: %s", self._client.host, err)
            return
        slot.fetched_at = now

    def _heard_at(self, aggregates: Aggregates, now: float) -> float:
        """When the gateway last heard from its site meter, on our clock (see module doc)."""
        heard = aggregates.site.heard_at
        host = self._client.host
        if heard is None:
            if not self._warned_undated:
                self._warned_undated = True
                _LOGGER.warning(
                    "Powerwall %s sends no usable last_communication_time for its site meter: "
                    "cannot tell how old its data is, so frozen data goes unnoticed",
                    host,
                )
            return now
        if heard == NEVER:
            raise SiteMeterSilentError(f"Powerwall {host} has never heard from its site meter")
        if heard != self._heard:
            gateway_time = aggregates.gateway_time
            age = max(0.0, ((gateway_time or self._wall_clock()) - heard).total_seconds())
            if gateway_time is None and self._read_at is not None:
                age = min(age, now - self._read_at)  # heard since the previous read
            self._heard, self._heard_dated = heard, now - age
        self._read_at = now
        timestamp = self._heard_dated
        frozen = now - timestamp > self._frozen_after_s
        if frozen and not self._frozen:
            _LOGGER.warning(
                "Powerwall %s has not heard from its site meter for %.0f s "
                "(last_communication_time %s): its data is frozen",
                host,
                now - timestamp,
                heard.isoformat(),
            )
        elif self._frozen and not frozen:
            _LOGGER.info("Powerwall %s hears from its site meter again", host)
        self._frozen = frozen
        return timestamp

    def _reading(self, aggregates: Aggregates, now: float) -> MeterReading:
        timestamp = self._heard_at(aggregates, now)
        site = aggregates.site
        phases = self._phases.current(now)
        phase_power = (
            phases.power_w if phases and any(p is not None for p in phases.power_w) else None
        )
        voltages = [v for v in phases.voltage_v if v is not None] if phases else []
        self._data = PowerwallData(
            timestamp=timestamp,
            grid_power_w=site.power_w,
            solar_power_w=aggregates.solar.power_w if aggregates.solar else None,
            battery_power_w=aggregates.battery.power_w if aggregates.battery else None,
            load_power_w=aggregates.load.power_w if aggregates.load else None,
            battery_soe_pct=self._soe.current(now),
            phase_power_w=phase_power,
            phase_voltage_v=phases.voltage_v if voltages and phases else None,
            frequency_hz=site.frequency_hz,
            grid_import_wh=site.imported_wh,
            grid_export_wh=site.exported_wh,
        )
        return MeterReading(
            timestamp=timestamp,
            grid_power_w=site.power_w,
            phase_power_w=phase_power,
            import_energy_wh=site.imported_wh,
            export_energy_wh=site.exported_wh,
            # Phase-to-neutral, as SunSpec's PhV; the aggregate "average voltage" can be
            # line-to-line on split- and three-phase sites.
            voltage_v=sum(voltages) / len(voltages) if voltages else None,
            frequency_hz=site.frequency_hz,
        )
