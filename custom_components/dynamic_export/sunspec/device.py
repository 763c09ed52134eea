"""One SunSpec device (a unit id on a connection): model discovery, block reads, point writes.

Addresses are never hard-coded: they come from walking the model chain, because they move with
model 1's length (65 vs 66) and with Fronius' float/int+SF setting. Every block read checks the
model's ID and L again, so a map that moved under us is caught before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import InvalidDeviceDataError
from .codec import PointValue, decode_model, encode_point
from .connection import RegisterConnection
from .errors import ModbusExceptionError, NotSunSpecError, UnsupportedDeviceError
from .models import MODELS

SUNS_MARKER = (0x5375, 0x6E53)  # "SunS"
BASE_ADDRESSES = (40000, 0, 50000)
END_MODEL_ID = 0xFFFF
MAX_MODELS = 100
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
# Exceptions that mean "nothing to read at this base": try the next one. Any other
# exception (a gateway with the unit offline, a device failure) is passed on.
NO_MAP_HERE = frozenset({ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE})


@dataclass(frozen=True, slots=True)
class ModelLocation:
    """Where a model sits: ``address`` of its ID register and its body ``length`` (L)."""

    model_id: int
    address: int
    length: int


@dataclass(frozen=True)
class CommonInfo:
    """Identity from the common model (1)."""

    manufacturer: str | None
    model: str | None
    options: str | None
    version: str | None
    serial_number: str | None


def _text(value: PointValue) -> str | None:
    return value if isinstance(value, str) else None


class SunSpecDevice:
    """A SunSpec map behind ``unit_id`` on ``connection``."""

    def __init__(self, connection: RegisterConnection, unit_id: int) -> None:
        """Bind to a unit; nothing is read until :meth:`async_scan`."""
        if not 0 <= unit_id <= 255:
            raise ValueError(f"unit id {unit_id} is outside 0..255")
        self._connection = connection
        self._unit_id = unit_id
        self._models: dict[int, ModelLocation] = {}

    @property
    def connection(self) -> RegisterConnection:
        """The (possibly shared) transport."""
        return self._connection

    @property
    def unit_id(self) -> int:
        """Modbus unit id."""
        return self._unit_id

    @property
    def models(self) -> dict[int, ModelLocation]:
        """Models found by the last scan (first occurrence of each id); empty before a scan."""
        return dict(self._models)

    async def async_scan(self) -> dict[int, ModelLocation]:
        """Find the SunSpec base address and walk the model chain."""
        self._models = {}
        for base in BASE_ADDRESSES:
            try:
                marker = await self._read(base, 2)
            except ModbusExceptionError as err:
                if err.code not in NO_MAP_HERE:
                    raise  # e.g. the device behind a gateway is offline: not "not SunSpec"
                continue
            if tuple(marker) == SUNS_MARKER:
                self._models = await self._walk(base + 2)
                return dict(self._models)
        raise NotSunSpecError(
            f"unit {self._unit_id}: no SunSpec marker at {', '.join(map(str, BASE_ADDRESSES))}"
        )

    async def _walk(self, address: int) -> dict[int, ModelLocation]:
        found: dict[int, ModelLocation] = {}
        for index in range(MAX_MODELS + 1):
            try:
                model_id, length = await self._read(address, 2)
            except ModbusExceptionError as err:
                if index == 0 or err.code != ILLEGAL_DATA_ADDRESS:
                    raise
                return found  # some devices end the chain with an unreadable address
            if model_id == END_MODEL_ID:
                return found
            if index == MAX_MODELS:
                break
            if address + 2 + length > 0x10000:
                raise InvalidDeviceDataError(
                    f"unit {self._unit_id}: model {model_id} at {address} has bad length {length}"
                )
            found.setdefault(model_id, ModelLocation(model_id, address, length))
            address += 2 + length  # strictly increasing, so the walk cannot loop
        raise InvalidDeviceDataError(f"unit {self._unit_id}: more than {MAX_MODELS} models")

    def location(self, model_id: int) -> ModelLocation:
        """Location of a scanned model; UnsupportedDeviceError if the device has none."""
        location = self._models.get(model_id)
        if location is None:
            raise UnsupportedDeviceError(f"unit {self._unit_id} has no SunSpec model {model_id}")
        return location

    async def async_read_model(self, model_id: int) -> dict[str, PointValue]:
        """Read and decode one model's block fresh from the device (scaled values)."""
        if not self._models:
            await self.async_scan()
        model = MODELS.get(model_id)
        if model is None:
            raise UnsupportedDeviceError(f"SunSpec model {model_id} is not supported")
        location = self.location(model_id)
        block = await self._read(location.address, location.length + 2)
        if block[0] != model_id or block[1] != location.length:
            self._models = {}  # the map moved (e.g. float/int+SF switch): rescan next time
            raise InvalidDeviceDataError(
                f"unit {self._unit_id}: model {model_id} is no longer at {location.address}"
            )
        return decode_model(model, block)

    async def async_read_common(self) -> CommonInfo:
        """Manufacturer, model, options, version and serial number from model 1."""
        values = await self.async_read_model(1)
        return CommonInfo(
            manufacturer=_text(values["Mn"]),
            model=_text(values["Md"]),
            options=_text(values["Opt"]),
            version=_text(values["Vr"]),
            serial_number=_text(values["SN"]),
        )

    async def async_write_point(self, model_id: int, name: str, raw: int | float) -> None:
        """Write exactly one point's registers (raw, unscaled); never a whole block."""
        model = MODELS.get(model_id)
        if model is None:
            raise UnsupportedDeviceError(f"SunSpec model {model_id} is not supported")
        point = model.point(name)
        if point.access != "RW":
            raise ValueError(f"model {model_id} point {name} is read-only")
        registers = encode_point(point, raw)
        if not self._models:
            await self.async_scan()
        location = self.location(model_id)
        if point.offset + point.size > location.length + 2:
            raise UnsupportedDeviceError(
                f"unit {self._unit_id}: model {model_id} (L={location.length}) has no {name}"
            )
        await self._connection.write_registers(
            self._unit_id, location.address + point.offset, registers
        )

    async def _read(self, address: int, count: int) -> list[int]:
        return await self._connection.read_holding_registers(self._unit_id, address, count)
