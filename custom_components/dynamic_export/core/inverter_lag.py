"""How fast the inverters follow a cut, learnt from the cuts themselves, and how to land one.

Inverters follow a new limit with a lag (about 1 s for most string inverters, 5 s and more
for micro-inverters behind a radio). After a large load drop the site exports above its
limit until the output has come down: a controller that sets the limit to the target waits
for the whole lag on top of its own cycle. Knowing the lag, a cut can be commanded a little
deeper than the target for one cycle, so the output reaches the target by the next cycle;
that cycle then sets the target itself. Undershooting only lowers output (the safe side),
and only as deep as the learnt lag justifies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_CUT_W = 300.0
"""Cuts smaller than this (or than a few load-noise deviations) are left to the lag: the
noise would drown what they teach, and they cost little."""
MAX_UNDERSHOOT = 1.0
"""A cut is commanded at most this many times its own size below the target."""
MIN_SHARE_PER_S = 0.3
"""Inverters that close less of a cut than this in a second (a time constant over ~3 s) are
not driven deeper: a device that acts only after a dead time (OpenDTU waits for the radio's
acknowledgement) looks just like that after one cycle, and would then land on the deeper
limit itself."""
LEARNING_WEIGHT = 0.5
"""Weight of each observed cut (large cuts are rare; the newest ones count most)."""
MAX_OBSERVE_GAP_S = 5.0
"""A reading later than this after the cut says nothing reliable about one cycle."""
ISOLATION_S = 10.0
"""Only a cut with no other cut this long before it teaches the lag: a device that acts after
a dead time would otherwise seem to make a later cut at once (the earlier one landing)."""


@dataclass(frozen=True, slots=True)
class _Cut:
    time: float
    output_w: float
    commanded_w: float


class InverterLag:
    """Learn the share of a cut the inverters make per second; command cuts that land."""

    def __init__(self) -> None:
        """Nothing learnt: cuts are commanded at the target until one has been seen."""
        self._share_per_s: float | None = None
        self._cut: _Cut | None = None
        self._last_cut_time: float | None = None

    @property
    def time_constant_s(self) -> float | None:
        """The inverters' first-order time constant as learnt (None until a cut is seen)."""
        share = self._share_per_s
        if share is None or share >= 1.0:
            return None if share is None else 0.0
        return -1.0 / math.log(1.0 - share)

    def reset(self) -> None:
        """Forget the cut in flight (control was off); what was learnt stays."""
        self._cut = None

    def observe(self, output_w: float, now: float) -> None:
        """Learn from the output read one cycle after a large cut."""
        cut, self._cut = self._cut, None
        if cut is None:
            return
        elapsed = now - cut.time
        asked = cut.output_w - cut.commanded_w
        if not 0.0 < elapsed <= MAX_OBSERVE_GAP_S or asked <= 0 or not math.isfinite(output_w):
            return
        made = min(1.0, max(0.0, (cut.output_w - output_w) / asked))
        # The share of the remaining gap closed per second, for a first-order lag.
        share = 1.0 - (1.0 - made) ** (1.0 / elapsed) if made < 1.0 else 1.0
        share = min(1.0, max(0.05, share))
        if self._share_per_s is None:
            self._share_per_s = share
        else:
            self._share_per_s += LEARNING_WEIGHT * (share - self._share_per_s)

    def command(
        self, target_w: float, output_w: float, now: float, *, cycle_s: float, min_cut_w: float
    ) -> float:
        """The total limit to command for ``target_w`` with the inverters now at ``output_w``.

        A cut of at least ``min_cut_w`` is deepened so that, by the learnt lag, the output
        reaches ``target_w`` after ``cycle_s``; anything else is commanded as it is.
        """
        gap = output_w - target_w
        if gap < max(MIN_CUT_W, min_cut_w) or not math.isfinite(gap):
            return target_w
        isolated = self._last_cut_time is None or now - self._last_cut_time > ISOLATION_S
        self._last_cut_time = now
        commanded = target_w
        share = self._share_per_s
        if share is not None and MIN_SHARE_PER_S <= share < 1.0 and cycle_s > 0:
            landed = 1.0 - (1.0 - share) ** cycle_s  # share of the gap closed by next cycle
            undershoot = min(MAX_UNDERSHOOT, (1.0 - landed) / landed)
            commanded = max(0.0, target_w - undershoot * gap)
        self._cut = _Cut(now, output_w, commanded) if isolated else None
        return commanded
