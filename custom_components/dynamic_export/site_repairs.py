"""Repair issues for problems that last: a device away for minutes, no meter, a stuck fail-safe.

The control loop copes with each of these on its own (the fail-safe level holds, the log
says it once), but a home owner looks at Settings → Repairs, not at the log. An issue is
raised only when the problem has lasted (a device rebooting for a firmware update is not
one) and removed as soon as it is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN
from .core.controller import ControlState, FailSafeReason
from .core.cycle import CycleSnapshot, SiteDevices

UNREACHABLE_AFTER_S = 300.0
"""A device that has not answered for this long gets an issue."""
FAIL_SAFE_AFTER_S = 300.0
"""A site held at its fail-safe level for this long (meter away or stale) gets an issue."""
NO_METER_AFTER_S = 120.0
"""A site with inverters but no meter for this long gets an issue (not at once: the meter
is often added a minute after the first inverter)."""

METER_KEY = "meter"

REASON_TEXT = {
    FailSafeReason.METER_UNAVAILABLE: "the site meter does not answer",
    FailSafeReason.METER_STALE: "the site meter's data is too old",
}


@dataclass(slots=True)
class _Streak:
    since: float
    raised: bool = False


class SiteRepairs:
    """Watch each cycle's snapshot and keep the site's repair issues in step with it."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, names: Mapping[str, str]) -> None:
        """``names`` are the devices' names by loop key (the meter as ``"meter"``)."""
        self._hass = hass
        self._entry = entry
        self._names = names
        self._streaks: dict[str, _Streak] = {}

    async def __call__(self, snapshot: CycleSnapshot, devices: SiteDevices) -> None:
        """Called after every control cycle (a coordinator hook)."""
        now = snapshot.time
        site = self._entry.title
        for key, status in snapshot.inverters.items():
            away = status.reading is None
            self._follow(
                f"unreachable_{key}",
                away,
                now,
                UNREACHABLE_AFTER_S,
                "device_unreachable",
                {"device": self._names.get(key, key), "site": site, "error": status.error or ""},
            )
        self._follow(
            f"unreachable_{METER_KEY}",
            snapshot.meter_error is not None,
            now,
            UNREACHABLE_AFTER_S,
            "device_unreachable",
            {
                "device": self._names.get(METER_KEY, "Site meter"),
                "site": site,
                "error": snapshot.meter_error or "",
            },
        )
        reason = snapshot.plan.fail_safe_reason
        self._follow(
            "meter_missing",
            # Only when it costs something: an export limit held with no load assumed.
            reason is FailSafeReason.NO_METER
            and bool(snapshot.inverters)
            and snapshot.merged.export_limit is not None,
            now,
            NO_METER_AFTER_S,
            "meter_missing",
            {"site": site, "level": f"{snapshot.plan.generation_target_w:.0f}"},
        )
        stuck = snapshot.plan.state is ControlState.FAIL_SAFE and reason in REASON_TEXT
        self._follow(
            "fail_safe",
            stuck,
            now,
            FAIL_SAFE_AFTER_S,
            "fail_safe",
            {
                "site": site,
                "reason": REASON_TEXT.get(reason, "") if reason else "",
                "level": f"{snapshot.plan.generation_target_w:.0f}",
            },
        )

    def clear(self) -> None:
        """Remove every issue this site raised (it is unloading: they are judged afresh)."""
        for name, streak in self._streaks.items():
            if streak.raised:
                ir.async_delete_issue(self._hass, DOMAIN, self._issue_id(name))
        self._streaks.clear()

    def _follow(
        self,
        name: str,
        present: bool,
        now: float,
        after_s: float,
        translation_key: str,
        placeholders: dict[str, str],
    ) -> None:
        streak = self._streaks.get(name)
        if not present:
            if streak is not None:
                del self._streaks[name]
                if streak.raised:
                    ir.async_delete_issue(self._hass, DOMAIN, self._issue_id(name))
            return
        if streak is None:
            streak = self._streaks[name] = _Streak(now)
        if streak.raised or now - streak.since < after_s:
            return
        streak.raised = True
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            self._issue_id(name),
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=translation_key,
            translation_placeholders={
                **placeholders,
                "minutes": f"{(now - streak.since) / 60:.0f}",
            },
        )

    def _issue_id(self, name: str) -> str:
        return f"{self._entry.entry_id}_{name}"
