"""Checks every form makes on the server, beside its selectors.

Selectors only guide the UI: input over the API (or typed past a hint) reaches the flow
as given. A name, a control interval or a watt limit is checked here, once for every flow,
and a bad value becomes a translated error on its own field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from homeassistant.const import CONF_HOST, CONF_NAME

from .const import CONF_CONTROL_INTERVAL, MAX_CONTROL_INTERVAL, MAX_LIMIT_W, MIN_CONTROL_INTERVAL
from .core.numbers import finite_number


@dataclass
class FormCheck:
    """The field errors of one submitted form, and the placeholders their texts need."""

    errors: dict[str, str] = field(default_factory=dict)
    placeholders: dict[str, str] = field(default_factory=dict)

    def name(
        self, user_input: Mapping[str, Any], key: str = CONF_NAME, taken: Iterable[str] = ()
    ) -> str:
        """The name as stored (stripped); a blank one, or one in ``taken``, is refused.

        A blank title would make a nameless site or limiter whose entities lose their prefix;
        a second part of the site with the same name would make a second device of that name
        whose entity ids end in ``_2``.
        """
        name = str(user_input.get(key) or "").strip()
        if not name:
            self.errors[key] = "name_blank"
        elif name.casefold() in {other.strip().casefold() for other in taken}:
            self.errors[key] = "name_taken"
            self.placeholders["name"] = name
        return name

    def host(self, user_input: Mapping[str, Any], key: str = CONF_HOST) -> str:
        """The host as stored (stripped); a blank one is refused on its own field.

        Without this check a blank host reaches the device client, which says only that
        nothing answers (or, for a GoodWe, refuses it outright).
        """
        host = str(user_input.get(key) or "").strip()
        if not host:
            self.errors[key] = "host_blank"
        return host

    def interval(self, user_input: Mapping[str, Any], key: str = CONF_CONTROL_INTERVAL) -> None:
        """The control interval must be whole seconds within its range.

        Home Assistant's coordinator schedules refreshes on a whole-second grid, so a fraction
        of a second would make cycles run back to back.
        """
        value = finite_number(user_input.get(key))
        if (
            value is None
            or not value.is_integer()
            or not MIN_CONTROL_INTERVAL <= value <= MAX_CONTROL_INTERVAL
        ):
            self.errors[key] = "invalid_interval"
            self.placeholders.update(
                min_interval=str(MIN_CONTROL_INTERVAL), max_interval=str(MAX_CONTROL_INTERVAL)
            )

    def number(
        self,
        user_input: Mapping[str, Any],
        key: str,
        minimum: float,
        maximum: float,
        *,
        whole: bool = False,
    ) -> None:
        """A number field must lie within its range (and be whole, for ports and ids).

        The error is ``<key>_out_of_range``; its text names the range through the
        placeholders ``<key>_min`` and ``<key>_max``, so two fields can fail at once.
        """
        value = finite_number(user_input.get(key))
        if value is None or not minimum <= value <= maximum or (whole and not value.is_integer()):
            self.errors[key] = f"{key}_out_of_range"
            self.placeholders[f"{key}_min"] = f"{minimum:g}"
            self.placeholders[f"{key}_max"] = f"{maximum:g}"

    def limits(self, user_input: Mapping[str, Any], *keys: str) -> None:
        """Each watt limit given must lie from 0 to ``MAX_LIMIT_W``; an empty one is no limit."""
        for key in keys:
            raw = user_input.get(key)
            if raw is None:
                continue
            value = finite_number(raw)
            if value is None or not 0 <= value <= MAX_LIMIT_W:
                self.errors[key] = "limit_out_of_range"
                self.placeholders["max_limit"] = f"{MAX_LIMIT_W:,}"
