"""DERControls from the test server: schedule, responses, ramps, drift, paging, restarts."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from custom_components.dynamic_export.core.controls import Controls, ControlType
from custom_components.dynamic_export.csip.client import CsipClient
from custom_components.dynamic_export.csip.selection import Source
from custom_components.dynamic_export.csip.sep2.codes import EventStatus
from custom_components.dynamic_export.csip.status import CommsState

from .client_harness import MEASUREMENTS, Harness

RECEIVED, STARTED, COMPLETED, OPTED_OUT, CANCELLED, SUPERSEDED = 1, 2, 3, 4, 6, 7
DEFAULT_EXPORT = 1500.0


def target(client: CsipClient, control: ControlType) -> bool | float | None:
    return client.status().contributions[control].target


def source(client: CsipClient, control: ControlType) -> Source | None:
    return client.status().contributions[control].source


async def test_default_control_only(h: Harness) -> None:
    """With no events the program default applies; a default only in a lower-primacy program
    still applies; without any the fixed default does."""
    client = h.client(fixed_default=Controls(import_limit=7000.0))
    controls = await h.run(client)
    assert controls == Controls(
        connect=True,
        energize=True,
        export_limit=DEFAULT_EXPORT,
        generation_limit=10000.0,
        import_limit=7000.0,
    )
    assert source(client, ControlType.EXPORT_LIMIT) is Source.DEFAULT
    assert source(client, ControlType.IMPORT_LIMIT) is Source.FIXED
    assert client.status().active_control is None
    assert not h.state.responses


async def test_export_limit_starts_and_ends(h: Harness) -> None:
    """Received on intake, started at the start, completed at the end, in that order."""
    t0 = h.now()
    control = h.state.add_control("1", start=t0 + 60, duration=300, op_mod_exp_lim_w=800)
    client = h.client()
    controls = await h.run(client)
    assert controls.export_limit == DEFAULT_EXPORT
    assert h.state.response_statuses(control.mrid) == [RECEIVED]
    upcoming = client.status().next_control
    assert upcoming is not None
    assert upcoming.mrid == control.mrid
    assert upcoming.controls.export_limit == 800.0

    controls = await h.step(client, 60)
    assert controls.export_limit == 800.0
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED]
    active = client.status().active_control
    assert active is not None
    assert active.mrid == control.mrid
    assert active.program_mrid == h.state.programs["1"].mrid
    assert active.start is not None
    assert active.start.timestamp() == control.start
    assert active.end is not None
    assert active.end.timestamp() == control.end

    controls = await h.step(client, 300)
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, COMPLETED]
    assert target(client, ControlType.EXPORT_LIMIT) == DEFAULT_EXPORT
    assert client.status().active_control is None
    # Responses are never repeated.
    await h.step(client, 600)
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, COMPLETED]
    records = h.state.responses_for(control.mrid)
    assert [r.created for r in records] == [t0, control.start, control.end]
    h.assert_documents_valid()


async def test_generation_import_and_load_limits(h: Harness) -> None:
    """All four DOE limits come through as site-level watts."""
    h.state.add_control(
        "1",
        duration=600,
        op_mod_gen_lim_w=2000,
        op_mod_imp_lim_w=3000,
        op_mod_load_lim_w=4000,
    )
    client = h.client()
    controls = await h.run(client)
    assert controls.generation_limit == 2000.0
    assert controls.import_limit == 3000.0
    assert controls.load_limit == 4000.0
    assert controls.export_limit == DEFAULT_EXPORT


async def test_connect_and_energize(h: Harness) -> None:
    """opModConnect / opModEnergize false disconnect and de-energise the DER."""
    control = h.state.add_control("1", duration=120, op_mod_connect=False, op_mod_energize=False)
    client = h.client()
    controls = await h.run(client)
    assert controls.connect is False
    assert controls.energize is False
    controls = await h.step(client, 121)
    assert controls.connect is True
    assert controls.energize is True
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, COMPLETED]


async def test_overlap_across_programs(h: Harness) -> None:
    """A better-primacy control supersedes a running one at once (response 7)."""
    h.state.set_poll_rate("derp", 60)
    low = h.state.add_control("2", duration=900, op_mod_exp_lim_w=3000)
    client = h.client()
    controls = await h.run(client)
    assert controls.export_limit == 3000.0
    high = h.state.add_control("1", start=h.now() + 60, duration=300, op_mod_exp_lim_w=1000)
    controls = await h.step(client, 60)
    assert controls.export_limit == 1000.0, "the superseding control applies now"
    assert h.state.response_statuses(low.mrid) == [RECEIVED, STARTED, SUPERSEDED]
    assert h.state.response_statuses(high.mrid) == [RECEIVED, STARTED]
    # When the better control ends, the superseded one does not come back.
    await h.step(client, 300)
    assert target(client, ControlType.EXPORT_LIMIT) == DEFAULT_EXPORT
    assert h.state.response_statuses(low.mrid) == [RECEIVED, STARTED, SUPERSEDED]
    assert h.state.response_statuses(high.mrid) == [RECEIVED, STARTED, COMPLETED]


async def test_cancellation(h: Harness) -> None:
    """A cancelled running control stops at the next poll and is answered with 6."""
    h.state.set_poll_rate("derp", 60)
    control = h.state.add_control("1", duration=900, op_mod_exp_lim_w=800)
    client = h.client()
    assert (await h.run(client)).export_limit == 800.0
    h.state.cancel_control(control.mrid)
    await h.step(client, 60)
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, CANCELLED]
    assert target(client, ControlType.EXPORT_LIMIT) == DEFAULT_EXPORT
    assert source(client, ControlType.EXPORT_LIMIT) is Source.DEFAULT


async def test_cancellation_with_randomisation(h: Harness) -> None:
    """Cancel-with-randomisation ends the control within its randomisation window."""
    h.state.set_poll_rate("derp", 60)
    control = h.state.add_control("1", duration=900, randomize_duration=120, op_mod_exp_lim_w=800)
    client = h.client(seed=7)
    assert (await h.run(client)).export_limit == 800.0
    h.state.cancel_control(control.mrid, randomized=True)
    await h.step(client, 60)
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, CANCELLED]
    ended_at = None
    for second in range(1, 122):
        h.clock.advance(1)
        client.controls(h.clock())
        if source(client, ControlType.EXPORT_LIMIT) is Source.DEFAULT:
            ended_at = second
            break
    assert ended_at is not None, "ended within the randomisation window"
    assert ended_at > 1, "with this seed the control runs on for a while"


async def test_control_vanishes_from_server(h: Harness) -> None:
    """Deletion is not cancellation: the control runs to its end, then completes."""
    h.state.set_poll_rate("derp", 60)
    control = h.state.add_control("1", duration=300, op_mod_exp_lim_w=800)
    client = h.client()
    await h.run(client)
    h.state.remove_control(control.mrid)
    assert (await h.step(client, 60)).export_limit == 800.0
    await h.step(client, 240)
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, COMPLETED]
    assert target(client, ControlType.EXPORT_LIMIT) == DEFAULT_EXPORT


async def test_back_to_back_with_gap_does_not_dip(h: Harness) -> None:
    """A 4 s gap between consecutive controls holds the first value (no dip to the default)."""
    first, second = h.state.add_controls(
        "1", 2, start=h.now(), duration=300, gap=4, op_mod_exp_lim_w=800
    )
    client = h.client()
    assert (await h.run(client)).export_limit == 800.0
    seen = []
    sources = set()
    for _ in range(310):
        h.clock.advance(1)
        client.tick(h.clock(), MEASUREMENTS)
        seen.append(client.controls(h.clock()).export_limit)
        sources.add(source(client, ControlType.EXPORT_LIMIT))
    assert set(seen) == {800.0}
    assert sources == {Source.CONTROL, Source.BRIDGE}, "held across the gap, not the default"
    await client.run_due()
    assert h.state.response_statuses(first.mrid) == [RECEIVED, STARTED, COMPLETED]
    assert h.state.response_statuses(second.mrid) == [RECEIVED, STARTED]


async def test_ramp_by_ramp_tms(h: Harness) -> None:
    """rampTms is hundredths of a second: 1000 moves the limit over 10 s."""
    h.state.add_control("1", start=h.now() + 60, duration=300, op_mod_exp_lim_w=3500, ramp_tms=1000)
    client = h.client()
    await h.run(client)
    assert (await h.step(client, 60)).export_limit == DEFAULT_EXPORT
    h.clock.advance(5)
    assert client.controls(h.clock()).export_limit == pytest.approx(2500.0)
    h.clock.advance(5)
    assert client.controls(h.clock()).export_limit == pytest.approx(3500.0)


async def test_ramp_by_set_grad_w(h: Harness) -> None:
    """Without rampTms the default's setGradW (28 = 0.28 %/s of 5 kW = 14 W/s) applies."""
    h.state.add_control("1", start=h.now() + 60, duration=600, op_mod_exp_lim_w=3500)
    client = h.client()
    await h.run(client)
    assert (await h.step(client, 60)).export_limit == DEFAULT_EXPORT
    h.clock.advance(10)
    assert client.controls(h.clock()).export_limit == pytest.approx(DEFAULT_EXPORT + 140.0)
    assert target(client, ControlType.EXPORT_LIMIT) == 3500.0


async def test_ramp_down_starts_from_present_export(h: Harness) -> None:
    """A lower limit bites at once when the site already exports less than the old limit."""
    h.state.add_control("2", duration=900, op_mod_exp_lim_w=6000)
    client = h.client()
    exporting = MEASUREMENTS.__class__(site_power_w=-2000.0, der_power_w=3000.0, rated_w=5000.0)
    assert (await h.run(client, exporting)).export_limit == 6000.0
    h.state.add_control("1", start=h.now() + 300, duration=300, op_mod_exp_lim_w=500)
    controls = await h.step(client, 300, exporting)
    # Starts from the 2000 W actually exported, not from 6000 W.
    assert controls.export_limit == pytest.approx(2000.0)
    h.clock.advance(10)
    client.tick(h.clock(), exporting)
    assert client.controls(h.clock()).export_limit == pytest.approx(2000.0 - 140.0)


async def test_clock_drift(h: Harness) -> None:
    """Five minutes of drift: server time decides what is active; drift is shown."""
    h.state.clock_offset = 300
    server_now = h.now() + 300
    control = h.state.add_control("1", start=server_now, duration=120, op_mod_exp_lim_w=800)
    client = h.client()
    controls = await h.run(client)
    assert controls.export_limit == 800.0, "active by the server's clock, 5 min ahead of ours"
    status = client.status()
    assert status.clock_drift
    assert status.server_offset_s == 300
    assert status.comms is CommsState.OK
    assert [r.created for r in h.state.responses_for(control.mrid)] == [server_now, server_now]
    await h.step(client, 121)
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, COMPLETED]


async def test_clock_behind_server(h: Harness) -> None:
    """Our clock five minutes ahead of the server's: a control is not started early."""
    h.state.clock_offset = -300
    control = h.state.add_control("1", start=h.now(), duration=120, op_mod_exp_lim_w=800)
    client = h.client()
    assert (await h.run(client)).export_limit == DEFAULT_EXPORT
    assert h.state.response_statuses(control.mrid) == [RECEIVED]
    await h.step(client, 299)
    assert source(client, ControlType.EXPORT_LIMIT) is Source.DEFAULT
    assert (await h.step(client, 1)).export_limit == 800.0
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED]
    assert [r.created for r in h.state.responses_for(control.mrid)] == [
        control.start - 300,
        control.start,
    ]


async def test_long_control_list_is_paged(h: Harness) -> None:
    """25 controls, at most 10 per page: all read, each acknowledged once."""
    h.state.max_page_limit = 10
    controls = h.state.add_controls(
        "1", 25, start=h.now() + 600, duration=300, op_mod_exp_lim_w=900
    )
    client = h.client()
    await h.run(client)
    starts = [r.query.get("s") for r in h.server.requests_to("/derp/1/derc", "GET")]
    assert starts == ["0", "10", "20"]
    assert all(h.state.response_statuses(c.mrid) == [RECEIVED] for c in controls)
    upcoming = client.status().next_control
    assert upcoming is not None
    assert upcoming.mrid == controls[0].mrid


async def test_restart_with_server_down(h: Harness) -> None:
    """Stored controls, then the stored default, apply after a restart without the server."""
    control = h.state.add_control("1", duration=600, op_mod_exp_lim_w=800)
    first = h.client()
    assert (await h.run(first)).export_limit == 800.0
    saved = json.loads(json.dumps(first.to_dict()))
    await first.async_stop()
    await h.server.stop()

    second = h.client(restore=saved)
    controls = await h.run(second)
    assert second.comms is CommsState.UNREACHABLE
    assert controls.export_limit == 800.0
    assert controls.generation_limit == 10000.0, "the stored default fills the rest"
    await h.step(second, 600)
    assert target(second, ControlType.EXPORT_LIMIT) == DEFAULT_EXPORT
    assert source(second, ControlType.EXPORT_LIMIT) is Source.DEFAULT
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED]
    # The server comes back: the completion queued meanwhile is delivered, once.
    await h.server.start()
    await h.step(second, 61)
    assert second.comms is CommsState.OK
    assert h.state.response_statuses(control.mrid) == [RECEIVED, STARTED, COMPLETED]


async def test_restore_ignores_other_identity(h: Harness) -> None:
    """State saved for another LFDI is not applied."""
    h.state.add_control("1", duration=600, op_mod_exp_lim_w=800)
    first = h.client()
    await h.run(first)
    saved = first.to_dict()
    saved["lfdi"] = "0" * 40
    other = h.client()
    assert not other.restore(saved)


async def test_control_published_as_superseded_never_starts(h: Harness) -> None:
    """ALL-18: a control the server publishes as superseded (EventStatus 4) while another is
    active is answered "superseded" and never started or applied; the active one holds."""
    h.state.set_poll_rate("derp", 60)
    active = h.state.add_control("2", duration=900, op_mod_exp_lim_w=0)
    client = h.client()
    controls = await h.run(client)
    assert controls.export_limit == 0.0
    # A better program's control: without its status it would win and apply.
    flagged = h.state.add_control(
        "1", duration=600, op_mod_exp_lim_w=5000, status=EventStatus.SUPERSEDED
    )
    for _ in range(120):
        controls = await h.step(client, 1)
        assert controls.export_limit == 0.0, "the site keeps the active control's 0 W"
    assert h.state.response_statuses(flagged.mrid) == [RECEIVED, SUPERSEDED]
    assert h.state.response_statuses(active.mrid) == [RECEIVED, STARTED]
    assert [c.mrid for c in client.status().active_controls] == [active.mrid]


async def test_import_limit_a_solar_only_site_cannot_hold_is_said_once(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Load above the solar: the import stays over the cap. One warning (not one per
    cycle) and the status say so; holding it again is said once too."""
    h.state.add_control("1", duration=3600, op_mod_imp_lim_w=0)
    client = h.client()
    over = replace(MEASUREMENTS, site_power_w=1800.0, der_power_w=1000.0)
    await h.run(client, over)
    for _ in range(200):
        await h.step(client, 1, over)
    assert client.controls(h.clock()).import_limit == 0.0
    warnings = [r for r in caplog.records if "cannot hold the utility's import limit" in r.message]
    assert len(warnings) == 1
    assert warnings[0].levelname == "WARNING"
    assert client.status().import_limit_unheld
    held = replace(MEASUREMENTS, site_power_w=20.0, der_power_w=2800.0)
    for _ in range(40):
        await h.step(client, 1, held)
    assert not client.status().import_limit_unheld
    assert (
        len([r for r in caplog.records if "holds the utility's import limit again" in r.message])
        == 1
    )
