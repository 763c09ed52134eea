"""What the control cycle needs from a site meter and from an inverter.

Device clients (SunSpec, and later others) implement these protocols; the cycle
never sees a transport. Every method may raise :class:`~.errors.DeviceError`.
"""

from __future__ import annotations

from typing import Protocol

from .measurements import InverterCommand, InverterReading, MeterReading


class SiteMeter(Protocol):
    """The meter at the grid connection point."""

    async def async_read(self) -> MeterReading:
        """Read the meter now."""
        ...


class Inverter(Protocol):
    """An inverter whose output can be limited."""

    @property
    def revert_timeout_s(self) -> float:
        """Seconds after the last write at which the inverter drops our limit (0: never)."""
        ...

    @property
    def supports_connect(self) -> bool:
        """True when ``connect=False`` really opens the inverter's relay (or powers it off)."""
        ...

    @property
    def limit_step_pct(self) -> float:
        """Smallest change of the limit the device can hold, in % of rating (0: continuous).

        A limit read back from the device is rounded to this step, so it may differ from
        the command by up to one step without the device having drifted.
        """
        ...

    async def async_read(self) -> InverterReading:
        """Read output, rating and the limit in force."""
        ...

    async def async_apply(self, command: InverterCommand) -> None:
        """Write a command; the inverter's revert timer restarts."""
        ...

    async def async_release(self) -> None:
        """Hand the inverter back to its own settings (limit disabled, connected)."""
        ...
