"""Constants of the Dynamic Export integration."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "dynamic_export"

# Config entry (the site)
CONF_SITE_NAME: Final = "name"
CONF_CONTROL_INTERVAL: Final = "control_interval"
CONF_CONTROL_ENABLED: Final = "control_enabled"
CONF_METER_MAX_AGE: Final = "meter_max_age"
CONF_RAMP_UP_RATE: Final = "ramp_up_rate"
CONF_DEADBAND: Final = "deadband"
CONF_REVERT_TIMEOUT: Final = "revert_timeout"

DEFAULT_CONTROL_INTERVAL: Final = 1.0
MIN_CONTROL_INTERVAL: Final = 1
MAX_CONTROL_INTERVAL: Final = 60
DEFAULT_METER_MAX_AGE: Final = 5.0
DEFAULT_RAMP_UP_RATE: Final = 25.0
DEFAULT_DEADBAND: Final = 1.0
DEFAULT_REVERT_TIMEOUT: Final = 60
STORE_RATINGS: Final = "ratings"
"""Site store key: inverter key -> rated power (W) as last read."""

# Subentry types
SUBENTRY_INVERTER: Final = "inverter"
SUBENTRY_METER: Final = "meter"
SUBENTRY_FIXED_LIMITER: Final = "fixed_limiter"
DEVICE_SUBENTRIES: Final = (SUBENTRY_INVERTER, SUBENTRY_METER)

# SunSpec device subentries
CONF_UNIT_ID: Final = "unit_id"
CONF_INVERT: Final = "invert"
DEFAULT_MODBUS_PORT: Final = 502
DEFAULT_INVERTER_UNIT_ID: Final = 1
DEFAULT_METER_UNIT_ID: Final = 240

# Fixed limiter subentries (watt limits are optional)
CONF_ENABLED: Final = "enabled"
CONF_CONNECT: Final = "connect"
CONF_ENERGIZE: Final = "energize"
CONF_EXPORT_LIMIT: Final = "export_limit"
CONF_GENERATION_LIMIT: Final = "generation_limit"
CONF_IMPORT_LIMIT: Final = "import_limit"
CONF_LOAD_LIMIT: Final = "load_limit"
WATT_LIMIT_KEYS: Final = (
    CONF_EXPORT_LIMIT,
    CONF_GENERATION_LIMIT,
    CONF_IMPORT_LIMIT,
    CONF_LOAD_LIMIT,
)
# The largest watt limit a form or number entity takes. In Australia's NEM a generating system
# under 5 MW is exempt from registering with AEMO; a larger one is a registered generator that
# AEMO dispatches, not a site this controller or a CSIP-AUS dynamic connection (residential and
# small commercial, up to a few hundred kW) would run. Imports are held to the same bound: a
# load above 5 MW is a high-voltage customer.
MAX_LIMIT_W: Final = 5_000_000

# Price, tariff, battery and MQTT limiters
SUBENTRY_AMBER: Final = "amber"
SUBENTRY_TARIFF: Final = "tariff"
SUBENTRY_SOC: Final = "battery_soc"
SUBENTRY_MQTT: Final = "mqtt_limiter"
LIMITER_SUBENTRIES: Final = (
    "csip_aus",
    SUBENTRY_FIXED_LIMITER,
    SUBENTRY_AMBER,
    SUBENTRY_TARIFF,
    SUBENTRY_SOC,
    SUBENTRY_MQTT,
)
CONF_SITE_ID: Final = "site_id"
CONF_THRESHOLD: Final = "threshold"
CONF_FALLBACK: Final = "fallback"
CONF_PRESET: Final = "preset"
CONF_WINDOWS: Final = "windows"
CONF_TIMEZONE: Final = "timezone"
CONF_SOC_ENTITY: Final = "soc_entity"
CONF_HYSTERESIS: Final = "hysteresis"
CONF_LOW_EXPORT_LIMIT: Final = "low_export_limit"
CONF_HIGH_EXPORT_LIMIT: Final = "high_export_limit"
CONF_MAX_AGE: Final = "max_age"
CONF_TOPIC: Final = "topic"
PRESET_CUSTOM: Final = "custom"

# Services
SERVICE_SET_LIMITS: Final = "set_limits"
SERVICE_CLEAR_LIMITS: Final = "clear_limits"
ATTR_SITE: Final = "site"
ATTR_DURATION: Final = "duration"
ATTR_UNTIL: Final = "until"
OVERRIDE_SOURCE: Final = "Automation override"

# Device kinds (``kind`` in an inverter or meter subentry; absent means SunSpec TCP)
CONF_KIND: Final = "kind"
KIND_SUNSPEC_TCP: Final = "sunspec_tcp"
KIND_SUNSPEC_RTU: Final = "sunspec_rtu"
KIND_OPENDTU: Final = "opendtu"
KIND_POWERWALL: Final = "powerwall"
KIND_HA_ENTITY: Final = "ha_entity"
KIND_SOLAREDGE: Final = "solaredge"
KIND_VICTRON_GX: Final = "victron_gx"
KIND_SUNGROW: Final = "sungrow"
KIND_HUAWEI: Final = "huawei"
KIND_GOODWE: Final = "goodwe"
DEVICE_KINDS_INVERTER: Final = (
    KIND_SUNSPEC_TCP,
    KIND_SUNSPEC_RTU,
    KIND_SOLAREDGE,
    KIND_VICTRON_GX,
    KIND_SUNGROW,
    KIND_HUAWEI,
    KIND_GOODWE,
    KIND_OPENDTU,
    KIND_HA_ENTITY,
)
DEVICE_KINDS_METER: Final = (
    KIND_SUNSPEC_TCP,
    KIND_SUNSPEC_RTU,
    KIND_SOLAREDGE,
    KIND_POWERWALL,
    KIND_VICTRON_GX,
    KIND_HA_ENTITY,
)

# SunSpec over RS-485 (Modbus RTU)
CONF_SERIAL_PORT: Final = "serial_port"
CONF_BAUDRATE: Final = "baudrate"
CONF_PARITY: Final = "parity"
CONF_STOPBITS: Final = "stopbits"
DEFAULT_BAUDRATE: Final = 9600

# Tesla Powerwall 2 and OpenDTU (password, host and port use Home Assistant's names)
CONF_FINGERPRINT: Final = "fingerprint"
CONF_PHASES: Final = "phases"
CONF_VERSION: Final = "version"
DEFAULT_POWERWALL_PORT: Final = 443
DEFAULT_OPENDTU_PORT: Final = 80
CONF_INVERTERS: Final = "inverters"
CONF_SERIAL: Final = "serial"
CONF_RATED_POWER: Final = "rated_power"

# SolarEdge over Modbus TCP (Enhanced Dynamic Power Control)
CONF_FALLBACK_LIMIT: Final = "fallback_limit"
"""% of the rating the inverter holds by itself once we stop writing (its command timeout)."""
DEFAULT_SOLAREDGE_PORT: Final = 1502
DEFAULT_SOLAREDGE_FALLBACK: Final = 0.0
CONF_METER_NUMBER: Final = "meter_number"
"""Which of the meters wired to a SolarEdge inverter (1-3) is the site meter."""
DEFAULT_SOLAREDGE_METER_NUMBER: Final = 1

# Victron GX (ESS) over Modbus TCP: the GX as the inverter (maximum feed-in), its grid meter
CONF_OWN_FEED_IN: Final = "own_feed_in"
"""The GX's maximum feed-in found when it was added (W, -1 none): written back on release."""
DEFAULT_VICTRON_PORT: Final = 502
DEFAULT_VICTRON_METER_UNIT_ID: Final = 30
# Sungrow SG/SH over Modbus TCP (host, port and unit id as for SunSpec)
DEFAULT_SUNGROW_PORT: Final = 502
# Huawei SUN2000 over Modbus TCP: an SDongle on 502 (6607 on newer firmware and the
# inverter's own Wi-Fi), unit 1 (some dongles use 0)
DEFAULT_HUAWEI_PORT: Final = 502
DEFAULT_HUAWEI_UNIT_ID: Final = 1

# Home Assistant entities as devices
CONF_POWER_ENTITY: Final = "power_entity"
CONF_LIMIT_ENTITY: Final = "limit_entity"
CONF_LIMIT_UNIT: Final = "limit_unit"
LIMIT_UNIT_WATT: Final = "watt"
LIMIT_UNIT_PERCENT: Final = "percent"
DEFAULT_ENTITY_MAX_AGE: Final = 5.0
DEFAULT_INVERTER_ENTITY_MAX_AGE: Final = 60.0
"""An inverter's power sensor may be polled by its integration every 30 s or so."""

# CSIP-AUS limiter
SUBENTRY_CSIP: Final = "csip_aus"
CONF_DCAP_URL: Final = "dcap_url"
CONF_CERT_PEM: Final = "certificate"
CONF_KEY_PEM: Final = "private_key"
CONF_CA_PEM: Final = "ca_certificates"
CONF_CSR_PEM: Final = "csr"
CONF_VERIFY_SERVER: Final = "verify_server"
CONF_NMI: Final = "nmi"
CONF_PIN: Final = "pin"
CONF_PEN: Final = "pen"
CONF_DEFAULT_EXPORT_LIMIT: Final = "default_export_limit"
CONF_DEFAULT_IMPORT_LIMIT: Final = "default_import_limit"
