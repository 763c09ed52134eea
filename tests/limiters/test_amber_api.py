"""The Amber client against a fake Amber API on 127.0.0.1 replaying real response shapes."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from custom_components.dynamic_export.limiters.amber_api import (
    AmberAuthError,
    AmberClient,
    AmberRateLimitError,
    AmberResponseError,
    AmberSiteError,
    AmberUnavailableError,
    PriceInterval,
    _parse_reset,
    parse_prices,
    select_site,
)

from .amber_server import TOKEN, FakeAmber, fixture
from .conftest import Clock

SITE_30 = "01J1R7Q9MZ2K8D5X4W3VBN6TGA"
SITE_5 = "01HX3B8N2C7Q4M9R6T1V5K0ZSE"


def make_client(
    session: aiohttp.ClientSession, server: FakeAmber, clock: Clock, **kwargs: object
) -> AmberClient:
    return AmberClient(session, TOKEN, base_url=server.base_url, clock=clock, **kwargs)  # type: ignore[arg-type]


async def test_sites_and_single_active_site(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    sites = await make_client(session, amber, clock).async_get_sites()
    assert [(s.id, s.status, s.interval_length) for s in sites] == [
        (SITE_30, "active", 30),
        ("01GB4T7W2N8P3H6Q9X5C1M0YRD", "closed", 30),
    ]
    assert sites[0].channels == ("general", "feedIn")
    assert select_site(sites).id == SITE_30  # the closed site does not count
    assert amber.requests[0].authorization == f"Bearer {TOKEN}"
    assert amber.requests[0].path == "/v1/sites"


def test_site_selection_errors() -> None:
    from custom_components.dynamic_export.limiters.amber_api import parse_sites

    data = fixture("sites.json")
    data[1]["status"] = "active"
    sites = parse_sites(data)
    with pytest.raises(AmberSiteError, match="several active sites"):
        select_site(sites)
    assert select_site(sites, "01GB4T7W2N8P3H6Q9X5C1M0YRD").status == "active"
    with pytest.raises(AmberSiteError, match="not in this account"):
        select_site(sites, "01NOPE")
    with pytest.raises(AmberSiteError, match="no active site"):
        select_site(parse_sites([{**data[0], "status": "closed"}]))


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_token_is_an_auth_error(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock, status: int
) -> None:
    amber.reply(status, b'{"message":"Unauthorized"}')
    client = make_client(session, amber, clock)
    with pytest.raises(AmberAuthError) as err:
        await client.async_get_sites()
    assert TOKEN not in str(err.value)


async def test_wrong_token_is_an_auth_error(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    client = AmberClient(session, "psk_wrong", base_url=amber.base_url, clock=clock)
    with pytest.raises(AmberAuthError):
        await client.async_get_current_prices(SITE_30)


async def test_current_prices_keep_feed_in_only(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    prices = await make_client(session, amber, clock).async_get_current_prices(
        SITE_30, next_intervals=12, resolution=30
    )
    assert amber.requests[-1].path == f"/v1/sites/{SITE_30}/prices/current"
    assert amber.requests[-1].query == {"next": "12", "resolution": "30"}
    assert {p.channel for p in prices} == {"feedIn"}
    assert len(prices) == 8
    current = prices[2]
    # startTime 02:00:01Z is normalised to the boundary, so intervals tile without gaps.
    assert current.start == datetime(2025, 1, 15, 2, 0, tzinfo=UTC)
    assert current.end == datetime(2025, 1, 15, 2, 30, tzinfo=UTC)
    assert all(a.end == b.start for a, b in itertools.pairwise(prices))
    assert (current.kind, current.per_kwh, current.spot_per_kwh) == ("current", -4.40911, 3.9816)
    assert (current.descriptor, current.estimate) == ("veryLow", False)
    assert prices[3].per_kwh == 0.0
    assert prices[3].kind == "forecast"
    assert prices[0].kind == "actual"
    assert prices[0].estimate is None


def test_price_interval_round_trip() -> None:
    interval = parse_prices(fixture("prices_5min.json"))[2]
    assert PriceInterval.from_dict(interval.to_dict()) == interval
    with pytest.raises(ValueError, match="malformed"):
        PriceInterval.from_dict({"start": "2025-01-15T02:10:00+00:00"})


def test_malformed_feed_in_item_rejects_the_answer() -> None:
    data = fixture("prices_30min.json")
    index = next(i for i, item in enumerate(data) if item["channelType"] == "feedIn")
    del data[index]["perKwh"]
    with pytest.raises(AmberResponseError, match=f"item {index} .*perKwh"):
        parse_prices(data)
    # A broken item of another channel does not matter to the feed-in limiter.
    data = fixture("prices_30min.json")
    del data[0]["perKwh"]
    assert len(parse_prices(data)) == 8
    with pytest.raises(AmberResponseError, match="not a list"):
        parse_prices({"prices": []})


def test_out_of_range_duration_is_a_response_error() -> None:
    """A duration no datetime can hold (OverflowError) is a bad answer like any other."""
    data = fixture("prices_30min.json")
    index = next(i for i, item in enumerate(data) if item["channelType"] == "feedIn")
    data[index]["duration"] = 10**13
    with pytest.raises(AmberResponseError, match=f"item {index} "):
        parse_prices(data)


async def test_malformed_json_is_a_response_error(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    amber.reply(200, b'[{"type": "CurrentInterval", "perKwh": 2.1')
    with pytest.raises(AmberResponseError, match="not valid JSON"):
        await make_client(session, amber, clock).async_get_current_prices(SITE_30)


async def test_server_error_and_timeout_are_unavailable(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    client = make_client(session, amber, clock, timeout=0.2)
    amber.reply(503, b"Service Unavailable")
    with pytest.raises(AmberUnavailableError, match="HTTP 503"):
        await client.async_get_current_prices(SITE_30)
    amber.reply(200, delay=1.0)
    with pytest.raises(AmberUnavailableError, match="in time"):
        await client.async_get_current_prices(SITE_30)


async def test_connection_refused_is_unavailable(
    session: aiohttp.ClientSession, amber_factory: Callable[..., Awaitable[FakeAmber]], clock: Clock
) -> None:
    await amber_factory()  # enables loopback sockets
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = AmberClient(session, TOKEN, base_url=f"http://127.0.0.1:{port}/v1", clock=clock)
    with pytest.raises(AmberUnavailableError, match="cannot reach Amber"):
        await client.async_get_sites()


async def test_429_backs_off_until_reset(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    client = make_client(session, amber, clock)
    amber.reply(429, b"{}", headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "120"})
    start = clock.now
    with pytest.raises(AmberRateLimitError) as err:
        await client.async_get_current_prices(SITE_30)
    assert err.value.retry_at == start + timedelta(seconds=120)
    assert client.blocked_until == start + timedelta(seconds=120)
    sent = len(amber.requests)
    for seconds in (1, 60, 58):  # up to 1 s before the reset
        clock.advance(seconds=seconds)
        with pytest.raises(AmberRateLimitError):
            await client.async_get_current_prices(SITE_30)
    assert len(amber.requests) == sent  # nothing reached the server
    clock.advance(seconds=1)
    assert len(await client.async_get_current_prices(SITE_30)) == 8
    assert len(amber.requests) == sent + 1
    assert client.rate_limit_remaining == 42
    assert client.blocked_until is None


async def test_429_without_reset_header_backs_off_a_minute(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    client = make_client(session, amber, clock)
    amber.reply(429, b"{}")
    with pytest.raises(AmberRateLimitError) as err:
        await client.async_get_sites()
    assert err.value.retry_at == clock.now + timedelta(seconds=60)


async def test_remaining_zero_blocks_before_a_429(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    client = make_client(session, amber, clock)
    amber.reply(200, headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "30"})
    await client.async_get_sites()
    with pytest.raises(AmberRateLimitError):
        await client.async_get_sites()
    assert len(amber.requests) == 1


async def test_own_budget_counts_calls(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    client = make_client(session, amber, clock, max_calls=3)
    for _ in range(3):
        await client.async_get_sites()
        clock.advance(seconds=10)
    with pytest.raises(AmberRateLimitError) as err:
        await client.async_get_sites()
    assert len(amber.requests) == 3
    # The oldest call leaves the 5-minute window at 02:15.
    assert err.value.retry_at == datetime(2025, 1, 15, 2, 15, tzinfo=UTC)
    clock.now = err.value.retry_at
    await client.async_get_sites()
    assert len(amber.requests) == 4


def test_reset_header_forms() -> None:
    now = datetime(2025, 1, 15, 2, 10, tzinfo=UTC)
    assert _parse_reset("90", now) == now + timedelta(seconds=90)
    assert _parse_reset("1736907300", now) == datetime(2025, 1, 15, 2, 15, tzinfo=UTC)
    assert _parse_reset("Wed, 15 Jan 2025 02:12:00 GMT", now) == datetime(
        2025, 1, 15, 2, 12, tzinfo=UTC
    )
    assert _parse_reset("soon", now) is None
    assert _parse_reset("-5", now) is None
    assert _parse_reset(None, now) is None


async def test_bad_resolution_is_refused_before_sending(
    session: aiohttp.ClientSession, amber: FakeAmber, clock: Clock
) -> None:
    with pytest.raises(ValueError, match="resolution"):
        await make_client(session, amber, clock).async_get_current_prices(SITE_30, resolution=15)
    assert amber.requests == []
