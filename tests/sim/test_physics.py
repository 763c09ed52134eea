"""Physics of the simulated site: lag, limits, revert timers, disconnect, meter."""

from __future__ import annotations

import math

import pytest

from custom_components.dynamic_export.sim.physics import SimInverter, SimMeter, SimSite
from custom_components.dynamic_export.sim.scenario import Event, InverterSpec, Profile, Scenario


def _scenario(
    *,
    pv_w: float = 6000.0,
    load_w: float = 1000.0,
    ratings: tuple[float, ...] = (5000.0, 5000.0),
    tau: float = 1.0,
    events: tuple[Event, ...] = (),
    meter_delay_s: float = 0.0,
) -> Scenario:
    return Scenario(
        name="test",
        duration_s=1000.0,
        inverters=tuple(InverterSpec(rating_w=r, time_constant_s=tau) for r in ratings),
        pv_available_w=Profile.constant(pv_w),
        load_w=Profile.constant(load_w),
        events=events,
        meter_delay_s=meter_delay_s,
    )


def test_site_starts_settled_and_grid_sign_is_import_positive() -> None:
    site = SimSite(_scenario())
    assert [inv.output_w for inv in site.inverters] == [3000.0, 3000.0]
    assert site.grid_power_w == pytest.approx(1000.0 - 6000.0)
    assert site.export_w == pytest.approx(5000.0)


def test_lag_reaches_63_percent_after_one_time_constant() -> None:
    site = SimSite(_scenario(tau=2.0))
    site.write_limit(0, limit_pct=20.0, enabled=True)  # ceiling 1000 W, from 3000 W
    site.run(2.0, dt=0.1)
    drop = 3000.0 - site.inverters[0].output_w
    assert drop / 2000.0 == pytest.approx(1 - math.exp(-1), abs=1e-9)
    assert site.inverters[1].output_w == pytest.approx(3000.0)


def test_lag_does_not_depend_on_step_size() -> None:
    coarse, fine = SimInverter(5000.0, 1.5), SimInverter(5000.0, 1.5)
    coarse.step(3.0, 4000.0)
    for _ in range(300):
        fine.step(0.01, 4000.0)
    assert coarse.output_w == pytest.approx(fine.output_w, rel=1e-9)
    assert coarse.lifetime_energy_wh == pytest.approx(fine.lifetime_energy_wh, rel=1e-9)


@pytest.mark.parametrize(
    ("available", "limit_pct", "enabled", "expected"),
    [
        (6000.0, 100.0, False, 5000.0),  # rating caps
        (2000.0, 100.0, False, 2000.0),  # PV caps
        (6000.0, 30.0, True, 1500.0),  # limit caps
        (6000.0, 30.0, False, 5000.0),  # limit set but not enabled
        (1000.0, 30.0, True, 1000.0),  # PV below the limit
    ],
)
def test_ceiling(available: float, limit_pct: float, enabled: bool, expected: float) -> None:
    inverter = SimInverter(5000.0, time_constant_s=0.0)
    inverter.write_limit(0.0, limit_pct=limit_pct, enabled=enabled)
    inverter.step(0.1, available)
    assert inverter.output_w == pytest.approx(expected)


def test_limit_is_clamped_to_0_100() -> None:
    inverter = SimInverter(5000.0)
    inverter.write_limit(0.0, limit_pct=150.0, enabled=True)
    assert inverter.limit_pct == 100.0
    inverter.write_limit(0.0, limit_pct=-5.0)
    assert inverter.limit_pct == 0.0


def test_shaded_inverter_produces_far_below_rating() -> None:
    scenario = Scenario(
        name="shade",
        duration_s=100.0,
        inverters=(InverterSpec(5000.0), InverterSpec(5000.0, availability=0.1)),
        pv_available_w=Profile.constant(8000.0),
        load_w=Profile.constant(0.0),
    )
    site = SimSite(scenario)
    assert site.inverters[0].output_w == pytest.approx(4000.0)
    assert site.inverters[1].output_w == pytest.approx(400.0)


def test_revert_timer_releases_the_limit() -> None:
    site = SimSite(_scenario(tau=0.5))
    site.write_limit(0, limit_pct=10.0, enabled=True, revert_s=10.0)
    site.run(9.9)
    assert site.inverters[0].limit_enabled
    assert site.inverters[0].output_w == pytest.approx(500.0, abs=1.0)
    site.run(0.2)
    assert not site.inverters[0].limit_enabled
    site.run(5.0)
    assert site.inverters[0].output_w == pytest.approx(3000.0, abs=1.0)


def test_rewriting_restarts_the_revert_timer() -> None:
    site = SimSite(_scenario())
    site.write_limit(0, limit_pct=10.0, enabled=True, revert_s=10.0)
    site.run(8.0)
    site.write_limit(0, limit_pct=10.0)
    site.run(8.0)
    assert site.inverters[0].limit_enabled
    site.run(2.5)
    assert not site.inverters[0].limit_enabled


def test_zero_revert_time_never_reverts() -> None:
    site = SimSite(_scenario())
    site.write_limit(0, limit_pct=10.0, enabled=True, revert_s=0.0)
    site.run(500.0, dt=1.0)
    assert site.inverters[0].limit_enabled


def test_disconnect_cuts_output_and_conn_revert_reconnects() -> None:
    site = SimSite(_scenario())
    site.write_conn(1, connected=False, revert_s=5.0)
    site.step(0.1)
    assert site.inverters[1].output_w == 0.0
    assert site.grid_power_w == pytest.approx(1000.0 - 3000.0)
    site.run(4.8)
    assert not site.inverters[1].connected
    site.run(0.2)
    assert site.inverters[1].connected
    site.run(10.0)
    assert site.inverters[1].output_w == pytest.approx(3000.0, abs=1.0)


def test_meter_reports_with_delay() -> None:
    events = (Event(t=30.0, type="load_step", delta_w=-3000.0),)
    site = SimSite(_scenario(load_w=4000.0, events=events, meter_delay_s=2.0))
    site.run(30.0)
    assert site.grid_power_w == pytest.approx(-5000.0)
    assert site.meter.reported_power_w == pytest.approx(-2000.0)
    site.run(1.9)
    assert site.meter.reported_power_w == pytest.approx(-2000.0)
    site.run(0.2)
    assert site.meter.reported_power_w == pytest.approx(-5000.0)


def test_meter_energy_counters() -> None:
    meter = SimMeter()
    meter.record(0.0, -3600.0)
    meter.record(3600.0, -3600.0, dt=3600.0)
    meter.record(3610.0, 7200.0, dt=10.0)  # crosses zero within the interval: net counted
    assert meter.export_energy_wh == pytest.approx(3600.0)
    assert meter.import_energy_wh == pytest.approx((7200.0 - 3600.0) / 2 * 10 / 3600)


def test_energy_counters_track_a_run() -> None:
    site = SimSite(_scenario(load_w=1000.0))  # exporting 5 kW
    site.run(360.0, dt=1.0)
    assert site.meter.export_energy_wh == pytest.approx(500.0)
    assert site.meter.import_energy_wh == 0.0
    assert site.inverters[0].lifetime_energy_wh == pytest.approx(300.0)


def test_run_is_deterministic() -> None:
    def run() -> list[float]:
        site = SimSite(_scenario(events=(Event(t=5.0, type="pv_step", delta_w=-2000.0),)))
        site.write_limit(0, limit_pct=40.0, enabled=True, revert_s=7.0)
        site.run(20.0, dt=0.05)
        return [inv.output_w for inv in site.inverters] + [site.meter.export_energy_wh]

    assert run() == run()


def test_status_line_mentions_each_inverter() -> None:
    site = SimSite(_scenario())
    site.write_limit(0, limit_pct=50.0, enabled=True)
    site.write_conn(1, connected=False)
    line = site.status_line()
    assert "inv1=" in line
    assert "lim=50%" in line
    assert "lim=off" in line
