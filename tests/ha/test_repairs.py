"""Repair issues for problems that last, against the simulated site over Modbus TCP."""

from __future__ import annotations

import asyncio

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from custom_components.dynamic_export import site_repairs
from custom_components.dynamic_export.const import DOMAIN
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from .helpers import wait_for
from .sites import inverter_subentry, limiter_subentry, setup_site, site_entry, sunspec_site

# Seconds instead of minutes, so the tests run in real time.
SHORT_S = 2.0


@pytest.fixture(autouse=True)
def short_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("UNREACHABLE_AFTER_S", "FAIL_SAFE_AFTER_S", "NO_METER_AFTER_S"):
        monkeypatch.setattr(site_repairs, name, SHORT_S)


def issues_of(hass: HomeAssistant) -> dict[str, ir.IssueEntry]:
    registry = ir.async_get(hass)
    return {
        issue_id: issue
        for (domain, issue_id), issue in registry.issues.items()
        if domain == DOMAIN and issue.active
    }


def kinds(hass: HomeAssistant, entry_id: str) -> set[str]:
    return {key.removeprefix(f"{entry_id}_") for key in issues_of(hass)}


async def test_device_away_for_long_gets_an_issue_until_it_is_back(
    hass: HomeAssistant, sim: SimulatedSiteServer
) -> None:
    entry = await setup_site(hass, sunspec_site(sim, limiter_subentry(export_limit=1500.0)))
    assert kinds(hass, entry.entry_id) == set()
    sim.set_unit_offline(2, mode="exception")
    await asyncio.sleep(1.5)
    assert not issues_of(hass)  # not at once: a device rebooting is not a problem
    await wait_for(lambda: len(issues_of(hass)) == 1, within_s=SHORT_S + 4, what="the issue")
    (issue,) = issues_of(hass).values()
    assert issue.translation_key == "device_unreachable"
    assert issue.severity is ir.IssueSeverity.ERROR
    placeholders = issue.translation_placeholders or {}
    assert placeholders["device"] == entry.subentries[_inverter_sub(entry, 2)].title
    assert placeholders["site"] == "Home"
    assert "exception 11" in placeholders["error"]
    sim.set_unit_offline(2, False)
    await wait_for(lambda: not issues_of(hass), within_s=4, what="the issue to go")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_meter_away_for_long_is_unreachable_and_a_stuck_fail_safe(
    hass: HomeAssistant, sim: SimulatedSiteServer, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_site(hass, sunspec_site(sim, limiter_subentry(export_limit=1500.0)))
    sim.set_unit_offline(sim.meter_unit_id, mode="exception")
    await wait_for(
        lambda: kinds(hass, entry.entry_id) == {"unreachable_meter", "fail_safe"},
        within_s=SHORT_S + 8,  # fail-safe starts once the last reading is 5 s old
        what="both issues",
    )
    fail_safe = issues_of(hass)[f"{entry.entry_id}_fail_safe"]
    placeholders = fail_safe.translation_placeholders or {}
    assert placeholders["reason"] == "the site meter does not answer"
    assert float(placeholders["level"]) == pytest.approx(1500.0)
    # The log line names the site: with two sites, two bare "Fail-safe" lines read the same.
    assert "Home: Fail-safe (meter_unavailable): generation limited to 1500 W" in caplog.text
    # Unloading removes them: a site that is not running is judged afresh when it starts.
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert not issues_of(hass)


@pytest.mark.parametrize(("limit", "raised"), [(1500.0, True), (None, False)])
async def test_missing_meter_is_an_issue_when_it_limits(
    hass: HomeAssistant,
    sim: SimulatedSiteServer,
    caplog: pytest.LogCaptureFixture,
    limit: float | None,
    raised: bool,
) -> None:
    entry = await setup_site(
        hass, site_entry([inverter_subentry(sim, 1), limiter_subentry(export_limit=limit)])
    )
    if raised:
        await wait_for(
            lambda: kinds(hass, entry.entry_id) == {"meter_missing"},
            within_s=SHORT_S + 4,
            what="the missing meter issue",
        )
        issue = issues_of(hass)[f"{entry.entry_id}_meter_missing"]
        assert (issue.translation_placeholders or {})["level"] == "1500"
        assert "Home: No site meter is configured: generation is held to" in caplog.text
    else:
        await asyncio.sleep(SHORT_S + 2)
        assert not issues_of(hass)
    assert await hass.config_entries.async_unload(entry.entry_id)


def _inverter_sub(entry: object, unit_id: int) -> str:
    subs = entry.subentries.values()  # type: ignore[attr-defined]
    return next(s.subentry_id for s in subs if s.data.get("unit_id") == unit_id)
