"""SunSpec holding-register images of the simulated devices.

Maps are laid out from the vendored official model tables, so any client that walks
the SunSpec chain sees the same layout as on a Fronius Datamanager (model 1 with
L=65 by default). Values are refreshed from :mod:`.physics`; writes by a client are
checked here and read back as control settings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..sunspec.codec import decode_point, encode_model, encode_point, to_raw
from ..sunspec.models import MODELS, ModelDef, PointDef
from .physics import GRID_FREQUENCY_HZ, GRID_VOLTAGE_V, SimInverter, SimMeter

SUNSPEC_BASE = 40000
SUNS_MARKER = (0x5375, 0x6E53)
END_MARKER = (0xFFFF, 0)
METER_UNIT_ID = 240
FIRST_INVERTER_UNIT_ID = 1
MANUFACTURER = "Dynamic Export"
VERSION = "sim-1"

# Modbus exception codes a write can be refused with.
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3

# SunSpec 103 operating states.
ST_OFF = 1
ST_SLEEPING = 2
ST_MPPT = 4
ST_THROTTLED = 5

# Model 122 PVConn bits: CONNECTED, AVAILABLE, OPERATING.
PV_CONNECTED_OPERATING = 0b111

LIMIT_POINTS = frozenset(
    {"WMaxLimPct", "WMaxLimPct_WinTms", "WMaxLimPct_RvrtTms", "WMaxLimPct_RmpTms", "WMaxLim_Ena"}
)
CONN_POINTS = frozenset({"Conn_WinTms", "Conn_RvrtTms", "Conn"})

_PHASE_VOLTAGE_RAW = round(GRID_VOLTAGE_V * 10)  # V_SF -1
HOUSEHOLD_VAR = 300.0
"""Reactive power the household draws (motors, power supplies): the meter imports it.

The inverters run at unity power factor (volt-var gives nothing at nominal voltage), so the
meter sees only this.
"""
_LINE_VOLTAGE_RAW = round(GRID_VOLTAGE_V * math.sqrt(3) * 10)


RawValues = Mapping[str, int | float | str | None]


def power_sf(max_power_w: float) -> int:
    """Smallest scale factor that keeps ``max_power_w`` inside an int16 register."""
    sf = 0
    while max_power_w / 10**sf > 32767:
        sf += 1
    return sf


class RegisterImage:
    """The holding registers of one Modbus unit: SunS, a model chain, the end marker."""

    def __init__(
        self, chain: list[tuple[ModelDef, RawValues, int | None]], base: int = SUNSPEC_BASE
    ) -> None:
        self.base = base
        self.registers: list[int] = list(SUNS_MARKER)
        self.model_address: dict[int, int] = {}
        self.models: dict[int, ModelDef] = {}
        for model, values, length in chain:
            self.model_address[model.id] = base + len(self.registers)
            self.models[model.id] = model
            self.registers.extend(encode_model(model, values, length))
        self.registers.extend(END_MARKER)

    @property
    def end(self) -> int:
        """First address after the image."""
        return self.base + len(self.registers)

    def contains(self, address: int, count: int) -> bool:
        """True if every register in ``address .. address+count-1`` exists."""
        return self.base <= address and address + count <= self.end

    def read(self, address: int, count: int) -> list[int]:
        """Registers ``address .. address+count-1`` (caller checks :meth:`contains`)."""
        start = address - self.base
        return self.registers[start : start + count]

    def write(self, address: int, values: list[int]) -> None:
        """Store registers as a client wrote them (caller checks writability)."""
        start = address - self.base
        self.registers[start : start + len(values)] = values

    def point(self, model_id: int, name: str) -> tuple[int, PointDef]:
        """Absolute address and definition of one point."""
        point = self.models[model_id].point(name)
        return self.model_address[model_id] + point.offset, point

    def set(self, model_id: int, name: str, raw: int | float | str | None) -> None:
        """Encode one raw (unscaled) point value into the image."""
        address, point = self.point(model_id, name)
        self.write(address, encode_point(point, raw))

    def get(self, model_id: int, name: str) -> int | float | str | None:
        """Decode one raw point value (None when not implemented)."""
        address, point = self.point(model_id, name)
        return decode_point(point, self.read(address, point.size))

    def points_in(self, address: int, count: int) -> list[tuple[int, PointDef]]:
        """(model id, point) of every point overlapping the given range."""
        found = []
        for model_id, start in self.model_address.items():
            for point in self.models[model_id].points:
                first = start + point.offset
                if first < address + count and address < first + point.size:
                    found.append((model_id, point))
        return found


def _common(
    model: str, serial: str, unit_id: int, manufacturer: str = MANUFACTURER
) -> dict[str, int | float | str | None]:
    return {"Mn": manufacturer, "Md": model, "Vr": VERSION, "SN": serial, "DA": unit_id}


def common_values(
    model: str, serial: str, unit_id: int, manufacturer: str
) -> dict[str, int | float | str | None]:
    """SunSpec model 1 values of a simulated device."""
    return _common(model, serial, unit_id, manufacturer)


def model_103_scale_factors(w_sf: int) -> dict[str, int | float | str | None]:
    """The fixed scale factors (and cleared events) of a model-103 image."""
    return {
        "A_SF": -2,
        "V_SF": -1,
        "W_SF": w_sf,
        "Hz_SF": -2,
        "VA_SF": w_sf,
        "VAr_SF": w_sf,
        "PF_SF": 0,
        "WH_SF": 0,
        "Tmp_SF": -1,
        "Evt1": 0,
        "Evt2": 0,
    }


def refresh_model_103(
    img: RegisterImage, inverter: SimInverter, w_sf: int, lifetime_wh: int
) -> None:
    """Copy an inverter's output, energy and state into the model-103 points of ``img``."""
    output = inverter.output_w
    phase_a = output / 3 / GRID_VOLTAGE_V
    img.set(103, "W", to_raw(output, w_sf))
    img.set(103, "VA", to_raw(output, w_sf))
    img.set(103, "VAr", 0)
    img.set(103, "PF", 100)
    img.set(103, "A", to_raw(phase_a * 3, -2))
    for phase in "ABC":
        img.set(103, f"Aph{phase}", to_raw(phase_a, -2))
        img.set(103, f"PhVph{phase}", _PHASE_VOLTAGE_RAW)
    for pair in ("AB", "BC", "CA"):
        img.set(103, f"PPVph{pair}", _LINE_VOLTAGE_RAW)
    img.set(103, "Hz", to_raw(GRID_FREQUENCY_HZ, -2))
    img.set(103, "WH", lifetime_wh)
    img.set(103, "TmpCab", 350)
    img.set(103, "St", inverter_state(inverter))


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Model-123 limit controls as a client left them."""

    limit_pct: float
    enabled: bool
    revert_s: float


@dataclass(frozen=True, slots=True)
class ConnSettings:
    """Model-123 connect controls as a client left them."""

    connected: bool
    revert_s: float


class InverterRegisters:
    """Register image of one simulated inverter: models 1, 103, 120, 121, 122 and 123.

    The chain matches a Fronius inverter in int+SF mode, so with model 1 at L=65
    WMaxLimPct sits at 40232 and WMaxLim_Ena at 40236 as on the real device.
    """

    def __init__(
        self,
        number: int,
        inverter: SimInverter,
        *,
        unit_id: int | None = None,
        limit_sf: int = -2,
        common_length: int | None = 65,
        energy_start_wh: float = 0.0,
    ) -> None:
        if not -4 <= limit_sf <= 0:
            raise ValueError(f"limit_sf must be -4..0 (real devices use -2 or 0), got {limit_sf}")
        self.number = number
        self.unit_id = FIRST_INVERTER_UNIT_ID + number - 1 if unit_id is None else unit_id
        self.limit_sf = limit_sf
        self.energy_start_wh = energy_start_wh
        """Lifetime energy the inverter had produced before the site started."""
        rating = inverter.rated_power_w
        self.w_sf = power_sf(rating)
        self.image = RegisterImage(
            [
                (
                    MODELS[1],
                    _common("Simulated inverter", f"SIM-INV-{number}", self.unit_id),
                    common_length,
                ),
                (MODELS[103], self._measurement_sfs(), None),
                (MODELS[120], self._nameplate(rating), None),
                (MODELS[121], self._settings(rating), None),
                (MODELS[122], {"WAval_SF": self.w_sf, "TmSrc": "SIM", "StSetLimMsk": 0}, None),
                (MODELS[123], self._controls_defaults(), None),
            ]
        )
        self._writable = {
            address
            for model_id, point in self._rw_points()
            for address in range(
                self.image.model_address[model_id] + point.offset,
                self.image.model_address[model_id] + point.offset + point.size,
            )
        }
        self.refresh(inverter)

    def _measurement_sfs(self) -> dict[str, int | float | str | None]:
        return model_103_scale_factors(self.w_sf)

    def _nameplate(self, rating: float) -> dict[str, int | float | str | None]:
        return {
            "DERTyp": 4,
            "WRtg": to_raw(rating, self.w_sf),
            "WRtg_SF": self.w_sf,
            "VARtg": to_raw(rating, self.w_sf),
            "VARtg_SF": self.w_sf,
            "ARtg": to_raw(rating / 3 / GRID_VOLTAGE_V, -2),
            "ARtg_SF": -2,
        }

    def _settings(self, rating: float) -> dict[str, int | float | str | None]:
        return {
            "WMax": to_raw(rating, self.w_sf),
            "WMax_SF": self.w_sf,
            "VRef": round(GRID_VOLTAGE_V),
            "VRef_SF": 0,
            "VRefOfs": 0,
            "VRefOfs_SF": 0,
        }

    def _controls_defaults(self) -> dict[str, int | float | str | None]:
        return {
            "Conn_WinTms": 0,
            "Conn_RvrtTms": 0,
            "Conn": 1,
            "WMaxLimPct": to_raw(100.0, self.limit_sf),
            "WMaxLimPct_WinTms": 0,
            "WMaxLimPct_RvrtTms": 0,
            "WMaxLimPct_RmpTms": 0,
            "WMaxLim_Ena": 0,
            "WMaxLimPct_SF": self.limit_sf,
        }

    def _rw_points(self) -> list[tuple[int, PointDef]]:
        return [(123, p) for p in MODELS[123].points if p.access == "RW"]

    def refresh(self, inverter: SimInverter) -> None:
        """Copy the inverter's measurements and control state into the image."""
        img = self.image
        lifetime_wh = round(self.energy_start_wh + inverter.lifetime_energy_wh)
        refresh_model_103(img, inverter, self.w_sf, lifetime_wh)
        img.set(122, "PVConn", PV_CONNECTED_OPERATING if inverter.connected else 0)
        img.set(122, "ECPConn", int(inverter.connected))
        img.set(122, "ActWh", lifetime_wh)
        available = max(0.0, min(inverter.available_w, inverter.rated_power_w))
        img.set(122, "WAval", to_raw(available, self.w_sf))
        img.set(122, "StActCtl", int(inverter.limit_enabled))  # bit 0: FixedW
        img.set(123, "Conn", int(inverter.connected))
        img.set(123, "Conn_RvrtTms", round(inverter.conn_revert_s))
        img.set(123, "WMaxLimPct", to_raw(inverter.limit_pct, self.limit_sf))
        img.set(123, "WMaxLimPct_RvrtTms", round(inverter.limit_revert_s))
        img.set(123, "WMaxLim_Ena", int(inverter.limit_enabled))

    def check_write(self, address: int, values: list[int]) -> int | None:
        """Modbus exception code refusing this write, or None if it is allowed.

        Only model-123 controls are writable; values outside their range are refused
        the way a real inverter refuses them.
        """
        if any(a not in self._writable for a in range(address, address + len(values))):
            return ILLEGAL_DATA_ADDRESS
        max_pct_raw = to_raw(100.0, self.limit_sf)
        for model_id, point in self.image.points_in(address, len(values)):
            raw = values[self.image.model_address[model_id] + point.offset - address]
            if point.name == "WMaxLimPct" and raw > max_pct_raw:
                return ILLEGAL_DATA_VALUE
            if point.name in ("WMaxLim_Ena", "Conn") and raw not in (0, 1):
                return ILLEGAL_DATA_VALUE
        return None

    def touched(self, address: int, count: int) -> tuple[bool, bool]:
        """Whether a write hit the (limit, connect) control groups."""
        names = {p.name for _, p in self.image.points_in(address, count)}
        return bool(names & LIMIT_POINTS), bool(names & CONN_POINTS)

    def limit_settings(self) -> LimitSettings:
        """The limit controls as stored in the image."""
        sf = self.image.get(123, "WMaxLimPct_SF")
        pct = _number(self.image.get(123, "WMaxLimPct"), 100.0)
        scale = 10 ** _number(sf, self.limit_sf)
        return LimitSettings(
            limit_pct=pct * scale,
            enabled=self.image.get(123, "WMaxLim_Ena") == 1,
            revert_s=_number(self.image.get(123, "WMaxLimPct_RvrtTms"), 0.0),
        )

    def conn_settings(self) -> ConnSettings:
        """The connect controls as stored in the image."""
        return ConnSettings(
            connected=self.image.get(123, "Conn") != 0,
            revert_s=_number(self.image.get(123, "Conn_RvrtTms"), 0.0),
        )


def inverter_state(inverter: SimInverter) -> int:
    """SunSpec 103 ``St`` for the inverter's condition."""
    if not inverter.connected:
        return ST_OFF
    if inverter.throttled:
        return ST_THROTTLED
    if inverter.available_w <= 0:
        return ST_SLEEPING
    return ST_MPPT


class MeterRegisters:
    """Register image of the simulated grid meter: models 1 and 203 (wye, int+SF)."""

    def __init__(
        self,
        meter: SimMeter,
        *,
        max_power_w: float,
        unit_id: int = METER_UNIT_ID,
        common_length: int | None = 65,
        counters_start_wh: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.unit_id = unit_id
        self.counters_start_wh = counters_start_wh
        """Import and export energy the meter had counted before the site started."""
        self.w_sf = power_sf(max_power_w)
        self.image = RegisterImage(
            [
                (MODELS[1], _common("Simulated meter", "SIM-METER-1", unit_id), common_length),
                (
                    MODELS[203],
                    {
                        "A_SF": -2,
                        "V_SF": -1,
                        "Hz_SF": -2,
                        "W_SF": self.w_sf,
                        "VAR_SF": self.w_sf,
                        "TotWh_SF": 0,
                        "Evt": 0,
                    },
                    None,
                ),
            ]
        )
        self.refresh(meter)

    def refresh(self, meter: SimMeter) -> None:
        """Copy what the meter reports (delayed power, energy counters) into the image."""
        img = self.image
        grid = meter.reported_power_w
        phase_a = abs(grid) / 3 / GRID_VOLTAGE_V
        img.set(203, "W", to_raw(grid, self.w_sf))
        img.set(203, "VAR", to_raw(HOUSEHOLD_VAR, self.w_sf))
        img.set(203, "A", to_raw(phase_a * 3, -2))
        img.set(203, "PhV", _PHASE_VOLTAGE_RAW)
        img.set(203, "PPV", _LINE_VOLTAGE_RAW)
        for phase in "ABC":
            img.set(203, f"Wph{phase}", to_raw(grid / 3, self.w_sf))
            img.set(203, f"VARph{phase}", to_raw(HOUSEHOLD_VAR / 3, self.w_sf))
            img.set(203, f"Aph{phase}", to_raw(phase_a, -2))
            img.set(203, f"PhVph{phase}", _PHASE_VOLTAGE_RAW)
        for pair in ("AB", "BC", "CA"):
            img.set(203, f"PhVph{pair}", _LINE_VOLTAGE_RAW)
        img.set(203, "Hz", to_raw(GRID_FREQUENCY_HZ, -2))
        start_import, start_export = self.counters_start_wh
        img.set(203, "TotWhImp", round(start_import + meter.import_energy_wh))
        img.set(203, "TotWhExp", round(start_export + meter.export_energy_wh))

    def check_write(self, address: int, values: list[int]) -> int | None:
        """The meter has no writable registers."""
        return ILLEGAL_DATA_ADDRESS


def _number(raw: int | float | str | None, default: float) -> float:
    if isinstance(raw, int | float):
        return float(raw)
    return float(default)
