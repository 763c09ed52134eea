"""Shared test set-up.

The component is imported here, at collection time, so Home Assistant finds
this repository's ``custom_components`` rather than the test plugin's own.
"""

from __future__ import annotations

import custom_components.dynamic_export  # noqa: F401
