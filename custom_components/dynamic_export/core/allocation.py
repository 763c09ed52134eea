"""Split a site generation target among inverters.

Shares follow the inverters' ratings, but an inverter that produces well below
the limit it already has (shade, a failed string, a small array) is given only a
little more than it produces, and the rest goes to the inverters that can use it.
The shares always add up to the target (or to the total rating when the target is
higher), so the target holds even if every inverter suddenly produces its share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# An inverter producing well below its present limit is taken to be short of
# sunlight rather than held back by us; its share is then its output plus a
# headroom: a fraction of its rating, but at least MIN_HEADROOM_W.
HEADROOM_FRACTION = 0.05
MIN_HEADROOM_W = 50.0
# "Well below" means more than this share of the headroom below the limit. It must
# be less than 1: at the next cycle the inverter's limit is its output plus the
# headroom, and it has to still count as short or the split would flip back to
# rating shares and alternate every cycle.
SHORT_FRACTION_OF_HEADROOM = 0.5


@dataclass(frozen=True, slots=True)
class AllocationInput:
    """What the allocator knows about one inverter."""

    key: str
    rated_power_w: float
    output_w: float
    limit_w: float


def headroom_w(rated_power_w: float) -> float:
    """Margin above present output that counts as "able to produce more"."""
    return max(MIN_HEADROOM_W, HEADROOM_FRACTION * rated_power_w)


def allocate(target_w: float, inverters: Sequence[AllocationInput]) -> dict[str, float]:
    """Return each inverter's share of ``target_w`` in watts."""
    if not inverters:
        return {}
    total_rating = sum(inv.rated_power_w for inv in inverters)
    target = min(max(0.0, target_w), total_rating)
    caps = {inv.key: _capability(inv) for inv in inverters}
    shares = _fill_by_rating(target, inverters, caps)
    spare = target - sum(shares.values())
    if spare > 1e-6:
        # The target exceeds what the inverters seem able to produce: hand the
        # rest out by unused rating so nobody is held below what it could do.
        room = {inv.key: inv.rated_power_w - shares[inv.key] for inv in inverters}
        total_room = sum(room.values())
        if total_room > 0:
            for inv in inverters:
                shares[inv.key] += spare * room[inv.key] / total_room
    return shares


def _capability(inverter: AllocationInput) -> float:
    """Watts an inverter can be expected to use if it is given them."""
    margin = headroom_w(inverter.rated_power_w)
    if inverter.output_w < inverter.limit_w - SHORT_FRACTION_OF_HEADROOM * margin:
        return min(inverter.rated_power_w, max(0.0, inverter.output_w) + margin)
    return inverter.rated_power_w


def _fill_by_rating(
    target: float, inverters: Sequence[AllocationInput], caps: dict[str, float]
) -> dict[str, float]:
    """Water-fill ``target`` in proportion to rating, never above each cap."""
    shares = dict.fromkeys(caps, 0.0)
    active = [inv for inv in inverters if inv.rated_power_w > 0]
    remaining = target
    while active and remaining > 1e-6:
        rating = sum(inv.rated_power_w for inv in active)
        capped = [inv for inv in active if remaining * inv.rated_power_w / rating >= caps[inv.key]]
        if not capped:
            for inv in active:
                shares[inv.key] = remaining * inv.rated_power_w / rating
            return shares
        capped_keys = {inv.key for inv in capped}
        for key in capped_keys:
            shares[key] = caps[key]
            remaining -= caps[key]
        active = [inv for inv in active if inv.key not in capped_keys]
    return shares
