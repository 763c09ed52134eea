"""The Amber limiter over the real client and a fake Amber API on 127.0.0.1."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.limiters.amber import (
    AmberAttention,
    AmberFallback,
    AmberLimiter,
    AmberReason,
    AmberSettings,
    next_boundary,
)
from custom_components.dynamic_export.limiters.amber_api import AmberClient

from .amber_server import TOKEN, FakeAmber
from .conftest import Clock

SITE_30 = "01J1R7Q9MZ2K8D5X4W3VBN6TGA"
LIMITED = Controls(export_limit=0.0)
FREE = Controls()


def utc(hour: int, minute: int, second: float = 0) -> datetime:
    """A time on the fixtures' day (2025-01-15, UTC)."""
    return datetime(2025, 1, 15, hour, minute, tzinfo=UTC) + timedelta(seconds=second)


def make_limiter(
    session: aiohttp.ClientSession,
    server: FakeAmber,
    clock: Clock,
    settings: AmberSettings | None = None,
    **kwargs: object,
) -> AmberLimiter:
    client = AmberClient(session, TOKEN, base_url=server.base_url, clock=clock)
    return AmberLimiter("amber", client, settings, **kwargs)  # type: ignore[arg-type]


async def test_30_minute_site_prices_and_boundaries(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    limiter = make_limiter(session, amber, clock)
    next_call = await limiter.async_refresh(utc(2, 10))
    # The site is found first, then prices at its own 30-minute resolution.
    assert [r.path for r in amber.requests] == [
        "/v1/sites",
        f"/v1/sites/{SITE_30}/prices/current",
    ]
    assert amber.requests[1].query == {"next": "8", "resolution": "30"}
    assert next_call == utc(2, 30, 5)  # next boundary + 5 s
    assert limiter.site_id == SITE_30

    # Feed-in perKwh −4.41 c: exporting earns money, so no limit.
    assert limiter.controls(utc(2, 10)) == FREE
    assert limiter.controls(utc(2, 29, 59.999)) == FREE
    status = limiter.status(utc(2, 10))
    assert status.limiting is False
    assert status.reason is AmberReason.PRICE_BELOW_THRESHOLD
    assert status.feed_in_per_kwh == -4.40911
    assert status.feed_in_price == 4.40911  # Home Assistant's sign: positive when earning
    assert status.descriptor == "veryLow"
    assert status.spot_per_kwh == 3.9816
    assert status.interval_end == utc(2, 30)
    assert status.interval_kind == "current"
    assert status.known_until == utc(5, 0)
    assert status.next_refresh == utc(2, 30, 5)
    assert status.needs_attention is False

    # 02:30 exactly 0 c: limited (inclusive threshold), shown as 0 not −0.
    assert limiter.controls(utc(2, 30)) == LIMITED
    zero = limiter.status(utc(2, 45))
    assert zero.limiting is True
    assert zero.reason is AmberReason.PRICE_AT_OR_ABOVE_THRESHOLD
    assert zero.feed_in_price == 0.0
    assert math.copysign(1.0, zero.feed_in_price) == 1.0
    # 03:00 +2.31 c and 03:30 +6.04 c: exporting costs money.
    assert limiter.controls(utc(3, 0)) == LIMITED
    assert limiter.controls(utc(3, 59, 59)) == LIMITED
    assert limiter.status(utc(3, 15)).feed_in_price == -2.31093
    # 04:00 −0.52 c: earning again.
    assert limiter.controls(utc(4, 0)) == FREE


async def test_5_minute_site(
    session: aiohttp.ClientSession,
    amber_factory: Callable[..., Awaitable[FakeAmber]],
    clock: Clock,
) -> None:
    server = await amber_factory(sites="sites_5min.json", prices="prices_5min.json")
    limiter = make_limiter(session, server, clock)
    next_call = await limiter.async_refresh(utc(2, 12))
    assert server.requests[1].query == {"next": "48", "resolution": "5"}
    assert next_call == utc(2, 15, 5)
    assert limiter.controls(utc(2, 14, 59)) == FREE  # −1.20 c
    assert limiter.controls(utc(2, 15)) == LIMITED  # 0 c
    assert limiter.controls(utc(2, 20)) == LIMITED  # +0.85 c
    assert limiter.controls(utc(2, 25)) == FREE  # −2.40 c
    assert limiter.controls(utc(2, 30)) == LIMITED  # +3.90 c
    assert limiter.status(utc(2, 12)).interval_end == utc(2, 15)
    assert limiter.status(utc(2, 12)).estimate is True


async def test_estimated_current_price_on_30_minute_site_refreshes_every_5_minutes(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    for item in amber.prices:
        if item["type"] == "CurrentInterval":
            item["estimate"] = True
    limiter = make_limiter(session, amber, clock)
    assert await limiter.async_refresh(utc(2, 11)) == utc(2, 15, 5)


async def test_threshold_and_limit_are_settings(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    settings = AmberSettings(threshold=3.0, export_limit=1500.0)
    limiter = make_limiter(session, amber, clock, settings)
    await limiter.async_refresh(utc(2, 10))
    assert limiter.controls(utc(2, 30)) == FREE  # 0 c < 3 c
    assert limiter.controls(utc(3, 0)) == FREE  # 2.31 c < 3 c
    assert limiter.controls(utc(3, 30)) == Controls(export_limit=1500.0)  # 6.04 c
    earn_less = make_limiter(session, amber, clock, AmberSettings(threshold=-1.0))
    await earn_less.async_refresh(utc(2, 10))
    assert earn_less.controls(utc(4, 0)) == LIMITED  # −0.52 c ≥ −1 c


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="export_limit"):
        AmberSettings(export_limit=-1.0)
    with pytest.raises(ValueError, match="export_limit"):
        AmberSettings(export_limit=math.nan)
    with pytest.raises(ValueError, match="threshold"):
        AmberSettings(threshold=math.inf)
    with pytest.raises(ValueError, match="resolution"):
        AmberSettings(resolution=15)


async def test_api_down_keeps_forecasts_then_falls_back(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    limiter = make_limiter(session, amber, clock)
    await limiter.async_refresh(utc(2, 10))
    await amber.stop()
    clock.now = utc(2, 30, 5)
    retry = await limiter.async_refresh(clock.now)
    assert retry == utc(2, 30, 35)  # 30 s after a failure
    clock.now = retry
    assert await limiter.async_refresh(clock.now) == utc(2, 31, 35)  # then 60 s
    status = limiter.status(utc(3, 10))
    assert "cannot reach Amber" in (status.last_error or "")
    # Known forecasts still decide, and nothing needs attention yet.
    assert limiter.controls(utc(3, 10)) == LIMITED  # forecast +2.31 c
    assert limiter.controls(utc(4, 10)) == FREE  # forecast −0.52 c
    assert status.interval_kind == "forecast"
    assert status.needs_attention is False
    assert status.last_success == utc(2, 10)
    # Past the last known interval: fallback (limit) and a repair issue.
    assert limiter.controls(utc(5, 0)) == LIMITED
    late = limiter.status(utc(5, 0))
    assert late.reason is AmberReason.NO_PRICE
    assert late.limiting is True
    assert late.attention is AmberAttention.NO_PRICE
    assert late.needs_attention
    assert late.feed_in_price is None
    assert late.known_until is None


async def test_api_down_from_the_start(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    limiter = make_limiter(session, amber, clock)
    # Before the first refresh the fallback applies but nothing is reported yet.
    assert limiter.controls(utc(2, 10)) == LIMITED
    assert limiter.status(utc(2, 10)).needs_attention is False
    await amber.stop()
    await limiter.async_refresh(utc(2, 10))
    assert limiter.controls(utc(2, 10)) == LIMITED
    assert limiter.status(utc(2, 10)).attention is AmberAttention.NO_PRICE


async def test_fallback_none_asks_nothing_but_still_needs_attention(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    limiter = make_limiter(session, amber, clock, AmberSettings(fallback=AmberFallback.NONE))
    await amber.stop()
    await limiter.async_refresh(utc(2, 10))
    assert limiter.controls(utc(2, 10)) == FREE
    status = limiter.status(utc(2, 10))
    assert status.limiting is False
    assert status.needs_attention is True


async def test_refused_token_needs_attention(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    client = AmberClient(session, "psk_revoked", base_url=amber.base_url, clock=clock)
    limiter = AmberLimiter("amber", client)
    assert await limiter.async_refresh(utc(2, 10)) == utc(2, 40)  # 30 min: the user must act
    status = limiter.status(utc(2, 10))
    assert status.attention is AmberAttention.AUTH_FAILED
    assert "psk_revoked" not in (status.last_error or "")
    assert limiter.controls(utc(2, 10)) == LIMITED


async def test_two_active_sites_need_a_choice(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    amber.sites[1]["status"] = "active"
    limiter = make_limiter(session, amber, clock)
    await limiter.async_refresh(utc(2, 10))
    assert limiter.status(utc(2, 10)).attention is AmberAttention.SITE
    chosen = make_limiter(session, amber, clock, site_id=SITE_30)
    await chosen.async_refresh(utc(2, 10))
    assert chosen.status(utc(2, 10)).attention is None


async def test_429_is_honoured(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    limiter = make_limiter(session, amber, clock)
    await limiter.async_refresh(utc(2, 10))
    clock.now = utc(2, 30, 5)
    amber.reply(429, b"{}", headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "200"})
    retry = await limiter.async_refresh(clock.now)
    assert retry == utc(2, 33, 26)  # the reset (+200 s) and a second's margin
    assert limiter.status(clock.now).rate_limited_until == utc(2, 33, 25)
    sent = len(amber.requests)
    clock.now = utc(2, 32)  # called too early: no request leaves
    await limiter.async_refresh(clock.now)
    assert len(amber.requests) == sent
    clock.now = retry
    await limiter.async_refresh(clock.now)
    assert len(amber.requests) == sent + 1
    assert limiter.status(clock.now).last_error is None


async def test_malformed_json_keeps_known_intervals(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    limiter = make_limiter(session, amber, clock)
    await limiter.async_refresh(utc(2, 10))
    amber.reply(200, b"<html>Bad Gateway</html>")
    clock.now = utc(2, 30, 5)
    assert await limiter.async_refresh(clock.now) == utc(2, 30, 35)
    assert "not valid JSON" in (limiter.status(clock.now).last_error or "")
    assert limiter.controls(utc(3, 0)) == LIMITED
    assert limiter.controls(utc(4, 0)) == FREE


async def test_unexpected_error_is_retried_like_an_outage(
    session: aiohttp.ClientSession,
    amber: FakeAmber,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug or an odd answer the client did not foresee must not end the polling."""
    limiter = make_limiter(session, amber, clock)
    await limiter.async_refresh(utc(2, 10))
    fetch = AmberClient.async_get_current_prices

    async def broken(*args: object, **kwargs: object) -> list[object]:
        raise KeyError("perKwh")

    monkeypatch.setattr(AmberClient, "async_get_current_prices", broken)
    clock.now = utc(2, 30, 5)
    retry = await limiter.async_refresh(clock.now)
    assert retry == utc(2, 30, 35)  # 30 s, as after an outage
    clock.now = retry
    assert await limiter.async_refresh(clock.now) == utc(2, 31, 35)  # then 60 s
    assert "KeyError" in (limiter.status(clock.now).last_error or "")
    assert limiter.controls(utc(3, 10)) == LIMITED  # the known forecasts still decide
    monkeypatch.setattr(AmberClient, "async_get_current_prices", fetch)
    clock.now = utc(2, 31, 35)
    assert await limiter.async_refresh(clock.now) == utc(3, 0, 5)
    assert limiter.status(clock.now).last_error is None
    # One line with the traceback for the streak, one when it is over.
    logged = [r for r in caplog.records if r.name.endswith("limiters.amber")]
    assert [r.levelname for r in logged] == ["ERROR", "INFO"]
    assert logged[0].exc_info is not None


async def test_outage_is_logged_once_per_streak(
    session: aiohttp.ClientSession,
    amber: FakeAmber,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = make_limiter(session, amber, clock)
    await limiter.async_refresh(utc(2, 10))
    for _ in range(3):
        amber.reply(503)
        clock.now = await limiter.async_refresh(clock.now)
    await limiter.async_refresh(clock.now)
    logged = [r for r in caplog.records if r.name.endswith("limiters.amber")]
    assert [r.levelname for r in logged] == ["WARNING", "INFO"]


async def test_new_prices_replace_old_forecasts(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    limiter = make_limiter(session, amber, clock)
    await limiter.async_refresh(utc(2, 10))
    assert limiter.controls(utc(3, 0)) == LIMITED
    for item in amber.prices:
        if item["channelType"] == "feedIn" and item["startTime"] == "2025-01-15T03:00:01Z":
            item["perKwh"] = -1.25  # the forecast improved
    await limiter.async_refresh(utc(2, 30, 5))
    assert limiter.controls(utc(3, 0)) == FREE
    # Replaced, not added to: 02:30 … 04:30 remain, once each.
    starts = [item["start"] for item in limiter.to_dict()["intervals"]]
    assert len(starts) == 5
    assert len(set(starts)) == 5


async def test_state_survives_a_restart(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    limiter = make_limiter(session, amber, clock)
    await limiter.async_refresh(utc(2, 10))
    stored = json.loads(json.dumps(limiter.to_dict()))

    await amber.stop()  # Amber is down while Home Assistant restarts
    restarted = make_limiter(session, amber, clock)
    assert restarted.restore(stored, utc(3, 5)) == 4  # 03:00 … 05:00 still ahead
    await restarted.async_refresh(utc(3, 5))
    assert restarted.site_id == SITE_30
    assert restarted.controls(utc(3, 5)) == LIMITED
    assert restarted.controls(utc(4, 5)) == FREE
    assert restarted.status(utc(4, 5)).needs_attention is False

    other_site = make_limiter(session, amber, clock, site_id="01OTHERSITE")
    assert other_site.restore(stored, utc(3, 5)) == 0
    # Fresher prices are never overwritten by stored ones.
    stale = json.loads(json.dumps(stored))
    for item in stale["intervals"]:
        item["per_kwh"] = -50.0
    assert restarted.restore(stale, utc(3, 5)) == 0
    assert restarted.controls(utc(3, 5)) == LIMITED
    broken = make_limiter(session, amber, clock)
    assert broken.restore({"intervals": [{"start": "yesterday"}]}, utc(3, 5)) == 0
    assert broken.status(utc(3, 5)).feed_in_price is None


def test_next_boundary() -> None:
    offset = timedelta(seconds=5)
    assert next_boundary(utc(2, 10), 30, offset) == utc(2, 30, 5)
    assert next_boundary(utc(2, 30, 2), 30, offset) == utc(2, 30, 5)
    assert next_boundary(utc(2, 30, 5), 30, offset) == utc(3, 0, 5)
    assert next_boundary(utc(2, 12), 5, offset) == utc(2, 15, 5)
    assert next_boundary(utc(23, 59), 30, offset) == utc(23, 59) + timedelta(minutes=1, seconds=5)


def test_status_as_dict_is_json() -> None:
    client = AmberClient(None, TOKEN)  # type: ignore[arg-type]
    status = AmberLimiter("amber", client).status(utc(2, 10))
    data = json.loads(json.dumps(status.as_dict()))
    assert data["limiting"] is True
    assert data["reason"] == "no_price"
    assert data["needs_attention"] is False
