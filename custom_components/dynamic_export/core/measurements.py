"""Readings taken from the site's devices, in one sign convention.

Grid power is positive when the site imports and negative when it exports.
Inverter power is positive when the inverter generates. Reactive power follows the
sign of the same device's active power (the meter: + import; an inverter: + delivered).
Timestamps are seconds on the caller's monotonic clock, so the controller can tell how
old a reading is.
"""

from __future__ import annotations

from dataclasses import dataclass

type PhaseValues = tuple[float | None, float | None, float | None]
"""Values of phases (A, B, C); ``None`` where the device does not measure that phase."""


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One reading of the site (grid connection point) meter."""

    timestamp: float
    grid_power_w: float
    phase_power_w: PhaseValues | None = None
    import_energy_wh: float | None = None
    export_energy_wh: float | None = None
    voltage_v: float | None = None
    """One voltage for the site (e.g. the average line-to-neutral voltage)."""
    frequency_hz: float | None = None
    reactive_power_var: float | None = None
    phase_voltage_v: PhaseValues | None = None
    """Line-to-neutral voltage of each phase the meter measures."""

    @property
    def export_w(self) -> float:
        """Power exported to the grid (negative while importing)."""
        return -self.grid_power_w


@dataclass(frozen=True, slots=True)
class InverterReading:
    """One reading of an inverter, with the limit it reports being under."""

    timestamp: float
    ac_power_w: float
    rated_power_w: float
    limit_pct: float | None = None
    limit_enabled: bool | None = None
    connected: bool | None = None
    status: str | None = None
    lifetime_energy_wh: float | None = None
    available_w: float | None = None
    """What the inverter says it could produce now (SunSpec ``WAval``); None: it does not say."""
    reactive_power_var: float | None = None
    phase_voltage_v: PhaseValues | None = None
    """Line-to-neutral voltage of each phase the inverter is connected to."""
    frequency_hz: float | None = None

    @property
    def limit_w(self) -> float:
        """The output ceiling the inverter is under now, in watts."""
        if self.connected is False:
            return 0.0
        if not self.limit_enabled or self.limit_pct is None:
            return self.rated_power_w
        return self.rated_power_w * self.limit_pct / 100.0


@dataclass(frozen=True, slots=True)
class InverterCommand:
    """What the controller wants one inverter to do.

    ``limit_pct`` is the share of the inverter's rated power (its WMax) it may
    produce, 0–100. ``connect`` False opens the inverter's grid relay.
    """

    connect: bool
    limit_pct: float
