"""For the real-time bench: load noise and drift, meter noise, held inputs, write counts."""

from __future__ import annotations

import statistics
from itertools import pairwise
from typing import Any

import pytest

from custom_components.dynamic_export.sim.physics import SimSite
from custom_components.dynamic_export.sim.scenario import Noise, Scenario, load_scenario
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from .test_server import Unit, _client

BASE: dict[str, Any] = {
    "duration_s": 600,
    "inverters": [{"rating_w": 6000}],
    "pv_available_w": 6500,
    "load_w": 1000,
}


def _scenario(**extra: Any) -> Scenario:
    return Scenario.from_dict({**BASE, **extra}, name="t")


def test_noise_is_seeded_held_per_period_and_has_the_asked_spread() -> None:
    noise = Noise(sigma_w=200.0, period_s=1.0, correlation=0.9, seed=7, span_s=20000.0)
    again = Noise(sigma_w=200.0, period_s=1.0, correlation=0.9, seed=7, span_s=20000.0)
    other = Noise(sigma_w=200.0, period_s=1.0, correlation=0.9, seed=8, span_s=20000.0)
    values = [noise.at(float(k)) for k in range(20000)]
    assert values == [again.at(float(k)) for k in range(20000)]
    assert values[:50] != [other.at(float(k)) for k in range(50)]
    assert noise.at(3.0) == noise.at(3.95) != noise.at(4.0)
    assert statistics.pstdev(values) == pytest.approx(200.0, rel=0.1)
    # Correlated: 1 s changes are far smaller than the spread (sqrt(2 * 0.1) * 200 ≈ 89 W).
    changes = [abs(b - a) for a, b in pairwise(values)]
    assert statistics.pstdev([b - a for a, b in pairwise(values)]) == (pytest.approx(89.4, rel=0.1))
    assert 40.0 < statistics.median(changes) < 80.0
    assert noise.at(-5.0) == values[0]
    assert noise.at(1e9) == noise.at(20000.0)


def test_load_noise_moves_the_load_every_second_and_never_below_zero() -> None:
    scenario = _scenario(load_noise={"sigma_w": 200, "period_s": 1, "correlation": 0.9, "seed": 1})
    loads = [scenario.load_at(k + 0.5) for k in range(600)]
    assert len(set(loads)) > 550
    assert scenario.load_at(10.0) == scenario.load_at(10.9)
    assert statistics.mean(loads) == pytest.approx(1000.0, abs=60.0)
    low = _scenario(load_w=0, load_noise={"sigma_w": 200, "seed": 1})
    assert min(low.load_at(k) for k in range(600)) == 0.0


def test_load_ramp_drifts_then_holds() -> None:
    scenario = _scenario(
        load_w=3000,
        events=[{"t": 100, "type": "load_ramp", "duration_s": 60, "rate_w_per_s": -35}],
    )
    assert scenario.load_at(100.0) == 3000.0
    assert scenario.load_at(110.0) == pytest.approx(3000.0 - 350.0)
    assert scenario.load_at(160.0) == pytest.approx(3000.0 - 2100.0)
    assert scenario.load_at(500.0) == pytest.approx(900.0)


def test_meter_noise_is_in_the_reading_only() -> None:
    quiet = SimSite(_scenario())
    noisy = SimSite(_scenario(meter_noise={"sigma_w": 50, "period_s": 0.1, "seed": 3}))
    readings = []
    for _ in range(100):
        quiet.step(0.1)
        noisy.step(0.1)
        assert noisy.grid_power_w == quiet.grid_power_w  # the true power is untouched
        readings.append(noisy.meter.reported_power_w - noisy.grid_power_w)
    assert len(set(readings)) > 90
    assert statistics.pstdev(readings) == pytest.approx(50.0, rel=0.35)
    assert noisy.meter.export_energy_wh == pytest.approx(quiet.meter.export_energy_wh)


def test_inputs_can_hold_until_the_scenario_starts() -> None:
    scenario = _scenario(events=[{"t": 5, "type": "load_step", "delta_w": 2000}])
    site = SimSite(scenario)
    site.inputs_from_s = 10.0  # the scenario's time 0 is at site time 10
    site.run(14.9)
    assert site.load_w == 1000.0
    site.run(0.2)
    assert site.load_w == 3000.0
    assert site.input_time(20.0) == pytest.approx(10.0)


def test_unknown_noise_field_and_bad_ramp_are_refused() -> None:
    with pytest.raises(ValueError, match="load_noise: unknown field"):
        _scenario(load_noise={"sigma_w": 200, "sigma": 1})
    with pytest.raises(ValueError, match="correlation must be <= 1"):
        _scenario(meter_noise={"sigma_w": 20, "correlation": 2})
    with pytest.raises(ValueError, match="duration_s must be > 0"):
        _scenario(events=[{"t": 1, "type": "load_ramp", "duration_s": 0, "rate_w_per_s": 1}])
    with pytest.raises(ValueError, match="seed must be a whole number"):
        _scenario(load_noise={"sigma_w": 200, "seed": 1.5})


@pytest.mark.asyncio
async def test_server_counts_every_write_request_per_unit() -> None:
    async with SimulatedSiteServer(load_scenario("load_steps"), autostep=False) as server:
        client = await _client(server)
        try:
            unit = Unit(client, 1)
            assert not (await unit.write(40232, [5000, 0, 0, 0])).isError()
            assert not (await unit.write(40236, [1])).isError()
            assert (await unit.write(40000, [1])).isError()  # refused, still a request
            await Unit(client, 2).read(40000, 2)  # reads are not counted
            meter = Unit(client, 240)
            assert (await meter.write(40000, [1])).isError()
        finally:
            client.close()
        assert server.write_requests == {1: 3, 240: 1}
