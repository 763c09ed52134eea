"""Values a gateway keeps serving after it lost a SunSpec device are caught by its counters.

The meter's reading is dated at the last move of its energy counters (so it ages into
fail-safe); an inverter's read fails (so it counts as unreachable). Both are read over Modbus
TCP (the hand-written server and pymodbus' own) with a fake clock; the test moves the counters
the way a live device would, or stops them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from custom_components.dynamic_export.core.errors import InvalidDeviceDataError
from custom_components.dynamic_export.sunspec.device import SunSpecDevice
from custom_components.dynamic_export.sunspec.inverter import SunSpecInverter
from custom_components.dynamic_export.sunspec.meter import SunSpecMeter

from ..core.fakes import FakeClock
from .helpers import DeviceImage, inverter_image, inverter_values, meter_image, meter_values

UNIT = 240
INT_IMPORT = 250_000  # raw, TotWh_SF 1: 2.5 MWh
INT_EXPORT = 120_000
FLOAT_IMPORT = 50_000_000.0  # float32 counts in 4 Wh steps up here
FLOAT_EXPORT = 20_000_000.0


class LiveMeter:
    """One meter unit on a server; ``tick`` integrates its power into its counters.

    ``frozen`` stops the server showing them (the gateway lost the meter, which counts on).
    """

    def __init__(self, server: Any, image: DeviceImage, model_id: int, power_w: float) -> None:
        self.server = server
        self.image = image
        self.model_id = model_id
        self.power_w = power_w
        self.floats = model_id in (211, 212, 213, 214)
        self.imported = FLOAT_IMPORT if self.floats else INT_IMPORT * 10.0
        self.exported = FLOAT_EXPORT if self.floats else INT_EXPORT * 10.0
        self.frozen = False

    async def tick(self, seconds: float) -> None:
        energy = self.power_w * seconds / 3600.0
        if energy >= 0:
            self.imported += energy
        else:
            self.exported -= energy
        if not self.frozen:
            await self.show()

    async def show(self) -> None:
        registers: dict[int, int] = {}
        for point, value in (("TotWhImp", self.imported), ("TotWhExp", self.exported)):
            raw: float | int = value if self.floats else int(value // 10)
            registers.update(self.image.encode(self.model_id, point, raw))
        await self.server.set_registers(UNIT, registers)


def _values(model_id: int, power_w: float, **changes: Any) -> dict[str, Any]:
    values = meter_values(model_id, w=power_w)
    if model_id in (211, 212, 213, 214):
        values.update(TotWhImp=FLOAT_IMPORT, TotWhExp=FLOAT_EXPORT)
    else:
        values.update(TotWhImp=INT_IMPORT, TotWhExp=INT_EXPORT)
    values.update(changes)
    return values


async def _meter(
    make_peer: Callable[..., Any],
    make_connection: Callable[..., Any],
    model_id: int,
    power_w: float,
    **changes: Any,
) -> tuple[SunSpecMeter, LiveMeter, FakeClock]:
    image = meter_image(model_id, values=_values(model_id, power_w, **changes))
    server = await make_peer({UNIT: image})
    clock = FakeClock()
    meter = SunSpecMeter(SunSpecDevice(make_connection(server.port), UNIT), clock=clock)
    await meter.async_setup()
    return meter, LiveMeter(server, image, model_id, power_w), clock


async def _run(meter: SunSpecMeter, live: LiveMeter, clock: FakeClock, seconds: int) -> list[float]:
    """Read once a second for ``seconds``; each reading's age on the fake clock."""
    ages = []
    for _ in range(seconds):
        clock.advance(1.0)
        await live.tick(1.0)
        reading = await meter.async_read()
        ages.append(clock.now - reading.timestamp)
    return ages


@pytest.mark.parametrize("model_id", [203, 213])
async def test_live_counters_keep_readings_fresh(
    make_peer: Any, make_connection: Any, model_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    meter, live, clock = await _meter(make_peer, make_connection, model_id, -2000.0)
    assert max(await _run(meter, live, clock, 120)) == 0.0
    assert "frozen" not in caplog.text


@pytest.mark.parametrize(("model_id", "found_after_s"), [(203, 73), (213, 40)])
async def test_frozen_counters_date_the_reading(
    make_peer: Any,
    make_connection: Any,
    model_id: int,
    found_after_s: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At 2 kW: 10 Wh counters (SF 1) need 40 Wh (72 s); float32 ones at 50 MWh 22 Wh (40 s)."""
    caplog.set_level(logging.INFO)
    meter, live, clock = await _meter(make_peer, make_connection, model_id, 2000.0)
    await _run(meter, live, clock, 60)  # the counters show they keep up
    frozen_from = clock.now
    live.frozen = True
    ages = await _run(meter, live, clock, 100)
    first = next(i for i, age in enumerate(ages) if age > 0)
    # Dated at the counters' last move, which was at most one counter step before the freeze.
    assert ages[first] == pytest.approx(found_after_s, abs=1.0)
    assert first + 1 <= found_after_s
    assert all(age > 0 for age in ages[first:])
    assert ages[-1] >= clock.now - frozen_from
    warnings = [r for r in caplog.records if "values look frozen" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING

    live.frozen = False
    assert await _run(meter, live, clock, 2) == [0.0, 0.0]
    recovered = [r for r in caplog.records if "move again" in r.getMessage()]
    assert len(recovered) == 1
    assert recovered[0].levelno == logging.INFO


@pytest.mark.parametrize("invert", [False, True])
async def test_frozen_export_is_found_either_way_round(
    make_peer: Any, make_connection: Any, *, invert: bool
) -> None:
    """A meter fitted backwards: its export counter is TotWhImp, still checked the right way."""
    image = meter_image(203, values=_values(203, -5000.0))
    server = await make_peer({UNIT: image})
    clock = FakeClock()
    meter = SunSpecMeter(
        SunSpecDevice(make_connection(server.port), UNIT), clock=clock, invert=invert
    )
    live = LiveMeter(server, image, 203, -5000.0)
    if invert:  # the device reports the export on its import counter and W positive
        image.write(203, "W", 500)
        await server.set_registers(UNIT, image.encode(203, "W", 500))
        live.power_w = 5000.0
    await _run(meter, live, clock, 30)
    live.frozen = True
    ages = await _run(meter, live, clock, 40)
    assert max(ages) > 0


async def test_missing_counters_are_said_once_and_never_judged(
    make_peer: Any, make_connection: Any, caplog: pytest.LogCaptureFixture
) -> None:
    meter, live, clock = await _meter(
        make_peer, make_connection, 203, 4000.0, TotWhImp=None, TotWhExp=None
    )
    live.frozen = True
    assert max(await _run(meter, live, clock, 100)) == 0.0
    said = [r for r in caplog.records if "no energy counters" in r.getMessage()]
    assert len(said) == 1
    assert "frozen values cannot be detected" in said[0].getMessage()


# --- inverters -------------------------------------------------------------------------------

INVERTER_UNIT = 1


async def _inverter(
    make_peer: Callable[..., Any], make_connection: Callable[..., Any], wh: float
) -> tuple[SunSpecInverter, Any, DeviceImage, FakeClock]:
    image = inverter_image(103, inverter=inverter_values(103, w=3000.0, wh=wh))
    server = await make_peer({INVERTER_UNIT: image})
    clock = FakeClock()
    inverter = SunSpecInverter(
        SunSpecDevice(make_connection(server.port), INVERTER_UNIT), clock=clock
    )
    await inverter.async_setup()
    return inverter, server, image, clock


async def test_frozen_inverter_values_fail_the_read(make_peer: Any, make_connection: Any) -> None:
    """3 kW with 1 Wh steps: 13 Wh uncounted after 15.6 s; the read fails until WH moves."""
    lifetime = 9_000_000.0
    inverter, server, image, clock = await _inverter(make_peer, make_connection, lifetime)
    outcomes: list[str | None] = []

    async def run(seconds: int, *, counting: bool) -> None:
        nonlocal lifetime
        for _ in range(seconds):
            clock.advance(1.0)
            lifetime += 3000.0 / 3600.0
            if counting:
                await server.set_registers(INVERTER_UNIT, image.encode(103, "WH", int(lifetime)))
            try:
                await inverter.async_read()
            except InvalidDeviceDataError as err:
                outcomes.append(str(err))
            else:
                outcomes.append(None)

    await run(60, counting=True)
    assert outcomes == [None] * 60
    await run(30, counting=False)
    first = next(i for i, o in enumerate(outcomes[60:]) if o is not None)
    assert 15 <= first + 1 <= 17
    assert "values look frozen: lifetime energy unchanged for 16 s" in (outcomes[60 + first] or "")
    await run(2, counting=True)
    assert outcomes[-2:] == [None, None]


async def test_inverter_without_lifetime_energy_is_never_judged(
    make_peer: Any, make_connection: Any, caplog: pytest.LogCaptureFixture
) -> None:
    inverter, _server, _image, clock = await _inverter(make_peer, make_connection, 0)
    for _ in range(120):
        clock.advance(1.0)
        await inverter.async_read()
    said = [r for r in caplog.records if "reports no lifetime energy" in r.getMessage()]
    assert len(said) == 1
