"""Mirror usage points and readings: creation, aligned periods, statistics, buffering."""

from __future__ import annotations

from dataclasses import replace

from custom_components.dynamic_export.csip.client import CsipClient
from custom_components.dynamic_export.csip.status import CommsState
from custom_components.dynamic_export.csip.telemetry import (
    Role,
    mup_mrid,
    reading_definitions,
)

from .client_harness import MEASUREMENTS, START, TEST_PEN, Harness
from .server.state import MirrorUsagePoint


def mup(h: Harness, role: Role) -> MirrorUsagePoint:
    found = h.state.mup_by_mrid(mup_mrid(h.device.lfdi, role, TEST_PEN))
    assert found is not None
    return found


def posted(h: Harness, role: Role) -> dict[str, list[tuple[int, int, int]]]:
    """(value, start, duration) of every posted reading, by its description."""
    names = {d.mrid: d.description for d in reading_definitions(h.device.lfdi, role, TEST_PEN)}
    out: dict[str, list[tuple[int, int, int]]] = {}
    for reading in mup(h, role).readings():
        name = names[(reading.value("mRID") or "").upper()]
        value = int(reading.value("Reading/value") or "")
        start = int(reading.value("Reading/timePeriod/start") or "")
        duration = int(reading.value("Reading/timePeriod/duration") or "")
        out.setdefault(name, []).append((value, start, duration))
    return out


SAMPLES = [
    replace(
        MEASUREMENTS,
        site_power_w=100.0,
        site_phase_power_w=(100.0, None, None),
        site_voltage_v=(230.1, 240.0, None),
        site_frequency_hz=49.98,
        der_power_w=1000.0,
        der_reactive_var=-50.0,
    ),
    replace(
        MEASUREMENTS,
        site_power_w=200.0,
        site_phase_power_w=(200.0, None, None),
        site_voltage_v=(231.26, 240.0, None),
        site_frequency_hz=50.02,
        der_power_w=2000.0,
        der_reactive_var=50.0,
    ),
    replace(
        MEASUREMENTS,
        site_power_w=300.0,
        site_phase_power_w=(300.0, None, None),
        site_voltage_v=(229.9, 240.0, None),
        site_frequency_hz=50.0,
        der_power_w=3000.0,
        der_reactive_var=0.0,
    ),
]


async def one_period(h: Harness, client: CsipClient) -> None:
    """Three samples 100 s apart in the period starting at START, then its end."""
    for index, sample in enumerate(SAMPLES):
        await (h.run(client, sample) if index == 0 else h.step(client, 100, sample))
    await h.step(client, 100, replace(MEASUREMENTS, site_power_w=5000.0))


async def test_usage_points_created(h: Harness) -> None:
    """Site and DER usage points with role flags, LFDI/PEN mRIDs and 36 readings each."""
    client = h.client()
    await h.run(client)
    site, der = mup(h, Role.SITE), mup(h, Role.DER)
    assert site.body.value("roleFlags") == "0003"
    assert der.body.value("roleFlags") == "0049"
    assert site.mrid == f"{h.device.lfdi[:22]}030001869F"
    assert der.body.value("deviceLFDI") == h.device.lfdi
    assert len(site.reading_mrids) == len(der.reading_mrids) == 36
    assert client.status().mirror_usage_points == {"site": "/mup/1", "der": "/mup/2"}
    h.assert_documents_valid()
    # Known usage points are found in the list at the next poll, not created again.
    await h.step(client, 301)
    assert len(h.server.requests_to("/mup", "POST")) == 2


async def test_readings_posted_with_statistics_and_multipliers(h: Harness) -> None:
    """Average, minimum and maximum over the UTC-aligned period; V to 0.1, Hz to 0.01."""
    client = h.client()
    await one_period(h, client)
    site = posted(h, Role.SITE)
    period = (START, 300)
    assert site["Site Avg Real Power Net"] == [(200, *period)]
    assert site["Site Max Real Power Net"] == [(300, *period)]
    assert site["Site Min Real Power Net"] == [(100, *period)]
    assert site["Site Avg Real Power Phase A"] == [(200, *period)]
    assert site["Site Avg Voltage Phase AN"] == [(2304, *period)]
    assert site["Site Max Voltage Phase AN"] == [(2313, *period)]
    assert site["Site Min Voltage Phase AN"] == [(2299, *period)]
    assert site["Site Avg Voltage Phase BN"] == [(2400, *period)]
    assert site["Site Avg Frequency"] == [(5000, *period)]
    assert site["Site Max Frequency"] == [(5002, *period)]
    assert site["Site Min Frequency"] == [(4998, *period)]
    assert "Site Avg Real Power Phase B" not in site, "unmeasured phases are not sent"
    der = posted(h, Role.DER)
    assert der["DER Avg Real Power Net"] == [(2000, *period)]
    assert der["DER Min Reactive Power Net"] == [(-50, *period)]
    # The definitions carry the scaling.
    definitions = {
        d.description: d.reading_type() for d in reading_definitions(h.device.lfdi, Role.SITE, 1)
    }
    assert definitions["Site Avg Voltage Phase AN"].power_of_ten_multiplier == -1
    assert definitions["Site Max Frequency"].power_of_ten_multiplier == -2
    assert definitions["Site Avg Real Power Net"].power_of_ten_multiplier == 0
    assert client.status().pending_batches == 0
    h.assert_documents_valid()


async def test_readings_buffered_and_resent(h: Harness) -> None:
    """A failed post keeps the readings; they are sent once the server takes them."""
    client = h.client()
    fault = h.server.inject("/mup/*", "status", method="POST", status=500)
    await one_period(h, client)
    assert fault.hits >= 1
    assert client.status().pending_batches == 2
    assert client.comms is CommsState.SERVER_ERROR
    assert (await client.run_due()) > h.clock(), "the retry waits"
    h.server.clear_faults()
    await h.step(client, 60)
    assert client.status().pending_batches == 0
    assert posted(h, Role.SITE)["Site Avg Real Power Net"] == [(200, START, 300)]
    assert client.comms is CommsState.OK


async def test_readings_survive_outage_and_restart(h: Harness) -> None:
    """Readings gathered while the server is down are saved and sent after a restart."""
    client = h.client()
    await h.run(client, SAMPLES[0])
    await h.server.stop()
    await h.step(client, 300, SAMPLES[1])
    await h.step(client, 300, SAMPLES[2])
    assert client.status().pending_batches == 4
    saved = client.to_dict()
    await client.async_stop()
    await h.server.start()
    restarted = h.client(restore=saved)
    await h.step(restarted, 61)
    site = posted(h, Role.SITE)["Site Avg Real Power Net"]
    assert site == [(100, START, 300), (200, START + 300, 300)]


async def test_lost_usage_point_recreated(h: Harness) -> None:
    """A usage point the server lost (404) is created again and the readings follow."""
    client = h.client()
    await h.run(client, SAMPLES[0])
    h.state.delete_mup(mup_mrid(h.device.lfdi, Role.SITE, TEST_PEN))
    await h.step(client, 300, SAMPLES[1])
    recreated = mup(h, Role.SITE)
    assert recreated.id == 3
    assert posted(h, Role.SITE)["Site Avg Real Power Net"] == [(100, START, 300)]
    assert client.comms is CommsState.OK


async def test_post_rate_from_server(h: Harness) -> None:
    """The usage point's postRate sets the period; a change is picked up from the list."""
    h.state.set_post_rate(60)
    client = h.client()
    await h.run(client, SAMPLES[0])
    # The first period began before the rate was known (300 s); it closes on the change
    # and covers the 60 s it saw.
    await h.step(client, 60, SAMPLES[1])
    await h.step(client, 60, SAMPLES[2])
    values = posted(h, Role.SITE)["Site Avg Real Power Net"]
    assert values == [(100, START, 60), (200, START + 60, 60)]
    # The server changes the rate back: seen at the next usage point list poll.
    h.state.set_post_rate(300)
    for _ in range(5):
        await h.step(client, 60, SAMPLES[2])
    await h.step(client, 300, SAMPLES[2])
    values = posted(h, Role.SITE)["Site Avg Real Power Net"]
    assert values[-1][2] == 300
