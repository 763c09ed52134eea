"""A meter wired to a SolarEdge inverter, read over the inverter's own Modbus connection.

SolarEdge serves the meters it reads (a SolarEdge Energy Meter, or a Modbus meter on the
inverter's RS-485) in the inverter's own unit id, chained after its SunSpec models: each a
common model (1, L=65) followed by a meter model 201-204 (int+SF), at fixed places. Meter 1's
common block starts at 40121, meter 2's at 40295 and meter 3's at 40469 (0-based wire
addresses; SunSpec registers are big-endian, unlike SolarEdge's own 32-bit values).

An inverter serves one Modbus TCP client at a time, so the meter is read over the very
connection the inverter is driven through: the caller passes the site's shared connection for
the inverter's host:port (the pool hands out one per address), whose lock keeps one request on
the wire at a time. A cycle reads the meter in one request.

Only a meter at the grid connection point can be the site meter: the meter function set on
the inverter, which its common block names in ``Opt``, must say *Export+Import*. A consumption
or production meter measures something else entirely, and controlling on it would push the
site over its export limit, so it is refused at set-up and at every start.

Sign: SolarEdge's grid meter reports ``W`` positive for export, the opposite of
core.measurements, so power per phase and in total (and reactive power with it) are negated.
Its energy counters are named for what they count (``TotWhExp`` is energy exported), so they
are kept as they are.

SunSpec carries no timestamp, and an inverter that lost its meter may keep serving the last
values. As for SunSpec meters (core.frozen), counters standing still while the power reading
says energy flows date the reading at the counters' last move, so the controller's meter age
limit sends the site to fail-safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..core.errors import InvalidDeviceDataError
from ..core.frozen import FrozenCounterCheck
from ..core.measurements import MeterReading
from ..core.numbers import finite_number
from ..sunspec.codec import PointValue, decode_model
from ..sunspec.connection import RegisterConnection
from ..sunspec.device import SUNS_MARKER
from ..sunspec.errors import ModbusExceptionError, NotSunSpecError
from ..sunspec.meter import PHASES, phase_voltages
from ..sunspec.models import MODELS
from .errors import NoMeterError, NotGridMeterError, NotSolarEdgeError

SUNSPEC_BASE = 40000
"""Where SolarEdge puts ``SunS``; the inverter's common model follows it."""
METER_COMMON_ADDRESSES = (40121, 40295, 40469)
"""The common block of meter 1, 2 and 3 (0-based)."""
METER_NUMBERS = (1, len(METER_COMMON_ADDRESSES))
METER_MODELS = (201, 202, 203, 204)  # SolarEdge serves int+SF meter models only
COMMON_LENGTHS = frozenset({65, 66})
COMMON_READ = 2 + 65
"""Registers read of a common block: ID, L and every point up to the device address."""
GRID_OPTION_WORDS = ("export", "import")
MANUFACTURER = "solaredge"
ILLEGAL_DATA_ADDRESS = 2

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SolarEdgeMeterInfo:
    """What set-up learned about the meter; ``address`` is its meter model's ID register."""

    manufacturer: str | None
    model: str | None
    option: str | None
    serial_number: str | None
    version: str | None
    meter_number: int
    meter_model_id: int
    phases: int
    address: int


def _text(value: PointValue) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def is_grid_meter(option: str | None) -> bool:
    """True when the meter function names both directions (SolarEdge's *Export+Import*)."""
    text = (option or "").lower()
    return all(word in text for word in GRID_OPTION_WORDS)


def meter_common_address(meter_number: int) -> int:
    """Where meter 1, 2 or 3's common block starts."""
    low, high = METER_NUMBERS
    if isinstance(meter_number, bool) or not isinstance(meter_number, int):
        raise TypeError(f"meter number must be an int, got {meter_number!r}")
    if not low <= meter_number <= high:
        raise ValueError(f"meter number {meter_number} is outside {low}..{high}")
    return METER_COMMON_ADDRESSES[meter_number - 1]


async def _read(
    connection: RegisterConnection, unit_id: int, address: int, count: int, what: str
) -> list[int]:
    """Read registers; an address the inverter does not have means there is no such meter."""
    try:
        return await connection.read_holding_registers(unit_id, address, count)
    except ModbusExceptionError as err:
        if err.code != ILLEGAL_DATA_ADDRESS:
            raise
        raise NoMeterError(f"unit {unit_id} has no {what}: {err}") from err


async def async_read_meter_identity(
    connection: RegisterConnection, unit_id: int, meter_number: int
) -> SolarEdgeMeterInfo:
    """Identify meter ``meter_number`` of the SolarEdge inverter at ``unit_id``; reads only.

    Raises NotSunSpecError, NotSolarEdgeError (the unit is not a SolarEdge inverter),
    NoMeterError (no meter there), NotGridMeterError (a meter, but not at the grid
    connection point) or InvalidDeviceDataError.
    """
    common_at = meter_common_address(meter_number)
    try:
        head = await connection.read_holding_registers(unit_id, SUNSPEC_BASE, 2 + COMMON_READ)
    except ModbusExceptionError as err:
        if err.code != ILLEGAL_DATA_ADDRESS:
            raise
        raise NotSunSpecError(f"unit {unit_id}: no SunSpec map at {SUNSPEC_BASE}") from err
    if tuple(head[:2]) != SUNS_MARKER or head[2] != 1:
        raise NotSunSpecError(f"unit {unit_id}: no SunSpec marker and common model at 40000")
    inverter = decode_model(MODELS[1], head[2:])
    maker = _text(inverter["Mn"])
    if not (maker or "").lower().startswith(MANUFACTURER):
        raise NotSolarEdgeError(f"unit {unit_id} is made by {maker!r}, not SolarEdge")

    name = f"meter {meter_number}"
    common = await _read(connection, unit_id, common_at, COMMON_READ, name)
    if common[0] != 1:
        raise NoMeterError(
            f"unit {unit_id} has no {name}: no common model at {common_at} (found {common[0]})"
        )
    if common[1] not in COMMON_LENGTHS:
        raise InvalidDeviceDataError(
            f"unit {unit_id}: {name}'s common model at {common_at} has length {common[1]}"
        )
    identity = decode_model(MODELS[1], common)
    address = common_at + 2 + common[1]
    header = await _read(connection, unit_id, address, 2, f"{name} model")
    model_id = header[0]
    if model_id not in METER_MODELS:
        raise NoMeterError(
            f"unit {unit_id} has no {name}: its common model is followed by model {model_id}, "
            f"not a meter model (201-204)"
        )
    if header[1] != MODELS[model_id].length:
        raise InvalidDeviceDataError(
            f"unit {unit_id}: {name}'s model {model_id} at {address} has length {header[1]}"
        )
    option = _text(identity["Opt"])
    if not is_grid_meter(option):
        raise NotGridMeterError(
            f"unit {unit_id}: {name} is set up as {option!r}, not at the grid connection "
            f"point (Export+Import)",
            option,
        )
    return SolarEdgeMeterInfo(
        manufacturer=_text(identity["Mn"]),
        model=_text(identity["Md"]),
        option=option,
        serial_number=_text(identity["SN"]),
        version=_text(identity["Vr"]),
        meter_number=meter_number,
        meter_model_id=model_id,
        phases=PHASES[model_id],
        address=address,
    )


class SolarEdgeMeter:
    """Implements core.devices.SiteMeter for a grid meter wired to a SolarEdge inverter."""

    def __init__(
        self,
        connection: RegisterConnection,
        unit_id: int,
        meter_number: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Meter ``meter_number`` (1-3) of the inverter at ``unit_id`` on its connection."""
        meter_common_address(meter_number)
        if not 0 <= unit_id <= 255:
            raise ValueError(f"unit id {unit_id} is outside 0..255")
        self._connection = connection
        self._unit_id = unit_id
        self._meter_number = meter_number
        self._clock = clock
        self._info: SolarEdgeMeterInfo | None = None
        self._frozen_check = FrozenCounterCheck()

    @property
    def unit_id(self) -> int:
        """The inverter's Modbus unit id (the meter has none of its own)."""
        return self._unit_id

    @property
    def meter_number(self) -> int:
        """Which of the inverter's meters (1-3)."""
        return self._meter_number

    @property
    def info(self) -> SolarEdgeMeterInfo | None:
        """Set by :meth:`async_setup`."""
        return self._info

    @property
    def name(self) -> str:
        """How logs and errors name the meter."""
        return f"SolarEdge meter {self._meter_number} (unit {self._unit_id})"

    async def async_setup(self) -> SolarEdgeMeterInfo:
        """Identify the meter and check it is at the grid connection point."""
        self._info = await async_read_meter_identity(
            self._connection, self._unit_id, self._meter_number
        )
        return self._info

    async def async_read(self) -> MeterReading:
        """Grid power (+import/-export) per phase and in total, energy, voltage, frequency."""
        info = self._info if self._info is not None else await self.async_setup()
        model = MODELS[info.meter_model_id]
        timestamp = self._clock()
        block = await self._connection.read_holding_registers(
            self._unit_id, info.address, model.length + 2
        )
        if block[0] != model.id or block[1] != model.length:
            self._info = None  # the chain moved (a meter removed or added): identify it again
            raise InvalidDeviceDataError(
                f"{self.name}: meter model {model.id} is no longer at {info.address}"
            )
        values = decode_model(model, block)
        power = finite_number(values["W"])
        if power is None:
            raise InvalidDeviceDataError(f"{self.name}: no power reading (W={values['W']!r})")
        # SolarEdge: + export. core.measurements: + import.
        phases = [finite_number(values[name]) for name in ("WphA", "WphB", "WphC")]
        phase_power = [None if p is None else -p for p in phases[: info.phases]]
        phase_power += [None] * (3 - len(phase_power))
        imported = finite_number(values["TotWhImp"])
        exported = finite_number(values["TotWhExp"])
        reactive = finite_number(values["VAR"])
        voltage = finite_number(values["PhV"])
        valid_from = self._check_frozen(timestamp, -power, imported, exported, _resolution(values))
        return MeterReading(
            timestamp=timestamp if valid_from is None else valid_from,
            grid_power_w=-power,
            phase_power_w=None
            if info.phases == 1 or all(p is None for p in phase_power)
            else (phase_power[0], phase_power[1], phase_power[2]),
            import_energy_wh=imported,
            export_energy_wh=exported,
            voltage_v=voltage if voltage is not None else finite_number(values["PhVphA"]),
            frequency_hz=finite_number(values["Hz"]),
            reactive_power_var=None if reactive is None else -reactive,
            phase_voltage_v=phase_voltages(values, info.phases),
        )

    def _check_frozen(
        self,
        now: float,
        power_w: float,
        imported: float | None,
        exported: float | None,
        resolution_wh: float,
    ) -> float | None:
        """When the values are frozen, the time they were last live; log the transitions."""
        return self._frozen_check.observe_meter(
            _LOGGER, self.name, "energy counters", now, power_w, imported, exported, resolution_wh
        )


def _resolution(values: Mapping[str, PointValue]) -> float:
    """The energy counters' step as read: 10 ** TotWh_SF (0 when the SF is missing)."""
    sf = values.get("TotWh_SF")
    return float(10.0**sf) if isinstance(sf, int) else 0.0
