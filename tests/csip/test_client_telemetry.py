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
    """Site and DER usage points with role flags and LFDI/PEN mRIDs, defining only the
    readings the site measures (here: site W, V phase A and Hz; DER W)."""
    client = h.client()
    await h.run(client)
    site, der = mup(h, Role.SITE), mup(h, Role.DER)
    assert site.body.value("roleFlags") == "0003"
    assert der.body.value("roleFlags") == "0049"
    assert site.mrid == f"{h.device.lfdi[:22]}0300099999", "the PEN 99999 in decimal"
    assert der.body.value("deviceLFDI") == h.device.lfdi
    names = {
        role: {d.mrid: d.description for d in reading_definitions(h.device.lfdi, role, TEST_PEN)}
        for role in Role
    }
    assert sorted(names[Role.SITE][m] for m in site.reading_mrids) == sorted(
        f"Site {q} {what}"
        for q in ("Avg", "Max", "Min")
        for what in ("Real Power Net", "Voltage Phase AN", "Frequency")
    )
    assert sorted(names[Role.DER][m] for m in der.reading_mrids) == [
        "DER Avg Real Power Net",
        "DER Max Real Power Net",
        "DER Min Real Power Net",
    ]
    assert client.status().mirror_usage_points == {"site": "/mup/1", "der": "/mup/2"}
    h.assert_documents_valid()
    # Known usage points are found in the list at the next poll, not created again.
    await h.step(client, 301)
    assert len(h.server.requests_to("/mup", "POST")) == 2


async def test_mrids_carry_the_pen_in_decimal(h: Harness) -> None:
    """Every usage point and reading mRID ends with the PEN as 8 decimal digits, as the
    reference runner reads it (62223 → …00062223); the server rejects anything else."""
    client = h.client(pen=62223)
    h.state.pen = 62223
    await one_period(h, client)
    mups = list(h.state.mups.values())
    assert len(mups) == 2
    mrids = [m.mrid for m in mups] + [r.value("mRID") or "" for m in mups for r in m.readings()]
    assert all(int(mrid[-8:]) == 62223 for mrid in mrids), mrids
    assert all(m.endswith("00062223") for m in mrids)
    assert client.comms is CommsState.OK
    assert client.status().pending_batches == 0


async def test_hex_pen_is_refused_by_the_server(h: Harness) -> None:
    """The in-repo server refuses mRIDs that do not end with its PEN, like the reference."""
    client = h.client(pen=62223)  # the server expects TEST_PEN
    await one_period(h, client)
    assert not h.state.mups
    assert client.comms is CommsState.SERVER_ERROR
    assert any(
        "does not end with the PEN 99999" in e
        for r in h.server.requests_to("/mup", "POST")
        for e in r.errors
    )


async def test_usage_points_announce_what_is_posted(h: Harness) -> None:
    """Each defined reading is posted; a quantity measured later (the site's reactive
    power) is announced by posting the usage point again before its first reading."""
    client = h.client()
    await one_period(h, client)
    for role in Role:
        point = mup(h, role)
        posted_mrids = {(r.value("mRID") or "").upper() for r in point.readings()}
        assert posted_mrids == point.reading_mrids, role
    with_var = replace(MEASUREMENTS, site_reactive_var=250.0, der_reactive_var=-80.0)
    for _ in range(3):
        await h.step(client, 100, with_var)
    await h.step(client, 100, with_var)
    assert client.comms is CommsState.OK, [r.errors for r in h.server.requests if r.errors]
    assert client.status().pending_batches == 0
    site, der = posted(h, Role.SITE), posted(h, Role.DER)
    assert site["Site Avg Reactive Power Net"] == [(250, START + 300, 300)]
    assert der["DER Avg Reactive Power Net"] == [(0, START, 300), (-80, START + 300, 300)]
    assert len(h.server.requests_to("/mup", "POST")) == 3, "the site's posted again, once"
    for role in Role:
        point = mup(h, role)
        assert {(r.value("mRID") or "").upper() for r in point.readings()} == point.reading_mrids


async def test_reading_types_the_reference_procedure_expects(h: Harness) -> None:
    """ALL-06: average site and DER W and var, and voltage, with uom, kind power (37),
    qualifier average (2), and the site (03) or DER (49) role flags."""
    client = h.client()
    full = replace(
        MEASUREMENTS,
        site_reactive_var=300.0,
        der_reactive_var=0.0,
        site_voltage_v=(230.0, 231.0, 232.0),
        der_voltage_v=(240.0, 240.5, 241.0),
        der_frequency_hz=50.01,
    )
    await h.run(client, full)
    await h.step(client, 300, full)
    expected = {
        (Role.SITE, 38),
        (Role.SITE, 63),
        (Role.SITE, 29),
        (Role.SITE, 33),
        (Role.DER, 38),
        (Role.DER, 63),
        (Role.DER, 29),
        (Role.DER, 33),
    }
    found: set[tuple[Role, int]] = set()
    for role in Role:
        point = mup(h, role)
        assert point.body.value("roleFlags") == ("0003" if role is Role.SITE else "0049")
        values = {(r.value("mRID") or "").upper() for r in point.readings()}
        for mrid, rtype in point.reading_types.items():
            assert rtype.value("kind") == "37"
            if rtype.value("dataQualifier") == "2" and mrid in values:
                found.add((role, int(rtype.value("uom") or "0")))
    assert found == expected
    h.assert_documents_valid()


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
    # The first period began on a boundary before the rate was known (300 s); it ends on
    # the change, at the new rate's next boundary, and covers the 60 s it saw.
    await h.step(client, 60, SAMPLES[1])
    await h.step(client, 60, SAMPLES[2])
    values = posted(h, Role.SITE)["Site Avg Real Power Net"]
    assert values == [(100, START, 60), (200, START + 60, 60)]
    # The server changes the rate back: seen at the next usage point list poll (START+300).
    h.state.set_post_rate(300)
    for _ in range(5):
        await h.step(client, 60, SAMPLES[2])
    # The 60 s period open at the change ends; 300 s periods start at the next boundary.
    await h.step(client, 300, SAMPLES[2])
    await h.step(client, 300, SAMPLES[2])
    values = posted(h, Role.SITE)["Site Avg Real Power Net"]
    assert values[-2:] == [(300, START + 300, 60), (300, START + 600, 300)]
    assert all(start % 60 == 0 and duration % 60 == 0 for _v, start, duration in values)


async def test_first_period_dated_from_the_first_sample(h: Harness) -> None:
    """Started mid-period (first sample 43 s after a boundary), with the server's postRate
    60 s learned after the first sample: the first period starts at the first minute after
    it and lasts 60 s; nothing is dated before the samples it holds."""
    h.state.set_post_rate(60)
    h.clock.advance(43)
    client = h.client()
    await h.run(client, SAMPLES[0])  # rate still the default 300 s at this sample
    for _ in range(77):  # to START + 120
        await h.step(client, 1, SAMPLES[1])
    await h.step(client, 1, SAMPLES[2])
    values = posted(h, Role.SITE)["Site Avg Real Power Net"]
    assert values == [(200, START + 60, 60)], "no 300 s period from START, no sample of 43 s"


async def test_restart_midway_waits_for_a_whole_period(h: Harness) -> None:
    """After a restart the open period is not dated back to the boundary before it."""
    client = h.client()
    h.clock.advance(130)
    await h.run(client, SAMPLES[0])
    await h.step(client, 170, SAMPLES[1])  # START + 300: the first whole period starts
    await h.step(client, 300, SAMPLES[2])
    values = posted(h, Role.SITE)["Site Avg Real Power Net"]
    assert values == [(200, START + 300, 300)]


async def test_saved_hex_mrids_migrate(h: Harness) -> None:
    """Readings saved by a release that wrote the PEN in hex are posted under the decimal
    mRIDs, to usage points created with decimal mRIDs (the old ones are left alone)."""
    client = h.client()
    await h.run(client, SAMPLES[0])
    await h.server.stop()
    await h.step(client, 300, SAMPLES[1])
    saved = client.to_dict()
    await client.async_stop()
    old = {
        role: dict(
            zip(
                (d.mrid for d in reading_definitions(h.device.lfdi, role, TEST_PEN)),
                (d.mrid for d in reading_definitions(h.device.lfdi, role, TEST_PEN, legacy=True)),
                strict=True,
            )
        )
        for role in Role
    }
    telemetry = saved["telemetry"]
    assert telemetry["format"] == 2
    telemetry["format"] = 1
    for batch in telemetry["pending"]:
        mapping = old[Role(batch["role"])]
        batch["values"] = [[mapping[mrid], value] for mrid, value in batch["values"]]
        assert all(mrid.endswith("0001869F") for mrid, _value in batch["values"])
    for link in saved["usage_points"].values():
        link["href"] = "/mup/99"  # where the old usage point was
    await h.server.start()
    restarted = h.client(restore=saved)
    await h.step(restarted, 61)
    assert posted(h, Role.SITE)["Site Avg Real Power Net"] == [(100, START, 300)]
    assert restarted.comms is CommsState.OK
