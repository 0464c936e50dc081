"""The simulator runs the daemon's own supervisor per host (issue 15 item 1), not a copy."""

from __future__ import annotations

from pathlib import Path

from he_ha.sim import World, load_scenario
from he_ha.supervisor.core import Supervisor

SCENARIOS = Path(__file__).parent / "scenarios"


def test_every_host_runs_a_daemon_supervisor_and_publishes_its_slot() -> None:
    world = World(load_scenario(SCENARIOS / "cold-start" / "events.yaml"))
    world.run_until(200)
    for host in world.order:
        assert isinstance(host.supervisor, Supervisor)
        slot = world.slots[host.id]  # written by Supervisor._publish through publish.build_slot
        assert slot.hostname == host.name and "score_breakdown=" in slot.extra and "\npriority=" in slot.extra
