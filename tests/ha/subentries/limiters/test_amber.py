"""Amber limiter in Home Assistant: the flow, its entities, and the end-to-end story."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import (
    SOURCE_REAUTH,
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigSubentryData,
)
from homeassistant.const import CONF_API_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir

from custom_components.dynamic_export.const import (
    CONF_ENABLED,
    CONF_EXPORT_LIMIT,
    CONF_FALLBACK,
    CONF_SITE_ID,
    CONF_THRESHOLD,
    DOMAIN,
    SUBENTRY_AMBER,
)
from custom_components.dynamic_export.limiters.amber import AmberLimiter
from custom_components.dynamic_export.limiters.amber_api import AmberClient
from custom_components.dynamic_export.sim.server import SimulatedSiteServer
from custom_components.dynamic_export.subentries.limiters import setup as limiter_setup

from ....limiters.amber_server import TOKEN, FakeAmber
from ...helpers import next_cycle, wait_for
from ...sites import (
    added_site,
    inverter_subentry,
    meter_subentry,
    setup_site,
    site_entry,
    sunspec_site,
)

SITE_ID = "01J1R7Q9MZ2K8D5X4W3VBN6TGA"


def feed_in_intervals(per_kwh: float, now: datetime | None = None) -> list[dict[str, Any]]:
    """Amber's /prices/current answer around now, all feed-in intervals at ``per_kwh``."""
    now = now or datetime.now(UTC)
    start = now.replace(minute=30 if now.minute >= 30 else 0, second=0, microsecond=0)
    items = []
    for index in range(-1, 8):
        begin = start + timedelta(minutes=30 * index)
        end = begin + timedelta(minutes=30)
        kind = (
            "ActualInterval"
            if index < 0
            else "CurrentInterval"
            if index == 0
            else ("ForecastInterval")
        )
        items.append(
            {
                "type": kind,
                "date": begin.date().isoformat(),
                "duration": 30,
                "startTime": (begin + timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
                "endTime": end.isoformat().replace("+00:00", "Z"),
                "nemTime": (end + timedelta(hours=10)).replace(tzinfo=None).isoformat() + "+10:00",
                "perKwh": per_kwh,
                "renewables": 40.0,
                "spotPerKwh": per_kwh - 2,
                "channelType": "feedIn",
                "spikeStatus": "none",
                "descriptor": "negative" if per_kwh < 0 else "high",
            }
        )
    return items


@pytest.fixture
async def amber(socket_enabled: None, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeAmber]:
    """The fake Amber API on 127.0.0.1, and the integration pointed at it."""
    server = FakeAmber()
    await server.start()
    monkeypatch.setattr(limiter_setup, "AMBER_BASE_URL", server.base_url)
    try:
        yield server
    finally:
        await server.stop()


def amber_subentry(threshold: float = 0.0) -> ConfigSubentryData:
    """An Amber limiter: zero export at or above the threshold."""
    return ConfigSubentryData(
        data={
            CONF_API_TOKEN: TOKEN,
            CONF_SITE_ID: SITE_ID,
            CONF_THRESHOLD: threshold,
            CONF_EXPORT_LIMIT: 0.0,
            CONF_FALLBACK: "limit",
            CONF_ENABLED: True,
        },
        subentry_type=SUBENTRY_AMBER,
        title="Amber",
        unique_id=None,
    )


async def test_flow_checks_the_token_and_picks_the_active_site(
    hass: HomeAssistant, amber: FakeAmber
) -> None:
    """A wrong token is refused; a good one lists sites, the active one is the default."""
    entry = added_site(hass)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_AMBER), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_API_TOKEN: "psk_wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_API_TOKEN: TOKEN}
    )
    assert result["step_id"] == "site"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_SITE_ID: SITE_ID}
    )
    assert result["step_id"] == "settings"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_THRESHOLD: 0, CONF_EXPORT_LIMIT: 0, CONF_FALLBACK: "limit"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (sub,) = entry.subentries.values()
    assert sub.title == "Amber 6305812947"
    assert sub.data[CONF_SITE_ID] == SITE_ID
    assert sub.data[CONF_ENABLED] is True

    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_AMBER),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": sub.subentry_id},
    )
    assert result["step_id"] == "settings"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_THRESHOLD: 5, CONF_EXPORT_LIMIT: 200, CONF_FALLBACK: "none"}
    )
    assert result["reason"] == "reconfigure_successful"
    updated = entry.subentries[sub.subentry_id]
    assert updated.data[CONF_THRESHOLD] == 5
    assert updated.data[CONF_API_TOKEN] == TOKEN


async def test_flow_cannot_connect(hass: HomeAssistant, amber: FakeAmber) -> None:
    """Amber down shows cannot_connect; an account without sites aborts."""
    entry = added_site(hass)
    amber.reply(status=503)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_AMBER), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_API_TOKEN: TOKEN}
    )
    assert result["errors"] == {"base": "cannot_connect"}
    amber.sites = []
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_API_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_sites"


async def test_positive_feed_in_price_stops_export(
    hass: HomeAssistant, sim: SimulatedSiteServer, amber: FakeAmber
) -> None:
    """Paid to export: no limit. The price turns positive: export 0 within the normal time."""
    amber.prices = feed_in_intervals(-5.0)
    entry = sunspec_site(sim, amber_subentry())
    await setup_site(hass, entry)
    assert hass.states.get("sensor.home_export_limit").state == "unknown"
    price = hass.states.get("sensor.amber_feed_in_price")
    assert price is not None
    assert float(price.state) == pytest.approx(0.05)  # HA's sign: positive when you earn
    assert hass.states.get("binary_sensor.amber_limiting_export").state == "off"
    assert hass.states.get("sensor.amber_price_descriptor").state == "negative"
    await wait_for(lambda: sim.site.export_w > 4000, 8, "free export")

    # The next fetch sees a positive price (exporting costs money): reload the prices now.
    amber.prices = feed_in_intervals(3.0)
    runtime = entry.runtime_data
    handle = next(iter(runtime.limiters.values()))
    await handle.limiter.async_refresh(datetime.now(UTC))  # type: ignore[attr-defined]
    await wait_for(lambda: hass.states.get("sensor.home_export_limit").state == "0.0", 3, "limit 0")
    assert hass.states.get("sensor.home_export_limit").attributes["source"] == "Amber"
    assert hass.states.get("binary_sensor.amber_limiting_export").state == "on"
    assert float(hass.states.get("sensor.amber_export_limit_asked").state) == 0
    await wait_for(lambda: sim.site.export_w < 60, 8, "export stopped")


async def test_unreachable_amber_without_prices_applies_fallback_and_repair(
    hass: HomeAssistant, sim: SimulatedSiteServer, amber: FakeAmber
) -> None:
    """No price known and Amber down: the fallback (export limit) and a repair issue."""
    await amber.stop()
    entry = site_entry([inverter_subentry(sim, 1), meter_subentry(sim), amber_subentry()])
    await setup_site(hass, entry)
    assert hass.states.get("sensor.home_export_limit").state == "0.0"
    issues = ir.async_get(hass)
    (sub_id,) = [s.subentry_id for s in entry.subentries.values() if s.title == "Amber"]
    issue = issues.async_get_issue(DOMAIN, f"amber_{sub_id}")
    assert issue is not None
    assert issue.translation_key == "amber_attention"


@pytest.mark.parametrize("where", ["client", "limiter"])
async def test_polling_goes_on_after_an_unexpected_error(
    hass: HomeAssistant,
    amber: FakeAmber,
    freezer: FrozenDateTimeFactory,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """One poll fails in a way nobody foresaw: the next poll still comes, prices update."""
    start = datetime(2025, 1, 15, 2, 10, tzinfo=UTC)
    freezer.move_to(start)
    amber.prices = feed_in_intervals(-5.0, start)
    await setup_site(hass, site_entry([amber_subentry()]))
    assert float(hass.states.get("sensor.amber_feed_in_price").state) == pytest.approx(0.05)

    owner: Any = AmberClient if where == "client" else AmberLimiter
    name = "async_get_current_prices" if where == "client" else "async_refresh"
    original = getattr(owner, name)
    failures: list[str] = []

    async def fails_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append("raised")
            raise ValueError("unexpected")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, fails_once)
    amber.prices = feed_in_intervals(3.0, start)  # what the next successful poll sees

    async def advance(seconds: float) -> None:
        freezer.tick(timedelta(seconds=seconds))
        await next_cycle(hass)  # fires the poll's timer when due, and runs a cycle

    await advance(20 * 60 + 5)  # 02:30:05, the next interval's poll: it fails
    assert failures == ["raised"]
    await advance(60)  # the retry
    await advance(1)  # and a control cycle to show it
    assert float(hass.states.get("sensor.amber_feed_in_price").state) == pytest.approx(-0.03)


async def test_revoked_token_asks_for_a_new_one(
    hass: HomeAssistant, sim: SimulatedSiteServer, amber: FakeAmber
) -> None:
    """Amber refuses the stored token: the site's re-authentication asks for a new token."""
    amber.prices = feed_in_intervals(-5.0)
    revoked = amber_subentry()
    revoked["data"] = {**revoked["data"], CONF_API_TOKEN: "psk_revoked"}
    entry = site_entry([inverter_subentry(sim, 1), meter_subentry(sim), revoked])
    await setup_site(hass, entry)
    assert hass.states.get("sensor.home_export_limit").state == "0.0"  # the fallback holds
    (sub_id,) = [s.subentry_id for s in entry.subentries.values() if s.title == "Amber"]

    def reauth_flows() -> list[Any]:
        return list(entry.async_get_active_flows(hass, {SOURCE_REAUTH}))

    await wait_for(lambda: bool(reauth_flows()), 5, "re-authentication")
    (flow,) = reauth_flows()
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_API_TOKEN: "psk_still_wrong"}
    )
    assert result["errors"] == {CONF_API_TOKEN: "invalid_auth"}
    assert result["description_placeholders"]["device"] == "Amber"
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_API_TOKEN: TOKEN}
    )
    assert result["reason"] == "reauth_successful"
    assert entry.subentries[sub_id].data[CONF_API_TOKEN] == TOKEN
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"amber_{sub_id}") is None
    await wait_for(
        lambda: hass.states.get("sensor.home_export_limit").state == "unknown",
        5,
        "prices again (paid to export: no limit)",
    )
    assert await hass.config_entries.async_unload(entry.entry_id)
