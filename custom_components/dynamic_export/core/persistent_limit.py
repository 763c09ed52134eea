"""Writing a limit register that may be persistent (flash): only when the held value changes.

Sungrow's power limitation ratio and Huawei's active power derating hold a share of the
rating in 0.1 % steps, with no revert timer, perhaps in flash. Writing one every cycle could
wear it out, so a driver asks this policy:

- **what to hold**: the command rounded down to ``step_pct`` (2 % by default), and a limit
  rises only once the command clears the held one by ``RISE_STEPS`` steps (falls at once:
  holding a little low only curtails a little more than needed);
- **whether to write**: never the same value to the same register twice within
  ``REWRITE_AFTER_S`` (a device that reads back something else right after a write, because
  it applies slowly or ignores it, is not written again every cycle);
- **the baseline**: the setting found before the first limit, kept once and reported through
  ``on_baseline`` so the site can store it (after a crash the device still holds our limit and
  only the store knows what to restore), dropped again when the device is handed back.

The device's own reads (what it holds) stay with the driver: their shapes differ.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

DEFAULT_STEP_PCT = 2.0
"""Limits are held in steps of this share of the rating: with the controller's own hold band
a steady site then writes a handful of times an hour, not every few seconds."""
RISE_STEPS = 1.5
"""A held limit rises only when the command is this many steps above it (hysteresis)."""
REWRITE_AFTER_S = 60.0
"""The same value is written to a register at most once in this time."""
FULL = 1000
"""100.0 % in the register's 0.1 % units."""
MIN_STEP_PCT = 0.1
MAX_STEP_PCT = 10.0


def ratio_value(limit_pct: float, step_pct: float) -> int:
    """The register value (0.1 %) for ``limit_pct``: finite, clamped to 0-100, rounded down.

    Rounded to ``step_pct``, so the device holds exactly what the write policy expects.
    """
    if isinstance(limit_pct, bool) or not isinstance(limit_pct, int | float):
        raise TypeError(f"limit must be a number, got {limit_pct!r}")
    if not math.isfinite(limit_pct):
        raise ValueError(f"limit {limit_pct!r} % is not a finite number")
    if not math.isfinite(step_pct) or not 0.1 <= step_pct <= 100:
        raise ValueError(f"step {step_pct!r} % must be 0.1-100")
    pct = min(100.0, max(0.0, float(limit_pct)))
    steps = math.floor(round(pct / step_pct, 6))
    raw = round(steps * step_pct * 10)
    if not 0 <= raw <= FULL:
        raise ValueError(f"ratio {raw} is outside 0..{FULL}")
    return raw


class PersistentLimit[BaselineT]:
    """The write-only-on-change policy of one device's persistent limit register(s)."""

    def __init__(
        self,
        step_pct: float = DEFAULT_STEP_PCT,
        *,
        baseline: BaselineT | None = None,
        on_baseline: Callable[[BaselineT | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``baseline``: what release restores, kept from an earlier run (None: not yet)."""
        if not math.isfinite(step_pct) or not MIN_STEP_PCT <= step_pct <= MAX_STEP_PCT:
            raise ValueError("step_pct must be 0.1-10 %")
        self.step_pct = float(step_pct)
        self._baseline = baseline
        self._on_baseline = on_baseline
        self._clock = clock
        self._last_write: dict[int, tuple[int, float]] = {}  # register -> (value, time)

    @property
    def baseline(self) -> BaselineT | None:
        """What release restores (None until the first limit, and after a release)."""
        return self._baseline

    def rounded(self, limit_pct: float) -> int:
        """The command as the register holds it; raises before anything is sent."""
        return ratio_value(limit_pct, self.step_pct)

    def to_hold(self, limit_pct: float, value: int, held: int | None) -> int:
        """``value`` (from :meth:`rounded`), or ``held`` while a rise stays within the band.

        ``held``: the value the device enforces now, None when it enforces no limit (a rise
        from there is not a rise). A command wavering across a step boundary writes nothing.
        """
        if held is None or not held < value < FULL:
            return value
        if limit_pct < held / 10.0 + RISE_STEPS * self.step_pct:
            return held
        return value

    def keep_baseline(self, baseline: BaselineT) -> None:
        """Keep the setting found before the first limit (later calls change nothing)."""
        if self._baseline is not None:
            return
        self._baseline = baseline
        if self._on_baseline is not None:
            self._on_baseline(baseline)

    def recently_written(self, register: int, value: int) -> bool:
        """True when ``value`` went to ``register`` less than REWRITE_AFTER_S ago."""
        last = self._last_write.get(register)
        return last is not None and last[0] == value and self._clock() - last[1] < REWRITE_AFTER_S

    def written(self, register: int, value: int) -> None:
        """Record a write the device answered."""
        self._last_write[register] = (value, self._clock())

    def handed_back(self) -> None:
        """The baseline is restored: forget it and the writes (the next limit starts over)."""
        self._last_write.clear()
        self._baseline = None
        if self._on_baseline is not None:
            self._on_baseline(None)
