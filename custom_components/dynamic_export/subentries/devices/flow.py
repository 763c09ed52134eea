"""Add or reconfigure an inverter or the site meter: a menu of device kinds, then its steps.

Each kind's steps live in a module of their own (``flow_sunspec``, ``flow_solaredge``,
``flow_solaredge_meter``, ``flow_opendtu``, ``flow_powerwall``, ``flow_ha_entities``); these
flows only offer the kinds and route a reconfigure to the steps of the kind the device was
added as.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from homeassistant.config_entries import SubentryFlowResult

from ...const import (
    CONF_KIND,
    DEFAULT_INVERTER_UNIT_ID,
    DEFAULT_METER_UNIT_ID,
    DEVICE_KINDS_INVERTER,
    DEVICE_KINDS_METER,
    KIND_SUNSPEC_TCP,
    SUBENTRY_METER,
)
from .flow_goodwe import GoodWeSteps
from .flow_ha_entities import HaEntityInverterSteps, HaEntityMeterSteps
from .flow_huawei import HuaweiSteps
from .flow_opendtu import OpenDtuSteps
from .flow_powerwall import PowerwallSteps
from .flow_solaredge import SolarEdgeSteps
from .flow_solaredge_meter import SolarEdgeMeterSteps
from .flow_sungrow import SungrowSteps
from .flow_sunspec import SunSpecRtuSteps, SunSpecTcpSteps
from .flow_victron import VictronGxSteps, has_victron_gx


class _KindMenu(SunSpecTcpSteps):
    """Reconfiguring goes to the steps of the device's kind (SunSpec TCP when none is stored)."""

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change a device already added (it must stay the same device), by its kind's steps."""
        kind = self._get_reconfigure_subentry().data.get(CONF_KIND, KIND_SUNSPEC_TCP)
        if kind != KIND_SUNSPEC_TCP:
            step: Callable[[], Awaitable[SubentryFlowResult]] = getattr(self, f"async_step_{kind}")
            return await step()
        return await self._async_step_tcp("reconfigure", user_input)


class InverterSubentryFlow(
    _KindMenu,
    SunSpecRtuSteps,
    SolarEdgeSteps,
    SungrowSteps,
    HuaweiSteps,
    GoodWeSteps,
    VictronGxSteps,
    OpenDtuSteps,
    HaEntityInverterSteps,
):
    """Add an inverter of a kind the menu offers: SunSpec, a vendor family, OpenDTU, entities."""

    default_unit_id = DEFAULT_INVERTER_UNIT_ID
    fallback_title = "SunSpec inverter"
    is_meter = False

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Choose the kind of inverter; a site driven through a Victron GX takes no other."""
        if has_victron_gx(self._get_entry().subentries.values()):
            return self.async_abort(reason="site_has_victron_gx")
        return self.async_show_menu(step_id="user", menu_options=list(DEVICE_KINDS_INVERTER))


class MeterSubentryFlow(
    _KindMenu,
    SunSpecRtuSteps,
    SolarEdgeMeterSteps,
    PowerwallSteps,
    VictronGxSteps,
    HaEntityMeterSteps,
):
    """Add the site meter at the grid connection point (one per site)."""

    default_unit_id = DEFAULT_METER_UNIT_ID
    fallback_title = "SunSpec meter"
    is_meter = True

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Choose the kind of meter, unless the site has one (a device taken is another abort)."""
        entry = self._get_entry()
        if any(sub.subentry_type == SUBENTRY_METER for sub in entry.subentries.values()):
            return self.async_abort(reason="site_has_meter")
        return self.async_show_menu(step_id="user", menu_options=list(DEVICE_KINDS_METER))
