"""Home Assistant entities as the site meter or as an inverter.

Some devices are already in Home Assistant through another integration: a grid power sensor
(a Shelly, a smart meter reader) or an inverter with a power sensor and a number entity that
sets its limit. These clients read ``hass.states`` and write through the number's
``set_value`` action, so the control loop drives them like any other device.

Power sensors may report in W or kW (the state's unit decides). The meter's sign is chosen
in its flow; readings are stamped with the time the state was last reported, and a power
state not reported for longer than its maximum age makes the meter, or the inverter,
unavailable: another integration that stopped polling would otherwise leave its last value
standing, and the controller would share the site's target out from a stale output.

That age is kept on the monotonic clock, not judged from ``last_reported`` against the wall
clock: a wall clock set back an hour would make a frozen sensor look fresh for that hour,
and one set forward would make a live sensor look stale. A ``last_reported`` that differs
from the one seen at the previous read was reported since that read, so its age is at most
the time since then; the wall clock only dates a state the meter has never seen before.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime

from homeassistant.const import (
    ATTR_ENTITY_ID,
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    UnitOfPower,
)
from homeassistant.core import HomeAssistant, State
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import dt as dt_util

from ...compat import vol
from ...const import DEFAULT_INVERTER_ENTITY_MAX_AGE, LIMIT_UNIT_PERCENT
from ...core.errors import DeviceResponseError, DeviceUnavailableError, InvalidDeviceDataError
from ...core.measurements import InverterCommand, InverterReading, MeterReading
from ...core.numbers import finite_number

POWER_UNITS: dict[str | None, float] = {
    None: 1.0,  # no unit: taken as watts (template sensors often have none)
    UnitOfPower.WATT: 1.0,
    UnitOfPower.KILO_WATT: 1000.0,
}
"""Units a power sensor may report in, with their factor to watts."""

ATTR_MIN = "min"
ATTR_MAX = "max"
ATTR_STEP = "step"
ATTR_VALUE = "value"
SET_VALUE = "set_value"


class EntityValueError(InvalidDeviceDataError):
    """An entity's state is not usable; ``reason`` is the flow's error key."""

    def __init__(self, message: str, reason: str) -> None:
        """Keep the reason for the config flow."""
        super().__init__(message)
        self.reason = reason


def _state(hass: HomeAssistant, entity_id: str) -> State:
    state = hass.states.get(entity_id)
    if state is None:
        raise EntityValueError(f"{entity_id} does not exist", "entity_not_found")
    if state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        raise DeviceUnavailableError(f"{entity_id} is {state.state}")
    return state


def _number(state: State) -> float:
    try:
        value = float(state.state)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise EntityValueError(f"{state.entity_id}: {state.state!r} is not a number", "not_numeric")
    return value


def power_w(state: State) -> float:
    """A power sensor's value in watts; raises EntityValueError for other units."""
    unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)
    factor = POWER_UNITS.get(unit) if isinstance(unit, str) or unit is None else None
    if factor is None:
        raise EntityValueError(
            f"{state.entity_id}: unit {unit!r} is not W or kW", "unsupported_unit"
        )
    return _number(state) * factor


def read_power_w(hass: HomeAssistant, entity_id: str) -> float:
    """The power an entity reports now, in watts (for the config flow's check)."""
    try:
        return power_w(_state(hass, entity_id))
    except DeviceUnavailableError as err:
        raise EntityValueError(str(err), "not_numeric") from err


def number_range(hass: HomeAssistant, entity_id: str) -> tuple[float, float, float]:
    """A number entity's (value, min, max); raises EntityValueError if it is not one."""
    try:
        state = _state(hass, entity_id)
    except DeviceUnavailableError as err:
        raise EntityValueError(str(err), "not_numeric") from err
    return _number(state), *_limits(state)


def _limits(state: State) -> tuple[float, float]:
    low, high = (
        finite_number(state.attributes.get(ATTR_MIN)),
        finite_number(state.attributes.get(ATTR_MAX)),
    )
    if low is None or high is None or not high > low:
        raise EntityValueError(
            f"{state.entity_id} has no valid min and max "
            f"(min={state.attributes.get(ATTR_MIN)!r}, max={state.attributes.get(ATTR_MAX)!r})",
            "not_a_number_entity",
        )
    return low, high


class ReportAge:
    """How long ago a state was last reported, on the monotonic clock (module doc).

    A ``last_reported`` that differs from the one seen at the previous check was reported
    since then, so its age is at most the time since that check; the wall clock only dates
    a report never seen before.
    """

    def __init__(self, entity_id: str, max_age_s: float) -> None:
        """``max_age_s``: a state older than this fails :meth:`check`."""
        if not max_age_s > 0:
            raise ValueError("max_age_s must be positive")
        self.entity_id = entity_id
        self.max_age_s = max_age_s
        self._reported: datetime | None = None  # last_reported at the previous check
        self._reported_at = 0.0  # when (monotonic) that report was made
        self._seen_at: float | None = None  # when (monotonic) the previous check saw it

    def check(self, state: State, now: float) -> float:
        """When (monotonic) ``state`` was last reported; unavailable when that is too long ago."""
        reported = state.last_reported
        if reported != self._reported:
            age = max(0.0, (dt_util.utcnow() - reported).total_seconds())
            if self._seen_at is not None:
                age = min(age, now - self._seen_at)  # reported after the previous check
            self._reported, self._reported_at = reported, now - age
        self._seen_at = now
        age = now - self._reported_at
        if age > self.max_age_s:
            raise DeviceUnavailableError(
                f"{self.entity_id} has not been reported for {age:.0f} s "
                f"(more than {self.max_age_s:g} s)"
            )
        return self._reported_at


class HaEntityMeter:
    """A grid power sensor as the site meter (implements core.devices.SiteMeter)."""

    def __init__(
        self,
        hass: HomeAssistant,
        entity_id: str,
        *,
        invert: bool = False,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``invert``: the sensor shows export as positive."""
        self._hass = hass
        self.entity_id = entity_id
        self._invert = invert
        self._report_age = ReportAge(entity_id, max_age_s)
        self._clock = clock

    async def async_read(self) -> MeterReading:
        """The sensor's value now, stamped with when it was last reported."""
        state = _state(self._hass, self.entity_id)
        now = self._clock()
        reported_at = self._report_age.check(state, now)
        watts = power_w(state)
        return MeterReading(timestamp=reported_at, grid_power_w=-watts if self._invert else watts)


class HaEntityInverter:
    """An inverter seen through a power sensor and limited through a number entity.

    The number is written with its own ``set_value`` action (``number`` or ``input_number``),
    in W or in % of the rating as configured, clamped to the number's min and max and rounded
    down to its step. Such a limit has no revert timer of its own; releasing control sets the
    number to its maximum. There is no disconnect: a disconnect request sets the minimum.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        power_entity: str,
        limit_entity: str,
        *,
        limit_unit: str,
        rated_power_w: float,
        max_age_s: float = DEFAULT_INVERTER_ENTITY_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Bind to the two entities; ``rated_power_w`` converts between W and %.

        ``max_age_s``: a power state not reported for longer makes the inverter unavailable.
        """
        if not rated_power_w > 0:
            raise ValueError("rated_power_w must be positive")
        self._hass = hass
        self._report_age = ReportAge(power_entity, max_age_s)
        self.power_entity = power_entity
        self.limit_entity = limit_entity
        self._percent = limit_unit == LIMIT_UNIT_PERCENT
        self._rating = rated_power_w
        self._clock = clock

    @property
    def revert_timeout_s(self) -> float:
        """0: the number keeps its value; nothing needs refreshing."""
        return 0.0

    @property
    def supports_connect(self) -> bool:
        """False: a number entity cannot open the inverter's relay."""
        return False

    @property
    def limit_step_pct(self) -> float:
        """The number's step, in % of the rating (0 when it has none or is unavailable)."""
        state = self._hass.states.get(self.limit_entity)
        step = finite_number(state.attributes.get(ATTR_STEP)) if state is not None else None
        if step is None or step <= 0:
            return 0.0
        return step if self._percent else 100.0 * step / self._rating

    async def async_read(self) -> InverterReading:
        """Output from the power sensor, the limit in force from the number.

        Stamped with when the power was last reported; too old a report fails the read.
        """
        power = _state(self._hass, self.power_entity)
        reported_at = self._report_age.check(power, self._clock())
        output = power_w(power)
        limit_pct: float | None = None
        limit = self._hass.states.get(self.limit_entity)
        if limit is not None and limit.state not in (STATE_UNAVAILABLE, STATE_UNKNOWN):
            value = _number(limit)
            limit_pct = value if self._percent else 100.0 * value / self._rating
        return InverterReading(
            timestamp=reported_at,
            ac_power_w=output,
            rated_power_w=self._rating,
            limit_pct=limit_pct,
            limit_enabled=None if limit_pct is None else True,
        )

    async def async_apply(self, command: InverterCommand) -> None:
        """Set the number to the commanded limit (its minimum for a disconnect)."""
        if not math.isfinite(command.limit_pct):
            raise ValueError(f"limit {command.limit_pct!r} % is not a finite number")
        state = _state(self._hass, self.limit_entity)
        low, high = _limits(state)
        if not command.connect:
            await self._set(state, low)
            return
        pct = min(100.0, max(0.0, command.limit_pct))
        wanted = pct if self._percent else pct * self._rating / 100.0
        value = min(high, max(low, wanted))
        step = finite_number(state.attributes.get(ATTR_STEP))
        if step is not None and step > 0 and low < value < high:
            value = low + math.floor(round((value - low) / step, 6)) * step
        await self._set(state, round(value, 6))

    async def async_release(self) -> None:
        """Hand the inverter back: the number at its maximum."""
        state = _state(self._hass, self.limit_entity)
        await self._set(state, _limits(state)[1])

    async def _set(self, state: State, value: float) -> None:
        try:
            await self._hass.services.async_call(
                state.domain,
                SET_VALUE,
                {ATTR_ENTITY_ID: state.entity_id, ATTR_VALUE: value},
                blocking=True,
            )
        except (HomeAssistantError, vol.Invalid, ValueError) as err:
            raise DeviceResponseError(
                f"{state.entity_id}: setting {value:g} failed: {err}"
            ) from err
