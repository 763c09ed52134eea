"""A misbehaving server never stops the client: each fault leaves a clear state."""

from __future__ import annotations

import pytest

from custom_components.dynamic_export.core.controls import Controls
from custom_components.dynamic_export.csip.status import CommsState

from .client_harness import Harness
from .server.app import FaultKind

RECEIVED, STARTED = 1, 2


@pytest.fixture
def h(h: Harness) -> Harness:
    """Everything discovery reads is polled every minute."""
    for resource in ("derp", "fsa", "edev", "dcap", "tm"):
        h.state.set_poll_rate(resource, 60)
    return h


@pytest.mark.parametrize(
    ("path", "kind", "resource"),
    [
        ("/derp/1/derc", "malformed", "DERControlList /derp/1/derc"),
        ("/derp/1/derc", "xxe", "DERControlList /derp/1/derc"),
        ("/derp/1/derc", "billion_laughs", "DERControlList /derp/1/derc"),
        ("/derp", "huge", "DERProgramList /derp"),
        ("/derp/1/dderc", "status", "DefaultDERControl /derp/1/dderc"),
        ("/derp/1/dderc", "wrong_namespace", "DefaultDERControl /derp/1/dderc"),
        ("/edev/1/fsa", "wrong_namespace", "FunctionSetAssignmentsList"),
        ("/edev", "malformed", "EndDeviceList"),
        ("/tm", "empty", "Time"),
    ],
)
async def test_bad_answer_keeps_known_controls(
    h: Harness, path: str, kind: FaultKind, resource: str
) -> None:
    control = h.state.add_control("1", duration=900, op_mod_exp_lim_w=800)
    client = h.client()
    assert (await h.run(client)).export_limit == 800.0
    fault = h.server.inject(path, kind, size=2 << 20)
    controls = await h.step(client, 60)
    assert fault.hits >= 1
    assert controls.export_limit == 800.0, "the control in force stays in force"
    assert controls.generation_limit == 10000.0, "and so does the default"
    status = client.status()
    assert status.comms is CommsState.SERVER_ERROR
    assert resource in status.errors, status.errors
    assert status.last_error is not None
    assert status.connected
    h.server.clear_faults()
    await h.step(client, 60)
    assert client.comms is CommsState.OK, client.status().errors
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED]


async def test_xxe_at_first_contact(h: Harness) -> None:
    """An entity-laden DeviceCapability is refused unread; the fixed default applies."""
    h.server.inject("/dcap", "xxe")
    client = h.client(fixed_default=Controls(export_limit=1000.0))
    controls = await h.run(client)
    assert controls == Controls(export_limit=1000.0)
    status = client.status()
    assert status.comms is CommsState.SERVER_ERROR
    assert "DOCTYPE" in status.errors["DeviceCapability"]
    assert [r.path for r in h.server.requests] == ["/dcap"]
    h.server.clear_faults()
    await h.step(client, 60)
    assert client.comms is CommsState.OK


async def test_dcap_error_uses_known_links(h: Harness) -> None:
    """A failing DeviceCapability poll does not stop the polls below it."""
    client = h.client()
    await h.run(client)
    h.server.inject("/dcap", "status", status=500)
    control = h.state.add_control("1", duration=300, op_mod_exp_lim_w=900)
    controls = await h.step(client, 60)
    assert controls.export_limit == 900.0
    assert client.comms is CommsState.SERVER_ERROR
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED]


async def test_connection_dropped(h: Harness) -> None:
    """A server closing connections without answering reads as unreachable."""
    client = h.client()
    await h.run(client)
    h.server.inject("/derp*", "drop")
    await h.step(client, 60)
    assert client.comms is CommsState.UNREACHABLE
    h.server.clear_faults()
    await h.step(client, 60)
    assert client.comms is CommsState.OK


async def test_response_post_retried_then_delivered(h: Harness) -> None:
    """A Response the server fails to take is retried, and sent exactly once."""
    fault = h.server.inject("/rsps/*", "status", status=503, times=2)
    control = h.state.add_control("1", duration=900, op_mod_exp_lim_w=800)
    client = h.client()
    await h.run(client)
    assert fault.hits >= 1
    assert h.state.response_statuses(control.mrid) == []
    for _ in range(4):
        await h.step(client, 30)
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED]


async def test_response_rejected_is_not_repeated(h: Harness) -> None:
    """A Response refused with 400 is dropped rather than sent forever."""
    h.server.inject("/rsps/*", "status", status=400)
    control = h.state.add_control("1", duration=900, op_mod_exp_lim_w=800)
    client = h.client()
    await h.run(client)
    posts = len(h.server.requests_to("/rsps/*", "POST"))
    assert posts == 2
    for _ in range(3):
        await h.step(client, 60)
    assert len(h.server.requests_to("/rsps/*", "POST")) == posts
    assert client.status().pending_responses == 0
    assert h.state.response_statuses(control.mrid) == []


async def _derc_request_times(h: Harness, seconds: int) -> list[float]:
    """Run the client second by second; when it asked for the DERControlList."""
    client = h.client()
    await h.run(client)
    start = h.clock.t
    for _ in range(seconds):
        await h.step(client, 1)
    return [r.time - start for r in h.server.requests_to("/derp/1/derc") if r.time >= start]


async def test_retry_after_is_waited_out(h: Harness) -> None:
    """HTTP 429 with Retry-After: the resource is not asked for again before it elapses, and
    then on its own cadence past it (60 s steps: 240 s), not at the moment the refusal ends."""
    h.server.inject("/derp/1/derc", "status", status=429, headers={"Retry-After": "180"}, times=1)
    assert await _derc_request_times(h, 310) == [0.0, 240.0, 300.0]
    assert h.server.requests_to("/derp/1/derc")[0].status == 429


async def test_429_without_retry_after_backs_off_at_the_poll_rate(h: Harness) -> None:
    """With no Retry-After the client retries at its own pace: the poll rate, not faster."""
    h.server.inject("/derp/1/derc", "status", status=429, times=1)
    assert await _derc_request_times(h, 130) == [0.0, 60.0, 120.0]


async def test_503_with_retry_after_is_not_retried_at_once(h: Harness) -> None:
    """A 5xx is normally retried within the request; not when the server says when to return."""
    client = h.client()
    await h.run(client)
    fault = h.server.inject("/derp/1/derc", "status", status=503, headers={"Retry-After": "120"})
    start = h.clock.t
    await h.step(client, 60)
    h.server.clear_faults()
    for _ in range(190):
        await h.step(client, 1)
    assert fault.hits == 1
    times = [r.time - start for r in h.server.requests_to("/derp/1/derc") if r.time > start]
    assert times == [60.0, 240.0]  # 120 s waited out, then its 60 s cadence: 180 s later
    assert h.server.requests_to("/derp/1/derc")[-1].status == 200


async def test_rate_limited_control_list_keeps_the_default_just_read(h: Harness) -> None:
    """A 429 on a DERControlList does not hide the DefaultDERControl read in the same pass
    (CACTUS P-05/P-06): the default applies at once, the list is asked for after Retry-After
    (on its 60 s cadence: 240 s), and until then the controls last read of it (none here)
    stand."""
    h.server.inject("/derp/1/derc", "status", status=429, headers={"Retry-After": "180"}, times=1)
    control = h.state.add_control("1", start=h.now() + 30, duration=600, op_mod_exp_lim_w=800)
    client = h.client()
    controls = await h.run(client)
    assert controls.export_limit == 1500.0
    start = h.clock.t
    for _ in range(239):
        controls = await h.step(client, 1)
    assert controls.export_limit == 1500.0
    assert h.state.response_statuses(control.mrid) == []
    controls = await h.step(client, 1)
    assert controls.export_limit == 800.0
    assert [r.time - start for r in h.server.requests_to("/derp/1/derc")] == [0.0, 240.0]
