"""A Sungrow SG or SH inverter limited through its own power limitation.

**The control.** Both families limit their AC output with a switch (0xAA on, 0x55 off) and a
ratio of the rated power in 0.1 % steps (SG: doc 5007/5008; SH: doc 13089/13090, the
*active power* limitation, not the feed-in one, which needs Sungrow's meter). The controller
asks for a share of the rating, which is exactly this ratio.

**No revert timer.** Sungrow holds the setting until it is changed, perhaps in flash (the
documents do not say), so ``revert_timeout_s`` is 0: nothing is refreshed, and the site hands
the inverter back (:meth:`SungrowInverter.async_release`) when it stops controlling. If Home
Assistant stops without that, the inverter keeps the last limit.

**Few writes.** A register that may be persistent is written only when the value the device
holds would change (:mod:`..core.persistent_limit`: steps of ``limit_step_pct``, 2 % by
default, a rise only past one and a half steps, never the same value twice within a minute);
the switch is written only when it is off, and a value the device already holds is never
written again (the write policy may ask for a rewrite it sees as drift; the device is not
touched then).

**Handing back.** Before the first write the settings the installer left (switch and ratio)
are kept as the *baseline*, reported through ``on_baseline`` so the site can store them: after
a crash the device still holds our limit, and only the stored baseline knows what to restore.
Release writes the baseline back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..core import persistent_limit
from ..core.errors import InvalidDeviceDataError
from ..core.frozen import FrozenCounterCheck
from ..core.measurements import InverterCommand, InverterReading
from ..core.persistent_limit import PersistentLimit
from ..sunspec.connection import ModbusTcpConnection, RegisterConnection
from ..sunspec.errors import ModbusExceptionError
from . import registers as reg
from .errors import NotSungrowError, PowerLimitUnsupportedError

MAX_RATED_POWER_W = 1_000_000.0
SETTLE_AFTER_CONNECT_S = 1.0
"""A WiNet-S dongle drops requests sent right after a connection opens."""
MIN_REQUEST_GAP_S = 0.05
"""Gap kept between requests (field configurations ask for at least 20 ms over WiNet-S)."""
ILLEGAL_DATA_ADDRESS = 2
# The write-only-on-change policy's constants, where Sungrow's callers have found them.
DEFAULT_STEP_PCT = persistent_limit.DEFAULT_STEP_PCT
RISE_STEPS = persistent_limit.RISE_STEPS
REWRITE_AFTER_S = persistent_limit.REWRITE_AFTER_S


def pace_for_winet(connection: ModbusTcpConnection) -> ModbusTcpConnection:
    """Pace a connection as a WiNet-S dongle needs (harmless on the inverter's LAN port)."""
    connection.pace(settle_after_connect_s=SETTLE_AFTER_CONNECT_S, min_gap_s=MIN_REQUEST_GAP_S)
    return connection


class SungrowConnection(RegisterConnection, Protocol):
    """A Modbus connection that also reads input registers (FC4)."""

    async def read_input_registers(self, unit_id: int, address: int, count: int) -> list[int]:
        """Read ``count`` input registers (FC4)."""
        ...


@dataclass(frozen=True, slots=True)
class SungrowInfo:
    """What set-up learned about the inverter."""

    serial_number: str | None
    device_type: int
    family: reg.Family
    rated_power_w: float

    @property
    def manufacturer(self) -> str:
        """Always Sungrow (the device type code says so)."""
        return "Sungrow"

    @property
    def model(self) -> str:
        """The family and the device type code, e.g. ``SH (0x0E03)``."""
        return f"{self.family.name} (0x{self.device_type:04X})"


@dataclass(frozen=True, slots=True)
class Baseline:
    """The power limitation the inverter had before Dynamic Export first limited it."""

    switch: int
    ratio: int

    def __post_init__(self) -> None:
        """Refuse what the inverter could not have held (a corrupt store)."""
        if self.switch not in (reg.ENABLE, reg.DISABLE):
            raise ValueError(f"switch 0x{self.switch:X} is neither 0xAA nor 0x55")
        if not 0 <= self.ratio <= reg.RATIO_MAX_READ:
            raise ValueError(f"ratio {self.ratio} is outside 0..{reg.RATIO_MAX_READ}")


async def async_read_identity(connection: SungrowConnection, unit_id: int) -> SungrowInfo:
    """Serial, device type (-> family) and rating, read without writing anything.

    Raises NotSungrowError (no SG/SH device type code), InvalidDeviceDataError (an
    implausible rating), ModbusExceptionError or DeviceUnavailableError.
    """
    words = await connection.read_input_registers(
        unit_id, reg.wire(reg.DOC_SERIAL), reg.DOC_NOMINAL_POWER - reg.DOC_SERIAL + 1
    )
    serial = reg.decode_text(words[: reg.SERIAL_WORDS]) or None
    device_type = words[reg.DOC_DEVICE_TYPE - reg.DOC_SERIAL]
    nominal = words[reg.DOC_NOMINAL_POWER - reg.DOC_SERIAL]
    family = reg.family_of(device_type)
    if family is None:
        raise NotSungrowError(
            f"unit {unit_id}: device type code 0x{device_type:04X} is not Sungrow"
        )
    rating = nominal * 100.0  # 0.1 kW
    if nominal == reg.NOT_AVAILABLE_U16 or not 0 < rating <= MAX_RATED_POWER_W:
        raise InvalidDeviceDataError(f"unit {unit_id}: implausible rating {nominal} × 0.1 kW")
    return SungrowInfo(serial, device_type, family, rating)


async def async_read_limit(
    connection: SungrowConnection, unit_id: int, family: reg.Family
) -> tuple[int, int]:
    """The power limitation switch and ratio the inverter holds, checked for range."""
    fmap = reg.MAPS[family]
    try:
        switch, ratio = await connection.read_holding_registers(
            unit_id, reg.wire(fmap.limit_switch), 2
        )
    except ModbusExceptionError as err:
        if err.code != ILLEGAL_DATA_ADDRESS:
            raise
        raise PowerLimitUnsupportedError(
            f"unit {unit_id}: no power limitation registers at {fmap.limit_switch} "
            f"(old firmware?): {err}"
        ) from err
    if switch not in (reg.ENABLE, reg.DISABLE) or not 0 <= ratio <= reg.RATIO_MAX_READ:
        raise PowerLimitUnsupportedError(
            f"unit {unit_id}: power limitation holds switch 0x{switch:X}, ratio {ratio}"
        )
    return switch, ratio


class SungrowInverter:
    """Implements core.devices.Inverter for one Sungrow SG or SH inverter (a unit id)."""

    def __init__(
        self,
        connection: SungrowConnection,
        unit_id: int,
        *,
        step_pct: float = DEFAULT_STEP_PCT,
        baseline: Baseline | None = None,
        on_baseline: Callable[[Baseline | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``baseline``: what release restores, kept from an earlier run (None: read it)."""
        self._policy = PersistentLimit(
            step_pct, baseline=baseline, on_baseline=on_baseline, clock=clock
        )
        if not 1 <= unit_id <= 247:
            raise ValueError(f"unit id {unit_id} is outside 1..247")
        self._connection = connection
        self._unit_id = unit_id
        self._clock = clock
        self._info: SungrowInfo | None = None
        self._held: tuple[int, int] | None = None  # (switch, ratio) as last read or written
        self._frozen_check = FrozenCounterCheck()
        self.writes = 0  # register writes sent (diagnostics, tests)

    @property
    def unit_id(self) -> int:
        """Modbus unit id."""
        return self._unit_id

    @property
    def info(self) -> SungrowInfo | None:
        """Set by :meth:`async_setup`."""
        return self._info

    @property
    def baseline(self) -> Baseline | None:
        """What release restores (None until the first limit, and after a release)."""
        return self._policy.baseline

    @property
    def revert_timeout_s(self) -> float:
        """0: Sungrow holds the limit until it is changed; there is no revert timer."""
        return 0.0

    @property
    def supports_connect(self) -> bool:
        """False: connect=False is a 0 % limit."""
        return False

    @property
    def limit_step_pct(self) -> float:
        """Limits are written rounded down to this step (see the module docstring)."""
        return self._policy.step_pct

    async def async_setup(self) -> SungrowInfo:
        """Read identity and rating, and check the power limitation can be read."""
        info = await async_read_identity(self._connection, self._unit_id)
        self._held = await async_read_limit(self._connection, self._unit_id, info.family)
        self._info = info
        return info

    async def _identity(self) -> SungrowInfo:
        if self._info is None:
            return await self.async_setup()
        return self._info

    async def async_read(self) -> InverterReading:
        """Read output and energy (input registers) and the limitation in force (holding)."""
        info = await self._identity()
        fmap = reg.MAPS[info.family]
        timestamp = self._clock()
        power_words = await self._connection.read_input_registers(
            self._unit_id, reg.wire(fmap.active_power), 2
        )
        energy_words = await self._connection.read_input_registers(
            self._unit_id, reg.wire(reg.DOC_TOTAL_ENERGY), 2
        )
        switch, ratio = await async_read_limit(self._connection, self._unit_id, info.family)
        self._held = (switch, ratio)
        power = (reg.decode_s32 if fmap.active_power_signed else reg.decode_u32)(power_words)
        if abs(power) > 2 * info.rated_power_w:
            raise InvalidDeviceDataError(
                f"unit {self._unit_id}: AC power {power} W is implausible for a "
                f"{info.rated_power_w:g} W inverter"
            )
        energy_raw = reg.decode_u32(energy_words)
        energy = None if energy_raw == 0xFFFF_FFFF else energy_raw * fmap.energy_scale_wh
        self._check_frozen(timestamp, power, energy, fmap.energy_scale_wh)
        return InverterReading(
            timestamp=timestamp,
            ac_power_w=float(power),
            rated_power_w=info.rated_power_w,
            limit_pct=ratio / 10.0,
            limit_enabled=switch == reg.ENABLE,
            connected=None,
            status=None,
            lifetime_energy_wh=energy,
        )

    def _check_frozen(
        self, now: float, power_w: float, energy_wh: float | None, step_wh: float
    ) -> None:
        """Fail the read while the values look frozen (a WiNet-S serving its last ones).

        The total energy counter must move while the power reading says energy flows; it is
        coarse (SH 0.1 kWh, SG 1 kWh), so this catches a stale dongle late, but it does.
        """
        self._frozen_check.fail_if_frozen(f"unit {self._unit_id}", now, power_w, energy_wh, step_wh)

    async def _write(self, address: int, values: Sequence[int]) -> None:
        self.writes += 1
        await self._connection.write_registers(self._unit_id, address, values)
        self._policy.written(address, values[0])

    async def _write_once(self, address: int, value: int) -> None:
        """Write ``value`` unless it went there within REWRITE_AFTER_S."""
        if not self._policy.recently_written(address, value):
            await self._write(address, [value])

    async def _async_held(self, info: SungrowInfo) -> tuple[int, int]:
        if self._held is None:
            self._held = await async_read_limit(self._connection, self._unit_id, info.family)
        return self._held

    async def async_apply(self, command: InverterCommand) -> None:
        """Enable the limitation and set its ratio, writing only what the device lacks."""
        if not isinstance(command.connect, bool):
            raise TypeError(f"connect must be a bool, got {command.connect!r}")
        pct = command.limit_pct if command.connect else 0.0
        ratio = self._policy.rounded(pct)  # validated before anything is sent
        info = await self._identity()
        fmap = reg.MAPS[info.family]
        switch, held_ratio = await self._async_held(info)
        # With the switch off no limit is in force: any ratio is a fall, not a rise.
        ratio = self._policy.to_hold(pct, ratio, held_ratio if switch == reg.ENABLE else None)
        self._policy.keep_baseline(Baseline(switch, held_ratio))
        # A write that fails leaves the held values unknown: read them before the next one.
        self._held = None
        if switch != reg.ENABLE:
            # The switch first: some firmware ignores the ratio while the switch is off.
            await self._write_once(reg.wire(fmap.limit_switch), reg.ENABLE)
        if held_ratio != ratio:
            await self._write_once(reg.wire(fmap.limit_ratio), ratio)
        self._held = (reg.ENABLE, ratio)

    async def async_release(self) -> None:
        """Restore the installer's limitation (the baseline); without one, lift ours."""
        info = await self._identity()
        fmap = reg.MAPS[info.family]
        baseline = self._policy.baseline
        if baseline is None:
            return  # never limited by us: the inverter holds its own settings
        switch, ratio = await async_read_limit(self._connection, self._unit_id, info.family)
        self._held = None
        if ratio != baseline.ratio:
            await self._write(reg.wire(fmap.limit_ratio), [baseline.ratio])
        if switch != baseline.switch:
            await self._write(reg.wire(fmap.limit_switch), [baseline.switch])
        self._held = (baseline.switch, baseline.ratio)
        self._policy.handed_back()
