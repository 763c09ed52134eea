"""Fault matrix: the CSIP-AUS utility server (IEEE 2030.5 over mutual TLS) misbehaving.

The server is a limiter's source, not a device the site writes to: what matters is which
limits the site applies while the server misbehaves (the control in force until its end,
then the server's DefaultDERControl, or the configured fallback when the server never sent
one) and what the user sees (``sensor.<name>_server_connection``,
``binary_sensor.<name>_connected``, repair issues, log lines).

Client-level tests drive the real client against the in-repo test server over real mutual
TLS on 127.0.0.1 with a fake clock (``tests/csip/client_harness.py``); Home Assistant tests
run the whole integration with the simulated site.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant

from custom_components.dynamic_export.const import (
    CONF_CA_PEM,
    CONF_CERT_PEM,
    CONF_DCAP_URL,
    CONF_DEFAULT_EXPORT_LIMIT,
    CONF_ENABLED,
    CONF_KEY_PEM,
    CONF_PEN,
    CONF_VERIFY_SERVER,
    SUBENTRY_CSIP,
)
from custom_components.dynamic_export.core.controls import ControlType
from custom_components.dynamic_export.csip import connection
from custom_components.dynamic_export.csip.client import CsipClient
from custom_components.dynamic_export.csip.config import CsipConfig, split_dcap_url
from custom_components.dynamic_export.csip.limiter import CsipLimiter
from custom_components.dynamic_export.csip.selection import Source
from custom_components.dynamic_export.csip.sep2 import discovery
from custom_components.dynamic_export.csip.sep2.tls import client_tls_context
from custom_components.dynamic_export.csip.sep2.transport import Sep2Transport
from custom_components.dynamic_export.csip.status import CommsState
from custom_components.dynamic_export.csip.telemetry import Role, mup_mrid
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from ...csip.client_harness import MEASUREMENTS, TEST_PEN, FakeClock, Harness, make_harness
from ...csip.server.app import CsipTestServer
from ...csip.server.certs import Credentials, CsipPKI
from ...csip.server.fixtures import ServerFactory
from ...csip.server.state import MirrorUsagePoint
from ..helpers import wait_for
from ..sites import setup_site, sunspec_site
from .matrix import Outcome, covers

OUTCOMES: dict[str, Outcome] = {
    "timeout": Outcome(
        site_does=(
            "Keeps applying what the server last said: the control in force until its end "
            "time, then the server's default control; the server is tried again every 60 s"
        ),
        how_fast=(
            "Limits change on time in every cycle (no cycle waits for the server); "
            "unreachable once a request times out (3 tries × 10 s, about 33 s)"
        ),
        user_sees=(
            "`sensor.<name>_server_connection` unreachable (attribute `last_error`), "
            "`binary_sensor.<name>_connected` off; WARNING 'CSIP-AUS server: unreachable'"
        ),
    ),
    "exception": Outcome(
        site_does=(
            "A poll answered 404, 500 or 503 leaves the known controls and default in force. "
            "A Response answered 500/503 is sent again (one answered 4xx is dropped). "
            "Readings answered 500/503 stay buffered and are posted again; on 404 the usage "
            "point is created again and the readings follow"
        ),
        how_fast=(
            "Poll retried at its poll rate (≤ 60 s); Response after 30 s, doubling up to "
            "10 min (Started until the event ends, others 5 tries); readings after 60 s"
        ),
        user_sees=(
            "`sensor.<name>_server_connection` server_error, attribute `errors` names the "
            "resource; WARNING 'CSIP-AUS <resource>: … HTTP <status>' (a lost usage point: "
            "INFO 'The server lost the site usage point; creating it again')"
        ),
    ),
    "disconnect_mid_write": Outcome(
        site_does=(
            "A Response or readings whose connection drops stay queued and are sent again, "
            "in order; DER status is PUT again at once. Nothing is lost; a server that had "
            "already stored it gets one repeat per dropped connection (the same Response, "
            "or the same readings for the same period)"
        ),
        how_fast="DER status: same pass (0.5 s later); Responses and readings: ≤ 60 s later",
        user_sees=(
            "`sensor.<name>_server_connection` unreachable until the next try; WARNING "
            "'CSIP-AUS server: unreachable'"
        ),
    ),
    "slow_reply": Outcome(
        site_does=(
            "Nothing changes for the site: controls start and end on time from the stored "
            "schedule while the client waits; Responses and readings go out as replies come"
        ),
        how_fast=(
            "Limits on time in every cycle (no cycle waits for the server); a reply slower "
            "than 10 s counts as no answer"
        ),
        user_sees="`sensor.<name>_server_connection` stays ok; no log line",
    ),
    "gone_at_start": Outcome(
        site_does=(
            "Applies what was stored from the last run (the control in force, then the "
            "server's default); on a first start the configured default export and import "
            "limits (none if not set). The server's limits take over once it answers"
        ),
        how_fast="From the first control cycle; the server is tried every 60 s",
        user_sees=(
            "`sensor.<name>_server_connection` unreachable, `binary_sensor.<name>_connected` "
            "off, `sensor.<site>_export_limit` with the limiter as source; WARNING 'CSIP-AUS "
            "server: unreachable'"
        ),
    ),
    "back_after_an_hour": Outcome(
        site_does=(
            "During the outage the control in force until its end, then the default. Once "
            "back: new controls apply; Responses queued meanwhile and the buffered readings "
            "are sent, each once"
        ),
        how_fast="Tried every 60 s, never less often; resumes ≤ 60 s after the server is back",
        user_sees=(
            "`sensor.<name>_server_connection` unreachable, then ok; INFO 'CSIP-AUS server "
            "reachable again'"
        ),
    ),
    "frozen_data": Outcome(
        site_does=(
            "An event the server keeps listing after its end stops at its end time and the "
            "default applies (Completed sent once). A server Time that stands still is not "
            "followed: the client keeps counting from the last good Time"
        ),
        how_fast=(
            "The event ends within 1 s of its end time; a stalled Time is noticed at the "
            "next Time poll"
        ),
        user_sees=(
            "`sensor.<name>_active_control` empty once the event ends. Stalled Time: "
            "`sensor.<name>_server_connection` server_error; WARNING 'CSIP-AUS Time: the "
            "server's clock stands still'"
        ),
    ),
    "restart_during_control": Outcome(
        site_does=(
            "The active control keeps applying from storage before the server answers; "
            "no Response is sent twice after the restart"
        ),
        how_fast="From the first control cycle after the start",
        user_sees=(
            "`sensor.<name>_active_control` shows the control's mRID and "
            "`sensor.<site>_export_limit` its limit"
        ),
    ),
    "clock_jump": Outcome(
        site_does=(
            "Controls keep the server's time: a ±1 h jump of the local clock neither ends a "
            "control early nor makes it run late, and polls keep their pace"
        ),
        how_fast=(
            "The control ends within 1 s of its end on the server's clock (≤ 2 cycles in "
            "Home Assistant)"
        ),
        user_sees=(
            "The control stays in `sensor.<name>_active_control`; WARNING 'The local clock "
            "jumped by +3600 s; CSIP-AUS controls keep the server's time', then 'This clock "
            "is … s off the CSIP-AUS server's'"
        ),
    ),
}

RECEIVED, STARTED, COMPLETED = 1, 2, 3
DEFAULT_EXPORT = 1500.0
RETRY_S = connection.RETRY_S


# --- client-level helpers ----------------------------------------------------------------------


@pytest.fixture
async def h(
    csip_server_factory: ServerFactory, csip_pki: CsipPKI, csip_device: Credentials
) -> AsyncIterator[Harness]:
    """The test server (device registered, everything polled every 60 s) on a fake clock."""
    async with make_harness(csip_server_factory, csip_pki, csip_device) as harness:
        harness.registered()
        for resource in ("dcap", "tm", "edev", "der", "fsa", "derp"):
            harness.state.set_poll_rate(resource, 60)
        yield harness


def make_client(
    h: Harness,
    *,
    timeout_s: float = 1.0,
    monotonic: Callable[[], float] | None = None,
    restore: dict[str, Any] | None = None,
) -> CsipClient:
    """A client of the harness's server with a short request time-out."""
    identity, context = client_tls_context(
        h.device.cert_path.read_bytes(),
        h.device.key_path.read_bytes(),
        h.pki.ca_path.read_bytes(),
        verify_server=True,
    )
    base, href = split_dcap_url(h.server.url)
    transport = Sep2Transport(h.session, base, context, timeout_s=timeout_s, retry_delays_s=(0.01,))
    client = CsipClient(
        transport,
        identity,
        CsipConfig(dcap_href=href, pen=TEST_PEN),
        clock=h.clock,
        rng=random.Random(1),
        monotonic=monotonic,
    )
    if restore is not None:
        assert client.restore(restore)
    h.clients.append(client)
    return client


def cycle(h: Harness, client: CsipClient) -> float | None:
    """One control cycle (no network I/O); returns the export limit the schedule asks for.

    After a control ends the applied limit rises to the default at its ramp rate
    (setGradW), so endings are checked on what is asked, not on the ramped value.
    """
    client.tick(h.clock(), MEASUREMENTS)
    client.controls(h.clock())
    return asked(client)


def asked(client: CsipClient) -> float | None:
    target = client.status().contributions[ControlType.EXPORT_LIMIT].target
    assert not isinstance(target, bool)
    return target


def source(client: CsipClient, control: ControlType = ControlType.EXPORT_LIMIT) -> Source | None:
    return client.status().contributions[control].source


def usage_point(h: Harness, role: Role) -> MirrorUsagePoint:
    found = h.state.mup_by_mrid(mup_mrid(h.device.lfdi, role, TEST_PEN))
    assert found is not None
    return found


def reading_periods(h: Harness, role: Role) -> dict[tuple[str, int], int]:
    """How often each (reading mRID, period start) reached the server."""
    seen: dict[tuple[str, int], int] = {}
    for reading in usage_point(h, role).readings():
        key = (
            (reading.value("mRID") or "").upper(),
            int(reading.value("Reading/timePeriod/start") or 0),
        )
        seen[key] = seen.get(key, 0) + 1
    return seen


def warnings_of(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and text in r.getMessage()
    ]


# --- timeout -----------------------------------------------------------------------------------


@covers("timeout")
async def test_no_answer_never_holds_up_the_limits(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that accepts requests and never answers: the control still ends on time."""
    t0 = h.now()
    control = h.state.add_control("1", start=t0, duration=120, op_mod_exp_lim_w=800)
    client = make_client(h, timeout_s=1.0)
    assert (await h.run(client)).export_limit == 800.0
    hanging = h.server.inject("*", "hang")
    h.clock.advance(60)
    began = time.monotonic()
    poll = asyncio.ensure_future(client.run_due())
    await asyncio.sleep(0.3)
    assert hanging.hits >= 1
    assert not poll.done(), "the server holds the request"

    # The control cycle goes on while the request hangs: the control ends at its end time.
    assert cycle(h, client) == 800.0
    h.clock.advance(60)
    cycle_began = time.monotonic()
    now_asked = cycle(h, client)
    assert time.monotonic() - cycle_began < 0.05, "a cycle never waits for the server"
    assert now_asked == DEFAULT_EXPORT
    assert source(client) is Source.DEFAULT

    await poll
    waited = time.monotonic() - began
    assert waited <= 2 * 1.0 + 0.01 + 0.5, "given up after two 1 s tries (HA: 3 × 10 s)"
    status = client.status()
    assert status.comms is CommsState.UNREACHABLE
    assert not status.connected
    assert status.last_error
    assert warnings_of(caplog, "CSIP-AUS server: unreachable")

    # The next try comes 60 s later and finds the server answering again.
    h.server.clear_faults()
    await h.step(client, RETRY_S)
    assert client.comms is CommsState.OK
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, COMPLETED]


# --- error answers -----------------------------------------------------------------------------


@covers("exception")
@pytest.mark.parametrize("status", [404, 500, 503])
async def test_poll_error_keeps_known_controls(
    h: Harness, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    """An error answer to a poll leaves the known control and default in force."""
    control = h.state.add_control("1", duration=900, op_mod_exp_lim_w=800)
    client = make_client(h)
    assert (await h.run(client)).export_limit == 800.0
    fault = h.server.inject("/derp/1/derc", "status", status=status, method="GET")
    later = h.state.add_control("1", start=h.now() + 960, duration=60, op_mod_exp_lim_w=0)
    controls = await h.step(client, 60)
    assert fault.hits >= 1
    assert controls.export_limit == 800.0, "the control in force stays in force"
    assert controls.generation_limit == 10000.0, "and so does the server's default"
    state = client.status()
    assert state.comms is CommsState.SERVER_ERROR
    assert f"HTTP {status}" in state.errors["DERControlList /derp/1/derc"]
    assert warnings_of(caplog, f"HTTP {status}")
    assert h.state.response_statuses(later.mrid) == [], "not seen while the list fails"

    h.server.clear_faults()
    await h.step(client, 60)  # retried at the poll rate
    assert client.comms is CommsState.OK
    assert h.state.response_statuses(later.mrid) == [RECEIVED]
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED]


@covers("exception")
@pytest.mark.parametrize("status", [404, 500, 503])
async def test_response_error_answer(
    h: Harness, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    """A Response answered 5xx is retried with back-off and delivered once; 4xx is dropped."""
    fault = h.server.inject("/rsps/*", "status", status=status, method="POST", times=2)
    control = h.state.add_control("1", duration=900, op_mod_exp_lim_w=800)
    client = make_client(h)
    assert (await h.run(client)).export_limit == 800.0, "the control applies regardless"
    assert h.state.response_statuses(control.mrid) == []
    assert client.status().comms is CommsState.SERVER_ERROR
    assert warnings_of(caplog, f"HTTP {status}")
    if status == 404:
        # Refused for good: both Responses are dropped, not sent forever.
        assert fault.hits == 2
        await h.step(client, 600)
        assert len(h.server.requests_to("/rsps/*", "POST")) == 2
        assert client.status().pending_responses == 0
        return
    assert fault.hits == 1
    await h.step(client, 29)
    assert fault.hits == 1, "nothing before the 30 s back-off"
    await h.step(client, 1)
    assert fault.hits == 2, "tried again after 30 s"
    await h.step(client, 59)
    assert h.state.response_statuses(control.mrid) == []
    await h.step(client, 1)  # then after 60 s
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED]
    assert client.comms is CommsState.OK


def attempts(h: Harness) -> list[int]:
    """The status of every Response POSTed (taken or not), in order."""
    found = (re.search(rb"<status>(\d+)</status>", r.body) for r in h.server.requests_to("/rsps/*"))
    return [int(m.group(1)) for m in found if m is not None]


@covers("exception")
async def test_response_refused_for_long(h: Harness) -> None:
    """A server answering 503 for long: Started is retried until the event ends, the
    others five times, with the back-off capped at 10 min."""
    h.server.inject("/rsps/*", "status", status=503, method="POST")
    control = h.state.add_control("1", duration=3600, op_mod_exp_lim_w=800)
    client = make_client(h)
    tries: list[tuple[int, int]] = []  # (when, status) of every Response POSTed

    def note() -> None:
        tries.extend((h.now(), status) for status in attempts(h)[len(tries) :])

    assert (await h.run(client)).export_limit == 800.0
    note()
    for _ in range(4200 // 10):
        await h.step(client, 10)
        note()
    statuses = [status for _when, status in tries]
    assert statuses.count(RECEIVED) == 5, "given up after five tries"
    assert statuses.count(COMPLETED) == 5
    started = [when for when, status in tries if status == STARTED]
    assert len(started) > 5, "Started retried"
    assert max(started) < control.end, "until the event ends"
    assert max(b - a for a, b in itertools.pairwise(started)) <= 600, "back-off ≤ 10 min"
    assert client.status().pending_responses == 0
    assert client.controls(h.clock()).export_limit == DEFAULT_EXPORT


async def one_period(h: Harness, client: CsipClient) -> int:
    """Run a whole 300 s reading period (cycles every 100 s); returns its start."""
    start = h.now() - h.now() % 300
    await h.run(client)
    for _ in range(3):
        await h.step(client, 100)
    return start


@covers("exception")
@pytest.mark.parametrize("status", [404, 500, 503])
async def test_reading_error_answer(
    h: Harness, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    """Readings answered 5xx stay buffered and are posted again; on 404 the usage point
    is created again and the readings follow."""
    caplog.set_level(logging.INFO)
    client = make_client(h)
    fault = h.server.inject("/mup/*", "status", status=status, method="POST", times=1)
    period = await one_period(h, client)
    assert fault.hits == 1
    site = usage_point(h, Role.SITE)
    if status == 404:
        # The server "lost" the usage point: it is created again and the batch follows.
        assert not warnings_of(caplog, "HTTP 404")
        assert "The server lost the site usage point; creating it again" in caplog.text
        assert [r.status for r in h.server.requests_to("/mup", "POST")] == [201, 201, 201]
        assert set(reading_periods(h, Role.SITE).values()) == {1}
        assert {start for _mrid, start in reading_periods(h, Role.SITE)} == {period}
        assert client.comms is CommsState.OK
        return
    assert site.posts == [], "not taken"
    assert client.status().pending_batches == 2
    assert client.status().comms is CommsState.SERVER_ERROR
    assert warnings_of(caplog, f"HTTP {status}")
    await h.step(client, 59)
    assert site.posts == []
    await h.step(client, 1)
    counts = reading_periods(h, Role.SITE)
    assert counts, "posted 60 s later"
    assert set(counts.values()) == {1}, "each reading once"
    assert {start for _mrid, start in counts} == {period}
    assert client.status().pending_batches == 0
    assert client.comms is CommsState.OK


# --- disconnect mid-write ----------------------------------------------------------------------


@covers("disconnect_mid_write")
@pytest.mark.parametrize("stored", [False, True], ids=["dropped_before", "dropped_after"])
async def test_response_connection_dropped(
    h: Harness, caplog: pytest.LogCaptureFixture, stored: bool
) -> None:
    """The connection drops while a Response is POSTed: it is sent again, in order."""
    fault = h.server.inject("/rsps/*", "drop_after" if stored else "drop", method="POST", times=1)
    control = h.state.add_control("1", duration=900, op_mod_exp_lim_w=800)
    client = make_client(h)
    assert (await h.run(client)).export_limit == 800.0
    assert fault.hits == 1
    assert client.comms is CommsState.UNREACHABLE
    assert warnings_of(caplog, "CSIP-AUS server: unreachable")
    assert h.state.response_statuses(control.mrid) == ([RECEIVED] if stored else [])
    await h.step(client, RETRY_S - 1)
    assert len(h.server.requests_to("/rsps/*", "POST")) == 1, "waits out the back-off"
    await h.step(client, 1)
    statuses = h.state.response_statuses(control.mrid)
    assert list(dict.fromkeys(statuses)) == [RECEIVED, STARTED], "none lost, in order"
    assert len(statuses) == 2 + (fault.hits if stored else 0), "one extra copy per drop at most"
    assert client.comms is CommsState.OK
    await h.step(client, 600)
    assert len(h.state.response_statuses(control.mrid)) == len(statuses), "never again"


@covers("disconnect_mid_write")
@pytest.mark.parametrize("stored", [False, True], ids=["dropped_before", "dropped_after"])
async def test_reading_connection_dropped(h: Harness, stored: bool) -> None:
    """The connection drops while readings are POSTed: the batch is posted again."""
    client = make_client(h)
    fault = h.server.inject("/mup/*", "drop_after" if stored else "drop", method="POST", times=1)
    period = await one_period(h, client)
    assert fault.hits == 1
    assert client.comms is CommsState.UNREACHABLE
    await h.step(client, RETRY_S)
    for role in Role:
        counts = reading_periods(h, role)
        assert {start for _mrid, start in counts} == {period}, "every reading arrived"
        # The site's batch was the one cut off: stored by the server, it arrives twice.
        copies = 2 if stored and role is Role.SITE else 1
        assert set(counts.values()) == {copies}, "one extra copy per dropped connection"
    assert client.status().pending_batches == 0
    assert client.comms is CommsState.OK


@covers("disconnect_mid_write")
@pytest.mark.parametrize("stored", [False, True], ids=["dropped_before", "dropped_after"])
async def test_der_status_connection_dropped(h: Harness, stored: bool) -> None:
    """The connection drops while DERStatus is PUT: PUT again at once (idempotent)."""
    fault = h.server.inject(
        "/edev/*/der/*/ders", "drop_after" if stored else "drop", method="PUT", times=1
    )
    client = make_client(h)
    await h.run(client)
    assert fault.hits == 1
    device = h.state.device_for(h.device)
    assert device is not None
    assert device.der_status is not None, "delivered in the same pass"
    puts = [kind for _der, kind, _body in device.der_puts if kind == "ders"]
    assert len(puts) == (2 if stored else 1)
    assert client.comms is CommsState.OK


# --- slow replies ------------------------------------------------------------------------------


@covers("slow_reply")
async def test_slow_replies_never_delay_the_schedule(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Every reply takes 0.1 s: a control starts and ends on time while passes are under way."""
    t0 = h.now()
    control = h.state.add_control("1", start=t0 + 60, duration=600, op_mod_exp_lim_w=800)
    client = make_client(h, timeout_s=1.0)
    assert (await h.run(client)).export_limit == DEFAULT_EXPORT
    slow = h.server.inject("*", "delay", delay=0.1)
    for moment, expected in ((t0 + 60, 800.0), (t0 + 660, DEFAULT_EXPORT)):
        h.clock.t = moment - 1
        assert cycle(h, client) != expected
        h.clock.t = moment
        poll = asyncio.ensure_future(client.run_due())
        await asyncio.sleep(0.1)
        assert not poll.done(), "a pass is waiting for a slow reply"
        began = time.monotonic()
        assert cycle(h, client) == expected, "on time while the pass waits"
        assert time.monotonic() - began < 0.05, "the cycle does not wait"
        await poll
    assert slow.hits >= 4
    assert client.comms is CommsState.OK
    assert not warnings_of(caplog, "CSIP-AUS")
    await h.run(client)
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, COMPLETED]


# --- gone at start -----------------------------------------------------------------------------


@covers("gone_at_start")
async def test_gone_at_start_with_stored_state(h: Harness) -> None:
    """Server down at start: the stored control applies, then the stored default."""
    control = h.state.add_control("1", duration=600, op_mod_exp_lim_w=800)
    first = make_client(h)
    assert (await h.run(first)).export_limit == 800.0
    saved = json.loads(json.dumps(first.to_dict()))
    await first.async_stop()
    await h.server.stop()

    second = make_client(h, restore=saved)
    assert cycle(h, second) == 800.0, "before any request"
    controls = await h.run(second)
    assert second.comms is CommsState.UNREACHABLE
    assert controls.export_limit == 800.0
    assert controls.generation_limit == 10000.0, "the stored default fills the rest"
    await h.step(second, 600)
    assert cycle(h, second) == DEFAULT_EXPORT
    assert source(second) is Source.DEFAULT
    await h.server.start()
    await h.step(second, RETRY_S)
    assert second.comms is CommsState.OK
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, COMPLETED]


def _csip_data(
    server: CsipTestServer, device: Credentials, pki: CsipPKI, **over: Any
) -> tuple[str, dict[str, Any]]:
    data = {
        CONF_DCAP_URL: server.url,
        CONF_CA_PEM: pki.ca_path.read_text(),
        CONF_VERIFY_SERVER: True,
        CONF_PEN: 12345,
        CONF_CERT_PEM: device.pem.decode(),
        CONF_KEY_PEM: device.key_pem.decode(),
        CONF_ENABLED: True,
    }
    data.update(over)
    return "SAPN", data


def _site(sim: SimulatedSiteServer, title: str, data: dict[str, Any]) -> Any:
    return sunspec_site(
        sim, ConfigSubentryData(data=data, subentry_type=SUBENTRY_CSIP, title=title, unique_id=None)
    )


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    return state.state if state else "missing"


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll every second and retry an unreachable server after 1 s (HA's clock is real)."""
    monkeypatch.setattr(discovery, "MIN_POLL_S", 1)
    monkeypatch.setattr(connection, "RETRY_S", 1)


@covers("gone_at_start")
async def test_gone_at_first_start_applies_the_fallback(
    hass: HomeAssistant,
    sim: SimulatedSiteServer,
    csip_server: CsipTestServer,
    csip_device: Credentials,
    csip_pki: CsipPKI,
    fast_polls: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Never talked to the server and it is down: the configured fallback applies."""
    state = csip_server.state
    state.register_device(csip_device)
    state.set_default_control("1", op_mod_exp_lim_w=1500, set_grad_w=0)  # no ramp
    for resource in ("dcap", "edev", "fsa", "derp", "der"):
        state.set_poll_rate(resource, 1)
    await csip_server.stop()
    title, data = _csip_data(
        csip_server, csip_device, csip_pki, **{CONF_DEFAULT_EXPORT_LIMIT: 2000}
    )
    entry = _site(sim, title, data)
    await setup_site(hass, entry)
    # The first cycle (run by the set-up) already has the fallback.
    assert _state(hass, "sensor.home_export_limit") == "2000.0"
    assert hass.states.get("sensor.home_export_limit").attributes["source"] == "SAPN"
    await wait_for(
        lambda: _state(hass, "sensor.sapn_server_connection") == "unreachable", 5, "unreachable"
    )
    assert _state(hass, "binary_sensor.sapn_connected") == "off"
    assert warnings_of(caplog, "CSIP-AUS server: unreachable")
    await wait_for(lambda: sim.site.export_w < 2060, 10, "export held at the fallback")

    await csip_server.start()
    await wait_for(
        lambda: _state(hass, "sensor.home_export_limit") == "1500.0", 10, "the server's default"
    )
    assert _state(hass, "sensor.sapn_server_connection") == "ok"
    assert _state(hass, "binary_sensor.sapn_connected") == "on"
    await hass.config_entries.async_unload(entry.entry_id)


# --- back after an hour ------------------------------------------------------------------------


@covers("back_after_an_hour")
async def test_back_after_an_hour(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """An hour without the server: tries every minute, resumes within a minute of its return."""
    caplog.set_level(logging.INFO)
    t0 = h.now()
    control = h.state.add_control("1", start=t0, duration=1200, op_mod_exp_lim_w=800)
    client = make_client(h)
    assert (await h.run(client)).export_limit == 800.0
    await h.server.stop()
    down_at = h.now()
    waits: list[float] = []
    while h.now() < down_at + 3600:
        h.clock.advance(10)
        expected = 800.0 if h.now() < t0 + 1200 else DEFAULT_EXPORT
        assert cycle(h, client) == expected, h.now() - t0
        next_at = await client.run_due()
        waits.append((next_at - h.clock()).total_seconds())
        if h.now() >= down_at + 60:  # noticed at the first request, here within a minute
            assert client.comms is CommsState.UNREACHABLE
    assert max(waits) <= RETRY_S, "the back-off is capped at a minute"
    assert client.status().pending_batches >= 2 * 11, "readings buffered meanwhile"

    new = h.state.add_control("1", start=h.now() + 30, duration=600, op_mod_exp_lim_w=300)
    await h.server.start()
    back_at = h.now()
    while client.comms is not CommsState.OK:
        await h.step(client, 10)
        assert h.now() - back_at <= RETRY_S, "resumed within a minute"
    assert "CSIP-AUS server reachable again" in caplog.text
    await h.step(client, 30)
    assert cycle(h, client) == 300.0, "the new control applies"
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, COMPLETED]
    assert h.state.response_statuses(new.mrid) == [RECEIVED, STARTED]
    assert client.status().pending_batches == 0
    counts = reading_periods(h, Role.SITE)
    assert set(counts.values()) == {1}, "each buffered reading once"
    assert len({start for _mrid, start in counts}) >= 12


# --- frozen data -------------------------------------------------------------------------------


@covers("frozen_data")
async def test_event_list_that_no_longer_changes(h: Harness) -> None:
    """The server keeps listing an event long after its end: it ends on time, once."""
    t0 = h.now()
    control = h.state.add_control("1", start=t0, duration=300, op_mod_exp_lim_w=800)
    client = make_client(h)
    assert (await h.run(client)).export_limit == 800.0
    for _ in range(4):
        assert (await h.step(client, 60)).export_limit == 800.0
    h.clock.advance(59)
    assert cycle(h, client) == 800.0
    h.clock.advance(1)
    assert cycle(h, client) == DEFAULT_EXPORT, "ends at its end time"
    assert client.status().active_control is None
    for _ in range(30):  # half an hour of polls that still list it
        await h.step(client, 60)
        assert asked(client) == DEFAULT_EXPORT
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, COMPLETED]
    assert client.comms is CommsState.OK


@covers("frozen_data")
async def test_stalled_server_time_is_not_followed(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """The server's Time stands still: the control still ends at its end time."""
    t0 = h.now()
    control = h.state.add_control("1", start=t0, duration=600, op_mod_exp_lim_w=800)
    client = make_client(h)
    assert (await h.run(client)).export_limit == 800.0
    h.state.stall_time()
    for _ in range(9):
        assert (await h.step(client, 60)).export_limit == 800.0
    await h.step(client, 59)
    assert cycle(h, client) == 800.0
    h.clock.advance(1)
    assert cycle(h, client) == DEFAULT_EXPORT, "ends at its end time"
    await h.run(client)
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, COMPLETED]
    status = client.status()
    assert status.comms is CommsState.SERVER_ERROR
    assert "stands still" in status.errors["Time"]
    assert warnings_of(caplog, "CSIP-AUS Time: the server's clock stands still")
    # The server's clock runs again: its Time is taken again.
    h.state.time_stalled_at = None
    await h.step(client, 60)
    assert client.comms is CommsState.OK
    assert client.status().server_offset_s == 0


# --- HA restart while a control is active -------------------------------------------------------


@covers("restart_during_control")
async def test_restart_while_a_control_is_active(
    hass: HomeAssistant,
    sim: SimulatedSiteServer,
    csip_server: CsipTestServer,
    csip_device: Credentials,
    csip_pki: CsipPKI,
    fast_polls: None,
) -> None:
    """HA restarts during a control and the server does not answer yet: it keeps applying."""
    state = csip_server.state
    state.register_device(csip_device)
    for resource in ("dcap", "edev", "fsa", "derp", "der"):
        state.set_poll_rate(resource, 1)
    state.add_control(
        "1", start=time.time(), duration=600, mrid="CAFE0002", op_mod_exp_lim_w=300, ramp_tms=0
    )
    title, data = _csip_data(csip_server, csip_device, csip_pki)
    entry = _site(sim, title, data)
    await setup_site(hass, entry)
    await wait_for(lambda: _state(hass, "sensor.home_export_limit") == "300.0", 15, "control")
    await wait_for(lambda: state.response_statuses("CAFE0002") == [1, 2], 10, "started")

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    hanging = csip_server.inject("*", "hang")  # accepts, answers nothing
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    # The first cycle after the start already applies the stored control.
    assert _state(hass, "sensor.home_export_limit") == "300.0"
    assert _state(hass, "sensor.sapn_active_control") == "CAFE0002"
    await wait_for(lambda: hanging.hits >= 1, 5, "the server being asked")
    await wait_for(lambda: sim.site.export_w < 360, 10, "export held by the stored control")
    assert _state(hass, "sensor.home_export_limit") == "300.0"

    csip_server.clear_faults()
    await wait_for(lambda: _state(hass, "sensor.sapn_server_connection") == "ok", 15, "answers")
    await asyncio.sleep(2)  # a few more polls of the control list
    assert _state(hass, "sensor.home_export_limit") == "300.0"
    assert state.response_statuses("CAFE0002") == [1, 2], "nothing sent twice"
    await hass.config_entries.async_unload(entry.entry_id)


# --- clock jump --------------------------------------------------------------------------------


@covers("clock_jump")
@pytest.mark.parametrize("jump", [3600, -3600], ids=["forward", "back"])
async def test_local_clock_jump(h: Harness, caplog: pytest.LogCaptureFixture, jump: int) -> None:
    """The local clock jumps by an hour during a control: it ends at its true end."""
    true_time = FakeClock(h.clock.t)
    h.state.clock = true_time.timestamp  # the server keeps true time
    wall = h.clock

    def advance(seconds: float) -> None:
        true_time.advance(seconds)
        wall.advance(seconds)

    t0 = h.now()
    control = h.state.add_control("1", start=t0, duration=900, op_mod_exp_lim_w=800)
    client = make_client(h, monotonic=lambda: true_time.t - 1e6)
    assert (await h.run(client)).export_limit == 800.0
    advance(300)
    assert (await h.run(client)).export_limit == 800.0
    wall.advance(jump)
    assert cycle(h, client) == 800.0, "not ended by the jump"
    await h.run(client)
    assert warnings_of(caplog, f"The local clock jumped by {jump:+d} s")
    assert warnings_of(caplog, f"This clock is {jump:+d} s off the CSIP-AUS server's")
    assert client.status().clock_drift
    later = h.state.add_control("1", start=t0 + 960, duration=60, op_mod_exp_lim_w=500)
    advance(60)
    await h.run(client)
    assert h.state.response_statuses(later.mrid) == [RECEIVED], "polls keep their pace"
    for _ in range(8):
        advance(60)
        assert (await h.run(client)).export_limit == 800.0, true_time.t - t0
    advance(59)
    assert cycle(h, client) == 800.0, "not ended early"
    advance(1)
    assert cycle(h, client) == DEFAULT_EXPORT, "not run late"
    await h.run(client)
    advance(60)
    assert cycle(h, client) == 500.0, "the next control starts on time"
    await h.run(client)
    advance(60)
    assert cycle(h, client) == DEFAULT_EXPORT
    await h.run(client)
    assert h.state.response_statuses(later.mrid) == [RECEIVED, STARTED, COMPLETED]
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, COMPLETED]
    created = [r.created for r in h.state.responses_for(control.mrid)]
    assert created == [t0, t0, t0 + 900], "stamped in the server's time"


@covers("clock_jump")
@pytest.mark.parametrize("hours", [1, -1], ids=["forward", "back"])
async def test_clock_jump_in_home_assistant(
    hass: HomeAssistant,
    sim: SimulatedSiteServer,
    csip_server: CsipTestServer,
    csip_device: Credentials,
    csip_pki: CsipPKI,
    fast_polls: None,
    caplog: pytest.LogCaptureFixture,
    hours: int,
) -> None:
    """Home Assistant's clock jumps an hour during a control: it keeps applying to its end."""
    state = csip_server.state
    state.register_device(csip_device)
    state.set_default_control("1", op_mod_exp_lim_w=1500, set_grad_w=0)  # no ramp
    for resource in ("dcap", "edev", "fsa", "derp", "der"):
        state.set_poll_rate(resource, 1)
    title, data = _csip_data(csip_server, csip_device, csip_pki)
    entry = _site(sim, title, data)
    await setup_site(hass, entry)
    await wait_for(lambda: _state(hass, "sensor.home_export_limit") == "1500.0", 15, "default")
    end = time.time() + 8
    state.add_control(
        "1", start=time.time(), duration=8, mrid="CAFE0003", op_mod_exp_lim_w=300, ramp_tms=0
    )
    await wait_for(lambda: state.response_statuses("CAFE0003") == [1, 2], 5, "started")
    await wait_for(lambda: _state(hass, "sensor.home_export_limit") == "300.0", 2, "control")

    def jumped() -> datetime:
        return datetime.now(UTC) + timedelta(hours=hours)

    runtime = entry.runtime_data
    limiter = next(
        handle.limiter
        for handle in runtime.limiters.values()
        if isinstance(handle.limiter, CsipLimiter)
    )
    # The fault: this machine's wall clock jumps (the loop's monotonic clock does not).
    runtime.loop.wall_clock = jumped
    limiter.client.server_clock.wall = jumped
    while time.time() < end - 1:
        assert _state(hass, "sensor.home_export_limit") == "300.0", "not ended early"
        assert _state(hass, "sensor.sapn_active_control") == "CAFE0003"
        assert state.response_statuses("CAFE0003") == [1, 2], "not completed early"
        await asyncio.sleep(0.1)
    assert warnings_of(caplog, "local clock jumped")
    await wait_for(lambda: _state(hass, "sensor.home_export_limit") == "1500.0", 3, "the end")
    assert time.time() - end <= 2.5, "ended within two cycles of its end"
    await wait_for(lambda: state.response_statuses("CAFE0003") == [1, 2, 3], 3, "completed")
    await hass.config_entries.async_unload(entry.entry_id)
