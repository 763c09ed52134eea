"""DERCapability, DERSettings, DERStatus and DERAvailability: content and timing."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from custom_components.dynamic_export.core.available_power import AvailablePower, Method
from custom_components.dynamic_export.core.capability import site_capability
from custom_components.dynamic_export.core.controller import FailSafeReason
from custom_components.dynamic_export.core.controls import ControlType
from custom_components.dynamic_export.core.cycle import InverterStatus
from custom_components.dynamic_export.core.measurements import InverterReading, MeterReading
from custom_components.dynamic_export.csip.reporting import DEFAULT_ENFORCED
from custom_components.dynamic_export.csip.sep2.codes import DERType
from custom_components.dynamic_export.csip.telemetry import measurements_from_cycle

from .client_harness import MEASUREMENTS, Harness
from .server.state import EndDevice, StoredBody


def device(h: Harness) -> EndDevice:
    found = h.state.device_for(h.device)
    assert found is not None
    return found


def latest(h: Harness, kind: str) -> StoredBody:
    body = device(h).der_resource(kind)
    assert body is not None, f"no {kind} PUT"
    return body


def puts(h: Harness, kind: str) -> int:
    return sum(1 for _, k, _ in device(h).der_puts if k == kind)


async def test_der_documents(h: Harness) -> None:
    """What the site enforces, its ratings and its state, in schema-valid documents."""
    h.state.set_default_control("1", op_mod_exp_lim_w=1500, op_mod_gen_lim_w=10000, set_grad_w=50)
    client = h.client()
    await h.run(client, replace(MEASUREMENTS, rated_va=5500.0))
    cap = latest(h, "dercap")
    assert cap.value("type") == "4"
    assert cap.value("modesSupported") == "0000000C"  # opModConnect | opModEnergize
    assert cap.value("doeModesSupported") == "07"  # export, import, generation limits
    assert cap.value("rtgMaxW/value") == "5000"
    assert cap.value("rtgMaxW/multiplier") == "0"
    assert cap.value("rtgMaxVA/value") == "5500"
    settings = latest(h, "derg")
    assert settings.value("setGradW") == "50", "the server's setGradW is the one in use"
    assert settings.value("setMaxW/value") == "5000"
    assert settings.value("modesEnabled") == "0000000C"
    assert settings.value("doeModesEnabled") == "07"
    assert settings.value("updatedTime") == str(h.now())
    status = latest(h, "ders")
    assert status.value("genConnectStatus/value") == "07"
    assert status.value("operationalModeStatus/value") == "2"
    assert status.value("readingTime") == str(h.now())
    availability = latest(h, "dera")
    assert availability.value("statWAvail/value") == "5000"
    h.assert_documents_valid()


async def test_reported_every_poll_period_not_once(h: Harness) -> None:
    """Unchanged documents are PUT again at every DERList pollRate."""
    h.state.set_poll_rate("der", 120)
    client = h.client()
    await h.run(client)
    for _ in range(3):
        await h.step(client, 60)
        await h.step(client, 60)
    assert puts(h, "ders") == 4
    assert puts(h, "dercap") == 4
    assert puts(h, "dera") == 4
    # The status dateTime still says when the value last changed.
    first = h.now() - 360
    assert latest(h, "ders").value("genConnectStatus/dateTime") == str(first)
    assert latest(h, "ders").value("readingTime") == str(h.now())


async def test_status_change_sent_promptly(h: Harness) -> None:
    """A change of state is PUT within seconds, with the time it changed."""
    client = h.client()
    await h.run(client)
    stopped = replace(MEASUREMENTS, operating=False, der_power_w=0.0)
    await h.step(client, 10, stopped)
    status = latest(h, "ders")
    assert puts(h, "ders") == 2
    assert status.value("genConnectStatus/value") == "03"
    assert status.value("operationalModeStatus/value") == "1"
    assert status.value("operationalModeStatus/dateTime") == str(h.now())
    assert puts(h, "dercap") == 1, "unchanged documents wait for the poll period"


async def test_storage_and_load_advertised_when_enforced(h: Harness) -> None:
    """PV with storage is type 83 (not SunSpec's 82); a site that controls load says so."""
    client = h.client(enforced=DEFAULT_ENFORCED | {ControlType.LOAD_LIMIT})
    await h.run(client, replace(MEASUREMENTS, der_type=DERType.COMBINED_PV_AND_STORAGE))
    cap = latest(h, "dercap")
    assert cap.value("type") == "83"
    assert cap.value("doeModesSupported") == "0F"
    h.assert_documents_valid()


async def test_monitor_only_reports_no_mode_enabled(h: Harness) -> None:
    """With control off, DERSettings says no mode is enabled."""
    client = h.client()
    await h.run(client, replace(MEASUREMENTS, control_enabled=False))
    settings = latest(h, "derg")
    assert settings.value("modesEnabled") == "00000000"
    assert settings.value("doeModesEnabled") == "00"
    await h.step(client, 10)
    assert latest(h, "derg").value("modesEnabled") == "0000000C"


def _inverters(*supports_connect: bool) -> dict[str, Any]:
    """Stand-ins for configured inverters: only what the capability looks at."""
    return {
        f"inv{i}": SimpleNamespace(supports_connect=connect)
        for i, connect in enumerate(supports_connect)
    }


async def test_inverters_without_a_relay_do_not_advertise_connect(h: Harness) -> None:
    """Number-entity inverters cannot disconnect: no opModConnect / opModEnergize bit."""
    site = site_capability(
        meter=object(), inverters=_inverters(True, False), ratings={"inv0": 3000.0, "inv1": 2000.0}
    )
    client = h.client()
    await h.run(client, replace(MEASUREMENTS, capability=site))
    cap = latest(h, "dercap")
    assert cap.value("modesSupported") == "00000000"
    assert cap.value("doeModesSupported") == "07"
    assert latest(h, "derg").value("modesEnabled") == "00000000"
    h.assert_documents_valid()


async def test_capability_follows_devices_and_ratings(h: Harness) -> None:
    """Relay-capable inverters advertise connect; rtgMaxW is the sum of the ratings."""
    ratings = {"inv0": 5000.0, "inv1": 3000.0}
    site = site_capability(meter=object(), inverters=_inverters(True, True), ratings=ratings)
    client = h.client()
    await h.run(client, replace(MEASUREMENTS, capability=site))
    cap = latest(h, "dercap")
    assert cap.value("modesSupported") == "0000000C"
    assert cap.value("doeModesSupported") == "07"
    assert cap.value("rtgMaxW/value") == "8000"
    assert latest(h, "derg").value("setMaxW/value") == "8000"
    # A new rating (read from a device) shows at the next report.
    site = site_capability(
        meter=object(), inverters=_inverters(True, True), ratings=ratings | {"inv1": 4000.0}
    )
    await h.step(client, 10, replace(MEASUREMENTS, capability=site))
    assert latest(h, "dercap").value("rtgMaxW/value") == "9000"
    # Without a meter neither export nor import can be held: generation limit only.
    site = site_capability(meter=None, inverters=_inverters(True, True), ratings=ratings)
    await h.step(client, 10, replace(MEASUREMENTS, capability=site))
    assert latest(h, "dercap").value("doeModesSupported") == "04"
    assert latest(h, "derg").value("doeModesEnabled") == "04"
    h.assert_documents_valid()


def test_measurements_from_cycle() -> None:
    """The core's cycle snapshot becomes the client's measurements."""
    meter = MeterReading(
        timestamp=0.0,
        grid_power_w=-1200.0,
        phase_power_w=(-1200.0, None, None),
        voltage_v=241.3,
        frequency_hz=50.01,
    )
    online = InverterStatus(
        InverterReading(
            0.0,
            3000.0,
            5000.0,
            connected=True,
            reactive_power_var=-100.0,
            phase_voltage_v=(240.0, None, None),
            frequency_hz=50.02,
        )
    )
    other = InverterStatus(
        InverterReading(
            0.0,
            0.0,
            1000.0,
            connected=True,
            reactive_power_var=40.0,
            phase_voltage_v=(242.0, 239.0, None),
        )
    )
    offline = InverterStatus(None, error="timeout")
    snapshot = SimpleNamespace(
        meter=meter,
        meter_error=None,
        inverters={"a": online, "b": offline, "c": other},
        control_enabled=False,
        plan=SimpleNamespace(fail_safe_reason=None),
        available_power=None,
    )
    ratings = {"a": 5000.0, "b": 3000.0, "c": 1000.0}
    m = measurements_from_cycle(snapshot, ratings)  # type: ignore[arg-type]
    assert m.site_power_w == -1200.0
    assert m.export_w == 1200.0
    assert m.site_voltage_v is None, "the meter's one voltage is not labelled phase A"
    assert m.site_average_voltage_v == 241.3
    assert m.site_reactive_var is None
    assert m.der_power_w == 3000.0
    assert m.der_reactive_var == -60.0
    assert m.der_voltage_v == (241.0, 239.0, None), "per phase, over the inverters on it"
    assert m.der_frequency_hz == 50.02
    assert m.rated_w == 9000.0
    assert m.available_w == 6000.0
    phased = replace(meter, phase_voltage_v=(230.0, 231.0, 232.0), reactive_power_var=350.0)
    m = measurements_from_cycle(
        SimpleNamespace(**{**vars(snapshot), "meter": phased}),  # type: ignore[arg-type]
        ratings,
    )
    assert m.site_voltage_v == (230.0, 231.0, 232.0)
    assert m.site_average_voltage_v is None
    assert m.site_reactive_var == 350.0
    assert m.connected
    assert m.operating
    assert m.control_enabled is False
    failed = measurements_from_cycle(
        SimpleNamespace(**{**vars(snapshot), "meter_error": "timeout"}),  # type: ignore[arg-type]
        {"a": 5000.0},
    )
    assert failed.site_power_w is None
    frozen = measurements_from_cycle(
        SimpleNamespace(  # type: ignore[arg-type]
            **{
                **vars(snapshot),
                "plan": SimpleNamespace(fail_safe_reason=FailSafeReason.METER_STALE),
            }
        ),
        {"a": 5000.0},
    )
    assert frozen.site_power_w is None  # frozen values are not reported to the utility
    assert frozen.der_power_w == 3000.0


async def test_a_feed_in_cap_does_not_advertise_a_generation_limit(h: Harness) -> None:
    """A Victron GX caps feed-in only: the site claims export and import limits, not generation."""
    inverters: dict[str, Any] = {
        "gx": SimpleNamespace(supports_connect=False, limits_generation=False)
    }
    site = site_capability(meter=object(), inverters=inverters, ratings={"gx": 5000.0})
    assert ControlType.GENERATION_LIMIT not in site.controls
    client = h.client()
    await h.run(client, replace(MEASUREMENTS, capability=site))
    assert latest(h, "dercap").value("doeModesSupported") == "03"


def _snapshot(*readings: InverterReading, **fields: Any) -> Any:
    """A cycle snapshot with these inverter readings (what measurements_from_cycle reads)."""
    base: dict[str, Any] = {
        "meter": MeterReading(timestamp=0.0, grid_power_w=500.0),
        "meter_error": None,
        "inverters": {f"inv{i}": InverterStatus(r) for i, r in enumerate(readings)},
        "control_enabled": True,
        "plan": SimpleNamespace(fail_safe_reason=None),
        "available_power": None,
    }
    return SimpleNamespace(**(base | fields))


async def test_status_says_what_the_inverters_say(h: Harness) -> None:
    """inverterStatus from the inverters' states; a fault sets the fault bit, not available."""
    producing = InverterReading(0.0, 2000.0, 5000.0, connected=True, status="throttled")
    client = h.client()
    await h.run(client, measurements_from_cycle(_snapshot(producing), {"inv0": 5000.0}))
    status = latest(h, "ders")
    assert status.value("inverterStatus/value") == "5", "forced power reduction"
    assert status.value("genConnectStatus/value") == "07"
    faulty = InverterReading(0.0, 0.0, 3000.0, connected=True, status="fault")
    both = measurements_from_cycle(_snapshot(producing, faulty), {"inv0": 5000.0, "inv1": 3000.0})
    assert both.fault
    await h.step(client, 10, both)
    status = latest(h, "ders")
    assert status.value("inverterStatus/value") == "7"
    assert status.value("inverterStatus/dateTime") == str(h.now())
    assert status.value("genConnectStatus/value") == "15", "connected, operating, fault"
    assert status.value("stateOfChargeStatus") is None, "no storage: no state of charge"
    h.assert_documents_valid()


def test_inverter_states_in_2030_5_terms() -> None:
    """SunSpec's states map one to one; OpenDTU's 'producing' is throttled under a limit."""

    def status(**kw: Any) -> int | None:
        reading = InverterReading(0.0, 0.0, 1000.0, **kw)
        return measurements_from_cycle(_snapshot(reading), {}).inverter_status

    assert status(status="mppt") == 4
    assert status(status="sleeping") == 2
    assert status(status="off") == 1
    assert status(status="producing") == 4
    assert status(status="producing", limit_enabled=True, limit_pct=40.0) == 5
    assert status(status="idle") == 2
    assert status() is None, "an inverter that does not say is not reported as off"
    off = measurements_from_cycle(_snapshot(InverterReading(0.0, 0.0, 1000.0, status="off")), {})
    assert off.connected is False
    assert off.available_w == 0.0


async def test_local_control_while_off_or_in_fail_safe(h: Harness) -> None:
    """localControlModeStatus is remote only while the server's limits are what the site
    follows: control off (monitor only), the limiter off or fail-safe make it local."""
    client = h.client()
    await h.run(client)
    assert latest(h, "ders").value("localControlModeStatus/value") == "1"
    await h.step(client, 10, replace(MEASUREMENTS, fail_safe=True))
    assert latest(h, "ders").value("localControlModeStatus/value") == "0"
    assert latest(h, "ders").value("localControlModeStatus/dateTime") == str(h.now())
    await h.step(client, 10)
    assert latest(h, "ders").value("localControlModeStatus/value") == "1"
    await h.step(client, 10, replace(MEASUREMENTS, control_enabled=False))
    assert latest(h, "ders").value("localControlModeStatus/value") == "0"
    await h.step(client, 10)
    client.set_limiter_enabled(False, h.clock())
    await h.step(client, 10)
    assert latest(h, "ders").value("localControlModeStatus/value") == "0"
    assert latest(h, "derg").value("modesEnabled") == "00000000"
    assert latest(h, "derg").value("doeModesEnabled") == "00"
    h.assert_documents_valid()


def test_fail_safe_is_carried_from_the_cycle() -> None:
    plan = SimpleNamespace(fail_safe_reason=FailSafeReason.NO_METER)
    m = measurements_from_cycle(_snapshot(plan=plan), {})
    assert m.fail_safe
    assert not measurements_from_cycle(_snapshot(), {}).fail_safe


async def test_reading_time_is_when_the_site_was_measured(h: Harness) -> None:
    """Re-sent unchanged, DERStatus and DERAvailability keep the time of the last reading:
    a site that stopped measuring is not reported as read just now."""
    h.state.set_poll_rate("der", 60)
    client = h.client()
    await h.run(client)
    measured = h.now()
    await h.step(client, 60, None)
    await h.step(client, 60, None)
    assert puts(h, "ders") == 3
    assert latest(h, "ders").value("readingTime") == str(measured)
    assert latest(h, "dera").value("readingTime") == str(measured)
    await h.step(client, 60)
    assert latest(h, "ders").value("readingTime") == str(h.now())


def test_available_power_is_the_estimate_not_the_rating() -> None:
    """statWAvail is what the inverters could produce now (the cycle's estimate), not
    the rating of those online, which a sleeping site at night would overstate."""
    reading = InverterReading(0.0, 800.0, 5000.0, connected=True, status="mppt")
    estimate = AvailablePower(1200.0, Method.SIBLINGS)
    m = measurements_from_cycle(_snapshot(reading, available_power=estimate), {"inv0": 5000.0})
    assert m.available_w == 1200.0
