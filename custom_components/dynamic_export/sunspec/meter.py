"""A SunSpec AC meter (models 201-204 int+SF, 211-214 float) at the grid connection point.

SunSpec defines no sign for meter W; Fronius Smart Meters report +import/-export, which is the
convention of core.measurements. ``invert`` is for meters that report the other way (or are
fitted backwards); it flips power and swaps the import/export energy counters with it.

SunSpec carries no timestamp, so a gateway that keeps serving a lost meter's last values would
look fresh. The energy counters give it away (core.frozen): a reading judged frozen is dated
at when its counters last moved, so the controller's meter-age limit sends the site to
fail-safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..core.errors import InvalidDeviceDataError
from ..core.frozen import FrozenCounterCheck, float32_step
from ..core.measurements import MeterReading, PhaseValues
from ..core.numbers import finite_number
from .codec import PointValue
from .device import SunSpecDevice
from .errors import UnsupportedDeviceError

METER_MODELS = (203, 202, 201, 204, 213, 212, 211, 214)  # preference order
PHASES = {201: 1, 202: 2, 203: 3, 204: 3, 211: 1, 212: 2, 213: 3, 214: 3}
FLOAT_MODELS = frozenset({211, 212, 213, 214})

_LOGGER = logging.getLogger(__name__)


def phase_voltages(values: Mapping[str, PointValue], phases: int) -> PhaseValues | None:
    """PhVphA..C of the phases a device has (meters and inverters name them alike)."""
    measured = [
        finite_number(values[f"PhVph{p}"]) if i < phases else None for i, p in enumerate("ABC")
    ]
    if all(v is None for v in measured):
        return None
    return (measured[0], measured[1], measured[2])


@dataclass(frozen=True, slots=True)
class MeterInfo:
    """What setup learned about the meter."""

    manufacturer: str | None
    model: str | None
    serial_number: str | None
    version: str | None
    meter_model_id: int
    phases: int


class SunSpecMeter:
    """Implements core.devices.SiteMeter over a SunSpec meter model."""

    def __init__(
        self,
        device: SunSpecDevice,
        *,
        invert: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wrap a device; ``invert`` flips the meter's sign convention."""
        self._device = device
        self._invert = invert
        self._clock = clock
        self._info: MeterInfo | None = None
        self._frozen_check = FrozenCounterCheck()

    @property
    def device(self) -> SunSpecDevice:
        """The underlying SunSpec device."""
        return self._device

    @property
    def info(self) -> MeterInfo | None:
        """Set by :meth:`async_setup`."""
        return self._info

    async def async_setup(self) -> MeterInfo:
        """Discover models, read identity and pick the meter model."""
        models = await self._device.async_scan()
        common = await self._device.async_read_common()
        model_id = next((m for m in METER_MODELS if m in models), None)
        if model_id is None:
            raise UnsupportedDeviceError(
                f"unit {self._device.unit_id} has no SunSpec meter model (201-204, 211-214)"
            )
        self._info = MeterInfo(
            manufacturer=common.manufacturer,
            model=common.model,
            serial_number=common.serial_number,
            version=common.version,
            meter_model_id=model_id,
            phases=PHASES[model_id],
        )
        return self._info

    async def async_read(self) -> MeterReading:
        """Read grid power (+import/-export), per-phase power, energy, voltage and frequency."""
        info = self._info if self._info is not None else await self.async_setup()
        timestamp = self._clock()
        values = await self._device.async_read_model(info.meter_model_id)
        power = finite_number(values["W"])
        if power is None:
            raise InvalidDeviceDataError(
                f"unit {self._device.unit_id}: meter reports no power (W={values['W']!r})"
            )
        sign = -1.0 if self._invert else 1.0
        phases = [finite_number(values[name]) for name in ("WphA", "WphB", "WphC")]
        phase_power = tuple(None if p is None else sign * p for p in phases)
        imported = finite_number(values["TotWhImp"])
        exported = finite_number(values["TotWhExp"])
        if self._invert:
            imported, exported = exported, imported
        voltage = finite_number(values["PhV"])
        reactive = finite_number(values["VAR"])
        valid_from = self._check_frozen(
            timestamp, sign * power, imported, exported, _resolution(info, values)
        )
        return MeterReading(
            timestamp=timestamp if valid_from is None else valid_from,
            grid_power_w=sign * power,
            phase_power_w=None
            if all(p is None for p in phase_power)
            else (phase_power[0], phase_power[1], phase_power[2]),
            import_energy_wh=imported,
            export_energy_wh=exported,
            voltage_v=voltage if voltage is not None else finite_number(values["PhVphA"]),
            frequency_hz=finite_number(values["Hz"]),
            reactive_power_var=None if reactive is None else sign * reactive,
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
            _LOGGER,
            f"Site meter (unit {self._device.unit_id})",
            "energy counters",
            now,
            power_w,
            imported,
            exported,
            resolution_wh,
        )


def _resolution(info: MeterInfo, values: dict[str, PointValue]) -> float:
    """The coarsest step of the energy counters as read: their scale factor, or float32 spacing."""
    if info.meter_model_id in FLOAT_MODELS:
        counters = [finite_number(values["TotWhImp"]), finite_number(values["TotWhExp"])]
        return max((float32_step(c) for c in counters if c is not None), default=0.0)
    sf = values.get("TotWh_SF")
    return float(10.0**sf) if isinstance(sf, int) else 0.0
