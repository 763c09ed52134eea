"""An OpenDTU announcing itself over mDNS is offered, and added to the site the user picks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from ipaddress import ip_address

import pytest
from homeassistant.config_entries import SOURCE_ZEROCONF
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PASSWORD, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from custom_components.dynamic_export.const import (
    CONF_INVERTERS,
    CONF_RATED_POWER,
    CONF_SERIAL,
    DOMAIN,
    SUBENTRY_INVERTER,
)

from ....opendtu.dtu import HM_SERIAL, HMS_SERIAL, PASSWORD
from ...peers import DtuPeer, dtu_peer
from ...sites import DTU_HOSTNAME, added_site, dtu_subentry


@pytest.fixture
async def dtu(socket_enabled: None) -> AsyncIterator[DtuPeer]:
    dtu = dtu_peer()
    await dtu.start()
    yield dtu
    await dtu.stop()


def _announcement(port: int, host: str = "127.0.0.1") -> ZeroconfServiceInfo:
    """What OpenDTU announces with mDNS on: ``_opendtu._tcp`` under its host name."""
    return ZeroconfServiceInfo(
        ip_address=ip_address(host),
        ip_addresses=[ip_address(host)],
        port=port,
        hostname=f"{DTU_HOSTNAME.lower()}.local.",
        type="_opendtu._tcp.local.",
        name=f"{DTU_HOSTNAME.lower()}._opendtu._tcp.local.",
        properties={"git_hash": "v24.11.7"},
    )


async def test_announced_dtu_is_added_to_the_chosen_site(hass: HomeAssistant, dtu: DtuPeer) -> None:
    """The password is checked; the inverters whose rating the DTU knows are added."""
    dtu.inverters[HMS_SERIAL].max_power = 0  # not talked to yet: its rating is unknown
    entry = added_site(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_announcement(dtu.port)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "opendtu_discovered"
    assert result["description_placeholders"] == {"host": "127.0.0.1"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"site": entry.entry_id, CONF_PASSWORD: "wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"site": entry.entry_id, CONF_PASSWORD: PASSWORD}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "opendtu_added"
    (sub,) = entry.subentries.values()
    assert (sub.subentry_type, sub.unique_id) == (SUBENTRY_INVERTER, f"opendtu_{DTU_HOSTNAME}")
    assert sub.data[CONF_HOST] == "127.0.0.1"
    assert sub.data[CONF_PORT] == dtu.port
    assert sub.data[CONF_INVERTERS] == [
        {CONF_SERIAL: HM_SERIAL, CONF_NAME: "Garage HM-800", CONF_RATED_POWER: 800.0}
    ]

    # Announced again: it is part of the site now.
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_announcement(dtu.port)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "opendtu_already_configured"


async def test_dtu_on_a_new_address_is_followed(hass: HomeAssistant, dtu: DtuPeer) -> None:
    """A DTU already added that announces another address gets that address."""
    entry = added_site(hass, [dtu_subentry(dtu)])
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_announcement(80, host="192.0.2.7")
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "opendtu_already_configured"
    (sub,) = entry.subentries.values()
    assert (sub.data[CONF_HOST], sub.data[CONF_PORT]) == ("192.0.2.7", 80)


async def test_dtu_without_a_site_is_not_offered(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_announcement(80)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_site"


async def test_unreadable_dtu_is_explained_in_the_log(
    hass: HomeAssistant, dtu: DtuPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """The form says to see the log: the log says what was wrong."""
    dtu.overrides[("GET", "/api/livedata/status")] = (200, "{inverters: [")
    entry = added_site(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_announcement(dtu.port)
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"site": entry.entry_id, CONF_PASSWORD: PASSWORD}
    )
    assert result["errors"] == {"base": "invalid_response"}
    assert "The OpenDTU at 127.0.0.1 cannot be used" in caplog.text
    assert not entry.subentries
