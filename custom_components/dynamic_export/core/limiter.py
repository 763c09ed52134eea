"""What the control cycle needs from a limiter."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from .controls import Controls


class Limiter(Protocol):
    """A source of limits, asked once per control cycle.

    ``controls`` must be cheap and must not do I/O: limiters that talk to a
    server fetch in their own tasks and answer from what they already know.
    """

    @property
    def source(self) -> str:
        """Stable label of the limiter, reported as the winner of a control."""
        ...

    @property
    def enabled(self) -> bool:
        """False when the user has switched the limiter off."""
        ...

    def controls(self, now: datetime) -> Controls:
        """Return the controls this limiter asks for at ``now`` (UTC)."""
        ...
