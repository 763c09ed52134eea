"""SunSpec devices over Modbus TCP: the inverter and meter flows, against a real Modbus peer."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.dynamic_export.const import (
    CONF_INVERT,
    CONF_RATED_POWER,
    CONF_UNIT_ID,
    KIND_SUNSPEC_TCP,
    SUBENTRY_INVERTER,
    SUBENTRY_METER,
)
from custom_components.dynamic_export.sim.scenario import Scenario
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from ....sunspec.helpers import (
    DeviceImage,
    PymodbusServer,
    build_image,
    common_values,
    inverter_values,
)
from ...helpers import STEADY_SITE, start_reconfigure, start_subentry_flow
from ...sites import added_site, inverter_subentry


def _closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("kind", [SUBENTRY_INVERTER, SUBENTRY_METER])
async def test_device_menus_name_their_step(hass: HomeAssistant, kind: str) -> None:
    """A menu without ``step_id`` is reported by HA 2026.11 and stops working in 2027.5."""
    entry = added_site(hass)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, kind), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "user"
    assert KIND_SUNSPEC_TCP in result["menu_options"]


async def test_add_inverter_reads_identity(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """A SunSpec inverter is probed before it is added; its serial is the unique id."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SUNSPEC_TCP)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: sim.port, CONF_UNIT_ID: 2}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.unique_id == "SIM-INV-2"
    assert sub.title == "Simulated inverter 2"  # the model and a short id: entity ids stay short
    assert sub.data == {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: sim.port,
        CONF_UNIT_ID: 2,
        CONF_RATED_POWER: 5000.0,  # kept for a start at which the inverter does not answer
    }


@pytest.mark.parametrize("kind", [SUBENTRY_INVERTER, SUBENTRY_METER])
@pytest.mark.parametrize(
    ("address", "errors"),
    [
        ({CONF_PORT: 0, CONF_UNIT_ID: 1}, {CONF_PORT: "port_out_of_range"}),
        ({CONF_PORT: 70000, CONF_UNIT_ID: 1}, {CONF_PORT: "port_out_of_range"}),
        ({CONF_PORT: 502.5, CONF_UNIT_ID: 1}, {CONF_PORT: "port_out_of_range"}),
        ({CONF_PORT: 502, CONF_UNIT_ID: 256}, {CONF_UNIT_ID: "unit_id_out_of_range"}),
        (
            {CONF_PORT: -1, CONF_UNIT_ID: 1.5},
            {CONF_PORT: "port_out_of_range", CONF_UNIT_ID: "unit_id_out_of_range"},
        ),
    ],
)
async def test_address_out_of_range_is_an_error_on_its_field(
    hass: HomeAssistant, kind: str, address: dict[str, float], errors: dict[str, str]
) -> None:
    """A port or unit id outside its range says so beside the field, with the range."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, kind, KIND_SUNSPEC_TCP)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", **address}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    placeholders = result["description_placeholders"]
    if CONF_PORT in errors:
        assert (placeholders["port_min"], placeholders["port_max"]) == ("1", "65535")
    if CONF_UNIT_ID in errors:
        assert (placeholders["unit_id_min"], placeholders["unit_id_max"]) == ("0", "255")
    assert not entry.subentries


async def test_add_inverter_errors(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """Each probe failure shows its own error and the form again."""
    entry = added_site(hass)
    # A Modbus device with no SunSpec map: pymodbus' own server, all registers zero.
    plain = PymodbusServer({1: DeviceImage(registers=dict.fromkeys(range(60000), 0))})
    plain_port = await plain.start()
    # The simulated inverter, with an illegal-address exception read as "unsupported".
    sim.set_unit_offline(2, True, mode="exception")
    cases = [
        ({CONF_PORT: _closed_port(), CONF_UNIT_ID: 1}, "cannot_connect"),
        ({CONF_PORT: plain_port, CONF_UNIT_ID: 1}, "not_sunspec"),
        ({CONF_PORT: sim.port, CONF_UNIT_ID: 77}, "unit_not_found"),
        ({CONF_PORT: sim.port, CONF_UNIT_ID: 2}, "unit_not_found"),
        ({CONF_PORT: sim.port, CONF_UNIT_ID: sim.meter_unit_id}, "unsupported_device"),
    ]
    try:
        for address, error in cases:
            result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SUNSPEC_TCP)
            result = await hass.config_entries.subentries.async_configure(
                result["flow_id"], {CONF_HOST: "127.0.0.1", **address}
            )
            assert result["type"] is FlowResultType.FORM, error
            assert result["errors"] == {"base": error}
    finally:
        await plain.stop()
    assert not entry.subentries


async def test_modbus_exception_other_than_gateway_is_unsupported(
    hass: HomeAssistant, socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A device refusing to serve its own model (illegal data address) is unsupported.

    The error's text points to the log: the detail is logged there.
    """
    entry = added_site(hass)
    image = build_image([(1, common_values()), (103, inverter_values(103))], end_marker=False)
    # The inverter model's header is there but its registers end early.
    cut = image.locations[103] + 10
    image.registers = {a: v for a, v in image.registers.items() if a < cut}
    server = PymodbusServer({1: image})
    port = await server.start()
    try:
        result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SUNSPEC_TCP)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: port, CONF_UNIT_ID: 1}
        )
    finally:
        await server.stop()
    assert result["errors"] == {"base": "unsupported_device"}
    assert f"The inverter at 127.0.0.1:{port} unit 1 cannot be used:" in caplog.text


async def test_add_inverter_twice_is_refused(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """The same address, or the same inverter at another address, is not added twice."""
    entry = added_site(hass, [inverter_subentry(sim, 1)])
    result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SUNSPEC_TCP)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: sim.port, CONF_UNIT_ID: 1}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"

    # A second simulated site serves an inverter with the same serial number.
    async with SimulatedSiteServer(Scenario.from_dict(STEADY_SITE), port=0) as twin:
        result = await start_subentry_flow(hass, entry, SUBENTRY_INVERTER, KIND_SUNSPEC_TCP)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: twin.port, CONF_UNIT_ID: 1}
        )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reconfigure_inverter(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """The address can change, to the same inverter only."""
    entry = added_site(hass, [inverter_subentry(sim, 1)])
    (sub_id,) = entry.subentries
    result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: _closed_port(), CONF_UNIT_ID: 1}
    )
    assert result["errors"] == {"base": "cannot_connect"}

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: sim.port, CONF_UNIT_ID: 2}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "different_device"

    async with SimulatedSiteServer(Scenario.from_dict(STEADY_SITE), port=0) as moved:
        result = await start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub_id)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: moved.port, CONF_UNIT_ID: 1}
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        assert entry.subentries[sub_id].data[CONF_PORT] == moved.port


async def test_add_meter_once(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """The site meter is probed; a site has at most one."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_SUNSPEC_TCP)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_HOST: "127.0.0.1",
            CONF_PORT: sim.port,
            CONF_UNIT_ID: sim.meter_unit_id,
            CONF_INVERT: True,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.data[CONF_INVERT] is True

    result = await start_subentry_flow(hass, entry, SUBENTRY_METER)  # no menu: refused
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "site_has_meter"

    result = await start_reconfigure(hass, entry, SUBENTRY_METER, sub.subentry_id)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_HOST: "127.0.0.1",
            CONF_PORT: sim.port,
            CONF_UNIT_ID: sim.meter_unit_id,
            CONF_INVERT: False,
        },
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[sub.subentry_id].data[CONF_INVERT] is False


async def test_meter_address_taken_by_inverter(
    hass: HomeAssistant, sim: SimulatedSiteServer
) -> None:
    """A meter cannot be added at an address that already holds a device."""
    entry = added_site(hass, [inverter_subentry(sim, 1)])
    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_SUNSPEC_TCP)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {CONF_HOST: "127.0.0.1", CONF_PORT: sim.port, CONF_UNIT_ID: 1, CONF_INVERT: False},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_address_form_offers_the_gateway_already_used(
    hass: HomeAssistant, sim: SimulatedSiteServer
) -> None:
    """The meter (or a second inverter) is usually on the same host and port: offered."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_SUNSPEC_TCP)
    assert _suggested(result, CONF_HOST) is None  # nothing to offer yet
    entry = added_site(hass, [inverter_subentry(sim, 1)])
    result = await start_subentry_flow(hass, entry, SUBENTRY_METER, KIND_SUNSPEC_TCP)
    assert _suggested(result, CONF_HOST) == "127.0.0.1"
    assert _suggested(result, CONF_PORT) == sim.port


def _suggested(result: dict[str, Any], key: str) -> Any:
    """The value a form offers for ``key`` (its suggested value)."""
    for marker in result["data_schema"].schema:
        if marker == key:
            return (marker.description or {}).get("suggested_value")
    raise KeyError(key)
