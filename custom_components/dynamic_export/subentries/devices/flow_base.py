"""What the steps of every device kind share: the subentry being reconfigured, saving, fields.

The inverter and meter flows (``flow.py``) start with a menu of device kinds; each kind's steps
are a mixin of :class:`DeviceSteps` in a module of its own. Every device is read before it is
saved, and every failure is a form error the user can act on. Reconfiguring a device runs the
same steps with the current values filled in, and must find the same device again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigSubentry,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PORT
from homeassistant.helpers import selector

from ...const import CONF_UNIT_ID
from ...selectors import number_selector

_LOGGER = logging.getLogger(__name__)

MAX_RATING_W = 100_000


def dropdown(options: list[str], key: str | None = None, *, custom: bool = False) -> Any:
    """A drop-down of ``options`` (translated under ``key``; ``custom``: typing allowed)."""
    config = selector.SelectSelectorConfig(
        options=options, mode=selector.SelectSelectorMode.DROPDOWN, custom_value=custom
    )
    if key is not None:
        config["translation_key"] = key
    return selector.SelectSelector(config)


PASSWORD = selector.TextSelector(
    selector.TextSelectorConfig(type=selector.TextSelectorType.PASSWORD)
)
RATING_RANGE = (1, MAX_RATING_W)
RATING_WATTS = number_selector(*RATING_RANGE, 1, "W", checked_by_step=True)
"""An inverter's rated power; the step checks ``RATING_RANGE`` (see ``validation``)."""


class DeviceSteps(ConfigSubentryFlow):
    """What every kind's steps share: the subentry being reconfigured, and saving."""

    is_meter: bool
    probe_timeout_s = 3.0
    """Seconds each request of a set-up check may take (tests shorten it)."""

    def _log_refusal(self, address: str, err: Exception) -> None:
        """Log why the device at ``address`` cannot be used: its form error says to see the log."""
        device = "meter" if self.is_meter else "inverter"
        _LOGGER.warning("The %s at %s cannot be used: %s", device, address, err)

    def _current(self) -> ConfigSubentry | None:
        """The subentry being reconfigured (None while adding)."""
        return self._get_reconfigure_subentry() if self.source == SOURCE_RECONFIGURE else None

    def _address_taken(self, data: Mapping[str, Any]) -> bool:
        """True when another subentry of the site already uses this host, port and unit id."""
        address = (data[CONF_HOST], data[CONF_PORT], data[CONF_UNIT_ID])
        return any(
            (sub.data.get(CONF_HOST), sub.data.get(CONF_PORT), sub.data.get(CONF_UNIT_ID))
            == address
            for sub in self._others()
        )

    def _others(self) -> list[ConfigSubentry]:
        """The site's other subentries."""
        current = self._current()
        return [
            sub
            for sub in self._get_entry().subentries.values()
            if current is None or sub.subentry_id != current.subentry_id
        ]

    def _suggested(self, user_input: Mapping[str, Any] | None) -> dict[str, Any]:
        current = self._current()
        if user_input is not None:
            return dict(user_input)
        return {CONF_NAME: current.title, **current.data} if current else {}

    def _finish(
        self,
        title: str,
        data: dict[str, Any],
        unique_id: str,
        *,
        same_device: bool = True,
    ) -> SubentryFlowResult:
        """Create the subentry, or update it when reconfiguring.

        ``same_device``: reconfiguring must find the device it had (by unique id); devices made
        of Home Assistant entities may instead be pointed at other entities.
        """
        current = self._current()
        if any(sub.unique_id == unique_id for sub in self._others()):
            return self.async_abort(reason="already_configured")
        if current is None:
            return self.async_create_entry(title=title, data=data, unique_id=unique_id)
        if same_device:
            if current.unique_id != unique_id:
                return self.async_abort(reason="different_device")
            return self.async_update_and_abort(self._get_entry(), current, data=data)
        return self.async_update_and_abort(
            self._get_entry(), current, title=title, data=data, unique_id=unique_id
        )
