"""A deterministic multi-host simulator: N hosts on a virtual clock, each running the daemon's
own tick (he_ha.supervisor.assemble) against a simulated host environment (hostenv.py) over
models of the whiteboard, sanlock, the VM and its lease (model.py)."""

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
