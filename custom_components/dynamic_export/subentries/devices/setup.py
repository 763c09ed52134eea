"""Build the site's devices (inverters and the meter) from their subentries.

Each device kind (a ``kind`` in the subentry's data, SunSpec over TCP when absent) has
a builder that returns handles: the client the control loop drives, and what the
entities show about it. A subentry may hold several inverters (an OpenDTU with its
Hoymiles inverters), so every inverter has its own ``key``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PASSWORD, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from ...const import (
    CONF_BAUDRATE,
    CONF_FALLBACK_LIMIT,
    CONF_FINGERPRINT,
    CONF_INVERT,
    CONF_INVERTERS,
    CONF_KIND,
    CONF_LIMIT_ENTITY,
    CONF_LIMIT_UNIT,
    CONF_MAX_AGE,
    CONF_METER_NUMBER,
    CONF_OWN_FEED_IN,
    CONF_PARITY,
    CONF_PHASES,
    CONF_POWER_ENTITY,
    CONF_RATED_POWER,
    CONF_SERIAL,
    CONF_SERIAL_PORT,
    CONF_STOPBITS,
    CONF_UNIT_ID,
    CONF_VERSION,
    DEFAULT_BAUDRATE,
    DEFAULT_ENTITY_MAX_AGE,
    DEFAULT_INVERTER_ENTITY_MAX_AGE,
    DEFAULT_METER_MAX_AGE,
    DEFAULT_OPENDTU_PORT,
    DEFAULT_POWERWALL_PORT,
    DEFAULT_SOLAREDGE_FALLBACK,
    DEFAULT_SOLAREDGE_METER_NUMBER,
    DOMAIN,
    KIND_GOODWE,
    KIND_HA_ENTITY,
    KIND_HUAWEI,
    KIND_OPENDTU,
    KIND_POWERWALL,
    KIND_SOLAREDGE,
    KIND_SUNGROW,
    KIND_SUNSPEC_RTU,
    KIND_SUNSPEC_TCP,
    KIND_VICTRON_GX,
    LIMIT_UNIT_WATT,
)
from ...core.errors import DeviceError, DeviceUnavailableError
from ...core.measurements import MeterReading
from ...goodwe_inverter.client import GoodWeEtClient
from ...goodwe_inverter.inverter import Baseline as GoodWeBaseline
from ...goodwe_inverter.inverter import GoodWeInverter
from ...huawei.inverter import Baseline as HuaweiBaseline
from ...huawei.inverter import HuaweiInverter, pace_for_sdongle
from ...opendtu.client import OpenDtuClient
from ...opendtu.inverter import OpenDtuInverter
from ...powerwall.client import PowerwallClient
from ...powerwall.errors import CertificateChangedError
from ...powerwall.meter import PowerwallMeter
from ...solaredge.inverter import SolarEdgeInverter
from ...solaredge.meter import SolarEdgeMeter
from ...storage import SiteStore
from ...sungrow.inverter import Baseline, SungrowInverter, pace_for_winet
from ...sunspec.connection import ConnectionPool, RegisterConnection, SerialSettings
from ...sunspec.device import SunSpecDevice
from ...sunspec.inverter import InverterInfo, SunSpecInverter
from ...sunspec.meter import MeterInfo, SunSpecMeter
from ...victron.inverter import VictronGxInverter
from ...victron.meter import VictronGridMeter
from .ha_entities import HaEntityInverter, HaEntityMeter
from .handles import Identity, InverterHandle, MeterHandle

_LOGGER = logging.getLogger(__name__)


@dataclass(slots=True)
class DeviceContext:
    """What builders share within one site: connection pools, gateway clients, settings."""

    hass: HomeAssistant
    pool: ConnectionPool
    revert_timeout_s: float
    store: SiteStore | None = None
    """The site's persisted state (ratings, baselines), when the site has one."""
    meter_max_age_s: float = DEFAULT_METER_MAX_AGE
    """The controller's meter age limit: a meter's own staleness warning matches it."""
    powerwalls: dict[tuple[str, int], PowerwallClient] = field(default_factory=dict)
    """One client per Powerwall gateway (host, port)."""
    dtus: dict[tuple[str, int], OpenDtuClient] = field(default_factory=dict)
    """One client per OpenDTU (host, port), shared by its inverters."""


class _SetsUp[InfoT](Protocol):
    async def async_setup(self) -> InfoT: ...


async def async_try_setup[InfoT](client: _SetsUp[InfoT], name: str) -> InfoT | None:
    """Read a device's identity; a device that is down now is set up on a later cycle."""
    try:
        return await client.async_setup()
    except DeviceError as err:
        _LOGGER.warning("%s is not ready (%s); will keep trying", name, err)
        return None


async def async_build_inverters(ctx: DeviceContext, sub: ConfigSubentry) -> list[InverterHandle]:
    """The inverters of one inverter subentry."""
    kind = sub.data.get(CONF_KIND, KIND_SUNSPEC_TCP)
    if kind in (KIND_SUNSPEC_TCP, KIND_SUNSPEC_RTU):
        connection = _sunspec_connection(ctx, sub)
        if connection is None:
            return []
        device = SunSpecDevice(connection, sub.data[CONF_UNIT_ID])
        client = SunSpecInverter(device, revert_timeout_s=ctx.revert_timeout_s)
        info = await async_try_setup(client, sub.title)
        rating = known_rating(
            ctx,
            sub.subentry_id,
            read_w=info.rated_power_w if info else None,
            configured_w=sub.data.get(CONF_RATED_POWER),
        )
        return [InverterHandle(sub.subentry_id, sub, sub.title, client, _identity(info), rating)]
    if kind == KIND_SOLAREDGE:
        return [await _async_solaredge_inverter(ctx, sub)]
    if kind == KIND_VICTRON_GX:
        return [await _async_victron_gx(ctx, sub)]

    if kind == KIND_SUNGROW:
        return [await _async_sungrow_inverter(ctx, sub)]
    if kind == KIND_HUAWEI:
        return [await _async_huawei_inverter(ctx, sub)]
    if kind == KIND_GOODWE:
        return [await _async_goodwe_inverter(ctx, sub)]
    if kind == KIND_OPENDTU:
        return await _async_opendtu_inverters(ctx, sub)
    if kind == KIND_HA_ENTITY:
        rating = float(sub.data[CONF_RATED_POWER])
        entity_inverter = HaEntityInverter(
            ctx.hass,
            sub.data[CONF_POWER_ENTITY],
            sub.data[CONF_LIMIT_ENTITY],
            limit_unit=sub.data.get(CONF_LIMIT_UNIT, LIMIT_UNIT_WATT),
            rated_power_w=rating,
            max_age_s=float(sub.data.get(CONF_MAX_AGE, DEFAULT_INVERTER_ENTITY_MAX_AGE)),
        )
        identity = Identity(model="Home Assistant entities")
        return [InverterHandle(sub.subentry_id, sub, sub.title, entity_inverter, identity, rating)]
    _LOGGER.error("%s: unknown inverter kind %r", sub.title, kind)
    return []


async def async_build_meter(ctx: DeviceContext, sub: ConfigSubentry) -> MeterHandle | None:
    """The site meter of a meter subentry."""
    kind = sub.data.get(CONF_KIND, KIND_SUNSPEC_TCP)
    if kind in (KIND_SUNSPEC_TCP, KIND_SUNSPEC_RTU):
        connection = _sunspec_connection(ctx, sub)
        if connection is None:
            return None
        device = SunSpecDevice(connection, sub.data[CONF_UNIT_ID])
        client = SunSpecMeter(device, invert=bool(sub.data.get(CONF_INVERT, False)))
        meter_info = await async_try_setup(client, sub.title)
        phases = meter_info.phases if meter_info else 1
        return MeterHandle(sub, sub.title, client, _identity(meter_info), phases)
    if kind == KIND_POWERWALL:
        return _powerwall_meter(ctx, sub)
    if kind == KIND_SOLAREDGE:
        return await _async_solaredge_meter(ctx, sub)
    if kind == KIND_VICTRON_GX:
        grid = VictronGridMeter(
            ctx.pool.get(sub.data[CONF_HOST], sub.data[CONF_PORT]), sub.data[CONF_UNIT_ID]
        )
        grid_info = await async_try_setup(grid, sub.title)
        grid_identity = Identity(
            "Victron Energy", "GX grid meter", grid_info.serial_number if grid_info else None
        )
        return MeterHandle(
            sub, sub.title, grid, grid_identity, grid_info.phases if grid_info else 1
        )
    if kind == KIND_HA_ENTITY:
        meter = HaEntityMeter(
            ctx.hass,
            sub.data[CONF_POWER_ENTITY],
            invert=bool(sub.data.get(CONF_INVERT, False)),
            max_age_s=float(sub.data.get(CONF_MAX_AGE, DEFAULT_ENTITY_MAX_AGE)),
        )
        return MeterHandle(sub, sub.title, meter, Identity(model="Home Assistant entity"))
    _LOGGER.error("%s: unknown meter kind %r", sub.title, kind)
    return None


def known_rating(
    ctx: DeviceContext, key: str, *, read_w: float | None, configured_w: Any
) -> float | None:
    """An inverter's rating: read now, else stored from an earlier read, else from the flow.

    A fresh read replaces the stored value, so a start at which the inverter is down still
    counts it at its real rating (an unknown rating holds the rest of the site at 0 W
    under a generation limit or in fail-safe).
    """
    if read_w is not None and read_w > 0:
        if ctx.store is not None:
            ctx.store.set_rating(key, read_w)
        return read_w
    stored = ctx.store.rating(key) if ctx.store is not None else None
    if stored is not None:
        return stored
    usable = isinstance(configured_w, int | float) and not isinstance(configured_w, bool)
    return float(configured_w) if usable and configured_w > 0 else None


def _identity(info: InverterInfo | MeterInfo | None) -> Identity | None:
    """A SunSpec device's identity from its common model (None until it has been read)."""
    if info is None:
        return None
    return Identity(info.manufacturer, info.model, info.serial_number, info.version)


def serial_settings(data: Mapping[str, Any]) -> SerialSettings:
    """The line settings of an RS-485 subentry."""
    return SerialSettings(
        baudrate=int(data.get(CONF_BAUDRATE, DEFAULT_BAUDRATE)),
        parity=str(data.get(CONF_PARITY, "N")),
        stopbits=int(data.get(CONF_STOPBITS, 1)),
    )


def _sunspec_connection(ctx: DeviceContext, sub: ConfigSubentry) -> RegisterConnection | None:
    """The shared Modbus connection of a SunSpec subentry (TCP or RS-485)."""
    data = sub.data
    if data.get(CONF_KIND, KIND_SUNSPEC_TCP) == KIND_SUNSPEC_TCP:
        return ctx.pool.get(data[CONF_HOST], data[CONF_PORT])
    try:
        return ctx.pool.get_serial(data[CONF_SERIAL_PORT], serial_settings(data))
    except ValueError as err:
        # Two subentries on one bus at different line settings: the flow prevents this.
        _LOGGER.error("%s: %s", sub.title, err)
        return None


async def _async_solaredge_inverter(ctx: DeviceContext, sub: ConfigSubentry) -> InverterHandle:
    """A SolarEdge inverter on the site's shared connection (it serves one client at a time).

    Its set-up commits power control the first time (5-10 s, once in the inverter's life);
    the site's revert timeout becomes the inverter's command timeout.
    """
    data = sub.data
    client = SolarEdgeInverter(
        ctx.pool.get(data[CONF_HOST], data[CONF_PORT]),
        data[CONF_UNIT_ID],
        revert_timeout_s=ctx.revert_timeout_s,
        fallback_pct=float(data.get(CONF_FALLBACK_LIMIT, DEFAULT_SOLAREDGE_FALLBACK)),
    )
    info = await async_try_setup(client, sub.title)
    rating = known_rating(
        ctx,
        sub.subentry_id,
        read_w=info.rated_power_w if info else None,
        configured_w=data.get(CONF_RATED_POWER),
    )
    identity = (
        Identity(info.manufacturer, info.model, info.serial_number, info.version) if info else None
    )
    return InverterHandle(sub.subentry_id, sub, sub.title, client, identity, rating)


async def _async_solaredge_meter(ctx: DeviceContext, sub: ConfigSubentry) -> MeterHandle:
    """A meter wired to a SolarEdge inverter, on the inverter's own connection.

    The inverter serves one Modbus client at a time: the pool's one connection per host:port
    carries the inverter's requests and the meter's, one at a time. A meter that is not at the
    grid connection point (any more) fails its set-up and every read: the site stays in
    fail-safe and the log says why.
    """
    data = sub.data
    client = SolarEdgeMeter(
        ctx.pool.get(data[CONF_HOST], data[CONF_PORT]),
        data[CONF_UNIT_ID],
        int(data.get(CONF_METER_NUMBER, DEFAULT_SOLAREDGE_METER_NUMBER)),
    )
    info = await async_try_setup(client, sub.title)
    identity = (
        Identity(info.manufacturer, info.model, info.serial_number, info.version) if info else None
    )
    return MeterHandle(sub, sub.title, client, identity, info.phases if info else 1)


async def _async_victron_gx(ctx: DeviceContext, sub: ConfigSubentry) -> InverterHandle:
    """A Victron GX driven through its ESS maximum feed-in, rated at the PV it manages.

    Its own feed-in setting, read when it was added, is what releasing writes back. The
    setting is persistent, so the site's revert timeout does not apply.
    """
    data = sub.data
    own = data.get(CONF_OWN_FEED_IN)
    rating = float(data[CONF_RATED_POWER])
    client = VictronGxInverter(
        ctx.pool.get(data[CONF_HOST], data[CONF_PORT]),
        rated_power_w=rating,
        own_limit_w=int(own)
        if isinstance(own, int | float) and not isinstance(own, bool)
        else None,
    )
    info = await async_try_setup(client, sub.title)
    identity = Identity("Victron Energy", "GX (ESS)", info.serial_number if info else None)
    return InverterHandle(sub.subentry_id, sub, sub.title, client, identity, rating)


def _stored_baseline[B](
    ctx: DeviceContext,
    sub: ConfigSubentry,
    store_key: str,
    decode: Callable[[Any], B],
    encode: Callable[[B], Any],
) -> tuple[B | None, Callable[[B | None], None]]:
    """The installer's setting kept for ``sub`` under ``store_key``, and how to keep a new one.

    Devices that hold our limit in persistent memory (Sungrow, Huawei, GoodWe) report the
    setting they had before the first write; after a crash only the store knows it. A stored
    value that does not decode is logged and ignored (the device's own is read again).
    """
    key = sub.subentry_id

    def stored() -> dict[str, Any]:
        kept = ctx.store.data.get(store_key) if ctx.store is not None else None
        return dict(kept) if isinstance(kept, dict) else {}

    baseline: B | None = None
    raw = stored().get(key)
    if raw is not None:
        try:
            baseline = decode(raw)
        except (KeyError, TypeError, ValueError) as err:
            _LOGGER.warning("%s: ignoring a stored baseline that is not valid: %s", sub.title, err)

    def keep(value: B | None) -> None:
        if ctx.store is None:
            return
        kept = stored()
        if value is None:
            kept.pop(key, None)
        else:
            kept[key] = encode(value)
        ctx.store.schedule_save(store_key, kept)

    return baseline, keep


STORE_SUNGROW_BASELINES = "sungrow_baselines"
"""Store key: per subentry, the power limitation a Sungrow inverter had before we limited it."""


async def _async_sungrow_inverter(ctx: DeviceContext, sub: ConfigSubentry) -> InverterHandle:
    """A Sungrow inverter on the site's shared, WiNet-S-paced connection.

    Sungrow holds a limit with no revert timer, so the site hands it back when it stops; the
    installer's own limitation (the baseline) is stored before the first write, because after
    a crash the inverter still holds our limit and only the store knows what to restore.
    """
    data = sub.data
    key = sub.subentry_id
    baseline, keep = _stored_baseline(
        ctx,
        sub,
        STORE_SUNGROW_BASELINES,
        lambda raw: Baseline(int(raw["switch"]), int(raw["ratio"])),
        lambda value: {"switch": value.switch, "ratio": value.ratio},
    )

    client = SungrowInverter(
        pace_for_winet(ctx.pool.get(data[CONF_HOST], data[CONF_PORT])),
        data[CONF_UNIT_ID],
        baseline=baseline,
        on_baseline=keep,
    )
    info = await async_try_setup(client, sub.title)
    read_w = info.rated_power_w if info else None
    rating = known_rating(ctx, key, read_w=read_w, configured_w=data.get(CONF_RATED_POWER))
    identity = Identity(info.manufacturer, info.model, info.serial_number) if info else None
    return InverterHandle(key, sub, sub.title, client, identity, rating)


STORE_HUAWEI_BASELINES = "huawei_baselines"
"""Store key: per subentry, the derating (0.1 %) a Huawei inverter had before we limited it."""


async def _async_huawei_inverter(ctx: DeviceContext, sub: ConfigSubentry) -> InverterHandle:
    """A Huawei SUN2000 on the site's shared, SDongle-paced connection.

    The dongle takes one client at a time, so every unit behind it (and the flow's check while
    the site runs) shares the pool's one connection. Huawei keeps a derating with no revert
    timer: the installer's value (the baseline) is stored before the first write, as for
    Sungrow, because after a crash only the store knows what to restore.
    """
    data = sub.data
    key = sub.subentry_id
    baseline, keep = _stored_baseline(
        ctx,
        sub,
        STORE_HUAWEI_BASELINES,
        lambda raw: HuaweiBaseline(int(raw)),
        lambda value: value.derating,
    )

    client = HuaweiInverter(
        pace_for_sdongle(ctx.pool.get(data[CONF_HOST], data[CONF_PORT])),
        data[CONF_UNIT_ID],
        baseline=baseline,
        on_baseline=keep,
    )
    info = await async_try_setup(client, sub.title)
    read_w = info.rated_power_w if info else None
    rating = known_rating(ctx, key, read_w=read_w, configured_w=data.get(CONF_RATED_POWER))
    identity = Identity(info.manufacturer, info.model, info.serial_number) if info else None
    if info is not None and info.export_control_mode not in (None, 0):
        _LOGGER.info(
            "%s also limits export by itself (active power control mode %s); the site's "
            "limit is the derating, the inverter's own limit stays as the installer set it",
            sub.title,
            info.export_control_mode,
        )
    return InverterHandle(key, sub, sub.title, client, identity, rating)


STORE_GOODWE_BASELINES = "goodwe_baselines"
"""Store key: per subentry, the export switch and limit a GoodWe had before we limited it."""
GOODWE_TIMEOUT_S = 1.0
"""Seconds a GoodWe request may take before the library asks again (once)."""


async def _async_goodwe_inverter(ctx: DeviceContext, sub: ConfigSubentry) -> InverterHandle:
    """A GoodWe ET-family inverter through the goodwe library, limited by its export limit.

    The inverter keeps the limit in non-volatile memory with no revert timer: the installer's
    switch and limit (the baseline) are stored before the first write, because after a crash
    the inverter still holds our limit and only the store knows what to restore.
    """
    data = sub.data
    key = sub.subentry_id
    baseline, keep = _stored_baseline(
        ctx,
        sub,
        STORE_GOODWE_BASELINES,
        lambda raw: GoodWeBaseline(int(raw["enabled"]), int(raw["limit_w"])),
        lambda value: {"enabled": value.enabled, "limit_w": value.limit_w},
    )

    client = GoodWeInverter(
        GoodWeEtClient(data[CONF_HOST], timeout_s=GOODWE_TIMEOUT_S, retries=1),
        baseline=baseline,
        on_baseline=keep,
    )
    info = await async_try_setup(client, sub.title)
    read_w = info.rated_power_w if info else None
    rating = known_rating(ctx, key, read_w=read_w, configured_w=data.get(CONF_RATED_POWER))
    identity = (
        Identity("GoodWe", info.model_name or "ET", info.serial_number, info.firmware)
        if info
        else None
    )
    return InverterHandle(key, sub, sub.title, client, identity, rating)


STORE_OPENDTU_BASELINES = "opendtu_baselines"
"""Store key: per inverter key, the limit (%) an OpenDTU inverter had before we limited it."""


async def _async_opendtu_inverters(ctx: DeviceContext, sub: ConfigSubentry) -> list[InverterHandle]:
    """One handle per chosen inverter, all on one shared client for the DTU.

    Each inverter's baseline (what release restores) is kept in the site's store: after a
    restart the limit the DTU shows may be our own earlier one.
    """
    data = sub.data

    def baselines(store: SiteStore) -> dict[str, Any]:
        stored = store.data.get(STORE_OPENDTU_BASELINES)
        return dict(stored) if isinstance(stored, dict) else {}

    def stored_baseline(key: str) -> float | None:
        value = baselines(ctx.store).get(key) if ctx.store is not None else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 100:
            return float(value)
        return None

    def keep_baseline(key: str) -> Callable[[float | None], None] | None:
        store = ctx.store
        if store is None:
            return None

        def keep(pct: float | None) -> None:
            kept = baselines(store)
            if pct is None:
                kept.pop(key, None)
            else:
                kept[key] = pct
            store.schedule_save(STORE_OPENDTU_BASELINES, kept)

        return keep

    port = int(data.get(CONF_PORT, DEFAULT_OPENDTU_PORT))
    client = ctx.dtus.get((data[CONF_HOST], port))
    if client is None:
        client = OpenDtuClient(
            async_get_clientsession(ctx.hass), data[CONF_HOST], data[CONF_PASSWORD], port=port
        )
        ctx.dtus[(data[CONF_HOST], port)] = client
    handles: list[InverterHandle] = []
    dtu_answers = True
    for chosen in data.get(CONF_INVERTERS, []):
        serial = str(chosen[CONF_SERIAL])
        key = f"{sub.subentry_id}_{serial}"
        configured = chosen.get(CONF_RATED_POWER)
        inverter = OpenDtuInverter(
            client,
            serial,
            rated_power_w=float(configured) if configured else None,
            baseline_pct=stored_baseline(key),
            on_baseline=keep_baseline(key),
        )
        name = str(chosen.get(CONF_NAME) or serial)
        info = None
        if dtu_answers:  # a DTU that is down is not asked once per inverter at start-up
            try:
                info = await inverter.async_setup()
            except DeviceUnavailableError as err:
                dtu_answers = False
                _LOGGER.warning("%s is not ready (%s); will keep trying", sub.title, err)
            except DeviceError as err:
                _LOGGER.warning("%s is not ready (%s); will keep trying", name, err)
        rating = known_rating(
            ctx, key, read_w=info.max_power_w if info else None, configured_w=configured
        )
        handles.append(
            InverterHandle(
                key=key,
                subentry=sub,
                name=name,
                client=inverter,
                identity=Identity("Hoymiles", "Micro-inverter (OpenDTU)", serial),
                rated_power_w=rating,
                extras=_opendtu_extras(inverter),
                extra_keys=OPENDTU_EXTRAS,
            )
        )
    return handles


OPENDTU_EXTRAS = ("inverter_temperature", "limit_ack", "limit_response_time")
POWERWALL_EXTRAS = ("solar_power", "battery_power", "load_power", "battery_charge")


def _opendtu_extras(inverter: OpenDtuInverter) -> Callable[[], Mapping[str, Any]]:
    def extras() -> Mapping[str, Any]:
        status = inverter.limit_status
        return {
            "inverter_temperature": inverter.temperature_c,
            "limit_ack": status.set_status.lower() if status else None,
            "limit_outcome": inverter.pending_limit.outcome,
            "limit_response_time": inverter.response_time_s,
        }

    return extras


def _powerwall_meter(ctx: DeviceContext, sub: ConfigSubentry) -> MeterHandle:
    """The gateway as the site meter; nothing is sent before the first cycle."""
    data = sub.data
    port = int(data.get(CONF_PORT, DEFAULT_POWERWALL_PORT))
    client = ctx.powerwalls.get((data[CONF_HOST], port))
    if client is None:
        # The pinned fingerprint goes with every request (aiohttp's ssl=Fingerprint), so the
        # shared session's own TLS settings do not apply to the gateway.
        client = PowerwallClient(
            async_get_clientsession(ctx.hass),
            data[CONF_HOST],
            data[CONF_PASSWORD],
            fingerprint=data[CONF_FINGERPRINT],
            port=port,
        )
        ctx.powerwalls[(data[CONF_HOST], port)] = client
    meter = PowerwallMeter(client, frozen_after_s=ctx.meter_max_age_s)
    site_meter = PowerwallSiteMeter(ctx.hass, meter, sub)

    def extras() -> Mapping[str, Any]:
        values = meter.data
        if values is None:
            return {}
        return {
            "solar_power": values.solar_power_w,
            "battery_power": values.battery_power_w,
            "load_power": values.load_power_w,
            "battery_charge": values.battery_soe_pct,
        }

    identity = Identity("Tesla", "Powerwall 2 gateway", sub.unique_id, data.get(CONF_VERSION))
    return MeterHandle(
        sub,
        sub.title,
        site_meter,
        identity,
        phases=int(data.get(CONF_PHASES) or 1),
        extras=extras,
        extra_keys=POWERWALL_EXTRAS,
    )


def powerwall_issue_id(subentry_id: str) -> str:
    """The repair issue raised while a gateway shows a certificate other than the pinned one."""
    return f"powerwall_certificate_{subentry_id}"


class PowerwallSiteMeter:
    """The Powerwall meter, with a repair issue while the gateway's certificate has changed.

    A new certificate is either a replaced or reset gateway or something posing as it; only
    the user can tell, so the meter stays unavailable (fail-safe) until the meter's
    reconfigure accepts the new fingerprint.
    """

    def __init__(self, hass: HomeAssistant, meter: PowerwallMeter, sub: ConfigSubentry) -> None:
        """Wrap ``meter`` of subentry ``sub``."""
        self._hass = hass
        self.meter = meter
        self._sub = sub
        self._raised: str | None = None

    async def async_read(self) -> MeterReading:
        """Read the gateway; raise or clear the certificate issue."""
        try:
            reading = await self.meter.async_read()
        except CertificateChangedError as err:
            if self._raised != err.seen:
                self._raised = err.seen
                _LOGGER.error("%s: %s", self._sub.title, err)
                ir.async_create_issue(
                    self._hass,
                    DOMAIN,
                    powerwall_issue_id(self._sub.subentry_id),
                    is_fixable=False,
                    severity=ir.IssueSeverity.ERROR,
                    translation_key="powerwall_certificate",
                    translation_placeholders={
                        "name": self._sub.title,
                        "pinned": err.pinned,
                        "seen": err.seen,
                    },
                )
            raise
        if self._raised is not None:
            self._raised = None
            ir.async_delete_issue(self._hass, DOMAIN, powerwall_issue_id(self._sub.subentry_id))
        return reading
