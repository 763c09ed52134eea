"""Decide when a command is worth writing to an inverter.

Inverters keep limits in memory or flash; writing every cycle wears some of
them and floods slow links. A command is written when it moved beyond a
deadband, when the site is over its limit and the command goes down, when the
inverter reports something other than what we wrote, or to refresh it before
the inverter's revert timer would drop it.

Devices hold a limit in steps (1 % for SunSpec at scale factor 0, a number entity's step):
commands are compared as the device will hold them, and a read-back may sit up to one step
below what was written without counting as drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .measurements import InverterCommand, InverterReading

# Refresh a limit when this share of the revert timer has passed since the
# last write, leaving time for a retry or two before the inverter drops it.
REFRESH_FRACTION = 0.5
# The refresh comes in the first cycle after that point, a retry one cycle later; both must
# land before the timer runs out, so a revert timer spans at least this many cycles.
MIN_REVERT_CYCLES = 4
MIN_REVERT_TIMEOUT_S = 10.0


def min_revert_timeout(interval_s: float) -> float:
    """The shortest revert timer that control cycles ``interval_s`` apart keep refreshed."""
    return max(MIN_REVERT_TIMEOUT_S, MIN_REVERT_CYCLES * interval_s)


@dataclass(frozen=True, slots=True)
class _Written:
    command: InverterCommand
    time: float


class WritePolicy:
    """Remember the last command written to each inverter and judge new ones."""

    def __init__(self, deadband_pct: float = 1.0) -> None:
        """``deadband_pct`` is in % of the inverter's rating."""
        self.deadband_pct = deadband_pct
        self._written: dict[str, _Written] = {}

    def should_write(
        self,
        key: str,
        command: InverterCommand,
        reading: InverterReading | None,
        revert_timeout_s: float,
        now: float,
        *,
        urgent: bool = False,
        step_pct: float = 0.0,
    ) -> bool:
        """Return True when ``command`` should be written now.

        ``urgent`` means the site is out of bounds: any decrease is written. ``step_pct``
        is the device's limit step (0: continuous).
        """
        last = self._written.get(key)
        if last is None or last.command.connect != command.connect:
            return True
        if revert_timeout_s > 0 and now - last.time >= revert_timeout_s * REFRESH_FRACTION:
            return True
        tolerance = self.deadband_pct + max(0.0, step_pct)
        if reading is not None and _drifted(reading, last.command, tolerance):
            return True
        held = _as_held(command.limit_pct, step_pct)
        held_before = _as_held(last.command.limit_pct, step_pct)
        if held == held_before:
            return False  # the device would hold exactly what it holds now
        if held <= 0.0 < held_before:
            return True  # going to zero (energize off, zero target) is never "small"
        delta = held - held_before
        if urgent and delta < -0.01:
            return True
        return abs(delta) >= self.deadband_pct

    def record(self, key: str, command: InverterCommand, now: float) -> None:
        """Note a successful write."""
        self._written[key] = _Written(command, now)

    def forget(self, key: str | None = None) -> None:
        """Forget one inverter (after a failed write) or all (after a release)."""
        if key is None:
            self._written.clear()
        else:
            self._written.pop(key, None)

    def last_command(self, key: str) -> InverterCommand | None:
        """Return the last command written to ``key``."""
        written = self._written.get(key)
        return written.command if written else None


def _as_held(limit_pct: float, step_pct: float) -> float:
    """The limit a device with ``step_pct`` steps holds for a command (rounded down)."""
    if step_pct <= 0:
        return limit_pct
    return math.floor(limit_pct / step_pct + 1e-9) * step_pct


def _drifted(reading: InverterReading, written: InverterCommand, tolerance_pct: float) -> bool:
    """True when the inverter no longer holds what we wrote (reverted, or changed by others)."""
    if reading.connected is not None and reading.connected != written.connect:
        return True
    if not written.connect:
        return False
    if reading.limit_enabled is False:
        return written.limit_pct < 100.0
    if reading.limit_pct is None:
        return False
    return abs(reading.limit_pct - written.limit_pct) >= tolerance_pct
