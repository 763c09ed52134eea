"""Dynamic Export: keep a solar site within its grid limits.

Python runs this file before any module of the package, also when only a plain-Python
package inside it (``core``, ``sunspec``, ``sim``, ...) is imported, as the simulator and
the benchmark do. Home Assistant looks for its entry points here, so they are imported from
``lifecycle`` only where Home Assistant is installed; elsewhere the plain packages import
without it.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("homeassistant") is not None:
    from .lifecycle import (
        CONFIG_SCHEMA,
        PLATFORMS,
        async_remove_entry,
        async_setup,
        async_setup_entry,
        async_unload_entry,
    )

    __all__ = [
        "CONFIG_SCHEMA",
        "PLATFORMS",
        "async_remove_entry",
        "async_setup",
        "async_setup_entry",
        "async_unload_entry",
    ]
