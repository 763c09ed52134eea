"""The Powerwall gateway as the site meter (core.devices.SiteMeter).

Control needs grid power every cycle, and that is one GET of /api/meters/aggregates, which
also carries solar, battery and load power. Per-phase values (/api/meters/site) and the
battery's charge (/api/system_status/soe) change slowly and only feed sensors, so they are
fetched every ``phase_interval_s`` / ``soe_interval_s`` alongside a cycle's read; if one of
them fails the meter reading still stands, and values older than three intervals are dropped
rather than shown as current.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..core.errors import DeviceError
from ..core.measurements import MeterReading
from .client import PowerwallClient
from .data import Aggregates, SitePhases

_LOGGER = logging.getLogger(__name__)

DEFAULT_PHASE_INTERVAL_S = 10.0
DEFAULT_SOE_INTERVAL_S = 30.0
STALE_AFTER_INTERVALS = 3.0

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


class PowerwallMeter:
    """Implements core.devices.SiteMeter over a :class:`PowerwallClient`."""

    def __init__(
        self,
        client: PowerwallClient,
        *,
        phase_interval_s: float = DEFAULT_PHASE_INTERVAL_S,
        soe_interval_s: float = DEFAULT_SOE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wrap a client; the intervals pace the slow sensor-only reads."""
        if phase_interval_s <= 0 or soe_interval_s <= 0:
            raise ValueError("intervals must be positive")
        self._client = client
        self._clock = clock
        self._phases: _Slow[SitePhases] = _Slow(phase_interval_s)
        self._soe: _Slow[float] = _Slow(soe_interval_s)
        self._data: PowerwallData | None = None

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

    def _reading(self, aggregates: Aggregates, now: float) -> MeterReading:
        site = aggregates.site
        phases = self._phases.current(now)
        phase_power = (
            phases.power_w if phases and any(p is not None for p in phases.power_w) else None
        )
        voltages = [v for v in phases.voltage_v if v is not None] if phases else []
        self._data = PowerwallData(
            timestamp=now,
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
            timestamp=now,
            grid_power_w=site.power_w,
            phase_power_w=phase_power,
            import_energy_wh=site.imported_wh,
            export_energy_wh=site.exported_wh,
            # Phase-to-neutral, as SunSpec's PhV; the aggregate "average voltage" can be
            # line-to-line on split- and three-phase sites.
            voltage_v=sum(voltages) / len(voltages) if voltages else None,
            frequency_hz=site.frequency_hz,
        )
