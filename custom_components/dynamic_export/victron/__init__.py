"""Victron GX devices (Venus OS) with ESS, over the GX's Modbus TCP server.

The GX is driven as one controllable "inverter" through its ESS *maximum system grid
feed-in* setting (it then curtails the PV inverters it manages itself), and its grid meter
(``com.victronenergy.grid``) is a site meter. Plain asyncio on the shared
``sunspec.connection`` transport; this package must not import Home Assistant.
"""
