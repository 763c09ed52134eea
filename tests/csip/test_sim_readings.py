"""What the simulated site's SunSpec devices give CSIP-AUS telemetry, read over Modbus TCP."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from custom_components.dynamic_export.core.cycle import InverterStatus
from custom_components.dynamic_export.csip.telemetry import (
    Role,
    measurements_from_cycle,
    reading_definitions,
    samples,
)
from custom_components.dynamic_export.sim.registers import HOUSEHOLD_VAR
from custom_components.dynamic_export.sim.server import SimulatedSiteServer
from custom_components.dynamic_export.sunspec.connection import ModbusTcpConnection
from custom_components.dynamic_export.sunspec.device import SunSpecDevice
from custom_components.dynamic_export.sunspec.inverter import SunSpecInverter
from custom_components.dynamic_export.sunspec.meter import SunSpecMeter


async def test_simulated_site_gives_every_reading_all_06_expects(socket_enabled: None) -> None:
    """Site: W (net and per phase), var, V per phase, Hz; DER: W, var, V per phase, Hz."""
    async with SimulatedSiteServer("load_steps", autostep=False) as server:
        connection = ModbusTcpConnection("127.0.0.1", server.port, timeout_s=0.5)
        try:
            meter = await SunSpecMeter(SunSpecDevice(connection, 240)).async_read()
            inverter = await SunSpecInverter(SunSpecDevice(connection, 1)).async_read()
        finally:
            await connection.close()
    snapshot = SimpleNamespace(
        meter=meter,
        meter_error=None,
        inverters={"inv": InverterStatus(inverter)},
        control_enabled=True,
        plan=SimpleNamespace(fail_safe_reason=None),
        available_power=None,
    )
    m = measurements_from_cycle(snapshot, {"inv": 5000.0})  # type: ignore[arg-type]
    assert m.site_reactive_var == pytest.approx(HOUSEHOLD_VAR)
    assert m.der_reactive_var == 0.0, "unity power factor at nominal voltage"
    assert m.site_voltage_v == (230.0, 230.0, 230.0)
    assert m.site_average_voltage_v is None
    assert m.der_voltage_v == (230.0, 230.0, 230.0)
    assert m.der_frequency_hz == pytest.approx(50.0)
    sent = samples(m)
    site = {
        d.description
        for d in reading_definitions("00" * 20, Role.SITE, 1)
        if d.series in sent and " Avg " in d.description
    }
    der = {
        d.description
        for d in reading_definitions("00" * 20, Role.DER, 1)
        if d.series in sent and " Avg " in d.description
    }
    assert site == {
        "Site Avg Real Power Net",
        "Site Avg Real Power Phase A",
        "Site Avg Real Power Phase B",
        "Site Avg Real Power Phase C",
        "Site Avg Reactive Power Net",
        "Site Avg Voltage Phase AN",
        "Site Avg Voltage Phase BN",
        "Site Avg Voltage Phase CN",
        "Site Avg Frequency",
    }
    assert der == {
        "DER Avg Real Power Net",
        "DER Avg Reactive Power Net",
        "DER Avg Voltage Phase AN",
        "DER Avg Voltage Phase BN",
        "DER Avg Voltage Phase CN",
        "DER Avg Frequency",
    }
