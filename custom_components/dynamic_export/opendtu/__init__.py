"""OpenDTU (Hoymiles micro-inverters over radio) through the DTU's web API.

Plain asyncio + aiohttp on a session the caller owns (Home Assistant's shared one); this
package must not import Home Assistant.
"""
