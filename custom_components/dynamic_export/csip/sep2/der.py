"""The documents the client PUTs about its DER: capability, settings, status, availability."""

from __future__ import annotations

from dataclasses import dataclass

from .units import ActivePower, ApparentPower, ReactivePower, WattHour


@dataclass(frozen=True, slots=True)
class DERCapability:
    """Nameplate ratings and supported modes (PUT to DERCapabilityLink)."""

    der_type: int
    modes_supported: int
    """DERControlType bits."""
    doe_modes_supported: int
    """DOEControlType bits; mandatory in CSIP-AUS."""
    rtg_max_w: ActivePower
    rtg_max_va: ApparentPower | None = None
    rtg_max_var: ReactivePower | None = None
    rtg_max_var_neg: ReactivePower | None = None
    rtg_max_charge_rate_w: ActivePower | None = None
    rtg_max_discharge_rate_w: ActivePower | None = None
    rtg_max_wh: WattHour | None = None
    rtg_normal_category: int | None = None
    rtg_abnormal_category: int | None = None


@dataclass(frozen=True, slots=True)
class DERSettings:
    """Settings in force (PUT to DERSettingsLink)."""

    updated_time: int
    set_max_w: ActivePower
    set_grad_w: int
    """Hundredths of a percent of rated power per second; 0 means no limit."""
    modes_enabled: int | None = None
    doe_modes_enabled: int | None = None
    set_max_va: ApparentPower | None = None
    set_max_var: ReactivePower | None = None
    set_max_var_neg: ReactivePower | None = None
    set_max_charge_rate_w: ActivePower | None = None
    set_max_discharge_rate_w: ActivePower | None = None
    set_max_wh: WattHour | None = None
    set_soft_grad_w: int | None = None


@dataclass(frozen=True, slots=True)
class StatusValue:
    """A DERStatus value with the time it last changed."""

    value: int
    date_time: int


@dataclass(frozen=True, slots=True)
class DERStatus:
    """Live status (PUT to DERStatusLink)."""

    reading_time: int
    gen_connect_status: StatusValue | None = None
    """ConnectStatus bits."""
    inverter_status: StatusValue | None = None
    local_control_mode_status: StatusValue | None = None
    operational_mode_status: StatusValue | None = None
    """OperationalModeStatus."""
    state_of_charge_status: StatusValue | None = None
    """Hundredths of a percent."""
    storage_mode_status: StatusValue | None = None
    stor_connect_status: StatusValue | None = None
    alarm_status: int | None = None


@dataclass(frozen=True, slots=True)
class DERAvailability:
    """What the DER could deliver now (PUT to DERAvailabilityLink)."""

    reading_time: int
    availability_duration: int | None = None
    max_charge_duration: int | None = None
    reserve_charge_percent: int | None = None
    reserve_percent: int | None = None
    stat_var_avail: ReactivePower | None = None
    stat_w_avail: ActivePower | None = None
