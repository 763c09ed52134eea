"""A SunSpec inverter limited through the immediate-controls model (123).

Only Conn, Conn_RvrtTms, WMaxLimPct, WMaxLimPct_RvrtTms and WMaxLim_Ena are ever written, one
point per request: writing the whole block (as open-dynamic-export does) also writes ID, L and
the read-only scale factors, which some devices reject. The limit is converted with the
device's own WMaxLimPct_SF (Fronius uses 0 or -2 depending on firmware) and rounded down, so
rounding never lets the inverter produce more than the controller asked for.

SunSpec carries no timestamp: a gateway that lost its link to the inverter may keep serving
its last values. Its lifetime energy (WH) gives that away (core.frozen); such a read fails, so
the inverter counts as unreachable (at its rating) instead of steering on a stale output.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from ..core.errors import InvalidDeviceDataError
from ..core.frozen import FrozenCounterCheck, float32_step
from ..core.measurements import InverterCommand, InverterReading
from ..core.numbers import finite_number
from .codec import PointValue
from .device import SunSpecDevice
from .errors import ModbusExceptionError, UnsupportedDeviceError
from .meter import phase_voltages

INVERTER_MODELS = (103, 102, 101, 113, 112, 111)  # preference order
FLOAT_MODELS = frozenset({111, 112, 113})
CONTROLS_MODEL = 123
STATUS_MODEL = 122
SETTINGS_MODEL = 121
NAMEPLATE_MODEL = 120
PHASES = {101: 1, 102: 2, 103: 3, 111: 1, 112: 2, 113: 3}
STATUS_NAMES = {
    1: "off",
    2: "sleeping",
    3: "starting",
    4: "mppt",
    5: "throttled",
    6: "shutting_down",
    7: "fault",
    8: "standby",
}
MAX_RATED_POWER_W = 10_000_000.0
LIMIT_SF_MIN = -4
LIMIT_SF_MAX = 0
MAX_UINT16_VALUE = 0xFFFE  # 0xFFFF means "not implemented"
CONNECT = 1
DISCONNECT = 0
ENABLED = 1
DISABLED = 0

AVAILABLE_READ_EVERY_S = 10.0
"""How often model 122's ``WAval`` is read: it is for automations, not for control."""
AVAILABLE_MAX_AGE_S = 30.0
"""A ``WAval`` older than this is not passed on."""
AVAILABLE_TOLERANCE_W = 50.0
"""``WAval`` this far below the output is not available power (a vendor fills it otherwise)."""

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InverterInfo:
    """What setup learned about the inverter."""

    manufacturer: str | None
    model: str | None
    serial_number: str | None
    version: str | None
    rated_power_w: float
    inverter_model_id: int
    phases: int


def _int(value: PointValue) -> int | None:
    return value if isinstance(value, int) else None


class SunSpecInverter:
    """Implements core.devices.Inverter over a SunSpec device with model 123."""

    def __init__(
        self,
        device: SunSpecDevice,
        *,
        revert_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wrap a device; ``revert_timeout_s`` is the dead-man timer written to the inverter."""
        if not math.isfinite(revert_timeout_s) or not 0 <= revert_timeout_s <= MAX_UINT16_VALUE:
            raise ValueError(f"revert_timeout_s must be 0..{MAX_UINT16_VALUE} s")
        self._device = device
        self._revert_raw = math.ceil(revert_timeout_s)
        self._clock = clock
        self._info: InverterInfo | None = None
        self._limit_sf = 0
        self._conn: int | None = None
        self._limit_revert: int | None = None  # WMaxLimPct_RvrtTms as last read or written
        self._conn_revert: int | None = None  # Conn_RvrtTms as last read or written
        self._limit_enable: int | None = None  # WMaxLim_Ena as last read or written
        self._limit_revert_supported = True
        self._conn_revert_supported = True
        self._frozen_check = FrozenCounterCheck()
        self._said_no_energy = False
        self._reads_available = False  # set up: the device has model 122
        self._available: tuple[float, float] | None = None  # WAval (W) and when it was read

    @property
    def device(self) -> SunSpecDevice:
        """The underlying SunSpec device."""
        return self._device

    @property
    def info(self) -> InverterInfo | None:
        """Set by :meth:`async_setup`."""
        return self._info

    @property
    def revert_timeout_s(self) -> float:
        """Seconds after our last write at which the inverter drops the limit (0: never)."""
        return float(self._revert_raw) if self._limit_revert_supported else 0.0

    @property
    def supports_connect(self) -> bool:
        """True when the device implements model 123's Conn point."""
        return self._conn is not None

    @property
    def limit_step_pct(self) -> float:
        """One unit of WMaxLimPct at the device's scale factor (1 % at SF 0)."""
        return float(10.0**self._limit_sf)

    async def async_setup(self) -> InverterInfo:
        """Discover models, read identity and rating, and check the controls are usable."""
        models = await self._device.async_scan()
        common = await self._device.async_read_common()
        model_id = next((m for m in INVERTER_MODELS if m in models), None)
        if model_id is None:
            raise UnsupportedDeviceError(
                f"unit {self._device.unit_id} has no SunSpec inverter model (101-103, 111-113)"
            )
        if CONTROLS_MODEL not in models:
            raise UnsupportedDeviceError(
                f"unit {self._device.unit_id} has no SunSpec controls model 123; cannot limit it"
            )
        rated_power_w = await self._read_rating(set(models))
        self._update_controls(await self._device.async_read_model(CONTROLS_MODEL))
        self._reads_available = STATUS_MODEL in models
        self._info = InverterInfo(
            manufacturer=common.manufacturer,
            model=common.model,
            serial_number=common.serial_number,
            version=common.version,
            rated_power_w=rated_power_w,
            inverter_model_id=model_id,
            phases=PHASES[model_id],
        )
        return self._info

    async def _read_rating(self, models: set[int]) -> float:
        """WMax (121) is what WMaxLimPct is a percentage of; WRtg (120) is the fallback."""
        rating: float | None = None
        if SETTINGS_MODEL in models:
            rating = finite_number((await self._device.async_read_model(SETTINGS_MODEL))["WMax"])
        if rating is None and NAMEPLATE_MODEL in models:
            rating = finite_number((await self._device.async_read_model(NAMEPLATE_MODEL))["WRtg"])
        if rating is None or not 0 < rating <= MAX_RATED_POWER_W:
            raise InvalidDeviceDataError(
                f"unit {self._device.unit_id}: implausible rated power {rating!r} W"
            )
        return rating

    def _update_controls(self, controls: dict[str, PointValue]) -> None:
        sf = controls["WMaxLimPct_SF"]
        if not isinstance(sf, int) or not LIMIT_SF_MIN <= sf <= LIMIT_SF_MAX:
            raise InvalidDeviceDataError(
                f"unit {self._device.unit_id}: WMaxLimPct_SF={sf!r} is outside "
                f"{LIMIT_SF_MIN}..{LIMIT_SF_MAX}"
            )
        self._limit_sf = sf
        self._conn = _int(controls["Conn"])
        self._limit_enable = _int(controls["WMaxLim_Ena"])
        self._limit_revert = _int(controls["WMaxLimPct_RvrtTms"])
        self._limit_revert_supported = self._limit_revert is not None
        self._conn_revert = _int(controls["Conn_RvrtTms"])
        self._conn_revert_supported = self._conn_revert is not None

    async def _ensure_setup(self) -> InverterInfo:
        return self._info if self._info is not None else await self.async_setup()

    async def async_read(self) -> InverterReading:
        """Read output, energy, status and the limit in force (inverter model + model 123)."""
        info = await self._ensure_setup()
        timestamp = self._clock()
        values = await self._device.async_read_model(info.inverter_model_id)
        controls = await self._device.async_read_model(CONTROLS_MODEL)
        self._update_controls(controls)
        power = finite_number(values["W"])
        if power is None:
            raise InvalidDeviceDataError(
                f"unit {self._device.unit_id}: inverter reports no AC power (W={values['W']!r})"
            )
        energy = finite_number(values["WH"])
        self._check_frozen(timestamp, power, energy, _energy_step(info, values, energy))
        enabled = _int(controls["WMaxLim_Ena"])
        status = _int(values["St"])
        available = await self._read_available(timestamp, info.rated_power_w, power)
        return InverterReading(
            timestamp=timestamp,
            ac_power_w=power,
            rated_power_w=info.rated_power_w,
            limit_pct=finite_number(controls["WMaxLimPct"]),
            limit_enabled=None if enabled is None else enabled == ENABLED,
            connected=None if self._conn is None else self._conn == CONNECT,
            status=None if status is None else STATUS_NAMES.get(status),
            lifetime_energy_wh=energy,
            reactive_power_var=finite_number(values["VAr"]),
            phase_voltage_v=phase_voltages(values, info.phases),
            frequency_hz=finite_number(values["Hz"]),
            available_w=available,
        )

    async def _read_available(self, now: float, rating_w: float, power_w: float) -> float | None:
        """Model 122's ``WAval`` (what the inverter could produce), read every 10 s.

        Vendors do not all fill it: unimplemented, or below the output (e.g. headroom rather
        than what the panels have), it is not used, and a device whose model 122 cannot be
        read is not asked again.
        """
        if not self._reads_available:
            return None
        last = self._available
        if last is None or now - last[1] >= AVAILABLE_READ_EVERY_S:
            try:
                status = await self._device.async_read_model(STATUS_MODEL)
            except ModbusExceptionError as err:
                self._reads_available = False
                _LOGGER.debug("unit %s: model 122 not readable (%s)", self._device.unit_id, err)
                return None
            value = finite_number(status["WAval"])
            self._available = None if value is None else (value, now)
            last = self._available
        if last is None or now - last[1] > AVAILABLE_MAX_AGE_S:
            return None
        value = last[0]
        if not 0 <= value <= rating_w * 1.5 or value < power_w - AVAILABLE_TOLERANCE_W:
            return None
        return value

    def _check_frozen(
        self, now: float, power_w: float, energy_wh: float | None, step_wh: float
    ) -> None:
        """Fail the read while the values look frozen (the loop logs it and its recovery)."""
        if energy_wh is None and not self._said_no_energy:
            self._said_no_energy = True
            _LOGGER.warning(
                "Inverter (unit %s) reports no lifetime energy: frozen values cannot be detected",
                self._device.unit_id,
            )
        self._frozen_check.fail_if_frozen(
            f"unit {self._device.unit_id}", now, power_w, energy_wh, step_wh
        )

    def limit_raw(self, limit_pct: float) -> int:
        """WMaxLimPct register value for a percentage: clamped to 0..100, rounded down."""
        if not math.isfinite(limit_pct):
            raise ValueError(f"limit {limit_pct!r} % is not a finite number")
        pct = min(100.0, max(0.0, float(limit_pct)))
        raw = math.floor(Decimal(repr(pct)).scaleb(-self._limit_sf))
        return min(raw, MAX_UINT16_VALUE)

    async def async_apply(self, command: InverterCommand) -> None:
        """Write a command; every apply rewrites the limit, which restarts the revert timer.

        WMaxLim_Ena is written only when the last read or write left it anything but enabled.
        """
        if not isinstance(command.connect, bool):
            raise TypeError(f"connect must be a bool, got {command.connect!r}")
        raw = self.limit_raw(command.limit_pct)  # validate before touching the device
        await self._ensure_setup()
        if not command.connect:
            await self._write_conn_revert()
            await self._write(CONTROLS_MODEL, "Conn", DISCONNECT)
            self._conn = DISCONNECT
            return
        if self._conn == DISCONNECT:
            await self._write(CONTROLS_MODEL, "Conn", CONNECT)
            self._conn = CONNECT
        if self._limit_revert_supported and self._limit_revert != self._revert_raw:
            await self._write(CONTROLS_MODEL, "WMaxLimPct_RvrtTms", self._revert_raw)
            self._limit_revert = self._revert_raw
        await self._write(CONTROLS_MODEL, "WMaxLimPct", raw)
        if self._limit_enable != ENABLED:
            # Enabled already (as last read or written): the setpoint write alone moves the
            # limit and restarts the revert timer, so asking again would double the traffic.
            await self._write(CONTROLS_MODEL, "WMaxLim_Ena", ENABLED)
            self._limit_enable = ENABLED

    async def _write_conn_revert(self) -> None:
        """Let a disconnect revert too if we die (as the limit does)."""
        if self._conn_revert_supported and self._conn_revert != self._revert_raw:
            await self._write(CONTROLS_MODEL, "Conn_RvrtTms", self._revert_raw)
            self._conn_revert = self._revert_raw

    async def async_release(self) -> None:
        """Disable our limit and reconnect if we had disconnected the inverter."""
        await self._ensure_setup()
        await self._write(CONTROLS_MODEL, "WMaxLim_Ena", DISABLED)
        self._limit_enable = DISABLED
        if self._conn == DISCONNECT:
            await self._write(CONTROLS_MODEL, "Conn", CONNECT)
            self._conn = CONNECT

    async def _write(self, model_id: int, name: str, raw: int) -> None:
        await self._device.async_write_point(model_id, name, raw)


def _energy_step(info: InverterInfo, values: dict[str, PointValue], energy: float | None) -> float:
    """The lifetime energy counter's resolution: its scale factor, or float32 spacing."""
    if info.inverter_model_id in FLOAT_MODELS:
        return float32_step(energy) if energy is not None else 0.0
    sf = values.get("WH_SF")
    return float(10.0**sf) if isinstance(sf, int) else 0.0
