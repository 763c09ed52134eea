"""What the vendor families' simulated devices share: sparse register banks and a unit base.

A SunSpec device is one contiguous model chain (:mod:`.registers`); the vendors' own maps are
scattered blocks, each with its own word order and rules. A :class:`VendorUnit` answers one
Modbus unit id from such blocks, laid out from the component's own register tables, and turns
a client's writes into the controls of :mod:`.physics` (the same inverters, lag and load as
the SunSpec site).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .physics import SimSite

ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
READ_HOLDING = 3
READ_INPUT = 4


class RegisterBank:
    """Registers at scattered addresses: only addresses defined exist (others answer 2)."""

    def __init__(self) -> None:
        self.values: dict[int, int] = {}

    def define(self, address: int, count: int) -> None:
        """Create ``count`` registers from ``address`` on, holding 0."""
        for offset in range(count):
            self.values.setdefault(address + offset, 0)

    def contains(self, address: int, count: int) -> bool:
        """True if every register in ``address .. address+count-1`` exists."""
        return all(address + offset in self.values for offset in range(count))

    def read(self, address: int, count: int) -> list[int]:
        """Registers ``address .. address+count-1`` (caller checks :meth:`contains`)."""
        return [self.values[address + offset] for offset in range(count)]

    def write(self, address: int, words: Sequence[int]) -> None:
        """Store registers (creating them if needed)."""
        for offset, word in enumerate(words):
            if not 0 <= word <= 0xFFFF:
                raise ValueError(f"register value {word} at {address + offset} is not 16-bit")
            self.values[address + offset] = word


def text_words(text: str, count: int) -> list[int]:
    """``text`` as ``count`` registers, two bytes a register (high byte first), NUL padded."""
    data = text.encode("utf-8")[: 2 * count].ljust(2 * count, b"\0")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, 2 * count, 2)]


def u16(value: int) -> int:
    """A signed or unsigned 16-bit value as its register (clamped to what fits)."""
    return max(-0x8000, min(0xFFFF, value)) & 0xFFFF


class VendorUnit:
    """One Modbus unit of a vendor device: its banks, writable registers and behaviour.

    ``indices`` are the site's inverters the unit stands for (one for an inverter, all its PV
    for a Victron GX).
    """

    family = ""

    def __init__(self, unit_id: int, indices: Sequence[int]) -> None:
        self.unit_id = unit_id
        self.indices = tuple(indices)
        self.holding = RegisterBank()
        self.inputs: RegisterBank | None = None
        self.writable: set[int] = set()

    def allow_writes(self, address: int, count: int = 1) -> None:
        """Make ``count`` registers from ``address`` writable (and define them)."""
        self.holding.define(address, count)
        self.writable.update(range(address, address + count))

    def read(self, function: int, address: int, count: int) -> list[int] | int:
        """The registers asked for, or the Modbus exception code refusing the read."""
        bank = self.holding if function == READ_HOLDING else self.inputs
        if bank is None:
            return ILLEGAL_FUNCTION
        if not bank.contains(address, count):
            return self.missing(address, count)
        return bank.read(address, count)

    def missing(self, address: int, count: int) -> int:
        """Exception code for a read of registers the unit does not have."""
        return ILLEGAL_DATA_ADDRESS

    def write(self, site: SimSite, address: int, values: Sequence[int]) -> int | None:
        """Apply a client's write; the Modbus exception code refusing it, or None."""
        if any(a not in self.writable for a in range(address, address + len(values))):
            return ILLEGAL_DATA_ADDRESS
        refused = self.check_write(address, list(values))
        if refused is not None:
            return refused
        self.holding.write(address, values)
        self.written(site, address, list(values))
        return None

    def check_write(self, address: int, values: list[int]) -> int | None:
        """Exception code refusing a write to writable registers (a value out of range)."""
        return None

    def written(self, site: SimSite, address: int, values: list[int]) -> None:
        """A write was stored: apply it to the site's controls now."""

    def step(self, site: SimSite, dt: float) -> None:
        """The device's own behaviour over the next ``dt`` seconds (timers, ramps, loops)."""

    def refresh(self, site: SimSite) -> None:
        """Copy the site's state into the registers (every subclass has registers to fill)."""
        raise NotImplementedError

    def limit_write_pct(self, address: int, values: Sequence[int]) -> float | None:
        """The limit a write set, in % of the rating, or None if it set none (for benches)."""
        return None

    @staticmethod
    def _touches(address: int, count: int, registers: Iterable[int]) -> bool:
        return any(address <= r < address + count for r in registers)
