"""Per-site storage for state that must outlive a restart (overrides, known prices)."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from .const import DOMAIN, STORE_RATINGS

STORAGE_VERSION = 1
SAVE_DELAY_S = 2.0


class SiteStore:
    """One JSON document per site; parts are written by whoever owns them."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Bind the store to a site's config entry."""
        self._store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}")
        self.data: dict[str, Any] = {}

    async def async_load(self) -> dict[str, Any]:
        """Read what the site saved last time (empty on first start or bad data)."""
        loaded = await self._store.async_load()
        self.data = loaded if isinstance(loaded, dict) else {}
        return self.data

    def schedule_save(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key`` and write the document soon (writes are batched)."""
        self.data[key] = value
        self._store.async_delay_save(lambda: self.data, SAVE_DELAY_S)

    async def async_save(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key`` and write the document now (for rare, important state)."""
        self.data[key] = value
        await self._store.async_save(self.data)

    def rating(self, key: str) -> float | None:
        """An inverter's rated power as last read (None when never read or unreadable)."""
        value = (self.data.get(STORE_RATINGS) or {}).get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
        return None

    def set_rating(self, key: str, watts: float) -> None:
        """Keep an inverter's rating as read, for a start at which it does not answer."""
        if self.rating(key) == watts:
            return
        self.schedule_save(STORE_RATINGS, {**(self.data.get(STORE_RATINGS) or {}), key: watts})

    async def async_flush(self) -> None:
        """Write what is pending now (before the site unloads)."""
        await self._store.async_save(self.data)

    async def async_remove(self) -> None:
        """Delete the file (the site was removed)."""
        await self._store.async_remove()
