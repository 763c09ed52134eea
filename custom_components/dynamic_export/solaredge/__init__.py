"""SolarEdge inverters over Modbus TCP, limited through Enhanced Dynamic Power Control.

Output, energy and status come from the inverter's SunSpec map (models 101-103, read with
``sunspec/``); the limit goes to SolarEdge's own power-control registers, which sit outside
SunSpec. Plain asyncio on the shared ``sunspec.connection`` transport; this package must not
import Home Assistant.
"""
