"""Register images follow the official SunSpec layout and reflect the physics."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from custom_components.dynamic_export.sim.physics import SimInverter, SimMeter
from custom_components.dynamic_export.sim.registers import (
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_DATA_VALUE,
    InverterRegisters,
    MeterRegisters,
    RegisterImage,
)

from .sunspec_layout import official_length, read_point, scaled, walk_chain

Reader = Callable[[int, int], list[int]]


def _reader(image: RegisterImage) -> Reader:
    def read(address: int, count: int) -> list[int]:
        assert image.contains(address, count), (address, count)
        return image.read(address, count)

    return read


def _inverter(
    *, unit_id: int | None = None, limit_sf: int = -2, common_length: int | None = 65
) -> InverterRegisters:
    inverter = SimInverter(5000.0)
    inverter.settle(3000.0)
    inverter.lifetime_energy_wh = 123456.4
    return InverterRegisters(
        2, inverter, unit_id=unit_id, limit_sf=limit_sf, common_length=common_length
    )


def test_inverter_chain_matches_fronius_layout() -> None:
    image = _inverter().image
    chain = walk_chain(_reader(image))
    assert list(chain) == [1, 103, 120, 121, 122, 123]
    assert chain[1] == (40002, 65)
    for model_id in (103, 120, 121, 122, 123):
        assert chain[model_id][1] == official_length(model_id)
    # Fronius int+SF worked example: model 123 at 40227, WMaxLimPct 40232, Ena 40236.
    assert chain[123][0] == 40227
    assert image.point(123, "WMaxLimPct")[0] == 40232
    assert image.point(123, "WMaxLim_Ena")[0] == 40236


def test_common_model_with_spec_length() -> None:
    image = _inverter(common_length=None).image
    chain = walk_chain(_reader(image))
    assert chain[1] == (40002, official_length(1))
    assert chain[123][0] == 40228


def test_inverter_values_decode_with_official_offsets() -> None:
    regs = _inverter(unit_id=7)
    read = _reader(regs.image)
    chain = walk_chain(read)
    assert read_point(read, chain, 1, "Mn") == "Dynamic Export"
    assert read_point(read, chain, 1, "Md") == "Simulated inverter"
    assert read_point(read, chain, 1, "SN") == "SIM-INV-2"
    assert read_point(read, chain, 1, "DA") == 7
    assert scaled(read, chain, 103, "W", "W_SF") == 3000.0
    assert scaled(read, chain, 103, "Hz", "Hz_SF") == pytest.approx(50.0)
    assert scaled(read, chain, 103, "PhVphA", "V_SF") == pytest.approx(230.0)
    assert scaled(read, chain, 103, "A", "A_SF") == pytest.approx(3000 / 230, abs=0.01)
    assert scaled(read, chain, 103, "WH", "WH_SF") == 123456.0
    assert read_point(read, chain, 103, "St") == 4  # MPPT
    assert scaled(read, chain, 120, "WRtg", "WRtg_SF") == 5000.0
    assert scaled(read, chain, 121, "WMax", "WMax_SF") == 5000.0
    assert read_point(read, chain, 123, "Conn") == 1
    assert read_point(read, chain, 123, "WMaxLimPct") == 10000
    assert read_point(read, chain, 123, "WMaxLimPct_SF") == -2
    assert read_point(read, chain, 123, "WMaxLim_Ena") == 0
    assert read_point(read, chain, 123, "WMaxLimPct_RvrtTms") == 0


def test_limit_scale_factor_zero() -> None:
    regs = _inverter(limit_sf=0)
    read = _reader(regs.image)
    chain = walk_chain(read)
    assert read_point(read, chain, 123, "WMaxLimPct") == 100
    assert read_point(read, chain, 123, "WMaxLimPct_SF") == 0
    address = regs.image.point(123, "WMaxLimPct")[0]
    assert regs.check_write(address, [101]) == ILLEGAL_DATA_VALUE
    regs.image.write(address, [40])
    assert regs.limit_settings().limit_pct == 40.0


def test_state_follows_the_inverter() -> None:
    inverter = SimInverter(5000.0)
    inverter.settle(4000.0)
    regs = InverterRegisters(1, inverter)
    inverter.write_limit(0.0, limit_pct=50.0, enabled=True)
    regs.refresh(inverter)
    assert regs.image.get(103, "St") == 5  # THROTTLED
    assert regs.image.get(123, "WMaxLim_Ena") == 1
    assert regs.image.get(123, "WMaxLimPct") == 5000
    inverter.write_conn(0.0, connected=False)
    regs.refresh(inverter)
    assert regs.image.get(103, "St") == 1  # OFF
    assert regs.image.get(123, "Conn") == 0


def test_large_inverter_uses_a_power_scale_factor() -> None:
    inverter = SimInverter(100000.0)
    inverter.settle(60000.0)
    read = _reader(InverterRegisters(1, inverter).image)
    chain = walk_chain(read)
    assert read_point(read, chain, 103, "W_SF") == 1
    assert scaled(read, chain, 103, "W", "W_SF") == 60000.0
    assert scaled(read, chain, 120, "WRtg", "WRtg_SF") == 100000.0


def test_only_model_123_controls_are_writable() -> None:
    regs = _inverter()
    image = regs.image
    pct = image.point(123, "WMaxLimPct")[0]
    assert regs.check_write(pct, [5000, 0, 60, 0, 1]) is None
    assert regs.check_write(image.point(123, "Conn_WinTms")[0], [0, 30, 0]) is None
    assert regs.check_write(image.point(123, "WMaxLimPct_SF")[0], [0]) == ILLEGAL_DATA_ADDRESS
    assert regs.check_write(image.point(103, "W")[0], [0]) == ILLEGAL_DATA_ADDRESS
    assert regs.check_write(image.point(121, "WMax")[0], [0]) == ILLEGAL_DATA_ADDRESS
    assert regs.check_write(40000, [0]) == ILLEGAL_DATA_ADDRESS
    # A block write that runs into the read-only scale factor is refused whole.
    end = image.point(123, "WMaxLimPct_SF")[0]
    assert regs.check_write(pct, [0] * (end - pct + 1)) == ILLEGAL_DATA_ADDRESS
    assert regs.check_write(pct, [10001]) == ILLEGAL_DATA_VALUE
    assert regs.check_write(image.point(123, "WMaxLim_Ena")[0], [2]) == ILLEGAL_DATA_VALUE
    assert regs.check_write(image.point(123, "Conn")[0], [7]) == ILLEGAL_DATA_VALUE


def test_written_controls_read_back() -> None:
    regs = _inverter()
    pct = regs.image.point(123, "WMaxLimPct")[0]
    regs.image.write(pct, [2550, 0, 60, 0, 1])
    assert regs.touched(pct, 5) == (True, False)
    settings = regs.limit_settings()
    assert (settings.limit_pct, settings.enabled, settings.revert_s) == (25.5, True, 60.0)
    conn = regs.image.point(123, "Conn_RvrtTms")[0]
    regs.image.write(conn, [15, 0])
    assert regs.touched(conn, 2) == (False, True)
    assert regs.conn_settings().connected is False
    assert regs.conn_settings().revert_s == 15.0
    out_pf = regs.image.point(123, "OutPFSet")[0]
    assert regs.touched(out_pf, 1) == (False, False)


def test_meter_image() -> None:
    meter = SimMeter()
    meter.record(0.0, -4500.0)
    meter.record(3600.0, -4500.0, dt=3600.0)
    regs = MeterRegisters(meter, max_power_w=30000.0)
    read = _reader(regs.image)
    chain = walk_chain(read)
    assert list(chain) == [1, 203]
    assert chain[203][1] == official_length(203)
    assert read_point(read, chain, 1, "Md") == "Simulated meter"
    assert read_point(read, chain, 1, "DA") == 240
    assert scaled(read, chain, 203, "W", "W_SF") == -4500.0
    assert scaled(read, chain, 203, "WphB", "W_SF") == -1500.0
    assert scaled(read, chain, 203, "Hz", "Hz_SF") == pytest.approx(50.0)
    assert scaled(read, chain, 203, "PhVphA", "V_SF") == pytest.approx(230.0)
    assert scaled(read, chain, 203, "TotWhExp", "TotWh_SF") == 4500.0
    assert scaled(read, chain, 203, "TotWhImp", "TotWh_SF") == 0.0
    assert regs.check_write(chain[203][0] + 18, [0]) == ILLEGAL_DATA_ADDRESS


def test_meter_scale_factor_for_big_sites() -> None:
    meter = SimMeter()
    meter.record(0.0, -45000.0)
    regs = MeterRegisters(meter, max_power_w=60000.0)
    read = _reader(regs.image)
    chain = walk_chain(read)
    assert scaled(read, chain, 203, "W", "W_SF") == -45000.0
