"""Scaled wire values: value × 10^multiplier in the 16-bit types 2030.5 uses."""

from __future__ import annotations

import math
from dataclasses import dataclass


def scale_value(amount: float, *, signed: bool) -> tuple[int, int]:
    """Split ``amount`` into (value, power-of-ten multiplier) for a 16-bit wire value.

    Integers that fit keep multiplier 0; larger ones lose their last digits (multiplier > 0);
    fractions keep up to three decimals. Raises ValueError for NaN, infinity, a negative
    unsigned amount or one beyond 10^9 of the 16-bit range.
    """
    if not math.isfinite(amount) or (amount < 0 and not signed):
        raise ValueError(f"cannot encode {amount} as a {'' if signed else 'un'}signed value")
    low, high = (-0x8000, 0x7FFF) if signed else (0, 0xFFFF)
    start = 0 if float(amount).is_integer() else -3
    for multiplier in range(start, 10):
        value = round(amount * 10.0**-multiplier)
        if low <= value <= high:
            return value, multiplier
    raise ValueError(f"{amount} does not fit a {'signed' if signed else 'unsigned'} value")


@dataclass(frozen=True, slots=True)
class ActivePower:
    """A power value as 2030.5 writes it: value × 10^multiplier watts."""

    value: int
    multiplier: int = 0

    @property
    def watts(self) -> float:
        """The value in watts."""
        return float(self.value) * 10.0**self.multiplier

    @classmethod
    def from_watts(cls, watts: float) -> ActivePower:
        """The closest value that fits the wire type (Int16 value, see ``scale_value``)."""
        return cls(*scale_value(watts, signed=True))


@dataclass(frozen=True, slots=True)
class ReactivePower:
    """Reactive power as value × 10^multiplier var (Int16 value)."""

    value: int
    multiplier: int = 0

    @classmethod
    def from_var(cls, var: float) -> ReactivePower:
        """The closest value that fits the wire type."""
        return cls(*scale_value(var, signed=True))


@dataclass(frozen=True, slots=True)
class ApparentPower:
    """Apparent power as value × 10^multiplier VA (UInt16 value)."""

    value: int
    multiplier: int = 0

    @classmethod
    def from_va(cls, va: float) -> ApparentPower:
        """The closest value that fits the wire type."""
        return cls(*scale_value(va, signed=False))


@dataclass(frozen=True, slots=True)
class WattHour:
    """Energy as value × 10^multiplier Wh (UInt16 value)."""

    value: int
    multiplier: int = 0

    @classmethod
    def from_wh(cls, wh: float) -> WattHour:
        """The closest value that fits the wire type."""
        return cls(*scale_value(wh, signed=False))
