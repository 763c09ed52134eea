"""A SolarEdge inverter limited through Enhanced Dynamic Power Control (EDPC).

**Three stages, each done only when needed.**

1. *Committed power control* (0xF142 = 1, 0xF104 = 4): persistent settings that take a
   5-10 s commit (0xF100). They are read first and written, with one commit, only when they
   differ, so an inverter is committed once in its life, never per cycle or per start.
2. *EDPC set-up* (RAM): the command timeout (our revert timer), the fallback limit, the
   percentage base (set to the rating), active power first, both ramps off (the default
   5 %/min ramp would take 20 minutes from 100 % to 0 %), then EDPC on. Read back and
   written where it differs, before the first limit and again whenever a read finds EDPC off
   (the inverter restarted and lost its RAM).
3. *The dynamic limit* (0xF322, float % of the rating): every write restarts the inverter's
   command timeout. If nothing is written for that long (Home Assistant stopped), the
   inverter applies the fallback limit by itself.

The write policy in core decides when to write (on change, and at half the command timeout
as a refresh), so ``revert_timeout_s`` is exactly the timeout written to the inverter.

Output, energy and status are read from SunSpec models 101-103 through ``sunspec.device``.
The limit read back is 0xF322 while EDPC is on, so a limit that snapped back (the SolarEdge
app, a restart) is seen as drift and written again. Values that stand still (lifetime energy
unchanged while the power reading says energy flows) fail the read, as for SunSpec inverters:
the site then counts the inverter at its rating, and, as nothing is written to it, its own
command timeout brings it to the fallback limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..core.errors import InvalidDeviceDataError
from ..core.frozen import FrozenCounterCheck
from ..core.measurements import InverterCommand, InverterReading
from ..core.numbers import finite_number
from ..sunspec.connection import RegisterConnection
from ..sunspec.device import SunSpecDevice
from ..sunspec.errors import ModbusExceptionError, UnsupportedDeviceError
from ..sunspec.inverter import MAX_RATED_POWER_W, PHASES, STATUS_NAMES
from . import registers as reg
from .errors import CommitError, NotSolarEdgeError, PowerControlUnsupportedError

INVERTER_MODELS = (103, 102, 101)  # SolarEdge serves int+SF models only
MANUFACTURER = "solaredge"
DEFAULT_FALLBACK_PCT = 0.0
DEFAULT_COMMIT_TIMEOUT_S = 20.0
COMMIT_RETRY_S = 600.0
"""After a failed commit, how long limits are refused before the next commit is tried: the
committed settings are persistent, so a commit is never retried every cycle."""
COMMIT_POLL_S = 0.5
LIMIT_STEP_PCT = 0.01
"""Limits are written rounded down to this step, so a read-back compares exactly."""
ILLEGAL_DATA_ADDRESS = 2
SERVER_BUSY = 6

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SolarEdgeInfo:
    """What set-up learned about the inverter."""

    manufacturer: str | None
    model: str | None
    serial_number: str | None
    version: str | None
    rated_power_w: float
    inverter_model_id: int
    phases: int


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def limit_value(limit_pct: float) -> float:
    """The dynamic limit to write for ``limit_pct``: finite, clamped to 0-100, rounded down."""
    if isinstance(limit_pct, bool) or not isinstance(limit_pct, int | float):
        raise TypeError(f"limit must be a number, got {limit_pct!r}")
    if not math.isfinite(limit_pct):
        raise ValueError(f"limit {limit_pct!r} % is not a finite number")
    pct = min(100.0, max(0.0, float(limit_pct)))
    return math.floor(round(pct / LIMIT_STEP_PCT, 6)) * LIMIT_STEP_PCT


async def async_read_identity(
    device: SunSpecDevice,
) -> tuple[SolarEdgeInfo, dict[int, object]]:
    """Identity and rating of a SolarEdge inverter, read without writing anything.

    Raises NotSunSpecError, NotSolarEdgeError, UnsupportedDeviceError (no model 101-103),
    PowerControlUnsupportedError (no power-control registers) or InvalidDeviceDataError.
    """
    models = await device.async_scan()
    common = await device.async_read_common()
    if not (common.manufacturer or "").strip().lower().startswith(MANUFACTURER):
        raise NotSolarEdgeError(
            f"unit {device.unit_id} is made by {common.manufacturer!r}, not SolarEdge"
        )
    model_id = next((m for m in INVERTER_MODELS if m in models), None)
    if model_id is None:
        raise UnsupportedDeviceError(
            f"unit {device.unit_id} has no SunSpec inverter model (101-103)"
        )
    try:
        rating = reg.decode_float(
            await device.connection.read_holding_registers(device.unit_id, reg.MAX_ACTIVE_POWER, 2)
        )
    except ModbusExceptionError as err:
        if err.code != ILLEGAL_DATA_ADDRESS:
            raise
        raise PowerControlUnsupportedError(
            f"unit {device.unit_id} has no power-control registers (CPU firmware 3.x or later "
            f"is needed): {err}"
        ) from err
    if rating is None or not 0 < rating <= MAX_RATED_POWER_W:
        raise InvalidDeviceDataError(f"unit {device.unit_id}: implausible rating {rating!r} W")
    info = SolarEdgeInfo(
        manufacturer=common.manufacturer,
        model=common.model,
        serial_number=common.serial_number,
        version=common.version,
        rated_power_w=rating,
        inverter_model_id=model_id,
        phases=PHASES[model_id],
    )
    return info, dict(models)


class SolarEdgeInverter:
    """Implements core.devices.Inverter for one SolarEdge inverter (a unit id)."""

    def __init__(
        self,
        connection: RegisterConnection,
        unit_id: int,
        *,
        revert_timeout_s: float = 60.0,
        fallback_pct: float = DEFAULT_FALLBACK_PCT,
        commit_timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S,
        commit_poll_s: float = COMMIT_POLL_S,
        commit_retry_s: float = COMMIT_RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``revert_timeout_s`` becomes the command timeout, ``fallback_pct`` its fallback."""
        if not math.isfinite(revert_timeout_s) or not 1 <= revert_timeout_s <= reg.MAX_TIMEOUT_S:
            raise ValueError(f"revert_timeout_s must be 1..{reg.MAX_TIMEOUT_S} s")
        if not math.isfinite(fallback_pct) or not 0 <= fallback_pct <= 100:
            raise ValueError("fallback_pct must be 0-100 %")
        if not commit_timeout_s > 0 or not commit_poll_s > 0:
            raise ValueError("commit timings must be positive")
        self._device = SunSpecDevice(connection, unit_id)
        self._connection = connection
        self._unit_id = unit_id
        self._timeout_raw = math.ceil(revert_timeout_s)
        self._fallback_pct = float(fallback_pct)
        self._commit_timeout_s = commit_timeout_s
        self._commit_poll_s = commit_poll_s
        self._commit_retry_s = commit_retry_s
        self._commit_failure: tuple[float, CommitError] | None = None
        self._clock = clock
        self._info: SolarEdgeInfo | None = None
        self._committed = False  # 0xF142/0xF104 are as EDPC needs them
        self._commit_deadline: float | None = None  # a commit we started is still running
        self._commit_sent = False  # its write returned (else it may not have landed)
        self._edpc_ready = False  # the RAM settings are ours and EDPC is on
        self.commits = 0  # commits this client asked for (diagnostics, tests)
        self._frozen_check = FrozenCounterCheck()
        self._said_no_energy = False

    @property
    def unit_id(self) -> int:
        """Modbus unit id."""
        return self._unit_id

    @property
    def info(self) -> SolarEdgeInfo | None:
        """Set by :meth:`async_setup`."""
        return self._info

    @property
    def fallback_pct(self) -> float:
        """The limit the inverter applies by itself when we stop writing."""
        return self._fallback_pct

    @property
    def revert_timeout_s(self) -> float:
        """The command timeout written to the inverter (0xF310)."""
        return float(self._timeout_raw)

    @property
    def supports_connect(self) -> bool:
        """False: EDPC cannot open the relay; connect=False is a 0 % limit."""
        return False

    @property
    def limit_step_pct(self) -> float:
        """Limits are written in steps of 0.01 %."""
        return LIMIT_STEP_PCT

    async def async_setup(self) -> SolarEdgeInfo:
        """Read identity and rating, then make sure power control is committed (once).

        A failed commit raises, but the identity stays known, so the inverter is still read.
        """
        info, _ = await async_read_identity(self._device)
        self._info = info
        await self._async_ensure_committed()
        return info

    async def _identity(self) -> SolarEdgeInfo:
        if self._info is None:
            self._info, _ = await async_read_identity(self._device)
        return self._info

    async def _read(self, address: int, count: int) -> list[int]:
        return await self._connection.read_holding_registers(self._unit_id, address, count)

    async def _write(self, address: int, values: Sequence[int]) -> None:
        await self._connection.write_registers(self._unit_id, address, values)

    async def _async_ensure_committed(self) -> None:
        """Enable advanced power control and RRCR, with one commit, unless they already are.

        A commit this client started and that has not finished (the cycle that waited for
        it timed out) is waited for again rather than started a second time. A commit
        write that never returned (connection lost, the cycle's timeout) may or may not
        have landed: the commit register says which (it holds the 1 while committing), and
        one that did not land is written again instead of its 0 being taken for success.
        """
        if self._committed:
            return
        if self._commit_failure is not None:
            failed_at, error = self._commit_failure
            if self._clock() - failed_at < self._commit_retry_s:
                raise error
            self._commit_failure = None
        if self._commit_deadline is not None and not self._commit_sent:
            (state,) = await self._read(reg.COMMIT, 1)
            if state != 1:
                await self._async_start_commit()
        elif self._commit_deadline is None:
            enable = reg.decode_int32(await self._read(reg.ADVANCED_POWER_CONTROL_ENABLE, 2))
            config = reg.decode_int32(await self._read(reg.REACTIVE_POWER_CONFIG, 2))
            if enable == reg.ENABLED and config == reg.RRCR:
                self._committed = True
                return
            if enable != reg.ENABLED:
                await self._write(reg.ADVANCED_POWER_CONTROL_ENABLE, reg.encode_int32(1))
            if config != reg.RRCR:
                await self._write(reg.REACTIVE_POWER_CONFIG, reg.encode_int32(reg.RRCR))
            await self._async_start_commit()
        try:
            await self._async_wait_commit()
        except CommitError as err:
            self._commit_failure = (self._clock(), err)
            raise
        self._committed = True

    async def _async_start_commit(self) -> None:
        """Write the commit; ``_commit_sent`` tells later calls whether the write returned."""
        self._commit_deadline = self._clock() + self._commit_timeout_s
        self._commit_sent = False
        self.commits += 1
        await self._write(reg.COMMIT, [1])
        self._commit_sent = True

    async def _async_wait_commit(self) -> None:
        """Poll the commit register until it reports the result (5-10 s)."""
        deadline = self._commit_deadline
        assert deadline is not None
        result: int | None = None
        while True:
            await asyncio.sleep(self._commit_poll_s)
            try:
                (result,) = await self._read(reg.COMMIT, 1)
            except ModbusExceptionError as err:
                if err.code != SERVER_BUSY:
                    self._commit_deadline = None
                    raise
                result = None  # busy committing
            # The register holds the 1 we wrote until the result replaces it.
            if result is not None and result != 1:
                break
            if self._clock() >= deadline:
                break
        self._commit_deadline = None
        if result is None or result == 1:
            raise CommitError(
                f"unit {self._unit_id}: power-control settings not committed within "
                f"{self._commit_timeout_s:g} s"
            )
        failure = reg.commit_error(result)
        if failure is not None:
            message, register = failure
            raise CommitError(f"unit {self._unit_id}: {message}", register)

    async def _async_configure_edpc(self, info: SolarEdgeInfo) -> None:
        """Write the EDPC settings that differ from ours, then turn EDPC on."""
        wanted_float = {
            reg.ACTIVE_POWER_BASE: info.rated_power_w,
            reg.FALLBACK_LIMIT: self._fallback_pct,
            reg.RAMP_UP: reg.NO_RAMP,
            reg.RAMP_DOWN: reg.NO_RAMP,
        }
        (preference,) = await self._read(reg.ACTIVE_REACTIVE_PREFERENCE, 1)
        if preference != reg.PREFER_ACTIVE:
            await self._write(reg.ACTIVE_REACTIVE_PREFERENCE, [reg.PREFER_ACTIVE])
        timeout = reg.decode_uint32(await self._read(reg.COMMAND_TIMEOUT, 2))
        if timeout != self._timeout_raw:
            await self._write(reg.COMMAND_TIMEOUT, reg.encode_uint32(self._timeout_raw))
        for address, value in wanted_float.items():
            current = reg.decode_float(await self._read(address, 2))
            if current is None or not math.isclose(current, value, rel_tol=1e-6, abs_tol=1e-4):
                await self._write(address, reg.encode_float(value))
        (enabled,) = await self._read(reg.EDPC_ENABLE, 1)
        if enabled != reg.ENABLED:
            await self._write(reg.EDPC_ENABLE, [reg.ENABLED])
        self._edpc_ready = True

    async def async_read(self) -> InverterReading:
        """Read output, energy and status (SunSpec) and the dynamic limit in force.

        Needs no commit: an inverter whose power control could not be committed is still
        read (and counted as not taking its limit).
        """
        info = await self._identity()
        timestamp = self._clock()
        values = await self._device.async_read_model(info.inverter_model_id)
        (enabled,) = await self._read(reg.EDPC_ENABLE, 1)
        limit = reg.decode_float(await self._read(reg.DYNAMIC_LIMIT, 2))
        if enabled != reg.ENABLED:
            self._edpc_ready = False  # restarted (RAM lost) or turned off by someone else
        power = finite_number(values["W"])
        if power is None:
            raise InvalidDeviceDataError(
                f"unit {self._unit_id}: inverter reports no AC power (W={values['W']!r})"
            )
        if limit is not None and not 0 <= limit <= 100:
            raise InvalidDeviceDataError(f"unit {self._unit_id}: dynamic limit {limit} %")
        energy = finite_number(values["WH"])
        self._check_frozen(timestamp, power, energy, values.get("WH_SF"))
        status = values["St"]
        return InverterReading(
            timestamp=timestamp,
            ac_power_w=power,
            rated_power_w=info.rated_power_w,
            limit_pct=limit,
            limit_enabled=enabled == reg.ENABLED,
            connected=None,
            status=STATUS_NAMES.get(status) if isinstance(status, int) else None,
            lifetime_energy_wh=energy,
        )

    def _check_frozen(
        self, now: float, power_w: float, energy_wh: float | None, energy_sf: object
    ) -> None:
        """Fail the read while the values look frozen (the loop logs it and its recovery)."""
        if energy_wh is None and not self._said_no_energy:
            self._said_no_energy = True
            _LOGGER.warning(
                "SolarEdge inverter (unit %s) reports no lifetime energy: frozen values cannot "
                "be detected",
                self._unit_id,
            )
        step_wh = float(10.0**energy_sf) if isinstance(energy_sf, int) else 0.0
        self._frozen_check.fail_if_frozen(f"unit {self._unit_id}", now, power_w, energy_wh, step_wh)

    async def async_apply(self, command: InverterCommand) -> None:
        """Write the dynamic limit (0 % for connect=False), setting EDPC up first if needed."""
        if not isinstance(command.connect, bool):
            raise TypeError(f"connect must be a bool, got {command.connect!r}")
        pct = limit_value(command.limit_pct) if command.connect else 0.0
        registers = reg.encode_float(pct)  # validated before anything is sent
        info = await self._identity()
        await self._async_ensure_committed()
        if not self._edpc_ready:
            await self._async_configure_edpc(info)
        await self._write(reg.DYNAMIC_LIMIT, registers)

    async def async_release(self) -> None:
        """Lift the dynamic limit and turn EDPC off: the inverter's own settings apply again.

        With EDPC off the fallback no longer applies either, so a released inverter is not
        turned down when the command timeout runs out.
        """
        await self._write(reg.DYNAMIC_LIMIT, reg.encode_float(100.0))
        await self._write(reg.EDPC_ENABLE, [reg.DISABLED])
        self._edpc_ready = False
