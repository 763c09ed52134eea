"""How much the site's load moves from one cycle to the next, learnt as it runs.

A household load is never still: kettles, fridges and heat pumps move it by tens of watts
every second. Steering exactly to ``load + export limit`` exports above the limit half of
the time and rewrites the inverters nearly every cycle. Knowing the size of these moves,
the controller keeps a margin below the limit and leaves the inverters alone while the
load wanders inside a band (see ``core.controller``).
"""

from __future__ import annotations

import math

# A fresh site assumes a still load (steering exactly to the limit) and learns its own
# within about a minute.
INITIAL_SIGMA_W = 0.0
# Weight of each new change: about the last 30 changes count.
SMOOTHING = 1.0 / 30.0
# A change this many deviations (plus a floor) away is an appliance switching (a load
# step the controller follows at once), not noise: it is left out.
OUTLIER_SIGMAS = 3.0
OUTLIER_FLOOR_W = 50.0
# Changes over gaps longer than this are not "one cycle apart" (control was off, the meter
# was away): they teach nothing about the cycle-to-cycle noise.
MAX_GAP_S = 10.0


class LoadNoise:
    """Root-mean-square change of the load per second, robust to appliance steps."""

    def __init__(self, initial_sigma_w: float = INITIAL_SIGMA_W) -> None:
        """Start from ``initial_sigma_w`` until the load has been seen."""
        self._initial = initial_sigma_w
        self._variance = initial_sigma_w**2
        self._last: tuple[float, float] | None = None

    @property
    def sigma_w(self) -> float:
        """Typical change of the load over one second, in W."""
        return math.sqrt(self._variance)

    def reset(self) -> None:
        """Forget the last load (control was off): the next one starts a new series."""
        self._last = None

    def update(self, load_w: float, now: float) -> float:
        """Learn from the load measured at ``now``; return the typical 1 s change."""
        if not math.isfinite(load_w):
            return self.sigma_w
        last, self._last = self._last, (now, load_w)
        if last is None:
            return self.sigma_w
        elapsed = now - last[0]
        if not 0.0 < elapsed <= MAX_GAP_S:
            return self.sigma_w
        # Noise that moves every second adds up like a random walk over longer cycles:
        # scale the change to one second so the figure does not depend on the interval.
        change = (load_w - last[1]) / math.sqrt(elapsed)
        if abs(change) > OUTLIER_SIGMAS * self.sigma_w + OUTLIER_FLOOR_W:
            return self.sigma_w
        self._variance += SMOOTHING * (change * change - self._variance)
        return self.sigma_w
