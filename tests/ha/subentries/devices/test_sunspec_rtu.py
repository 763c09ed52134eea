"""SunSpec over RS-485: flow, control of the simulated site over RTU, a port that disappears."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigSubentry,
    ConfigSubentryData,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.dynamic_export.const import (
    CONF_BAUDRATE,
    CONF_INVERT,
    CONF_KIND,
    CONF_PARITY,
    CONF_RATED_POWER,
    CONF_SERIAL_PORT,
    CONF_STOPBITS,
    CONF_UNIT_ID,
    KIND_SUNSPEC_RTU,
    SUBENTRY_INVERTER,
    SUBENTRY_METER,
)
from custom_components.dynamic_export.core.controller import ControlState
from custom_components.dynamic_export.core.errors import DeviceError
from custom_components.dynamic_export.sim.server import SimulatedSiteServer
from custom_components.dynamic_export.subentries.devices.setup import (
    DeviceContext,
    async_build_meter,
)
from custom_components.dynamic_export.sunspec.errors import ModbusExceptionError, NotSunSpecError
from custom_components.dynamic_export.sunspec.inverter import SunSpecInverter

from ...helpers import LOAD_STEPS, check_load_steps, record, start_subentry_flow, wait_for
from ...peers import RtuBridge
from ...sites import (
    added_site,
    limiter_subentry,
    rtu_data,
    rtu_inverter,
    rtu_meter,
    setup_site,
    site_entry,
)

EXPORT_LIMIT = 1500.0
TOLERANCE = 50.0
# The inverters need ~3.3 s (1 s lag) and a cycle starts up to 1 s after the drop; the rest is
# slack for a loaded test machine (this runs in real time).
COMPLY_S = 6.0


def _form(bus: RtuBridge, unit_id: int, **changes: Any) -> dict[str, Any]:
    """What the user enters (selects give strings; parity by name)."""
    return {
        CONF_SERIAL_PORT: bus.path,
        CONF_BAUDRATE: "115200",
        CONF_PARITY: "none",
        CONF_STOPBITS: "1",
        CONF_UNIT_ID: unit_id,
        **changes,
    }


async def test_add_rtu_inverter_and_meter(hass: HomeAssistant, bus: RtuBridge) -> None:
    """Both are read over the bus before they are saved; the serial is the unique id."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SUNSPEC_RTU)
    assert result["step_id"] == "sunspec_rtu"
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _form(bus, 2))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (inverter,) = entry.subentries.values()
    assert inverter.unique_id == "SIM-INV-2"
    assert inverter.data == {**rtu_data(bus, 2), CONF_RATED_POWER: 5000.0}  # as read

    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_SUNSPEC_RTU)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _form(bus, bus.sim.meter_unit_id, **{CONF_INVERT: True})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    meter = next(s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_METER)
    assert meter.data[CONF_INVERT] is True
    assert meter.unique_id.startswith("SIM-METER")

    # The same unit on the same bus again.
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SUNSPEC_RTU)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _form(bus, 2))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_rtu_flow_errors(hass: HomeAssistant, bus: RtuBridge, tmp_path: Path) -> None:
    """A missing port, a silent unit, settings the port refuses, a bus already in use."""
    entry = added_site(hass, [rtu_inverter(bus, 1)])
    cases = [
        (
            _form(bus, 1, **{CONF_SERIAL_PORT: str(tmp_path / "ttyUSB7")}),
            {CONF_SERIAL_PORT: "port_not_found"},
        ),
        (_form(bus, 77), {"base": "no_response"}),
        (_form(bus, 2, **{CONF_PARITY: "even"}), {"base": "port_settings_conflict"}),
        (_form(bus, 2, **{CONF_BAUDRATE: "9600"}), {"base": "port_settings_conflict"}),
        (_form(bus, 2, **{CONF_BAUDRATE: "fast"}), {CONF_BAUDRATE: "invalid_baudrate"}),
        (_form(bus, 2, **{CONF_BAUDRATE: "0"}), {CONF_BAUDRATE: "invalid_baudrate"}),
    ]
    for user_input, errors in cases:
        result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SUNSPEC_RTU)
        result = await hass.config_entries.subentries.async_configure(result["flow_id"], user_input)
        assert result["type"] is FlowResultType.FORM, errors
        assert result["errors"] == errors
    # Alone on the bus, the pty cannot do parity: the port cannot be opened like that.
    lonely = added_site(hass)
    result = await start_subentry_flow(hass, lonely, SUBENTRY_INVERTER, KIND_SUNSPEC_RTU)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _form(bus, 2, **{CONF_PARITY: "even"})
    )
    assert result["errors"] == {"base": "cannot_open_port"}
    assert len(entry.subentries) == 1


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (NotSunSpecError("no SunS"), "not_sunspec"),
        (ModbusExceptionError("gateway", 11), "unit_not_found"),
        (ModbusExceptionError("address", 2), "unsupported_device"),
        (DeviceError("nonsense"), "unsupported_device"),
    ],
)
async def test_rtu_device_errors(
    hass: HomeAssistant,
    bus: RtuBridge,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    reason: str,
) -> None:
    """What the SunSpec client finds wrong with the device is shown as for Modbus TCP."""

    async def fail(self: SunSpecInverter) -> None:
        raise error

    monkeypatch.setattr(SunSpecInverter, "async_setup", fail)
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SUNSPEC_RTU)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _form(bus, 1))
    assert result["errors"] == {"base": reason}


async def test_reconfigure_rtu_inverter(hass: HomeAssistant, bus: RtuBridge) -> None:
    """The form shows the saved settings; it must stay the same inverter."""
    entry = added_site(hass, [rtu_inverter(bus, 1)])
    (sub_id,) = entry.subentries
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_INVERTER),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": sub_id},
    )
    assert result["step_id"] == "sunspec_rtu"
    schema = result["data_schema"].schema
    suggested = {str(k): k.description["suggested_value"] for k in schema if k.description}
    assert suggested[CONF_PARITY] == "none"
    assert suggested[CONF_BAUDRATE] == "115200"
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _form(bus, 2))
    assert result["reason"] == "different_device"
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_INVERTER),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": sub_id},
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _form(bus, 1, **{CONF_BAUDRATE: "19200"})
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[sub_id].data[CONF_BAUDRATE] == 19200


async def test_probe_through_the_running_site_shares_the_bus(
    hass: HomeAssistant, bus: RtuBridge
) -> None:
    """With the site loaded, a new unit is probed on the site's own bus connection.

    The port is opened exclusively, so a second connection of the flow's own would fail.
    """
    entry = site_entry([rtu_inverter(bus, 1)])
    await setup_site(hass, entry)
    pool = entry.runtime_data.pool
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SUNSPEC_RTU)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], _form(bus, 2))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert list(pool._serial) == []  # the old site's bus was closed at unload
    # The reloaded site opens the bus again at once and finds both inverters.
    runtime = entry.runtime_data
    assert runtime.pool is not pool
    assert [handle.identity is not None for handle in runtime.inverters.values()] == [True, True]
    coordinator = runtime.coordinator
    await wait_for(
        lambda: all(status.available for status in coordinator.data.inverters.values()),
        5,
        "both inverters answer",
    )


@pytest.mark.parametrize("scenario_data", [LOAD_STEPS])
async def test_rtu_site_holds_the_export_limit(
    hass: HomeAssistant, sim: SimulatedSiteServer, bus: RtuBridge, scenario_data: dict[str, Any]
) -> None:
    """Two inverters and the meter on one RS-485 bus, controlled like over TCP."""
    entry = site_entry(
        [
            rtu_inverter(bus, 1),
            rtu_inverter(bus, 2),
            rtu_meter(bus),
            limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
        ]
    )
    await setup_site(hass, entry)
    samples = await record(sim, until_t=24.0)
    check_load_steps(
        samples, EXPORT_LIMIT, tolerance=TOLERANCE, comply_s=COMPLY_S, must_overshoot=False
    )
    assert bus.frames > 100
    assert float(hass.states.get("sensor.rs_485_inverter_1_rated_power").state) == 5000
    assert hass.states.get("sensor.rs_485_meter_grid_power_phase_c") is not None


async def test_unplugged_bus_fails_safe_and_recovers(
    hass: HomeAssistant, sim: SimulatedSiteServer, bus: RtuBridge
) -> None:
    """The adapter disappears: devices unavailable, fail-safe, loop running; then it is back."""
    entry = site_entry(
        [
            rtu_inverter(bus, 1),
            rtu_inverter(bus, 2),
            rtu_meter(bus),
            limiter_subentry("Export limit", export_limit=EXPORT_LIMIT),
        ],
        meter_max_age=2.0,
    )
    await setup_site(hass, entry)
    await wait_for(lambda: sim.site.generation_w > 2200, 10, "normal control")
    coordinator = entry.runtime_data.coordinator

    bus.unplug()
    await wait_for(
        lambda: hass.states.get("sensor.home_control_state").state == ControlState.FAIL_SAFE,
        10,
        "fail-safe",
    )
    assert hass.states.get("sensor.rs_485_inverter_1_ac_power").state == "unavailable"
    meter = hass.states.get("binary_sensor.rs_485_meter_connection")
    assert meter.state == "off"
    assert "ttyRS485" in meter.attributes["error"]
    assert coordinator.last_update_success

    bus.plug_in()
    await wait_for(
        lambda: hass.states.get("sensor.home_control_state").state == ControlState.CONTROLLING,
        10,
        "recovery",
    )
    await wait_for(
        lambda: hass.states.get("sensor.rs_485_inverter_1_ac_power").state != "unavailable",
        5,
        "inverter back",
    )
    await wait_for(lambda: sim.site.generation_w > 2200, 10, "generation restored")


async def test_new_line_settings_on_a_running_site(
    hass: HomeAssistant, sim: SimulatedSiteServer, bus: RtuBridge
) -> None:
    """A device alone on its bus gets new line settings while the site holds the port."""
    entry = site_entry([rtu_inverter(bus, 1)])
    await setup_site(hass, entry)
    (sub_id,) = entry.subentries
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_INVERTER),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": sub_id},
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _form(bus, 1, **{CONF_BAUDRATE: "38400"})
    )
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.subentries[sub_id].data[CONF_BAUDRATE] == 38400
    coordinator = entry.runtime_data.coordinator
    await wait_for(
        lambda: all(status.available for status in coordinator.data.inverters.values()),
        5,
        "the inverter answers at the new settings",
    )


async def test_subentries_that_cannot_be_built_are_skipped(
    hass: HomeAssistant, bus: RtuBridge, caplog: pytest.LogCaptureFixture
) -> None:
    """Two line settings on one bus, or an unknown kind: logged, the rest of the site runs."""
    other_settings = ConfigSubentryData(
        data=rtu_data(bus, 2, **{CONF_BAUDRATE: 9600}),
        subentry_type=SUBENTRY_INVERTER,
        title="Wrong baud",
        unique_id="SIM-INV-2",
    )
    meter_settings = ConfigSubentryData(
        data=rtu_data(bus, bus.sim.meter_unit_id, **{CONF_PARITY: "E", CONF_INVERT: False}),
        subentry_type=SUBENTRY_METER,
        title="Wrong parity",
        unique_id="SIM-METER",
    )
    unknown = ConfigSubentryData(
        data={CONF_KIND: "smoke_signals"},
        subentry_type=SUBENTRY_INVERTER,
        title="Mystery",
        unique_id="mystery",
    )
    entry = site_entry([rtu_inverter(bus, 1), other_settings, meter_settings, unknown])
    await setup_site(hass, entry)
    assert list(entry.runtime_data.inverters) == [
        s.subentry_id for s in entry.subentries.values() if s.title.startswith("RS-485")
    ]
    assert entry.runtime_data.meter is None
    assert "already used at 115200 8N1, not 9600 8N1" in caplog.text
    assert "unknown inverter kind 'smoke_signals'" in caplog.text

    sub = ConfigSubentry(
        data=MappingProxyType({CONF_KIND: "crystal_ball"}),
        subentry_type=SUBENTRY_METER,
        title="Mystery meter",
        unique_id="mystery",
    )
    assert await async_build_meter(DeviceContext(hass, entry.runtime_data.pool, 60), sub) is None
    assert "unknown meter kind 'crystal_ball'" in caplog.text


@pytest.mark.parametrize("unit_id", [0, 248, 2.5])
async def test_rtu_unit_id_out_of_range_is_an_error_on_its_field(
    hass: HomeAssistant, bus: RtuBridge, unit_id: float
) -> None:
    """An RS-485 slave address is 1 to 247: anything else is refused beside the field."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SUNSPEC_RTU)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        _form(bus, unit_id),  # type: ignore[arg-type]
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_UNIT_ID: "unit_id_out_of_range"}
    placeholders = result["description_placeholders"]
    assert (placeholders["unit_id_min"], placeholders["unit_id_max"]) == ("1", "247")
    assert not entry.subentries
