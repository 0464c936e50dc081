"""A deterministic multi-host simulator: N hosts on a virtual clock, each running the real
state machine and score against models of the whiteboard, sanlock, the VM and its lease."""

from he_ha.sim.safety import SafetyViolation
from he_ha.sim.scenario import Event, HostSpec, Scenario, ScenarioError, SimParams, load_scenario, parse_scenario
from he_ha.sim.world import SimError, SimResult, World

__all__ = [
    "Event",
    "HostSpec",
    "SafetyViolation",
    "Scenario",
    "ScenarioError",
    "SimError",
    "SimParams",
    "SimResult",
    "World",
    "load_scenario",
    "parse_scenario",
]
