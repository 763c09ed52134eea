"""Powerwall as the site meter: one fast read per cycle, slow sensor reads, set-up probe."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.core.errors import DeviceUnavailableError
from custom_components.dynamic_export.powerwall.errors import (
    CertificateChangedError,
    GatewayStoppedError,
    InvalidPasswordError,
    NotPowerwallError,
)
from custom_components.dynamic_export.powerwall.meter import PowerwallMeter
from custom_components.dynamic_export.powerwall.probe import async_probe

from .gateway import DIN, PASSWORD, Gateway, site_meter


async def test_reading_and_sensor_values(gateway: Gateway, client, clock) -> None:
    meter = PowerwallMeter(client, clock=clock)
    reading = await meter.async_read()
    assert reading.timestamp == clock.now
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
