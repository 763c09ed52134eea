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

    async def async_read(self) -> InverterReading:
        """Read output, rating and the limit in force."""
        ...

    async def async_apply(self, command: InverterCommand) -> None:
        """Write a command; the inverter's revert timer restarts."""
        ...

    async def async_release(self) -> None:
        """Hand the inverter back to its own settings (limit disabled, connected)."""
        ...
