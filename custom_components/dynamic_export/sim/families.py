"""Which Modbus unit serves which site inverter, for the families other than SunSpec.

Each site inverter names its family in the scenario (``InverterSpec.family``). Inverters keep
their unit id (the first inverter unit + their index) whatever their family, so a site can mix
families; the inverters of a Victron GX are not served themselves: the GX stands for all of
them at unit 100, with its grid meter at ``victron_grid_unit``. A GoodWe inverter keeps a unit
id too (its bank and its place in the write log) but is reached over UDP 8899 at its own
loopback address (see :mod:`.goodwe`). The site's grid meter is also served as meter 1 of the
first SolarEdge inverter, in its unit (see :mod:`.solaredge`), as a SolarEdge site wires it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sungrow.registers import Family
from ..victron import registers as victron_reg
from .goodwe import DEFAULT_LOOP_S as GOODWE_LOOP_S
from .goodwe import GoodWeUnit, goodwe_host
from .huawei import HuaweiUnit
from .physics import SimSite
from .solaredge import DEFAULT_COMMIT_S, GRID_OPTION, SolarEdgeMeterBlocks, SolarEdgeUnit
from .sungrow import SungrowUnit
from .vendor import VendorUnit
from .victron import DEFAULT_GRID_UNIT, DEFAULT_LOOP_S, VictronGridUnit, VictronGxUnit

SUNSPEC = "sunspec"
VICTRON = "victron"


@dataclass(frozen=True, slots=True)
class FamilyOptions:
    """Settings of the vendor devices a simulated site serves.

    ``solaredge_committed``: power control was committed once already (an installed site), so
    a client finds nothing to commit; otherwise its first set-up commits (``commit_s`` of site
    time). ``solaredge_meter``: the site's grid meter is also served as meter 1 of the first
    SolarEdge inverter, set up on it as ``solaredge_meter_option``. ``victron_wide``: the
    GX's firmware has register 2722 (W) beside 2706 (100 W).
    """

    solaredge_committed: bool = False
    solaredge_commit_s: float = DEFAULT_COMMIT_S
    solaredge_meter: bool = True
    solaredge_meter_option: str = GRID_OPTION
    victron_grid_unit: int = DEFAULT_GRID_UNIT
    victron_wide: bool = True
    victron_max_feed_in_w: int = victron_reg.NO_LIMIT
    victron_loop_s: float = DEFAULT_LOOP_S
    goodwe_prefix: str | None = None
    """GoodWe inverter n answers UDP 8899 at ``<prefix>.<n>`` (None: a free random 127.x.y.z)."""
    goodwe_loop_s: float = GOODWE_LOOP_S


def build_vendor_units(
    site: SimSite,
    *,
    first_inverter_unit_id: int,
    options: FamilyOptions,
    energy_start_wh: float,
    counters_start_wh: tuple[float, float],
    meter_max_power_w: float,
) -> dict[int, VendorUnit]:
    """The vendor units of ``site`` by unit id (its SunSpec inverters are not among them).

    ``meter_max_power_w`` scales the grid meter served by a SolarEdge inverter, as the SunSpec
    meter's.
    """
    units: dict[int, VendorUnit] = {}
    gx_indices: list[int] = []
    goodwe_group: list[GoodWeUnit] = []
    for index, spec in enumerate(site.scenario.inverters):
        inverter = site.inverters[index]
        unit_id = first_inverter_unit_id + index
        unit: VendorUnit
        if spec.family == SUNSPEC:
            continue
        if spec.family == VICTRON:
            gx_indices.append(index)
            continue
        if spec.family == "solaredge":
            unit = SolarEdgeUnit(
                unit_id,
                index,
                inverter,
                committed=options.solaredge_committed,
                commit_s=options.solaredge_commit_s,
                energy_start_wh=energy_start_wh,
            )
            wired = [u for u in units.values() if isinstance(u, SolarEdgeUnit) and u.meter]
            if options.solaredge_meter and not wired:
                unit.wire_meter(
                    SolarEdgeMeterBlocks(
                        site.meter,
                        max_power_w=meter_max_power_w,
                        unit_id=unit_id,
                        counters_start_wh=counters_start_wh,
                        option=options.solaredge_meter_option,
                    )
                )
        elif spec.family == "sungrow_sg":
            unit = SungrowUnit(unit_id, index, inverter, Family.SG, energy_start_wh=energy_start_wh)
        elif spec.family == "sungrow_sh":
            unit = SungrowUnit(unit_id, index, inverter, Family.SH, energy_start_wh=energy_start_wh)
        elif spec.family == "huawei":
            unit = HuaweiUnit(unit_id, index, inverter, energy_start_wh=energy_start_wh)
        elif spec.family == "goodwe":
            unit = GoodWeUnit(
                unit_id,
                index,
                inverter,
                goodwe_group,
                energy_start_wh=energy_start_wh,
                loop_s=options.goodwe_loop_s,
                host=goodwe_host(options.goodwe_prefix, index),
            )
        else:
            raise ValueError(f"inverter {index + 1}: unknown family {spec.family!r}")
        units[unit_id] = unit
    if gx_indices:
        gx = VictronGxUnit(
            gx_indices,
            [site.inverters[i].rated_power_w for i in gx_indices],
            max_feed_in_w=options.victron_max_feed_in_w,
            wide=options.victron_wide,
            loop_s=options.victron_loop_s,
        )
        grid = VictronGridUnit(
            gx, unit_id=options.victron_grid_unit, counters_start_wh=counters_start_wh
        )
        for extra in (gx, grid):
            if extra.unit_id in units:
                raise ValueError(f"unit {extra.unit_id} of the Victron GX clashes with an inverter")
            units[extra.unit_id] = extra
    for unit in units.values():
        site.step_hooks.append(unit.step)
        unit.refresh(site)
    return units
