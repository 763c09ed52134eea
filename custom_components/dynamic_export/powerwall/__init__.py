"""Tesla Powerwall 2 gateway as the site meter, over its local HTTPS API.

Plain asyncio + aiohttp on a session the caller owns (Home Assistant's shared one); this
package must not import Home Assistant.
"""
