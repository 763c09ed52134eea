"""Run the simulated site from the command line (used by ``scripts/develop``).

Example: ``python -m custom_components.dynamic_export.sim --port 5020 --scenario default``;
``--family solaredge`` (or ``sungrow_sg``, ``sungrow_sh``, ``huawei``, ``victron``, ``goodwe``)
serves the inverters with that vendor's register map instead of SunSpec; a GoodWe inverter n
answers UDP 8899 at ``127.0.88.n`` (``--goodwe-prefix``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from .families import FamilyOptions
from .scenario import FAMILIES, builtin_scenarios
from .server import SimulatedSiteServer

_LOGGER = logging.getLogger("dynamic_export.sim")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m custom_components.dynamic_export.sim",
        description="Simulated solar site: inverters (units 1..N; a Victron GX on unit 100 "
        "with its grid meter on unit 30) and a SunSpec meter (unit 240) on one Modbus TCP port.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5020, help="TCP port (0: any free port)")
    parser.add_argument(
        "--scenario",
        default="default",
        help=f"built-in scenario ({', '.join(builtin_scenarios())}) or a JSON file path",
    )
    parser.add_argument(
        "--inverters", type=int, default=None, help="split the site over this many inverters"
    )
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        default=None,
        help="serve every inverter as this family (default: as the scenario says, SunSpec)",
    )
    parser.add_argument(
        "--solaredge-committed",
        action="store_true",
        help="SolarEdge power control already committed (no 6 s commit at the first set-up)",
    )
    parser.add_argument(
        "--victron-2706-only",
        action="store_true",
        help="a GX firmware without register 2722: the feed-in limit in 100 W steps only",
    )
    parser.add_argument(
        "--goodwe-prefix",
        default="127.0.88",
        help="GoodWe inverter n answers UDP 8899 at PREFIX.n (default 127.0.88: 127.0.88.1, …)",
    )
    parser.add_argument(
        "--single-client",
        action="store_true",
        help="a new connection closes the one before it (a SolarEdge inverter, a Huawei SDongle)",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument("--limit-sf", type=int, default=-2, help="WMaxLimPct_SF (-2 or 0)")
    parser.add_argument("--status-every", type=float, default=5.0, help="seconds between logs")
    parser.add_argument("--debug", action="store_true", help="verbose logging")
    return parser


async def _run(server: SimulatedSiteServer, status_every: float) -> None:
    async with server:
        site = server.site
        _LOGGER.info(
            "scenario %r on %s:%s: %s; SunSpec meter on unit %s",
            site.scenario.name,
            server.host,
            server.port,
            ", ".join(f"{family} on unit {unit}" for family, unit in server.device_units),
            server.meter_unit_id,
        )
        for unit_id, unit in server.vendor_units.items():
            if not unit.indices:
                _LOGGER.info("Victron GX grid meter on unit %s", unit_id)
        if (se_unit := server.solaredge_meter_unit_id) is not None:
            _LOGGER.info("SolarEdge meter 1 (the grid meter) in unit %s", se_unit)
        for unit_id, host in server.goodwe_hosts.items():
            _LOGGER.info("GoodWe inverter of unit %s: UDP %s:8899", unit_id, host)
        while True:
            _LOGGER.info("%s", site.status_line())
            await asyncio.sleep(status_every)


def main(argv: list[str] | None = None) -> None:
    """Entry point; runs until interrupted."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        server = SimulatedSiteServer(
            args.scenario,
            host=args.host,
            port=args.port,
            inverter_count=args.inverters,
            speed=args.speed,
            limit_sf=args.limit_sf,
            family=args.family,
            single_client=args.single_client,
            family_options=FamilyOptions(
                solaredge_committed=args.solaredge_committed,
                victron_wide=not args.victron_2706_only,
                goodwe_prefix=args.goodwe_prefix,
            ),
        )
    except ValueError as err:
        parser.error(str(err))
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(server, args.status_every))


if __name__ == "__main__":
    main()
