"""Powerwall client: certificate pinning, login and re-login, error mapping."""

from __future__ import annotations

import asyncio

import pytest

from custom_components.dynamic_export.core.errors import (
    DeviceResponseError,
    DeviceUnavailableError,
    InvalidDeviceDataError,
)
from custom_components.dynamic_export.powerwall.client import (
    LOGIN_BACKOFF_S,
    PowerwallClient,
    async_fetch_fingerprint,
    normalise_fingerprint,
)
from custom_components.dynamic_export.powerwall.errors import (
    CertificateChangedError,
    GatewayStoppedError,
    InvalidPasswordError,
    LoginThrottledError,
    NotPowerwallError,
)

from .gateway import PASSWORD, Gateway


def _client(gateway: Gateway, session, clock, **kwargs) -> PowerwallClient:
    options = {"fingerprint": gateway.fingerprint, "port": gateway.port, "timeout_s": 1.0}
    options.update(kwargs)
    password = options.pop("password", PASSWORD)
    return PowerwallClient(session, "127.0.0.1", password, clock=clock, **options)


async def test_fetch_fingerprint_is_the_certificate_sha256(gateway: Gateway, session) -> None:
    seen = await async_fetch_fingerprint(session, "127.0.0.1", port=gateway.port)
    assert seen == gateway.fingerprint
    assert gateway.requests == []  # only the TLS handshake happened


def test_fingerprint_forms() -> None:
    digest = "ab" * 32
    canonical = ":".join(["AB"] * 32)
    assert normalise_fingerprint(digest) == canonical
    assert normalise_fingerprint(canonical.lower()) == canonical
    with pytest.raises(ValueError, match="SHA-256"):
        normalise_fingerprint("ab" * 20)
    with pytest.raises(ValueError, match="hexadecimal"):
        normalise_fingerprint("zz" * 32)


async def test_login_then_cookie_on_every_request(gateway: Gateway, client) -> None:
    aggregates = await client.async_aggregates()
    assert aggregates.site.power_w == -2300.0
    await client.async_soe()
    assert gateway.logins == 1
    sent = [cookie for _, path, cookie in gateway.requests if path != "/api/login/Basic"]
    assert sent
    assert all(cookie in gateway.tokens for cookie in sent)


async def test_token_only_in_the_body(gateway: Gateway, client) -> None:
    gateway.set_cookie = False
    assert (await client.async_aggregates()).site.power_w == -2300.0
    assert gateway.logins == 1


async def test_expired_token_logs_in_again_once(gateway: Gateway, client) -> None:
    await client.async_aggregates()
    gateway.expire_tokens()
    results = await asyncio.gather(*(client.async_aggregates() for _ in range(3)))
    assert all(r.site.power_w == -2300.0 for r in results)
    assert gateway.logins == 2  # one re-login shared by the three requests


async def test_a_token_refused_after_login_is_not_retried_forever(gateway: Gateway, client) -> None:
    gateway.overrides["/api/meters/aggregates"] = (401, b'{"code":401}')
    with pytest.raises(DeviceResponseError, match="HTTP 401"):
        await client.async_aggregates()
    assert gateway.login_attempts == 2
    assert gateway.count("/api/meters/aggregates") == 2


async def test_wrong_password_backs_off(gateway: Gateway, session, clock) -> None:
    client = _client(gateway, session, clock, password="wrong")
    with pytest.raises(InvalidPasswordError, match="password was refused"):
        await client.async_aggregates()
    with pytest.raises(InvalidPasswordError):
        await client.async_aggregates()
    assert gateway.login_attempts == 1  # no hammering: the gateway locks the account
    clock.now += LOGIN_BACKOFF_S
    with pytest.raises(InvalidPasswordError):
        await client.async_login()
    assert gateway.login_attempts == 2


async def test_locked_out_login(gateway: Gateway, session, clock) -> None:
    gateway.failed_logins = gateway.lock_after
    with pytest.raises(LoginThrottledError, match="too many failed logins"):
        await _client(gateway, session, clock).async_login()


async def test_stopped_gateway_is_unavailable_not_zero(gateway: Gateway, client) -> None:
    gateway.stopped = True
    with pytest.raises(GatewayStoppedError, match="gateway stopped") as caught:
        await client.async_aggregates()
    assert isinstance(caught.value, DeviceUnavailableError)


async def test_changed_certificate_is_refused(gateway: Gateway, client) -> None:
    pinned = gateway.fingerprint
    await client.async_aggregates()
    seen = await gateway.replace_certificate()
    assert seen != pinned
    with pytest.raises(CertificateChangedError, match="certificate changed") as caught:
        await client.async_aggregates()
    assert (caught.value.pinned, caught.value.seen) == (pinned, seen)
    assert isinstance(caught.value, DeviceUnavailableError)
    assert gateway.requests[-1][1] == "/api/meters/aggregates"  # from before the swap


async def test_malformed_json(gateway: Gateway, client) -> None:
    gateway.overrides["/api/meters/aggregates"] = (200, b'{"site": {"instant_power": ')
    with pytest.raises(InvalidDeviceDataError, match="not JSON"):
        await client.async_aggregates()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"battery": {}}, "expected an object"),
        ({"site": {"energy_exported": 5}}, "instant_power=None"),
        ({"site": {"instant_power": "-300"}}, "not a number"),
        ({"site": {"instant_power": True}}, "not a number"),
        ({"site": {"instant_power": 5e9}}, "implausible"),
        ([1, 2], "expected an object"),
    ],
)
async def test_missing_or_bad_fields(gateway: Gateway, client, payload, message) -> None:
    gateway.aggregates = payload
    with pytest.raises(InvalidDeviceDataError, match=message):
        await client.async_aggregates()


async def test_soe_out_of_range(gateway: Gateway, client) -> None:
    gateway.soe = 140.0
    with pytest.raises(InvalidDeviceDataError, match="not 0-100"):
        await client.async_soe()


async def test_timeout(gateway: Gateway, session, clock) -> None:
    client = _client(gateway, session, clock, timeout_s=0.2)
    await client.async_login()
    gateway.delay_s = 1.0
    with pytest.raises(DeviceUnavailableError, match=r"no answer in 0\.2 s"):
        await client.async_aggregates()


async def test_nothing_listening(session, clock, gateway: Gateway) -> None:
    port = gateway.port
    await gateway.stop()
    with pytest.raises(DeviceUnavailableError, match="cannot connect"):
        await async_fetch_fingerprint(session, "127.0.0.1", port=port)
    client = _client(gateway, session, clock)
    with pytest.raises(DeviceUnavailableError):
        await client.async_login()


async def test_not_a_powerwall(gateway: Gateway, client) -> None:
    gateway.overrides["/api/login/Basic"] = (404, b"Not Found")
    with pytest.raises(NotPowerwallError, match="no Powerwall login"):
        await client.async_login()
    gateway.overrides["/api/login/Basic"] = (200, b'{"hello": "world"}')
    with pytest.raises(NotPowerwallError, match="no token"):
        await client.async_login()


async def test_status_without_din_is_not_a_powerwall(gateway: Gateway, client) -> None:
    assert (await client.async_status()).din.startswith("1232100-")
    gateway.overrides["/api/status"] = (200, b'{"version": "1.0"}')
    with pytest.raises(NotPowerwallError, match="din"):
        await client.async_status()


async def test_plain_http_server_is_unavailable(session, clock, gateway: Gateway) -> None:
    """A server without TLS on the port: the handshake fails, nothing is sent in clear."""
    from aiohttp import web

    app = web.Application()
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(DeviceUnavailableError):
            await async_fetch_fingerprint(session, "127.0.0.1", port=port, timeout_s=1.0)
    finally:
        await runner.cleanup()


def test_bad_arguments(session) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        PowerwallClient(session, "h", "p", fingerprint="00")
    with pytest.raises(ValueError, match="timeout_s"):
        PowerwallClient(session, "h", "p", fingerprint="00" * 32, timeout_s=0)
