"""A Victron GX with ESS as the site's controllable "inverter", through its maximum feed-in.

**What the GX can do.** ESS holds the power at the GX's grid meter: with *maximum system
grid feed-in* set, the GX curtails the PV inverters it manages (and its solar chargers) so
that export stays at or below it. It limits **feed-in at the grid point, not generation**.

**How the controller's target is translated.** The controller asks this device for a
generation share ``G`` (``limit_pct`` of the PV rating). With ``P`` the PV power the GX
reports (AC PV on input and output, plus DC PV) and ``grid`` its grid power (+ import),
the site's own use is ``P + grid``, so generating ``G`` means exporting ``G - (P + grid)``:

    max feed-in = G - P - grid

Under an export limit ``E`` the controller's ``G`` is ``P + E - export`` (less its margin),
so the cap written is ``E`` (less the margin): steady while the load moves, so it is
rarely rewritten. Under a generation limit the cap follows the load instead. The cap is
clamped to 0 W (zero feed-in) from below: the GX cannot hold generation below the site's
own use, so a generation limit below the load, and ``connect=False``, end at zero export.
The site's own use is taken as at least 0 W, so the cap never exceeds ``G`` itself, even
when the GX's grid value is stale while its PV value moves (a frozen grid meter).
It is rounded down to ``step_w`` and never set above the GX's own setting found at set-up
(``own_limit_w``, e.g. a network limit the installer configured): that stays a ceiling.
At 100 % (no limit) the GX's own setting is written back.

**Writes.** The setting is persistent (flash, and logged to VRM): it is written only when
the rounded cap differs from what the GX holds, never as a refresh. It has no timeout
(``revert_timeout_s`` = 0): if Home Assistant stops, the last cap stays in force, which is
safe for an export cap; releasing (control off, unload) writes the GX's own setting back.

The register is 2722 (int32 W) where the firmware has it, else 2706 (int16, 100 W units).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..core.errors import InvalidDeviceDataError
from ..core.measurements import InverterCommand, InverterReading
from ..sunspec.connection import RegisterConnection
from ..sunspec.errors import ModbusExceptionError
from . import registers as reg
from .errors import EssUnavailableError, NotVictronGxError

DEFAULT_STEP_W = 50
"""Caps are written in steps of this many watts (100 on firmware with only register 2706)."""
MAX_SNAPSHOT_AGE_S = 5.0
"""A translation uses the last reading when it is at most this old, else reads again."""
MAX_PV_W = 1_000_000.0


@dataclass(frozen=True, slots=True)
class GxInfo:
    """What set-up learned about the GX."""

    serial_number: str
    wide_register: bool
    """True: the feed-in limit is register 2722 (W); False: 2706 (100 W units)."""
    max_feed_in_w: int
    """The maximum feed-in the GX holds now (-1: no limit)."""
    ess_mode: int


@dataclass(frozen=True, slots=True)
class _Snapshot:
    time: float
    pv_w: float
    grid_w: float
    held_w: int


def limit_fraction(limit_pct: float) -> float:
    """A command's limit as a fraction 0-1; refuses what is not a finite number."""
    if isinstance(limit_pct, bool) or not isinstance(limit_pct, int | float):
        raise TypeError(f"limit must be a number, got {limit_pct!r}")
    if not math.isfinite(limit_pct):
        raise ValueError(f"limit {limit_pct!r} % is not a finite number")
    return min(100.0, max(0.0, float(limit_pct))) / 100.0


async def async_read_gx_serial(connection: RegisterConnection) -> str:
    """The GX's serial (its VRM portal id) from the system service at unit 100.

    Raises NotVictronGxError when unit 100 holds no system service.
    """
    unit = reg.SYSTEM_UNIT
    try:
        words = await connection.read_holding_registers(
            unit, reg.SYSTEM_SERIAL, reg.SYSTEM_SERIAL_REGS
        )
    except ModbusExceptionError as err:
        raise NotVictronGxError(f"unit {unit} has no GX system service: {err}") from err
    serial = reg.text(words)
    if serial is None:
        raise NotVictronGxError(f"unit {unit} reports no GX serial (register 800)")
    return serial


async def async_read_gx(connection: RegisterConnection) -> GxInfo:
    """Identify the GX and its ESS feed-in setting, without writing anything.

    Raises NotVictronGxError (no system service at unit 100), EssUnavailableError (no ESS
    running, or ESS mode 3), ModbusExceptionError or DeviceUnavailableError.
    """
    unit = reg.SYSTEM_UNIT
    serial = await async_read_gx_serial(connection)
    try:
        (mode,) = await connection.read_holding_registers(unit, reg.HUB4_MODE, 1)
        await connection.read_holding_registers(unit, reg.PV_LIMITER_ACTIVE, 1)
    except ModbusExceptionError as err:
        if err.code not in (reg.ILLEGAL_DATA_ADDRESS, reg.GATEWAY_PATH_UNAVAILABLE):
            raise
        raise EssUnavailableError(f"the GX at unit {unit} runs no ESS: {err}") from err
    if mode == reg.EXTERNAL_CONTROL:
        raise EssUnavailableError(
            "the GX is in ESS mode 3 (external control): it does not apply a feed-in limit"
        )
    wide = True
    try:
        words = await connection.read_holding_registers(unit, reg.MAX_FEED_IN_W, 2)
    except ModbusExceptionError as err:
        if err.code != reg.ILLEGAL_DATA_ADDRESS:
            raise
        wide = False
        words = await connection.read_holding_registers(unit, reg.MAX_FEED_IN_100W, 1)
    return GxInfo(serial, wide, reg.feed_in_watts(words, wide=wide), mode)


class VictronGxInverter:
    """Implements core.devices.Inverter for a GX, through ESS maximum feed-in."""

    def __init__(
        self,
        connection: RegisterConnection,
        *,
        rated_power_w: float,
        own_limit_w: int | None = None,
        step_w: int = DEFAULT_STEP_W,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``rated_power_w``: the PV the GX manages; ``own_limit_w``: the GX's own setting.

        ``own_limit_w`` None means "what the GX holds at set-up" (-1: no limit).
        """
        if not math.isfinite(rated_power_w) or not 0 < rated_power_w <= MAX_PV_W:
            raise ValueError(f"rated power {rated_power_w!r} W must be 0-{MAX_PV_W:g} W")
        if own_limit_w is not None and own_limit_w < reg.NO_LIMIT:
            raise ValueError(f"own limit {own_limit_w!r} W must be -1 (no limit) or >= 0")
        if step_w < 1:
            raise ValueError("step_w must be at least 1 W")
        self._connection = connection
        self._rating = float(rated_power_w)
        self._own = own_limit_w
        self._step_w = step_w
        self._clock = clock
        self._info: GxInfo | None = None
        self._snapshot: _Snapshot | None = None
        self._written_w: int | None = None  # the cap we wrote last
        self._commanded_pct: float | None = None  # the command it stood for
        self.writes = 0  # feed-in writes this client made (diagnostics, tests)

    @property
    def info(self) -> GxInfo | None:
        """Set by :meth:`async_setup`."""
        return self._info

    @property
    def own_limit_w(self) -> int | None:
        """The GX's own maximum feed-in, written back on release (-1: no limit)."""
        return self._own

    @property
    def revert_timeout_s(self) -> float:
        """0: the feed-in setting is persistent and has no timeout."""
        return 0.0

    @property
    def supports_connect(self) -> bool:
        """False: the feed-in limit cannot open a relay; connect=False is zero feed-in."""
        return False

    @property
    def limits_generation(self) -> bool:
        """False: the GX caps feed-in at its grid point; generation never goes below the load.

        The site then does not advertise a generation limit to a utility (``core.capability``).
        """
        return False

    @property
    def limit_step_pct(self) -> float:
        """0: the limit read back is the command itself while the GX holds our cap."""
        return 0.0

    async def async_setup(self) -> GxInfo:
        """Identify the GX; without a stored own setting, what it holds now becomes it."""
        info = await async_read_gx(self._connection)
        self._info = info
        if self._own is None:
            self._own = info.max_feed_in_w
        return info

    async def _identity(self) -> GxInfo:
        if self._info is None:
            return await self.async_setup()
        return self._info

    async def _read(self, address: int, count: int) -> list[int]:
        return await self._connection.read_holding_registers(reg.SYSTEM_UNIT, address, count)

    async def _async_snapshot(self, info: GxInfo) -> tuple[_Snapshot, bool]:
        """PV, grid and the cap held, read now; and whether the GX is curtailing."""
        timestamp = self._clock()
        block = await self._read(reg.SYSTEM_AC_BLOCK, reg.SYSTEM_AC_BLOCK_REGS)
        (dc_pv,) = await self._read(reg.SYSTEM_DC_PV, 1)
        register = reg.MAX_FEED_IN_W if info.wide_register else reg.MAX_FEED_IN_100W
        held = reg.feed_in_watts(
            await self._read(register, 2 if info.wide_register else 1), wide=info.wide_register
        )
        (active,) = await self._read(reg.PV_LIMITER_ACTIVE, 1)
        pv = float(sum(block[reg.PV_ON_OUTPUT]) + sum(block[reg.PV_ON_GRID]) + dc_pv)
        grid = float(sum(reg.int16(w) for w in block[reg.GRID]))
        if pv > MAX_PV_W:
            raise InvalidDeviceDataError(f"GX reports implausible PV power {pv:g} W")
        snapshot = _Snapshot(timestamp, pv, grid, held)
        self._snapshot = snapshot
        return snapshot, active == 1

    async def async_read(self) -> InverterReading:
        """PV output, the PV rating, and the limit in force as a share of the rating.

        While the GX holds the cap we wrote, the limit is the command it stood for;
        another value (set on the GX, or left from an earlier run) is translated back with
        this reading's PV and grid power, so the write policy sees it as drift.
        """
        info = await self._identity()
        snapshot, curtailing = await self._async_snapshot(info)
        held = snapshot.held_w
        if held == self._written_w and self._commanded_pct is not None:
            limit_pct: float | None = self._commanded_pct
            enabled = True
        elif held == reg.NO_LIMIT:
            limit_pct, enabled = None, False
        else:
            generation = held + snapshot.pv_w + snapshot.grid_w
            limit_pct = min(100.0, max(0.0, generation / self._rating * 100.0))
            enabled = True
        return InverterReading(
            timestamp=snapshot.time,
            ac_power_w=snapshot.pv_w,
            rated_power_w=self._rating,
            limit_pct=limit_pct,
            limit_enabled=enabled,
            connected=None,
            status="throttled" if curtailing else None,
        )

    def cap_for(
        self, command: InverterCommand, pv_w: float, grid_w: float, held_w: int | None = None
    ) -> int:
        """The maximum feed-in (W, -1 = no limit) that holds ``command``; see the module doc.

        ``held_w``, the cap the GX holds, is kept while the exact cap is less than a step
        above it or at most half a step below it: a deadband against rewriting the setting
        for noise (the controller's own margin covers the half step).
        """
        if not isinstance(command.connect, bool):
            raise TypeError(f"connect must be a bool, got {command.connect!r}")
        fraction = limit_fraction(command.limit_pct) if command.connect else 0.0
        own = reg.NO_LIMIT if self._own is None else self._own
        if fraction >= 1.0:
            return own
        # The site's own use is never below 0: readings that say so (a grid value that
        # froze while the PV moved) would raise the cap above the generation asked for.
        own_use_w = max(0.0, pv_w + grid_w)
        exact = self._rating * fraction - own_use_w
        step = self._step()
        if held_w is not None and 0 <= held_w <= exact + step / 2 and held_w > exact - step:
            # Within a step of the cap held: readings taken a moment apart move the exact
            # value by a few watts every cycle, and each write is a flash write.
            cap = held_w
        else:
            cap = max(0, reg.floor_to(exact, step))
        return cap if own == reg.NO_LIMIT else min(cap, own)

    def _step(self) -> int:
        if self._info is not None and not self._info.wide_register:
            return max(100, reg.floor_to(self._step_w, 100) or 100)
        return self._step_w

    async def async_apply(self, command: InverterCommand) -> None:
        """Write the cap for ``command`` when it differs from what the GX holds."""
        limit_fraction(command.limit_pct)  # refuse a bad value before anything is read
        info = await self._identity()
        snapshot = self._snapshot
        if snapshot is None or self._clock() - snapshot.time > MAX_SNAPSHOT_AGE_S:
            snapshot, _ = await self._async_snapshot(info)
        cap = self.cap_for(command, snapshot.pv_w, snapshot.grid_w, snapshot.held_w)
        if cap != snapshot.held_w:
            await self._write_cap(info, cap)
            self._snapshot = _Snapshot(snapshot.time, snapshot.pv_w, snapshot.grid_w, cap)
        self._written_w = cap
        self._commanded_pct = 100.0 * (limit_fraction(command.limit_pct) if command.connect else 0)

    async def _write_cap(self, info: GxInfo, cap: int) -> None:
        register = reg.MAX_FEED_IN_W if info.wide_register else reg.MAX_FEED_IN_100W
        values: Sequence[int] = reg.feed_in_registers(cap, wide=info.wide_register)
        await self._connection.write_registers(reg.SYSTEM_UNIT, register, values)
        self.writes += 1

    async def async_release(self) -> None:
        """Write the GX's own maximum feed-in back (unless it holds it already)."""
        info = await self._identity()
        own = reg.NO_LIMIT if self._own is None else self._own
        if not info.wide_register and own > 0:
            own = reg.floor_to(own, 100)
        register = reg.MAX_FEED_IN_W if info.wide_register else reg.MAX_FEED_IN_100W
        held = reg.feed_in_watts(
            await self._read(register, 2 if info.wide_register else 1), wide=info.wide_register
        )
        if held != own:
            await self._write_cap(info, own)
        self._written_w = None
        self._commanded_pct = None
        self._snapshot = None
