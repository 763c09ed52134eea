"""A simulated solar site (inverters, household load, grid meter) behind Modbus TCP.

Lets users try the integration without hardware and lets tests and benchmarks run
control scenarios, faster than real time if needed. Plain Python: nothing here
imports Home Assistant.
"""

from .physics import SimInverter, SimMeter, SimSite
from .scenario import Scenario, builtin_scenarios, load_scenario

__all__ = [
    "Scenario",
    "SimInverter",
    "SimMeter",
    "SimSite",
    "builtin_scenarios",
    "load_scenario",
]
