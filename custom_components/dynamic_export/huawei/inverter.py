"""A Huawei SUN2000 inverter limited through its active power derating.

**The control.** Register 40125 caps the inverter's AC output at a share of its maximum
active power (0.1 % steps). The controller asks for a share of the rating, which is exactly
this register. The rating reported is Pmax (30075), the base the derating is taken from; where
that base is really Pn (not confirmed), Pmax >= Pn only curtails more than asked, never less.
The inverter's own export limiting (47415 with the Huawei meter) is the installer's and is
left alone; it is read once so the flow can tell.

**No revert timer.** Huawei keeps the derating until it is changed (users report it in
non-volatile memory), so ``revert_timeout_s`` is 0: nothing is refreshed, and the site hands
the inverter back (:meth:`HuaweiInverter.async_release`) when it stops controlling. If Home
Assistant stops without that, the inverter keeps the last limit.

**Few writes.** As for Sungrow (the same policy, :mod:`..core.persistent_limit`): limits are
held in steps of ``limit_step_pct`` (2 % by default), a limit rises only when the command clears
the held one by one and a half steps (falls are written at once), a value the inverter already
holds is never written, nor the same value twice within a minute.

**Handing back.** Before the first write the derating the installer left is kept as the
*baseline*, reported through ``on_baseline`` so the site can store it (after a crash the
inverter still holds our limit). Release writes the baseline back.

**The connection.** An SDongle (and the inverter's Wi-Fi port) serves one Modbus TCP client
at a time: a new connection drops the previous one. So the site keeps one long-lived
connection, shared by every unit behind the dongle and by the set-up check while the site
runs; it waits after connecting before the first request and keeps a gap between requests,
as the dongle needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import InvalidDeviceDataError
from ..core.frozen import FrozenCounterCheck
from ..core.measurements import InverterCommand, InverterReading
from ..core.persistent_limit import DEFAULT_STEP_PCT, PersistentLimit
from ..sunspec.connection import ModbusTcpConnection, RegisterConnection
from ..sunspec.errors import ModbusExceptionError
from . import registers as reg
from .errors import DeratingUnsupportedError, NotHuaweiError

MAX_RATED_POWER_W = 1_000_000.0
SETTLE_AFTER_CONNECT_S = 1.5
"""An SDongle ignores requests sent right after a connection opens."""
MIN_REQUEST_GAP_S = 0.05
"""Gap kept between requests (an SDongle garbles requests that come too fast)."""
ILLEGAL_DATA_ADDRESS = 2
AVAILABLE_READ_EVERY_S = 10.0
"""How often MPPT_PREDICTED_POWER is read: it is for automations, not for control."""
AVAILABLE_MAX_AGE_S = 30.0
AVAILABLE_TOLERANCE_W = 50.0
"""A prediction this far below the output is not what the panels could give."""


def pace_for_sdongle(connection: ModbusTcpConnection) -> ModbusTcpConnection:
    """Pace a connection as an SDongle needs (harmless on the inverter's own port)."""
    connection.pace(settle_after_connect_s=SETTLE_AFTER_CONNECT_S, min_gap_s=MIN_REQUEST_GAP_S)
    return connection


@dataclass(frozen=True, slots=True)
class HuaweiInfo:
    """What set-up learned about the inverter."""

    model: str
    serial_number: str | None
    rated_power_w: float
    """Pmax: the base of the derating (see the module docstring)."""
    nominal_power_w: float
    export_control_mode: int | None
    """47415 as found (None: not readable); not 0 means the inverter limits export itself."""

    @property
    def manufacturer(self) -> str:
        """Always Huawei (the model name says so)."""
        return "Huawei"


@dataclass(frozen=True, slots=True)
class Baseline:
    """The derating the inverter had before Dynamic Export first limited it (0.1 %)."""

    derating: int

    def __post_init__(self) -> None:
        """Refuse what the inverter could not have held (a corrupt store)."""
        if isinstance(self.derating, bool) or not 0 <= self.derating <= reg.DERATING_FULL:
            raise ValueError(f"derating {self.derating!r} is outside 0..{reg.DERATING_FULL}")


async def async_read_identity(connection: RegisterConnection, unit_id: int) -> HuaweiInfo:
    """Model, serial, ratings and the export control mode, read without writing anything.

    Raises NotHuaweiError (no SUN2000 model name), InvalidDeviceDataError (an implausible
    rating), ModbusExceptionError or DeviceUnavailableError.
    """
    words = await connection.read_holding_registers(
        unit_id, reg.MODEL_NAME, reg.SERIAL + reg.SERIAL_WORDS - reg.MODEL_NAME
    )
    model = reg.decode_text(words[: reg.MODEL_WORDS])
    if not model.upper().startswith("SUN2000"):
        raise NotHuaweiError(f"unit {unit_id}: model {model!r} is not a Huawei SUN2000")
    serial = reg.decode_text(words[reg.SERIAL - reg.MODEL_NAME :]) or None
    ratings = await connection.read_holding_registers(unit_id, reg.RATED_POWER, 4)
    nominal = reg.decode_u32(ratings[:2])
    p_max = reg.decode_u32(ratings[2:])
    if not 0 < nominal <= MAX_RATED_POWER_W:
        raise InvalidDeviceDataError(f"unit {unit_id}: implausible rated power {nominal} W")
    if not nominal <= p_max <= 2 * nominal:
        p_max = nominal  # Pmax missing or implausible: the nameplate rating
    try:
        (mode,) = await connection.read_holding_registers(unit_id, reg.ACTIVE_POWER_CONTROL_MODE, 1)
    except ModbusExceptionError:
        mode = None
    return HuaweiInfo(model, serial, float(p_max), float(nominal), mode)


async def async_read_derating(connection: RegisterConnection, unit_id: int) -> int:
    """The active power derating the inverter holds (0.1 %), checked for range."""
    try:
        (raw,) = await connection.read_holding_registers(unit_id, reg.DERATING_PCT, 1)
    except ModbusExceptionError as err:
        if err.code != ILLEGAL_DATA_ADDRESS:
            raise
        raise DeratingUnsupportedError(
            f"unit {unit_id}: no active power derating register at {reg.DERATING_PCT}: {err}"
        ) from err
    value = reg.decode_s16(raw)
    if not 0 <= value <= reg.DERATING_FULL:
        raise DeratingUnsupportedError(f"unit {unit_id}: derating holds {value} (0.1 %)")
    return value


class HuaweiInverter:
    """Implements core.devices.Inverter for one Huawei SUN2000 (a unit id)."""

    def __init__(
        self,
        connection: RegisterConnection,
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
        if not 0 <= unit_id <= 247:
            raise ValueError(f"unit id {unit_id} is outside 0..247")
        self._connection = connection
        self._unit_id = unit_id
        self._clock = clock
        self._info: HuaweiInfo | None = None
        self._held: int | None = None  # the derating as last read or written
        self._frozen_check = FrozenCounterCheck()
        self._available: tuple[float | None, float] | None = None  # (value, read at)
        self._reads_available = True
        self.writes = 0  # register writes sent (diagnostics, tests)

    @property
    def unit_id(self) -> int:
        """Modbus unit id."""
        return self._unit_id

    @property
    def info(self) -> HuaweiInfo | None:
        """Set by :meth:`async_setup`."""
        return self._info

    @property
    def baseline(self) -> Baseline | None:
        """What release restores (None until the first limit, and after a release)."""
        return self._policy.baseline

    @property
    def revert_timeout_s(self) -> float:
        """0: Huawei keeps the derating until it is changed; there is no revert timer."""
        return 0.0

    @property
    def supports_connect(self) -> bool:
        """False: connect=False is a 0 % limit (the start/stop registers are not used)."""
        return False

    @property
    def limit_step_pct(self) -> float:
        """Limits are written rounded down to this step (see the module docstring)."""
        return self._policy.step_pct

    async def async_setup(self) -> HuaweiInfo:
        """Read identity and ratings, and check the derating can be read."""
        info = await async_read_identity(self._connection, self._unit_id)
        self._held = await async_read_derating(self._connection, self._unit_id)
        self._info = info
        return info

    async def _identity(self) -> HuaweiInfo:
        return self._info if self._info is not None else await self.async_setup()

    async def async_read(self) -> InverterReading:
        """Read output and status, energy, the derating in force and (every 10 s) MPPT power."""
        info = await self._identity()
        timestamp = self._clock()
        block = await self._connection.read_holding_registers(
            self._unit_id, reg.ACTIVE_POWER, reg.DEVICE_STATUS - reg.ACTIVE_POWER + 1
        )
        energy_words = await self._connection.read_holding_registers(
            self._unit_id, reg.TOTAL_ENERGY, 2
        )
        derating = await async_read_derating(self._connection, self._unit_id)
        self._held = derating
        power_raw = reg.decode_u32(block[:2])
        if power_raw == reg.NOT_AVAILABLE_I32:
            raise InvalidDeviceDataError(f"unit {self._unit_id}: inverter reports no AC power")
        power = reg.decode_s32(block[:2])
        if abs(power) > 2 * info.rated_power_w:
            raise InvalidDeviceDataError(
                f"unit {self._unit_id}: AC power {power} W is implausible for a "
                f"{info.rated_power_w:g} W inverter"
            )
        energy_raw = reg.decode_u32(energy_words)
        energy = (
            None if energy_raw == reg.NOT_AVAILABLE_U32 else energy_raw * reg.ENERGY_WH_PER_COUNT
        )
        self._check_frozen(timestamp, power, energy)
        status = block[reg.DEVICE_STATUS - reg.ACTIVE_POWER]
        return InverterReading(
            timestamp=timestamp,
            ac_power_w=float(power),
            rated_power_w=info.rated_power_w,
            limit_pct=derating / 10.0,
            limit_enabled=derating < reg.DERATING_FULL,
            connected=None,
            status=reg.STATUS_NAMES.get(status),
            lifetime_energy_wh=energy,
            available_w=await self._read_available(timestamp, info.rated_power_w, power),
        )

    def _check_frozen(self, now: float, power_w: float, energy_wh: float | None) -> None:
        """Fail the read while the values look frozen (a dongle serving its last ones).

        The energy yield counter (0.01 kWh) must move while the power reading says energy
        flows; a counter that updates rarely is never judged (see core.frozen).
        """
        self._frozen_check.fail_if_frozen(
            f"unit {self._unit_id}", now, power_w, energy_wh, reg.ENERGY_WH_PER_COUNT
        )

    async def _read_available(self, now: float, rating_w: float, power_w: float) -> float | None:
        """MPPT_PREDICTED_POWER as available power, only where it is sane.

        What Huawei means by it is not documented, and a user reports it always 0 on one model
        (a 30KTL-M3): it is passed on only when it is at least the output (less a little), not
        0 while the inverter produces, and at most 1.5 × the rating; a device that cannot read
        it is not asked again.
        """
        if not self._reads_available:
            return None
        last = self._available
        if last is None or now - last[1] >= AVAILABLE_READ_EVERY_S:
            try:
                words = await self._connection.read_holding_registers(
                    self._unit_id, reg.MPPT_PREDICTED_POWER, 2
                )
            except ModbusExceptionError:
                self._reads_available = False
                return None
            raw = reg.decode_u32(words)
            last = self._available = (None if raw == reg.NOT_AVAILABLE_U32 else float(raw), now)
        value = last[0]
        if value is None or now - last[1] > AVAILABLE_MAX_AGE_S:
            return None
        if value > rating_w * 1.5 or value < power_w - AVAILABLE_TOLERANCE_W:
            return None
        if value == 0 and power_w > 0:
            return None  # not filled in
        return value

    async def _write(self, value: int) -> None:
        self.writes += 1
        await self._connection.write_registers(self._unit_id, reg.DERATING_PCT, [value])
        self._policy.written(reg.DERATING_PCT, value)

    async def async_apply(self, command: InverterCommand) -> None:
        """Set the derating, writing only when the inverter does not hold it already."""
        if not isinstance(command.connect, bool):
            raise TypeError(f"connect must be a bool, got {command.connect!r}")
        pct = command.limit_pct if command.connect else 0.0
        value = self._policy.rounded(pct)  # validated before anything is sent
        await self._identity()
        held = self._held
        if held is None:
            held = await async_read_derating(self._connection, self._unit_id)
        value = self._policy.to_hold(pct, value, held)  # 100 % is held as a limit, harmlessly
        self._policy.keep_baseline(Baseline(held))
        if value == held:
            return
        if self._policy.recently_written(reg.DERATING_PCT, value):
            return  # the inverter is slow to show it, or ignores it
        self._held = None  # a write that fails leaves the held value unknown
        await self._write(value)
        self._held = value

    async def async_release(self) -> None:
        """Restore the installer's derating (the baseline); without one, nothing is ours."""
        baseline = self._policy.baseline
        if baseline is None:
            return
        await self._identity()
        held = await async_read_derating(self._connection, self._unit_id)
        self._held = None
        if held != baseline.derating:
            await self._write(baseline.derating)
        self._held = baseline.derating
        self._policy.handed_back()
