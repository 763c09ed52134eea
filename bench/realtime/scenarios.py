"""Real-time scenarios: a simulated site (JSON beside this module) and how the run is set up.

Every scenario has a 6 kW inverter (τ 1 s unless slow), 6.5 kW of PV, a 1500 W export limit
(``--export-limit 0`` for zero export) and a household load that moves every second (σ 200 W,
seeded, so every run faces the same inputs).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from custom_components.dynamic_export.sim.scenario import Scenario, load_scenario

SCENARIO_DIR = Path(__file__).parent / "scenarios"


@dataclass(frozen=True, slots=True)
class RealtimeScenario:
    """One real-time scenario: its site file, an inverter lag override, a busy machine."""

    key: str
    file: str
    title: str
    time_constant_s: float | None = None
    busy_cpus: int = 0

    def sim(self) -> Scenario:
        """The simulated site, with the lag override applied."""
        scenario = load_scenario(SCENARIO_DIR / f"{self.file}.json")
        if self.time_constant_s is not None:
            inverters = tuple(
                replace(inv, time_constant_s=self.time_constant_s) for inv in scenario.inverters
            )
            scenario = replace(scenario, inverters=inverters)
        return replace(scenario, name=self.key)


SCENARIOS: dict[str, RealtimeScenario] = {
    s.key: s
    for s in (
        RealtimeScenario("noise", "noise", "1 s load noise"),
        RealtimeScenario("clouds", "clouds", "load noise + clouds"),
        RealtimeScenario("drops", "drops", "load noise + 3 kW drops and rises"),
        RealtimeScenario("drift", "drift", "load noise + slow drift (−35 W/s, 60 s)"),
        RealtimeScenario("meter_noise", "meter_noise", "drops + meter noise (σ 50 W)"),
        RealtimeScenario("slow", "drops", "drops, slow inverter (τ 5 s)", time_constant_s=5.0),
        RealtimeScenario("busy", "drops", "drops, busy machine (1 CPU loaded)", busy_cpus=1),
        RealtimeScenario("mixed", "mixed", "the issue's mix (noise, clouds, drops, drift)"),
    )
}
