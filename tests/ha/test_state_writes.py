"""How many states the development site writes per hour, counted over a simulated span.

The development site (``scripts/develop``): two 5 kW SunSpec inverters and a SunSpec meter
on the simulated site, scenario ``default``, a fixed 1500 W export limit, control every
second. The simulated site and Home Assistant's clock are stepped together one second at
a time (the freezer holds the clock, so the count does not depend on how fast the machine
is), and every ``state_changed`` event is counted. Control still runs every second:
the counted span has one cycle per simulated second.

``DYNAMIC_EXPORT_WRITES_SPAN_S=3600 scripts/test --end oldest tests/ha/test_state_writes.py
-s`` counts a whole hour (the default span is two runs of the 5-minute scenario) and prints
the count of every entity.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, HomeAssistant, callback

from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from .sites import limiter_subentry, setup_site, sunspec_site, unload_sites

SPAN_S = int(os.environ.get("DYNAMIC_EXPORT_WRITES_SPAN_S", "600"))
BUDGET_PER_HOUR = 2000
"""Issue 11's target for the development site, with control at 1 s."""


@pytest.fixture
async def dev_sim(hass: HomeAssistant, socket_enabled: None) -> AsyncIterator[SimulatedSiteServer]:
    """The development site's simulator, its time stepped by the test."""
    server = SimulatedSiteServer("default", port=0, autostep=False)
    await server.start()
    try:
        yield server
    finally:
        await unload_sites(hass)
        await server.stop()


WARM_UP_S = 20
"""Stepped but not counted: the first settling after set-up."""


class SteppedClock:
    """The monotonic clock the site's loop and devices read, moved a second per cycle."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


async def count_state_changes(
    hass: HomeAssistant, sim: SimulatedSiteServer, span_s: int
) -> Counter[str]:
    """Run the development site for ``span_s`` simulated seconds; count states by entity.

    The site is set up as usual; then its schedule is stopped and each tick is stepped
    by hand: the simulated site, the clock of the control loop and of its devices move
    one second, and the coordinator is refreshed as the schedule refreshes it.
    """
    entry = await setup_site(
        hass, sunspec_site(sim, limiter_subentry("Export limit", export_limit=1500))
    )
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
    await coordinator.async_stop_schedule()
    clock = SteppedClock()
    runtime.loop.clock = clock
    for handle in [*runtime.inverters.values(), runtime.meter]:
        assert handle is not None
        handle.client._clock = clock  # type: ignore[attr-defined]

    changes: Counter[str] = Counter()

    @callback
    def _count(event: Event) -> None:
        changes[event.data["entity_id"]] += 1

    unsubscribe: Callable[[], None] = lambda: None  # noqa: E731
    for second in range(WARM_UP_S + span_s):
        if second == WARM_UP_S:
            unsubscribe = hass.bus.async_listen(EVENT_STATE_CHANGED, _count)
        sim.advance(1.0)
        clock.now += 1.0
        await coordinator.async_refresh()
    await hass.async_block_till_done()
    unsubscribe()
    return changes


async def test_the_development_site_writes_within_its_budget(
    hass: HomeAssistant, dev_sim: SimulatedSiteServer
) -> None:
    changes = await count_state_changes(hass, dev_sim, SPAN_S)
    # The site was controlled all along: never in fail-safe, at its export limit.
    assert changes["binary_sensor.home_fail_safe"] == 0
    assert changes["sensor.home_export_limit"] == 0

    per_hour = sum(changes.values()) * 3600 / SPAN_S
    print(f"\nstate writes over {SPAN_S} s: {sum(changes.values())} ({per_hour:.0f} per hour)")
    for entity_id, count in changes.most_common():
        print(f"  {count * 3600 / SPAN_S:7.0f}/h  {entity_id}")
    assert per_hour <= BUDGET_PER_HOUR
    # Every measurement still shows life: at least one write per heartbeat on the power
    # sensors that move.
    assert changes["sensor.home_site_load"] >= 1
