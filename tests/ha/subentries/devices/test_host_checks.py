"""Every device form that asks for a host refuses a blank one on the host field.

A blank host used to reach the device client: the form said only that nothing answered,
and the GoodWe client refused it with an exception, an "Unknown error" in the UI and a
traceback in the log. Nothing is contacted, so no peer is needed.
"""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.dynamic_export.const import (
    CONF_FALLBACK_LIMIT,
    CONF_INVERT,
    CONF_METER_NUMBER,
    CONF_RATED_POWER,
    CONF_UNIT_ID,
    KIND_GOODWE,
    KIND_HUAWEI,
    KIND_OPENDTU,
    KIND_POWERWALL,
    KIND_SOLAREDGE,
    KIND_SUNGROW,
    KIND_SUNSPEC_TCP,
    KIND_VICTRON_GX,
    SUBENTRY_INVERTER,
    SUBENTRY_METER,
)

from ...helpers import start_subentry_flow
from ...sites import added_site

MODBUS = {CONF_PORT: 502, CONF_UNIT_ID: 1}

FORMS = [
    pytest.param(SUBENTRY_INVERTER, KIND_SUNSPEC_TCP, MODBUS, id="inverter-sunspec"),
    pytest.param(
        SUBENTRY_INVERTER,
        KIND_SOLAREDGE,
        {**MODBUS, CONF_FALLBACK_LIMIT: 0},
        id="inverter-solaredge",
    ),
    pytest.param(SUBENTRY_INVERTER, KIND_SUNGROW, MODBUS, id="inverter-sungrow"),
    pytest.param(SUBENTRY_INVERTER, KIND_HUAWEI, MODBUS, id="inverter-huawei"),
    pytest.param(SUBENTRY_INVERTER, KIND_GOODWE, {}, id="inverter-goodwe"),
    pytest.param(
        SUBENTRY_INVERTER, KIND_OPENDTU, {CONF_PORT: 80, CONF_PASSWORD: "x"}, id="inverter-dtu"
    ),
    pytest.param(
        SUBENTRY_INVERTER,
        KIND_VICTRON_GX,
        {CONF_PORT: 502, CONF_RATED_POWER: 5000},
        id="inverter-victron",
    ),
    pytest.param(
        SUBENTRY_METER, KIND_SUNSPEC_TCP, {**MODBUS, CONF_INVERT: False}, id="meter-sunspec"
    ),
    pytest.param(
        SUBENTRY_METER, KIND_SOLAREDGE, {**MODBUS, CONF_METER_NUMBER: 1}, id="meter-solaredge"
    ),
    pytest.param(
        SUBENTRY_METER, KIND_POWERWALL, {CONF_PORT: 443, CONF_PASSWORD: "x"}, id="meter-powerwall"
    ),
    pytest.param(
        SUBENTRY_METER, KIND_VICTRON_GX, {CONF_PORT: 502, CONF_UNIT_ID: 30}, id="meter-victron"
    ),
]


@pytest.mark.parametrize(("subentry_type", "kind", "fields"), FORMS)
@pytest.mark.parametrize("host", ["", "   "])
async def test_blank_host_is_an_error_on_its_field(
    hass: HomeAssistant, subentry_type: str, kind: str, fields: dict[str, Any], host: str
) -> None:
    """The form comes back with ``host_blank`` on the host, and nothing is added."""
    entry = added_site(hass)
    result = await start_subentry_flow(hass, entry, subentry_type, kind)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_HOST: host, **fields}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_HOST: "host_blank"}
    assert not entry.subentries
