"""Powerwall as the site meter: one fast read per cycle, slow sensor reads, set-up probe."""

from __future__ import annotations

import json
import logging

import pytest

from custom_components.dynamic_export.core.controller import (
    Controller,
    ControllerSettings,
    ControlState,
    FailSafeReason,
)
from custom_components.dynamic_export.core.errors import DeviceUnavailableError
from custom_components.dynamic_export.core.measurements import MeterReading
from custom_components.dynamic_export.core.merge import MergedControls
from custom_components.dynamic_export.powerwall.errors import (
    CertificateChangedError,
    GatewayStoppedError,
    InvalidPasswordError,
    NotPowerwallError,
    SiteMeterSilentError,
)
from custom_components.dynamic_export.powerwall.meter import PowerwallMeter
from custom_components.dynamic_export.powerwall.probe import async_probe

from .conftest import FakeClock
from .gateway import DIN, PASSWORD, Gateway, aggregates, site_meter


async def test_reading_and_sensor_values(gateway: Gateway, client, clock) -> None:
    meter = PowerwallMeter(client, clock=clock)
    reading = await meter.async_read()
    assert reading.timestamp == pytest.approx(clock.now - 0.3)  # when the gateway heard it
    assert reading.grid_power_w == -2300.0  # exporting
    assert reading.export_w == 2300.0
    assert reading.phase_power_w == (-1100.0, -700.0, -500.0)
    assert reading.voltage_v == pytest.approx((240.1 + 239.4 + 241.0) / 3)
    assert reading.frequency_hz == 50.02
    assert (reading.import_energy_wh, reading.export_energy_wh) == (8123456.5, 4567890.25)
    data = meter.data
    assert data is not None
    assert (data.solar_power_w, data.battery_power_w, data.load_power_w) == (
        5100.0, -1500.0, 1300.0
    )  # fmt: skip
    assert data.battery_soe_pct == 67.25
    assert data.phase_voltage_v == (240.1, 239.4, 241.0)


async def test_slow_values_are_read_less_often(gateway: Gateway, client, clock) -> None:
    meter = PowerwallMeter(client, phase_interval_s=10.0, soe_interval_s=30.0, clock=clock)
    for _ in range(12):
        await meter.async_read()
        clock.now += 1.0
    assert gateway.count("/api/meters/aggregates") == 12
    assert gateway.count("/api/meters/site") == 2  # t=0 and t=10
    assert gateway.count("/api/system_status/soe") == 1


async def test_polling_reuses_one_tls_connection(gateway: Gateway, client, clock) -> None:
    """A TLS handshake every second would load the gateway; keep-alive must work."""
    meter = PowerwallMeter(client, clock=clock)
    await meter.async_read()  # login, then three concurrent GETs
    opened = set(gateway.peers)
    for _ in range(5):
        clock.now += 1.0
        await meter.async_read()
    assert gateway.count("/api/meters/aggregates") == 6
    assert gateway.peers == opened  # no new connection (and no new handshake) per cycle


async def test_single_phase_site(gateway: Gateway, client, clock) -> None:
    gateway.site = site_meter(phases=1)
    reading = await PowerwallMeter(client, clock=clock).async_read()
    assert reading.phase_power_w == (-2300.0, None, None)
    assert reading.voltage_v == 240.1  # v_l2n 0.31 V is an unused phase


async def test_slow_read_failures_do_not_fail_the_meter(gateway: Gateway, client, clock) -> None:
    meter = PowerwallMeter(client, phase_interval_s=10.0, clock=clock)
    await meter.async_read()
    gateway.overrides["/api/meters/site"] = (500, b"")
    gateway.site = []
    for _ in range(4):
        clock.now += 10.0
        reading = await meter.async_read()
        assert reading.grid_power_w == -2300.0
    # The last good per-phase values are 40 s old: dropped, not shown as current.
    assert reading.phase_power_w is None
    assert meter.data is not None
    assert meter.data.phase_voltage_v is None


async def test_stopped_gateway_fails_the_read(gateway: Gateway, client, clock) -> None:
    meter = PowerwallMeter(client, clock=clock)
    await meter.async_read()
    before = meter.data
    gateway.stopped = True
    clock.now += 1.0
    with pytest.raises(GatewayStoppedError):
        await meter.async_read()
    assert meter.data is before  # never replaced by zeros


async def test_empty_site_meter_list(gateway: Gateway, client, clock) -> None:
    gateway.site = []
    reading = await PowerwallMeter(client, clock=clock).async_read()
    assert reading.phase_power_w is None
    assert reading.voltage_v is None


def test_intervals_must_be_positive(client) -> None:
    with pytest.raises(ValueError, match="positive"):
        PowerwallMeter(client, phase_interval_s=0)


async def test_probe(gateway: Gateway, session) -> None:
    info = await async_probe(session, "127.0.0.1", PASSWORD, port=gateway.port)
    assert info.din == DIN
    assert info.fingerprint == gateway.fingerprint
    assert (info.phases, info.meter_type, info.has_solar, info.has_battery) == (
        3, "synchrometerX", True, True
    )  # fmt: skip
    assert info.version == "24.36.2 46990655"


async def test_probe_errors(gateway: Gateway, session) -> None:
    with pytest.raises(InvalidPasswordError):
        await async_probe(session, "127.0.0.1", "12345", port=gateway.port)
    with pytest.raises(CertificateChangedError):
        await async_probe(session, "127.0.0.1", PASSWORD, port=gateway.port, fingerprint="00" * 32)
    gateway.overrides["/api/status"] = (200, b"{}")
    with pytest.raises(NotPowerwallError):
        await async_probe(session, "127.0.0.1", PASSWORD, port=gateway.port)
    gateway.overrides.clear()
    gateway.stopped = True
    with pytest.raises(DeviceUnavailableError, match="gateway stopped"):
        await async_probe(session, "127.0.0.1", PASSWORD, port=gateway.port)


async def test_probe_without_site_meter_endpoint(gateway: Gateway, session) -> None:
    gateway.overrides["/api/meters/site"] = (404, b"")
    info = await async_probe(session, "127.0.0.1", PASSWORD, port=gateway.port)
    assert info.phases is None


def _state(reading: MeterReading, now: float) -> tuple[ControlState, FailSafeReason | None]:
    plan = Controller(ControllerSettings(meter_max_age_s=5.0)).compute(
        MergedControls(export_limit=0.0), reading, {}, {}, now
    )
    return plan.state, plan.fail_safe_reason


async def test_frozen_meter_data_sends_the_controller_to_fail_safe(
    gateway: Gateway, client, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway answers, but its site meter data stops: it must not look fresh forever."""
    meter = PowerwallMeter(client, clock=clock)
    assert _state(await meter.async_read(), clock.now) == (ControlState.CONTROLLING, None)
    gateway.freeze()
    states = []
    for _ in range(8):
        clock.now += 1.0
        reading = await meter.async_read()
        states.append(_state(reading, clock.now))
    assert states[-1] == (ControlState.FAIL_SAFE, FailSafeReason.METER_STALE)
    assert states[:4] == [(ControlState.CONTROLLING, None)] * 4
    assert reading.timestamp == pytest.approx(clock.now - 8.3)  # heard 8.3 s ago
    gateway.thaw()
    clock.now += 1.0
    assert _state(await meter.async_read(), clock.now) == (ControlState.CONTROLLING, None)
    clock.now += 1.0
    await meter.async_read()
    logged = [r for r in caplog.records if r.name.endswith("powerwall.meter")]
    assert [r.levelno for r in logged] == [logging.WARNING, logging.INFO]  # once each way
    assert "not heard from its site meter" in logged[0].getMessage()
    assert "again" in logged[1].getMessage()


async def test_skewed_gateway_clock_is_judged_by_its_own_date(
    gateway: Gateway, client, clock: FakeClock
) -> None:
    """An hour's skew either way: ages come from the gateway's own clock (its Date header)."""
    for skew_s in (-3600.0, 3600.0):
        gateway.clock = clock.wall(skew_s)
        meter = PowerwallMeter(client, clock=clock, wall_clock=clock.wall())
        reading = await meter.async_read()
        assert reading.timestamp == pytest.approx(clock.now - 0.3)


async def test_meter_time_in_the_future_is_now_until_it_stops_changing(
    gateway: Gateway, client, clock: FakeClock
) -> None:
    """A time ahead of the gateway's clock is clamped to now; if it never moves, it ages."""
    gateway.clock = clock.wall(30.0)
    gateway.freeze()  # 30 s ahead of the Date the gateway sends
    gateway.clock = clock.wall()
    meter = PowerwallMeter(client, clock=clock)
    first = await meter.async_read()
    assert first.timestamp == clock.now  # never newer than now
    for _ in range(6):
        clock.now += 1.0
        reading = await meter.async_read()
    assert reading.timestamp == first.timestamp  # the same data, first seen 6 s ago
    assert _state(reading, clock.now) == (ControlState.FAIL_SAFE, FailSafeReason.METER_STALE)


async def test_gateway_without_a_date_uses_the_local_wall_clock(
    gateway: Gateway, client, clock: FakeClock
) -> None:
    """No usable Date header: the local wall clock tells the age."""
    gateway.date_header = False
    gateway.freeze()
    clock.now += 20.0  # frozen for 20 s before the first read
    meter = PowerwallMeter(client, clock=clock, wall_clock=clock.wall())
    reading = await meter.async_read()
    assert reading.timestamp == pytest.approx(clock.now - 20.3)


@pytest.mark.parametrize("heard", ["missing", "not a time", "2025-01-15T11:02:03"])
async def test_unknown_meter_time_uses_the_read_time(
    gateway: Gateway, client, clock: FakeClock, heard: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a usable time (older firmware, a naive time) the age cannot be told: warn once."""
    if heard == "missing":
        body = aggregates()
        del body["site"]["last_communication_time"]
        gateway.overrides["/api/meters/aggregates"] = (200, json.dumps(body).encode())
    else:
        gateway.last_heard = heard
    meter = PowerwallMeter(client, clock=clock)
    for _ in range(3):
        clock.now += 1.0
        assert (await meter.async_read()).timestamp == clock.now
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot tell how old" in warnings[0].getMessage()


async def test_site_meter_never_heard_is_no_reading(gateway: Gateway, client, clock) -> None:
    """The zero time means the gateway has not heard from the site meter since it started."""
    gateway.last_heard = "0001-01-01T00:00:00Z"
    with pytest.raises(SiteMeterSilentError, match="never"):
        await PowerwallMeter(client, clock=clock).async_read()
