"""Safety checks the simulator runs after every virtual event, and the error they raise."""

from __future__ import annotations

from collections.abc import Iterable

import yaml

from he_ha.fsm.rules import RULES
from he_ha.fsm.states import StateName
from he_ha.sim.model import SimHost, SimLease
from he_ha.sim.scenario import Scenario


class SafetyViolation(AssertionError):
    """An invariant broke. Carries the schedule (YAML) that produced it and the log tail."""

    def __init__(self, message: str, t: float, scenario: Scenario, log: list[str], seed: int | None = None):
        self.t = t
        self.scenario = scenario
        self.seed = seed
        schedule = yaml.safe_dump(scenario.to_mapping(), sort_keys=False)
        tail = "\n".join(log[-25:])
        where = f" (seed {seed})" if seed is not None else ""
        super().__init__(f"t={t:.1f}: {message}{where}\n--- schedule ---\n{schedule}--- last log lines ---\n{tail}")


def check_world(hosts: Iterable[SimHost], lease: SimLease) -> str | None:
    """Invariant 1 and "never two engines": return what is wrong, or None.

    A VM the administrator started outside he-ha without its lease (``SimVm.unleased``) is not
    he-ha's doing: it is exempt from both checks; the scenarios that start one check what
    he-ha does about it (tests/sim/test_golden.py)."""
    running = None
    for host in hosts:
        if host.vm is None:
            continue
        if not host.powered:
            return f"a VM runs on powered-off {host.name}"
        if host.vm.unleased:
            continue
        if running is not None:
            return f"two engine VMs run at once: {running.name}, {host.name}"
        running = host
    if running is None:
        return None
    owner = lease.valid_owner()
    if owner is not running:
        return f"the VM runs on {running.name} without its lease (owner: {owner.name if owner else 'none'})"
    return None


def check_transition(before: StateName, after: StateName, rule_id: str) -> str | None:
    """Every decision must be one the rule table declares (the diagram is drawn from it)."""
    rule = RULES.get(rule_id)
    if rule is None:
        return f"unknown rule {rule_id!r}"
    if before not in rule.sources or rule.target(before) is not after:
        return f"rule {rule_id} does not lead from {before.value} to {after.value}"
    return None
