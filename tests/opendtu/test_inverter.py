"""OpenDTU inverter adapter: readings, limits, the acknowledgement gate, fallbacks, derating."""

from __future__ import annotations

import json

import pytest

from custom_components.dynamic_export.core.errors import DeviceError, InvalidDeviceDataError
from custom_components.dynamic_export.core.measurements import InverterCommand
from custom_components.dynamic_export.opendtu.errors import (
    InverterUnreachableError,
    LimitTypeUnsupportedError,
    UnknownInverterError,
)
from custom_components.dynamic_export.opendtu.inverter import OpenDtuInverter
from custom_components.dynamic_export.opendtu.limits import TemperatureDerating

from .dtu import HM_SERIAL, HMS_SERIAL, FakeDtu


def _limit(percent: float) -> InverterCommand:
    return InverterCommand(connect=True, limit_pct=percent)


def _sent(dtu: FakeDtu) -> list[tuple[str, int, float]]:
    return [(c["serial"], c["limit_type"], c["limit_value"]) for c in dtu.commands]


async def test_setup_and_read(dtu: FakeDtu, client, clock) -> None:
    inverter = OpenDtuInverter(client, HMS_SERIAL, clock=clock)
    info = await inverter.async_setup()
    assert (info.serial, info.name, info.max_power_w) == (HMS_SERIAL, "Roof HMS-2000", 2000.0)
    assert inverter.revert_timeout_s == 0.0
    dtu.inverters[HMS_SERIAL].limit_relative = 80.0
    clock.now += 1.0  # the status set-up read is no longer fresh
    reading = await inverter.async_read()
    assert reading.timestamp == pytest.approx(clock.now - 2.3)  # when the DTU got the values
    assert (reading.ac_power_w, reading.rated_power_w) == (1534.8, 2000.0)
    assert (reading.limit_pct, reading.limit_enabled, reading.limit_w) == (80.0, True, 1600.0)
    assert reading.status == "producing"
    assert reading.lifetime_energy_wh == pytest.approx(1234567.0)
    assert inverter.temperature_c == 48.0
    assert inverter.limit_status is not None
    assert inverter.limit_status.set_status == "Ok"


async def test_unknown_serial(dtu: FakeDtu, client, clock) -> None:
    inverter = OpenDtuInverter(client, "1141ffff0000", clock=clock)
    with pytest.raises(UnknownInverterError):
        await inverter.async_setup()
    with pytest.raises(UnknownInverterError):
        await inverter.async_read()


async def test_unreachable_or_stale_is_not_a_reading(dtu: FakeDtu, client, clock) -> None:
    inverter = OpenDtuInverter(client, HM_SERIAL, max_data_age_s=30.0, clock=clock)
    dtu.inverters[HM_SERIAL].reachable = False
    with pytest.raises(InverterUnreachableError, match="not reachable"):
        await inverter.async_read()
    dtu.inverters[HM_SERIAL].reachable = True
    dtu.inverters[HM_SERIAL].data_age_ms = 45_000
    with pytest.raises(InverterUnreachableError, match="45 s old"):
        await inverter.async_read()


async def test_missing_ac_power(dtu: FakeDtu, client, clock) -> None:
    body = {"inverters": [dtu.inverters[HM_SERIAL].full()]}
    del body["inverters"][0]["AC"]
    dtu.overrides[("GET", "/api/livedata/status")] = (200, json.dumps(body))
    with pytest.raises(InvalidDeviceDataError, match="no AC power"):
        await OpenDtuInverter(client, HM_SERIAL, clock=clock).async_read()


async def test_limits_are_absolute_watts_within_bounds(dtu: FakeDtu, client, clock) -> None:
    inverter = OpenDtuInverter(client, HM_SERIAL, min_limit_pct=5.0, clock=clock)
    await inverter.async_read()
    await inverter.async_apply(_limit(37.3333))
    clock.now += 5.0
    await inverter.async_read()
    await inverter.async_apply(_limit(1.0))  # below the minimum
    clock.now += 5.0
    await inverter.async_read()
    await inverter.async_apply(_limit(100.0))
    assert _sent(dtu) == [
        (HM_SERIAL, 0, 298.6),  # 37.3333 % of 800 W, rounded down
        (HM_SERIAL, 0, 40.0),  # 5 % of 800 W
        (HM_SERIAL, 0, 800.0),
    ]


async def test_acknowledgement_gate(dtu: FakeDtu, client, clock) -> None:
    """Pending for ~3 s: later limits wait, only the newest is sent once it is Ok."""
    inverter = OpenDtuInverter(client, HM_SERIAL, clock=clock)
    await inverter.async_read()
    await inverter.async_apply(_limit(50.0))
    reading = await inverter.async_read()
    assert reading.limit_pct == 100.0  # not acknowledged yet: the old limit is in force
    assert inverter.limit_status is not None
    assert inverter.limit_status.set_status == "Pending"

    clock.now += 1.0
    await inverter.async_apply(_limit(30.0))
    await inverter.async_apply(_limit(20.0))
    await inverter.async_apply(_limit(50.0))  # back to the one in flight: nothing queued
    clock.now += 1.0
    await inverter.async_apply(_limit(25.0))
    assert _sent(dtu) == [(HM_SERIAL, 0, 400.0)]
    assert inverter.pending_limit.queued is not None

    clock.now += 1.5  # 3.5 s after sending: acknowledged
    reading = await inverter.async_read()
    assert _sent(dtu) == [(HM_SERIAL, 0, 400.0), (HM_SERIAL, 0, 200.0)]
    assert inverter.pending_limit.outcome == "Ok"
    assert inverter.response_time_s == pytest.approx(3.5)
    assert reading.limit_pct == pytest.approx(50.0)


async def test_failure_releases_the_queued_limit(dtu: FakeDtu, client, clock) -> None:
    dtu.fail_acks = True
    inverter = OpenDtuInverter(client, HMS_SERIAL, clock=clock)
    await inverter.async_read()
    await inverter.async_apply(_limit(50.0))
    await inverter.async_apply(_limit(40.0))
    clock.now += 3.0
    await inverter.async_read()
    assert inverter.pending_limit.outcome == "Failure"
    assert [c[2] for c in _sent(dtu)] == [1000.0, 800.0]
    assert inverter.response_time_s is None  # failures are not response times


async def test_no_acknowledgement_times_out(dtu: FakeDtu, client, clock) -> None:
    dtu.ack_delay_s = 1000.0
    inverter = OpenDtuInverter(client, HM_SERIAL, pending_timeout_s=10.0, clock=clock)
    await inverter.async_read()
    await inverter.async_apply(_limit(50.0))
    await inverter.async_apply(_limit(10.0))
    clock.now += 9.0
    await inverter.async_read()
    assert len(dtu.commands) == 1
    clock.now += 1.0
    await inverter.async_read()
    assert [c[2] for c in _sent(dtu)] == [400.0, 80.0]
    assert inverter.pending_limit.outcome == "timeout"


async def test_absolute_rejected_falls_back_to_relative(dtu: FakeDtu, client, clock) -> None:
    dtu.reject_types = {0}
    inverter = OpenDtuInverter(client, HMS_SERIAL, clock=clock)
    await inverter.async_read()
    await inverter.async_apply(_limit(33.3))
    clock.now += 5.0
    await inverter.async_read()
    await inverter.async_apply(_limit(10.0))
    assert _sent(dtu) == [(HMS_SERIAL, 1, 33.3), (HMS_SERIAL, 1, 10.0)]
    assert dtu.posted_types() == [0, 1, 1]  # absolute tried once, then never again


async def test_no_usable_limit_type(dtu: FakeDtu, client, clock) -> None:
    dtu.reject_types = {0, 1}
    inverter = OpenDtuInverter(client, HM_SERIAL, clock=clock)
    await inverter.async_read()
    with pytest.raises(LimitTypeUnsupportedError, match="update OpenDTU"):
        await inverter.async_apply(_limit(50.0))
    assert dtu.posted_types() == [0, 1]


async def test_old_firmware_takes_types_0_and_1(dtu: FakeDtu, client, clock) -> None:
    dtu.firmware = "old"
    inverter = OpenDtuInverter(client, HM_SERIAL, clock=clock)
    await inverter.async_read()
    await inverter.async_apply(_limit(50.0))
    assert _sent(dtu) == [(HM_SERIAL, 0, 400.0)]


async def test_disconnect_powers_off_and_back_on(dtu: FakeDtu, client, clock) -> None:
    inverter = OpenDtuInverter(client, HM_SERIAL, clock=clock)
    await inverter.async_read()
    await inverter.async_apply(InverterCommand(connect=False, limit_pct=0.0))
    await inverter.async_apply(InverterCommand(connect=False, limit_pct=0.0))
    assert dtu.power_commands == [{"serial": HM_SERIAL, "power": False}]
    reading = await inverter.async_read()
    assert (reading.connected, reading.limit_w) == (False, 0.0)
    await inverter.async_apply(_limit(60.0))
    assert dtu.power_commands[-1] == {"serial": HM_SERIAL, "power": True}
    assert _sent(dtu) == [(HM_SERIAL, 0, 480.0)]


async def test_release_restores_the_limit_found(dtu: FakeDtu, client, clock) -> None:
    dtu.inverters[HM_SERIAL].limit_relative = 80.0  # the owner's persistent limit
    inverter = OpenDtuInverter(client, HM_SERIAL, clock=clock)
    await inverter.async_release()
    assert dtu.commands == []  # nothing written yet: nothing to restore
    await inverter.async_read()
    await inverter.async_apply(_limit(10.0))
    await inverter.async_apply(InverterCommand(connect=False, limit_pct=0.0))
    assert inverter.baseline_limit_pct == 80.0
    await inverter.async_release()  # not held back by the pending limit
    assert dtu.power_commands[-1] == {"serial": HM_SERIAL, "power": True}
    assert _sent(dtu)[-1] == (HM_SERIAL, 1, 80.0)


async def test_configured_release_limit_survives_a_restart(dtu: FakeDtu, client, clock) -> None:
    """After a restart the DTU shows our own old limit; the stored baseline wins."""
    dtu.inverters[HM_SERIAL].limit_relative = 10.0
    inverter = OpenDtuInverter(client, HM_SERIAL, release_limit_pct=90.0, clock=clock)
    await inverter.async_read()
    assert inverter.baseline_limit_pct == 90.0
    await inverter.async_release()  # nothing written this run, but the old limit is undone
    assert _sent(dtu) == [(HM_SERIAL, 1, 90.0)]
    with pytest.raises(ValueError, match="release_limit_pct"):
        OpenDtuInverter(client, HM_SERIAL, release_limit_pct=120.0)


async def test_baseline_is_stored_and_survives_a_restart(dtu: FakeDtu, client, clock) -> None:
    """Restarted mid-curtailment, the DTU shows our own limit: release restores the original."""
    dtu.inverters[HM_SERIAL].limit_relative = 80.0  # the owner's persistent limit
    stored: list[float | None] = []
    inverter = OpenDtuInverter(client, HM_SERIAL, on_baseline=stored.append, clock=clock)
    await inverter.async_read()
    assert stored == []  # nothing of ours in force yet: nothing to keep
    await inverter.async_apply(_limit(10.0))
    assert stored == [80.0]  # kept before our first limit goes out
    clock.now += 5.0
    await inverter.async_read()
    await inverter.async_apply(_limit(12.0))
    assert stored == [80.0]

    # Home Assistant restarts without handing the inverter back (a crash, the DTU down).
    clock.now += 5.0
    restarted = OpenDtuInverter(
        client, HM_SERIAL, baseline_pct=stored[-1], on_baseline=stored.append, clock=clock
    )
    reading = await restarted.async_read()
    assert reading.limit_pct == pytest.approx(12.0)  # our own limit, still in force
    assert restarted.baseline_limit_pct == 80.0
    await restarted.async_release()  # nothing written since the restart, still undone
    assert _sent(dtu)[-1] == (HM_SERIAL, 1, 80.0)
    assert stored[-1] is None  # handed back: nothing left to restore next time

    # Control resumes after the release: the baseline is kept again before the next write.
    clock.now += 5.0
    await restarted.async_read()
    await restarted.async_apply(_limit(10.0))
    assert stored[-1] == 80.0


async def test_failed_release_keeps_the_stored_baseline(dtu: FakeDtu, client, clock) -> None:
    dtu.inverters[HM_SERIAL].limit_relative = 70.0
    stored: list[float | None] = []
    inverter = OpenDtuInverter(client, HM_SERIAL, on_baseline=stored.append, clock=clock)
    await inverter.async_read()
    await inverter.async_apply(_limit(10.0))
    dtu.overrides[("POST", "/api/limit/config")] = (500, "")
    with pytest.raises(DeviceError):
        await inverter.async_release()
    assert stored == [70.0]  # still owed


def test_stored_baseline_must_be_a_percentage(client) -> None:
    with pytest.raises(ValueError, match="baseline_pct"):
        OpenDtuInverter(client, HM_SERIAL, baseline_pct=101.0)


async def test_temperature_derating(dtu: FakeDtu, client, clock) -> None:
    derating = TemperatureDerating(start_c=60.0, end_c=80.0, min_share_pct=50.0)
    inverter = OpenDtuInverter(client, HMS_SERIAL, derating=derating, clock=clock)
    dtu.inverters[HMS_SERIAL].temperature = 70.0
    dtu.inverters[HMS_SERIAL].limit_relative = 100.0
    reading = await inverter.async_read()
    assert inverter.share_pct == 75.0
    assert reading.rated_power_w == 1500.0  # 75 % of 2000 W
    assert reading.limit_pct == pytest.approx(100.0 / 0.75)  # holds more than the share
    await inverter.async_apply(_limit(100.0))
    assert _sent(dtu) == [(HMS_SERIAL, 0, 1500.0)]
    clock.now += 5.0
    dtu.inverters[HMS_SERIAL].temperature = None  # asleep or not reported: no derating
    reading = await inverter.async_read()
    assert reading.rated_power_w == 2000.0
    assert reading.limit_pct == pytest.approx(75.0)


async def test_max_power_unknown_uses_the_configured_rating(dtu: FakeDtu, client, clock) -> None:
    dtu.inverters[HM_SERIAL].max_power = 0
    with pytest.raises(InvalidDeviceDataError, match="max power"):
        await OpenDtuInverter(client, HM_SERIAL, clock=clock).async_read()
    inverter = OpenDtuInverter(client, HM_SERIAL, rated_power_w=600.0, clock=clock)
    assert (await inverter.async_read()).rated_power_w == 600.0
    dtu.inverters[HM_SERIAL].max_power = 800
    clock.now += 1.0
    assert (await inverter.async_read()).rated_power_w == 800.0


async def test_two_inverters_share_the_status_read(dtu: FakeDtu, client, clock) -> None:
    import asyncio

    first = OpenDtuInverter(client, HM_SERIAL, clock=clock)
    second = OpenDtuInverter(client, HMS_SERIAL, clock=clock)
    a, b = await asyncio.gather(first.async_read(), second.async_read())
    assert (a.rated_power_w, b.rated_power_w) == (800.0, 2000.0)
    assert dtu.count("GET", "/api/limit/status") == 1
    assert dtu.count("GET", "/api/livedata/status") == 2


def test_bad_arguments(client) -> None:
    with pytest.raises(ValueError, match="min_limit_pct"):
        OpenDtuInverter(client, HM_SERIAL, min_limit_pct=30.0)
    with pytest.raises(ValueError, match="rated_power_w"):
        OpenDtuInverter(client, HM_SERIAL, rated_power_w=0.0)


async def test_bad_commands(dtu: FakeDtu, client, clock) -> None:
    inverter = OpenDtuInverter(client, HM_SERIAL, clock=clock)
    with pytest.raises(ValueError, match="finite"):
        await inverter.async_apply(_limit(float("nan")))
    with pytest.raises(TypeError, match="bool"):
        await inverter.async_apply(InverterCommand(connect=1, limit_pct=5.0))  # type: ignore[arg-type]
    assert dtu.commands == []
