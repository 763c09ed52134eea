"""Config flow: the site, its device subentries (tested against a real Modbus peer) and limiters."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.dynamic_export.const import (
    CONF_CONNECT,
    CONF_CONTROL_ENABLED,
    CONF_CONTROL_INTERVAL,
    CONF_DEADBAND,
    CONF_ENABLED,
    CONF_ENERGIZE,
    CONF_EXPORT_LIMIT,
    CONF_GENERATION_LIMIT,
    CONF_INVERT,
    CONF_METER_MAX_AGE,
    CONF_RAMP_UP_RATE,
    CONF_RATED_POWER,
    CONF_REVERT_TIMEOUT,
    CONF_SITE_NAME,
    CONF_UNIT_ID,
    DOMAIN,
    KIND_SUNSPEC_TCP,
    SUBENTRY_FIXED_LIMITER,
    SUBENTRY_INVERTER,
    SUBENTRY_METER,
)
from custom_components.dynamic_export.sim.scenario import Scenario
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from ..sunspec.helpers import (
    DeviceImage,
    PymodbusServer,
    build_image,
    common_values,
    inverter_values,
)
from .conftest import STEADY_SITE, inverter_subentry, limiter_subentry, site_entry


def _closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _add_site(hass: HomeAssistant, subentries: list[Any] | None = None) -> Any:
    entry = site_entry(subentries or [])
    entry.add_to_hass(hass)
    return entry


async def _start_subflow(hass: HomeAssistant, entry: Any, kind: str) -> Any:
    """Start a subentry flow; devices start with a menu of kinds, where SunSpec TCP is picked."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, kind), context={"source": SOURCE_USER}
    )
    if result["type"] is FlowResultType.MENU:
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"next_step_id": KIND_SUNSPEC_TCP}
        )
    return result


@pytest.mark.parametrize("kind", [SUBENTRY_INVERTER, SUBENTRY_METER])
async def test_device_menus_name_their_step(hass: HomeAssistant, kind: str) -> None:
    """A menu without ``step_id`` is reported by HA 2026.11 and stops working in 2027.5."""
    entry = await _add_site(hass)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, kind), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "user"
    assert KIND_SUNSPEC_TCP in result["menu_options"]


async def _start_reconfigure(hass: HomeAssistant, entry: Any, kind: str, sub_id: str) -> Any:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, kind),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": sub_id},
    )


async def test_site_created_with_control_choice(hass: HomeAssistant) -> None:
    """The user names a site and picks monitor-only; defaults fill the rest."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_SITE_NAME: " Home ", CONF_CONTROL_INTERVAL: 2, CONF_CONTROL_ENABLED: False},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Home"
    assert result["data"] == {CONF_SITE_NAME: "Home"}
    options = result["options"]
    assert options[CONF_CONTROL_INTERVAL] == 2
    assert options[CONF_CONTROL_ENABLED] is False
    assert options[CONF_METER_MAX_AGE] == 5.0
    assert result["result"].unique_id == "home"


async def test_site_name_must_be_unique(hass: HomeAssistant) -> None:
    """A second site with the same name is refused."""
    await _add_site(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_SITE_NAME: "home", CONF_CONTROL_INTERVAL: 1, CONF_CONTROL_ENABLED: True},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_options_flow_saves_tuning(hass: HomeAssistant) -> None:
    """The options form shows current values and keeps the control switch's state."""
    entry = await _add_site(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    tuning = {
        CONF_CONTROL_INTERVAL: 1.5,
        CONF_METER_MAX_AGE: 4,
        CONF_RAMP_UP_RATE: 30,
        CONF_DEADBAND: 0.5,
        CONF_REVERT_TIMEOUT: 120,
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], tuning)
    await hass.async_block_till_done()  # the reload that new options bring
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {**tuning, CONF_CONTROL_ENABLED: True}
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_add_inverter_reads_identity(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """A SunSpec inverter is probed before it is added; its serial is the unique id."""
    entry = await _add_site(hass)
    result = await _start_subflow(hass, entry, SUBENTRY_INVERTER)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: sim.port, CONF_UNIT_ID: 2}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.unique_id == "SIM-INV-2"
    assert "SIM-INV-2" in sub.title
    assert sub.data == {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: sim.port,
        CONF_UNIT_ID: 2,
        CONF_RATED_POWER: 5000.0,  # kept for a start at which the inverter does not answer
    }


async def test_add_inverter_errors(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """Each probe failure shows its own error and the form again."""
    entry = await _add_site(hass)
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
            result = await _start_subflow(hass, entry, SUBENTRY_INVERTER)
            result = await hass.config_entries.subentries.async_configure(
                result["flow_id"], {CONF_HOST: "127.0.0.1", **address}
            )
            assert result["type"] is FlowResultType.FORM, error
            assert result["errors"] == {"base": error}
    finally:
        await plain.stop()
    assert not entry.subentries


async def test_modbus_exception_other_than_gateway_is_unsupported(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    """A device refusing to serve its own model (illegal data address) is unsupported."""
    entry = await _add_site(hass)
    image = build_image([(1, common_values()), (103, inverter_values(103))], end_marker=False)
    # The inverter model's header is there but its registers end early.
    cut = image.locations[103] + 10
    image.registers = {a: v for a, v in image.registers.items() if a < cut}
    server = PymodbusServer({1: image})
    port = await server.start()
    try:
        result = await _start_subflow(hass, entry, SUBENTRY_INVERTER)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: port, CONF_UNIT_ID: 1}
        )
    finally:
        await server.stop()
    assert result["errors"] == {"base": "unsupported_device"}


async def test_add_inverter_twice_is_refused(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """The same address, or the same inverter at another address, is not added twice."""
    entry = await _add_site(hass, [inverter_subentry(sim, 1)])
    result = await _start_subflow(hass, entry, SUBENTRY_INVERTER)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: sim.port, CONF_UNIT_ID: 1}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"

    # A second simulated site serves an inverter with the same serial number.
    async with SimulatedSiteServer(Scenario.from_dict(STEADY_SITE), port=0) as twin:
        result = await _start_subflow(hass, entry, SUBENTRY_INVERTER)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: twin.port, CONF_UNIT_ID: 1}
        )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reconfigure_inverter(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """The address can change, to the same inverter only."""
    entry = await _add_site(hass, [inverter_subentry(sim, 1)])
    (sub_id,) = entry.subentries
    result = await _start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub_id)
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
        result = await _start_reconfigure(hass, entry, SUBENTRY_INVERTER, sub_id)
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: moved.port, CONF_UNIT_ID: 1}
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        assert entry.subentries[sub_id].data[CONF_PORT] == moved.port


async def test_add_meter_once(hass: HomeAssistant, sim: SimulatedSiteServer) -> None:
    """The site meter is probed; a site has at most one."""
    entry = await _add_site(hass)
    result = await _start_subflow(hass, entry, SUBENTRY_METER)
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

    result = await _start_subflow(hass, entry, SUBENTRY_METER)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"

    result = await _start_reconfigure(hass, entry, SUBENTRY_METER, sub.subentry_id)
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
    entry = await _add_site(hass, [inverter_subentry(sim, 1)])
    result = await _start_subflow(hass, entry, SUBENTRY_METER)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {CONF_HOST: "127.0.0.1", CONF_PORT: sim.port, CONF_UNIT_ID: 1, CONF_INVERT: False},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_fixed_limiter_add_and_reconfigure(hass: HomeAssistant) -> None:
    """Fixed limits are stored with unset limits as None; reconfigure can remove one."""
    entry = await _add_site(hass)
    result = await _start_subflow(hass, entry, SUBENTRY_FIXED_LIMITER)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_SITE_NAME: "Export limit ",
            CONF_EXPORT_LIMIT: 1500,
            CONF_GENERATION_LIMIT: 8000,
            CONF_CONNECT: True,
            CONF_ENERGIZE: True,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.title == "Export limit"
    assert sub.data[CONF_EXPORT_LIMIT] == 1500.0
    assert sub.data["import_limit"] is None
    assert sub.data[CONF_ENABLED] is True

    result = await _start_reconfigure(hass, entry, SUBENTRY_FIXED_LIMITER, sub.subentry_id)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_SITE_NAME: "Zero export",
            CONF_EXPORT_LIMIT: 0,
            CONF_CONNECT: True,
            CONF_ENERGIZE: False,
        },
    )
    assert result["reason"] == "reconfigure_successful"
    updated = entry.subentries[sub.subentry_id]
    assert updated.title == "Zero export"
    assert updated.data[CONF_EXPORT_LIMIT] == 0.0
    assert updated.data[CONF_GENERATION_LIMIT] is None
    assert updated.data[CONF_ENERGIZE] is False


async def test_limiter_subentry_helper_matches_flow(hass: HomeAssistant) -> None:
    """The test helper builds the same shape the flow stores (keeps other tests honest)."""
    entry = await _add_site(hass, [limiter_subentry(export_limit=1.0)])
    result = await _start_subflow(hass, entry, SUBENTRY_FIXED_LIMITER)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {CONF_SITE_NAME: "x", CONF_EXPORT_LIMIT: 1, CONF_CONNECT: True, CONF_ENERGIZE: True},
    )
    subs = list(entry.subentries.values())
    assert subs[0].data == subs[1].data
