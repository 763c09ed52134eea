"""OpenDTU client: reads, form-encoded commands, error codes, set-up probe."""

from __future__ import annotations

import asyncio
import json

import pytest

from custom_components.dynamic_export.core.errors import (
    DeviceResponseError,
    DeviceUnavailableError,
    InvalidDeviceDataError,
)
from custom_components.dynamic_export.opendtu.client import OpenDtuClient
from custom_components.dynamic_export.opendtu.errors import (
    InvalidPasswordError,
    LimitTypeUnsupportedError,
    NotOpenDtuError,
    OpenDtuApiError,
    UnknownInverterError,
)
from custom_components.dynamic_export.opendtu.limits import LimitType
from custom_components.dynamic_export.opendtu.probe import async_probe

from .dtu import HM_SERIAL, HMS_SERIAL, PASSWORD, FakeDtu


async def test_inverter_list_and_livedata(dtu: FakeDtu, client: OpenDtuClient) -> None:
    inverters = await client.async_inverters()
    assert [(i.serial, i.name) for i in inverters] == [
        (HM_SERIAL, "Garage HM-800"),
        (HMS_SERIAL, "Roof HMS-2000"),
    ]
    assert inverters[0].limit_absolute_w == 800.0
    assert inverters[0].data_age_s == 2.3
    live = await client.async_livedata(HMS_SERIAL)
    assert live.summary.serial == HMS_SERIAL
    assert (live.ac_power_w, live.temperature_c) == (1534.8, 48.0)
    assert live.yield_total_wh == pytest.approx(1234567.0)
    assert live.ac_voltage_v == 236.4
    assert dtu.requests[-1] == ("GET", "/api/livedata/status", {"inv": HMS_SERIAL})


async def test_limit_status_is_shared_between_inverters(dtu: FakeDtu, client, clock) -> None:
    results = await asyncio.gather(*(client.async_limit_status(max_age_s=0.5) for _ in range(3)))
    assert dtu.count("GET", "/api/limit/status") == 1
    fetched_at, statuses = results[0]
    assert fetched_at == clock.now
    assert statuses[HMS_SERIAL].max_power_w == 2000.0
    assert statuses[HM_SERIAL].set_status == "Ok"
    clock.now += 1.0
    await client.async_limit_status(max_age_s=0.5)
    assert dtu.count("GET", "/api/limit/status") == 2


async def test_limit_command_is_form_encoded_json(dtu: FakeDtu, client) -> None:
    await client.async_set_limit(HM_SERIAL, LimitType.ABSOLUTE, 321.5)
    method, path, form = dtu.requests[-1]
    assert (method, path) == ("POST", "/api/limit/config")
    assert json.loads(form["data"]) == {
        "serial": HM_SERIAL,
        "limit_type": 0,
        "limit_value": 321.5,
    }


async def test_a_command_invalidates_the_cached_status(dtu: FakeDtu, client) -> None:
    await client.async_limit_status()
    await client.async_set_limit(HM_SERIAL, LimitType.RELATIVE, 50.0)
    _, statuses = await client.async_limit_status(max_age_s=60.0)
    assert statuses[HM_SERIAL].set_status == "Pending"


async def test_persistent_types_are_refused_before_sending(dtu: FakeDtu, client) -> None:
    for kind in (2, 3, 256, 257):
        with pytest.raises(ValueError, match="non-persistent"):
            await client.async_set_limit(HM_SERIAL, kind, 50.0)  # type: ignore[arg-type]
    assert dtu.count("POST", "/api/limit/config") == 0


@pytest.mark.parametrize(
    ("serial", "value", "error", "code"),
    [
        (HM_SERIAL, 3000.0, OpenDtuApiError, 5002),
        ("000000000000", 100.0, OpenDtuApiError, 5001),
        ("1141ffff0000", 100.0, UnknownInverterError, 5004),
    ],
)
async def test_command_error_codes(dtu: FakeDtu, client, serial, value, error, code) -> None:
    with pytest.raises(error, match=f"code {code}") as caught:
        await client.async_set_limit(serial, LimitType.ABSOLUTE, value)
    assert caught.value.code == code


async def test_unsupported_limit_type(dtu: FakeDtu, client) -> None:
    dtu.reject_types = {0}
    with pytest.raises(LimitTypeUnsupportedError, match="not supported by this firmware"):
        await client.async_set_limit(HM_SERIAL, LimitType.ABSOLUTE, 100.0)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ({"type": "warning", "message": "No values found!", "code": 1002}, 1002),
        ({"type": "warning", "message": "Failed to parse data!", "code": 1004}, 1004),
        ({"type": "warning", "message": "Values are missing!", "code": 1005}, 1005),
        ({"type": "warning", "message": "odd"}, None),
    ],
)
async def test_generic_error_answers(dtu: FakeDtu, client, answer, code) -> None:
    dtu.overrides[("POST", "/api/limit/config")] = (200, json.dumps(answer))
    with pytest.raises(OpenDtuApiError) as caught:
        await client.async_set_limit(HM_SERIAL, LimitType.ABSOLUTE, 100.0)
    assert caught.value.code == code


async def test_power_command(dtu: FakeDtu, client) -> None:
    await client.async_set_power(HMS_SERIAL, on=False)
    assert dtu.power_commands == [{"serial": HMS_SERIAL, "power": False}]
    with pytest.raises(UnknownInverterError, match="code 11002"):
        await client.async_set_power("1141ffff0000", on=True)


async def test_wrong_password(dtu: FakeDtu, session, clock) -> None:
    client = OpenDtuClient(session, "127.0.0.1", "nope", port=dtu.port, clock=clock)
    assert len(await client.async_inverters()) == 2  # reads are open by default
    with pytest.raises(InvalidPasswordError, match="password was refused"):
        await client.async_check_password()
    with pytest.raises(InvalidPasswordError):
        await client.async_set_limit(HM_SERIAL, LimitType.RELATIVE, 10.0)
    dtu.allow_readonly = False
    with pytest.raises(InvalidPasswordError):
        await client.async_inverters()


async def test_malformed_json(dtu: FakeDtu, client) -> None:
    dtu.overrides[("GET", "/api/livedata/status")] = (200, '{"inverters": [')
    with pytest.raises(InvalidDeviceDataError, match="not JSON"):
        await client.async_livedata(HM_SERIAL)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inverters": [{"serial": HM_SERIAL, "producing": True}]}, "reachable=None"),
        ({"inverters": [{"name": "x", "reachable": True}]}, "serial=None"),
        ({"total": {}}, "no inverters list"),
        ([], "expected an object"),
    ],
)
async def test_missing_fields(dtu: FakeDtu, client, body, message) -> None:
    dtu.overrides[("GET", "/api/livedata/status")] = (200, json.dumps(body))
    with pytest.raises(InvalidDeviceDataError, match=message):
        await client.async_inverters()


async def test_bad_limit_status(dtu: FakeDtu, client) -> None:
    body = {HM_SERIAL: {"limit_relative": 10, "max_power": 800, "limit_set_status": "Maybe"}}
    dtu.overrides[("GET", "/api/limit/status")] = (200, json.dumps(body))
    with pytest.raises(InvalidDeviceDataError, match="limit_set_status='Maybe'"):
        await client.async_limit_status()


async def test_unknown_serial_in_livedata(dtu: FakeDtu, client) -> None:
    with pytest.raises(UnknownInverterError, match="no inverter 1141ffff0000"):
        await client.async_livedata("1141ffff0000")


async def test_busy_timeout_and_http_errors(dtu: FakeDtu, session, clock) -> None:
    client = OpenDtuClient(session, "127.0.0.1", PASSWORD, port=dtu.port, timeout_s=0.2)
    dtu.overrides[("GET", "/api/system/status")] = (429, "Too Many Requests")
    with pytest.raises(DeviceUnavailableError, match="busy"):
        await client.async_system_status()
    dtu.overrides[("GET", "/api/system/status")] = (500, "")
    with pytest.raises(DeviceResponseError, match="HTTP 500"):
        await client.async_system_status()
    await dtu.stop()
    with pytest.raises(DeviceUnavailableError):
        await client.async_system_status()


async def test_slow_dtu_times_out(session) -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()  # accept, read nothing, answer nothing
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = OpenDtuClient(session, "127.0.0.1", PASSWORD, port=port, timeout_s=0.2)
    try:
        with pytest.raises(DeviceUnavailableError, match=r"no answer in 0\.2 s"):
            await client.async_inverters()
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def test_probe(dtu: FakeDtu, session) -> None:
    info = await async_probe(session, "127.0.0.1", PASSWORD, port=dtu.port)
    assert info.version == "v25.9.11"
    assert info.hostname == "OpenDTU-5A1B2C"
    assert [(i.serial, i.name, i.max_power_w) for i in info.inverters] == [
        (HM_SERIAL, "Garage HM-800", 800.0),
        (HMS_SERIAL, "Roof HMS-2000", 2000.0),
    ]


async def test_probe_errors(dtu: FakeDtu, session) -> None:
    with pytest.raises(InvalidPasswordError):
        await async_probe(session, "127.0.0.1", "wrong", port=dtu.port)
    dtu.overrides[("GET", "/api/system/status")] = (200, "<html>router login</html>")
    with pytest.raises(NotOpenDtuError, match="does not answer like OpenDTU"):
        await async_probe(session, "127.0.0.1", PASSWORD, port=dtu.port)
    dtu.overrides[("GET", "/api/system/status")] = (404, "")
    with pytest.raises(NotOpenDtuError):
        await async_probe(session, "127.0.0.1", PASSWORD, port=dtu.port)
    dtu.overrides[("GET", "/api/system/status")] = (200, '{"hostname": "x"}')
    with pytest.raises(NotOpenDtuError, match="git_hash"):
        await async_probe(session, "127.0.0.1", PASSWORD, port=dtu.port)


async def test_probe_before_the_dtu_knows_max_power(dtu: FakeDtu, session) -> None:
    dtu.inverters[HM_SERIAL].max_power = 0
    info = await async_probe(session, "127.0.0.1", PASSWORD, port=dtu.port)
    assert info.inverters[0].max_power_w is None
