"""Sites for the Home Assistant tests: the subentries of every device kind, and site entries.

Each builder gives the subentry data a flow would store for a device on one of the test peers
(the simulated SunSpec site over TCP or RS-485, the OpenDTU, the Powerwall gateway, or
Home Assistant entities), so a test can start from a configured site without going through
the flows, which have tests of their own.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntryState, ConfigSubentryData
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PASSWORD, CONF_PORT
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dynamic_export.const import (
    CONF_BAUDRATE,
    CONF_CONNECT,
    CONF_CONTROL_ENABLED,
    CONF_CONTROL_INTERVAL,
    CONF_ENABLED,
    CONF_ENERGIZE,
    CONF_FINGERPRINT,
    CONF_INVERT,
    CONF_INVERTERS,
    CONF_KIND,
    CONF_LIMIT_ENTITY,
    CONF_LIMIT_UNIT,
    CONF_MAX_AGE,
    CONF_METER_MAX_AGE,
    CONF_PARITY,
    CONF_PHASES,
    CONF_POWER_ENTITY,
    CONF_RATED_POWER,
    CONF_SERIAL,
    CONF_SERIAL_PORT,
    CONF_SITE_NAME,
    CONF_STOPBITS,
    CONF_UNIT_ID,
    DOMAIN,
    KIND_HA_ENTITY,
    KIND_OPENDTU,
    KIND_POWERWALL,
    KIND_SUNSPEC_RTU,
    SUBENTRY_FIXED_LIMITER,
    SUBENTRY_INVERTER,
    SUBENTRY_METER,
    WATT_LIMIT_KEYS,
)
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from ..opendtu.dtu import HM_SERIAL, HMS_SERIAL
from ..opendtu.dtu import PASSWORD as DTU_PASSWORD
from ..powerwall.gateway import DIN
from ..powerwall.gateway import PASSWORD as GATEWAY_PASSWORD
from .peers import GRID, DtuPeer, RtuBridge, SiteGateway

DTU_HOSTNAME = "OpenDTU-5A1B2C"
"""The host name the test DTU reports (its subentry's unique id follows from it)."""


def site_entry(
    subentries: list[ConfigSubentryData], *, interval: float = 1.0, **options: Any
) -> MockConfigEntry:
    """A site config entry with the given subentries."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="Home",
        unique_id="home",
        data={CONF_SITE_NAME: "Home"},
        options={
            CONF_CONTROL_INTERVAL: interval,
            CONF_CONTROL_ENABLED: True,
            CONF_METER_MAX_AGE: 5.0,
            **options,
        },
        subentries_data=subentries,
    )


def sunspec_site(
    sim: SimulatedSiteServer, *more: ConfigSubentryData, **options: Any
) -> MockConfigEntry:
    """The simulated site's two inverters and meter over Modbus TCP, then ``more``."""
    return site_entry(
        [inverter_subentry(sim, 1), inverter_subentry(sim, 2), meter_subentry(sim), *more],
        **options,
    )


def added_site(hass: HomeAssistant, subentries: list[ConfigSubentryData] | None = None) -> Any:
    """A site entry added to Home Assistant but not set up (for the flows)."""
    entry = site_entry(subentries or [])
    entry.add_to_hass(hass)
    return entry


async def setup_site(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    """Add and set up a site entry."""
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def unload_sites(hass: HomeAssistant) -> None:
    """Unload every loaded site (after any reload in flight), e.g. before its peers stop."""
    await hass.async_block_till_done()
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def limiter_subentry(title: str = "Fixed", **limits: float | bool | None) -> ConfigSubentryData:
    """Subentry data of a fixed limiter."""
    data: dict[str, Any] = dict.fromkeys(WATT_LIMIT_KEYS)
    data.update({CONF_CONNECT: True, CONF_ENERGIZE: True, CONF_ENABLED: True})
    data.update(limits)
    return ConfigSubentryData(
        data=data, subentry_type=SUBENTRY_FIXED_LIMITER, title=title, unique_id=None
    )


def inverter_subentry(sim: SimulatedSiteServer, unit_id: int) -> ConfigSubentryData:
    """Subentry data of one simulated inverter over Modbus TCP."""
    return ConfigSubentryData(
        data={CONF_HOST: "127.0.0.1", CONF_PORT: sim.port, CONF_UNIT_ID: unit_id},
        subentry_type=SUBENTRY_INVERTER,
        title=f"Inverter {unit_id}",
        unique_id=f"SIM-INV-{unit_id}",
    )


def meter_subentry(sim: SimulatedSiteServer) -> ConfigSubentryData:
    """Subentry data of the simulated meter over Modbus TCP."""
    return ConfigSubentryData(
        data={
            CONF_HOST: "127.0.0.1",
            CONF_PORT: sim.port,
            CONF_UNIT_ID: sim.meter_unit_id,
            CONF_INVERT: False,
        },
        subentry_type=SUBENTRY_METER,
        title="Meter",
        unique_id="SIM-METER",
    )


def rtu_data(bus: RtuBridge, unit_id: int, **changes: Any) -> dict[str, Any]:
    """What an RS-485 subentry of a unit on ``bus`` stores."""
    data: dict[str, Any] = {
        CONF_KIND: KIND_SUNSPEC_RTU,
        CONF_SERIAL_PORT: bus.path,
        CONF_BAUDRATE: 115200,
        CONF_PARITY: "N",
        CONF_STOPBITS: 1,
        CONF_UNIT_ID: unit_id,
    }
    data.update(changes)
    return data


def rtu_inverter(bus: RtuBridge, unit_id: int) -> ConfigSubentryData:
    """Subentry data of one simulated inverter over RS-485."""
    return ConfigSubentryData(
        data=rtu_data(bus, unit_id),
        subentry_type=SUBENTRY_INVERTER,
        title=f"RS-485 inverter {unit_id}",
        unique_id=f"SIM-INV-{unit_id}",
    )


def rtu_meter(bus: RtuBridge) -> ConfigSubentryData:
    """Subentry data of the simulated meter over RS-485."""
    return ConfigSubentryData(
        data=rtu_data(bus, bus.sim.meter_unit_id, **{CONF_INVERT: False}),
        subentry_type=SUBENTRY_METER,
        title="RS-485 meter",
        unique_id="SIM-METER",
    )


def dtu_subentry(
    dtu: DtuPeer, serials: tuple[str, ...] = (HM_SERIAL, HMS_SERIAL), **ratings: float
) -> ConfigSubentryData:
    """Subentry data of the test DTU with ``serials`` chosen (ratings as ``s<serial>=W``)."""
    return ConfigSubentryData(
        data={
            CONF_KIND: KIND_OPENDTU,
            CONF_HOST: "127.0.0.1",
            CONF_PORT: dtu.port,
            CONF_PASSWORD: DTU_PASSWORD,
            "version": "v25.9.11",
            CONF_INVERTERS: [
                {
                    CONF_SERIAL: serial,
                    CONF_NAME: dtu.inverters[serial].name if serial in dtu.inverters else serial,
                    CONF_RATED_POWER: ratings.get(f"s{serial}"),
                }
                for serial in serials
            ],
        },
        subentry_type=SUBENTRY_INVERTER,
        title=f"OpenDTU {DTU_HOSTNAME}",
        unique_id=f"opendtu_{DTU_HOSTNAME}",
    )


def powerwall_subentry(gateway: SiteGateway, *, fingerprint: str | None = None) -> Any:
    """Subentry data of the test Powerwall gateway as the site meter."""
    return ConfigSubentryData(
        data={
            CONF_KIND: KIND_POWERWALL,
            CONF_HOST: "127.0.0.1",
            CONF_PORT: gateway.port,
            CONF_PASSWORD: GATEWAY_PASSWORD,
            CONF_FINGERPRINT: fingerprint or gateway.fingerprint,
            CONF_PHASES: 3,
            "version": "24.36.2 46990655",
        },
        subentry_type=SUBENTRY_METER,
        title="Tesla Powerwall",
        unique_id=DIN,
    )


def entity_inverter_subentry(
    name: str, power: str, limit: str, unit: str, rating: float
) -> ConfigSubentryData:
    """Subentry data of an inverter made of Home Assistant entities."""
    return ConfigSubentryData(
        data={
            CONF_KIND: KIND_HA_ENTITY,
            CONF_POWER_ENTITY: power,
            CONF_LIMIT_ENTITY: limit,
            CONF_LIMIT_UNIT: unit,
            CONF_RATED_POWER: rating,
        },
        subentry_type=SUBENTRY_INVERTER,
        title=name,
        unique_id=limit,
    )


def entity_meter_subentry(*, invert: bool = False, max_age: float = 5.0) -> ConfigSubentryData:
    """Subentry data of the grid power sensor as the site meter."""
    return ConfigSubentryData(
        data={
            CONF_KIND: KIND_HA_ENTITY,
            CONF_POWER_ENTITY: GRID,
            CONF_INVERT: invert,
            CONF_MAX_AGE: max_age,
        },
        subentry_type=SUBENTRY_METER,
        title="Grid",
        unique_id=GRID,
    )
