"""DERCapability, DERSettings, DERStatus and DERAvailability: content and timing."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

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
