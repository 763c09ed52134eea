"""A simulated Victron GX with ESS and its grid meter, laid out from ``victron.registers``.

Units as on a GX: the ``system``, ``settings`` and ``hub4`` services at unit 100, the grid
meter (``com.victronenergy.grid``) at its own unit (30 by default). A register of the other
service answers exception 10 (gateway path unavailable), an address in neither answers 2, as
does a write to a read-only register. 32-bit values go **high word first**. The maximum
feed-in is one persistent setting seen through two registers: 2706 (int16, 100 W) and 2722
(int32 W, on firmware that has it); -1 means no limit.

The GX's ESS loop curtails **its own PV** (the site inverters it stands for) so that export
stays at or below the maximum feed-in: every ``loop_s`` it sets their ceiling to the site's
load, less any other generation, plus the cap; the PV inverters follow the ceiling with their
lag. The loop is idealised (it knows the load at once, where a GX measures it through its
meters), so a site behind a simulated GX holds the cap a little better than a real one.
With no limit (-1) the PV is not curtailed.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..victron import registers as reg
from .physics import GRID_VOLTAGE_V, SimInverter, SimSite
from .vendor import (
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_DATA_VALUE,
    VendorUnit,
    text_words,
    u16,
)

GATEWAY_PATH_UNAVAILABLE = reg.GATEWAY_PATH_UNAVAILABLE
DEFAULT_GRID_UNIT = 30
ESS_MODE = 1  # ESS with phase compensation
DEFAULT_LOOP_S = 0.5
"""How often the simulated ESS loop moves the PV ceiling (an assumption: Victron does not
document its period)."""


class VictronGxUnit(VendorUnit):
    """The GX (unit 100): the PV it manages is the site inverters ``indices``."""

    family = "victron"

    def __init__(
        self,
        indices: Sequence[int],
        ratings_w: Sequence[float],
        *,
        max_feed_in_w: int = reg.NO_LIMIT,
        wide: bool = True,
        loop_s: float = DEFAULT_LOOP_S,
        serial: str = "c0ffee51e001",
    ) -> None:
        super().__init__(reg.SYSTEM_UNIT, indices)
        if loop_s <= 0:
            raise ValueError("loop_s must be > 0")
        self.rating_w = float(sum(ratings_w))
        self.wide = wide
        self.loop_s = loop_s
        bank = self.holding
        bank.write(reg.SYSTEM_SERIAL, text_words(serial, reg.SYSTEM_SERIAL_REGS))
        bank.define(reg.SYSTEM_AC_BLOCK, reg.SYSTEM_AC_BLOCK_REGS)
        bank.define(reg.SYSTEM_DC_PV, 1)
        bank.write(reg.HUB4_MODE, [ESS_MODE])
        bank.define(reg.PV_LIMITER_ACTIVE, 1)
        self.allow_writes(reg.MAX_FEED_IN_100W)
        if wide:
            self.allow_writes(reg.MAX_FEED_IN_W, 2)
        self.max_feed_in_w = max_feed_in_w
        self.grid_meter: VictronGridUnit | None = None
        self.ceiling_w: float | None = None
        """The PV ceiling the ESS loop set last (None: not curtailing)."""
        self._since_loop_s = loop_s  # run the loop at the first step
        self.feed_in_writes = 0

    @property
    def max_feed_in_w(self) -> int:
        """The maximum feed-in in force (W; -1: no limit)."""
        if self.wide:
            return reg.feed_in_watts(self.holding.read(reg.MAX_FEED_IN_W, 2), wide=True)
        return reg.feed_in_watts(self.holding.read(reg.MAX_FEED_IN_100W, 1), wide=False)

    @max_feed_in_w.setter
    def max_feed_in_w(self, watts: int) -> None:
        self._store(watts)

    def _store(self, watts: int) -> None:
        """Write the setting into both of its views."""
        hundreds = reg.NO_LIMIT if watts < 0 else round(watts / 100)
        self.holding.write(reg.MAX_FEED_IN_100W, reg.encode_int16(hundreds))
        if self.wide:
            self.holding.write(reg.MAX_FEED_IN_W, reg.encode_int32(max(watts, reg.NO_LIMIT)))

    def missing(self, address: int, count: int) -> int:
        """Registers of the grid meter's service answer 10 here; unknown addresses 2."""
        meter = self.grid_meter
        if meter is not None and meter.holding.contains(address, count):
            return GATEWAY_PATH_UNAVAILABLE
        return ILLEGAL_DATA_ADDRESS

    def check_write(self, address: int, values: list[int]) -> int | None:
        """2722 is written whole (both words), never half."""
        end = address + len(values)
        halves = (reg.MAX_FEED_IN_W, reg.MAX_FEED_IN_W + 1)
        whole = address <= reg.MAX_FEED_IN_W and end > reg.MAX_FEED_IN_W + 1
        if self.wide and self._touches(address, len(values), halves) and not whole:
            return ILLEGAL_DATA_VALUE
        return None

    def written(self, site: SimSite, address: int, values: list[int]) -> None:
        """Keep both views of the setting in step; the ESS loop reacts at its next turn."""
        self.feed_in_writes += 1
        if address == reg.MAX_FEED_IN_100W:
            watts = reg.feed_in_watts(values[:1], wide=False)
        else:
            watts = reg.feed_in_watts(self.holding.read(reg.MAX_FEED_IN_W, 2), wide=True)
        self._store(watts)

    def limit_write_pct(self, address: int, values: Sequence[int]) -> float | None:
        """A feed-in write, as the cap's share of the PV rating (no limit: 100 %)."""
        if address == reg.MAX_FEED_IN_100W and values:
            watts = reg.feed_in_watts(list(values[:1]), wide=False)
        elif address == reg.MAX_FEED_IN_W and len(values) >= 2:
            watts = reg.feed_in_watts(list(values[:2]), wide=True)
        else:
            return None
        return 100.0 if watts < 0 else min(100.0, 100.0 * watts / self.rating_w)

    def step(self, site: SimSite, dt: float) -> None:
        """The ESS loop: every ``loop_s``, the PV ceiling that holds the feed-in cap."""
        self._since_loop_s += dt
        if self._since_loop_s + 1e-9 < self.loop_s:
            return
        self._since_loop_s = 0.0
        cap = self.max_feed_in_w
        inverters = [site.inverters[i] for i in self.indices]
        if cap < 0:
            self.ceiling_w = None
            for inverter in inverters:
                inverter.limit_enabled = False
            return
        others = site.generation_w - sum(inv.output_w for inv in inverters)
        ceiling = max(0.0, site.load_w - others + cap)
        self.ceiling_w = ceiling
        for inverter, share in zip(inverters, _fill(ceiling, inverters), strict=True):
            inverter.limit_pct = min(100.0, 100.0 * share / inverter.rated_power_w)
            inverter.limit_enabled = True
            inverter.limit_revert_s = 0.0

    def refresh(self, site: SimSite) -> None:
        """PV (all AC-coupled on the output), consumption and grid per phase; limiter state."""
        inverters = [site.inverters[i] for i in self.indices]
        pv = sum(inv.output_w for inv in inverters)
        grid = site.meter.reported_power_w
        block = [0] * reg.SYSTEM_AC_BLOCK_REGS
        block[reg.PV_ON_OUTPUT] = [u16(round(pv / 3))] * 3
        block[reg.CONSUMPTION] = [u16(round(site.load_w / 3))] * 3
        block[reg.GRID] = [u16(round(grid / 3))] * 3
        self.holding.write(reg.SYSTEM_AC_BLOCK, block)
        self.holding.write(reg.SYSTEM_DC_PV, [0])
        available = sum(min(inv.available_w, inv.rated_power_w) for inv in inverters)
        limiting = self.ceiling_w is not None and available > self.ceiling_w + 1.0
        self.holding.write(reg.PV_LIMITER_ACTIVE, [int(limiting)])


def _fill(ceiling_w: float, inverters: Sequence[SimInverter]) -> list[float]:
    """Split ``ceiling_w`` over the inverters by rating, passing on what one cannot use.

    An inverter whose PV is short of its share keeps only what it has; the rest goes to the
    others, so a shaded inverter does not curtail the rest.
    """
    shares = [0.0] * len(inverters)
    open_ = set(range(len(inverters)))
    left = ceiling_w
    while open_ and left > 1e-6:
        rating = sum(inverters[i].rated_power_w for i in open_)
        full = set()
        for i in open_:
            inverter = inverters[i]
            can = min(inverter.available_w, inverter.rated_power_w)
            offer = left * inverter.rated_power_w / rating
            if shares[i] + offer >= can:
                full.add(i)
        if not full:
            for i in open_:
                shares[i] += left * inverters[i].rated_power_w / rating
            return shares
        for i in full:
            inverter = inverters[i]
            can = min(inverter.available_w, inverter.rated_power_w)
            left -= can - shares[i]
            shares[i] = can
        open_ -= full
    # Everyone is full: the rest is headroom, by rating (a cloud passing lets them rise).
    if left > 0:
        total = sum(inv.rated_power_w for inv in inverters)
        for i, inverter in enumerate(inverters):
            shares[i] += left * inverter.rated_power_w / total
    return shares


class VictronGridUnit(VendorUnit):
    """The GX's grid meter service at its own unit: power per phase, voltage, energy."""

    family = "victron"

    def __init__(
        self,
        gx: VictronGxUnit,
        *,
        unit_id: int = DEFAULT_GRID_UNIT,
        serial: str = "SIM-ET1",
        counters_start_wh: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        super().__init__(unit_id, ())
        self.gx = gx
        gx.grid_meter = self
        self.counters_start_wh = counters_start_wh
        bank = self.holding
        bank.define(reg.GRID_POWER, reg.GRID_SERIAL - reg.GRID_POWER)
        bank.write(reg.GRID_SERIAL, text_words(serial, reg.GRID_SERIAL_REGS))
        bank.define(reg.GRID_VOLTAGE_CURRENT, 6)
        bank.define(reg.GRID_ENERGY, 4)

    def missing(self, address: int, count: int) -> int:
        """Registers of the GX's own services answer 10 here; unknown addresses 2."""
        if self.gx.holding.contains(address, count):
            return GATEWAY_PATH_UNAVAILABLE
        return ILLEGAL_DATA_ADDRESS

    def refresh(self, site: SimSite) -> None:
        """What the meter reports (delayed, noisy), split over three phases; its counters."""
        grid = site.meter.reported_power_w
        self.holding.write(reg.GRID_POWER, [u16(round(grid / 3))] * 3)
        amps = round(abs(grid) / 3 / GRID_VOLTAGE_V * 10)
        volts = round(GRID_VOLTAGE_V * 10)
        self.holding.write(reg.GRID_VOLTAGE_CURRENT, [volts, u16(amps)] * 3)
        start_import, start_export = self.counters_start_wh
        imported = round((start_import + site.meter.import_energy_wh) / 10.0)
        exported = round((start_export + site.meter.export_energy_wh) / 10.0)
        words = reg.encode_int32(imported & 0x7FFF_FFFF) + reg.encode_int32(exported & 0x7FFF_FFFF)
        self.holding.write(reg.GRID_ENERGY, words)
