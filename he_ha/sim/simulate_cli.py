"""``he-ha simulate``: run a scenario file (or a random schedule by seed) and print its
event log, then the engine outages.

Exit codes: 0 the run completed, 1 a safety invariant broke (the schedule is printed),
2 bad arguments or an invalid scenario file.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import yaml

from he_ha.fsm import log_entry
from he_ha.fsm.timing import TimingConfig
from he_ha.sim.bound import failover_bound
from he_ha.sim.randomized import TAIL, random_schedule
from he_ha.sim.safety import SafetyViolation
from he_ha.sim.scenario import Scenario, ScenarioError, SimParams, load_scenario
from he_ha.sim.world import SimError, World, engine_outages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", type=Path, nargs="?", help="scenario YAML file (see docs/fsm.md)")
    parser.add_argument(
        "--random", type=int, metavar="SEED", help="run the randomized test's schedule for SEED instead of a file"
    )
    parser.add_argument("--until", type=float, help="override the end time (virtual seconds)")
    parser.add_argument(
        "--decisions",
        type=Path,
        metavar="FILE",
        help="write every step as a JSON line (state, observation, record) for replay",
    )


def _scenario(args: argparse.Namespace) -> Scenario:
    if (args.scenario is None) == (args.random is None):
        raise ScenarioError("give either a scenario file or --random SEED")
    if args.scenario is not None:
        scenario = load_scenario(args.scenario)
    else:
        timing, sim = TimingConfig(), SimParams()
        scenario, faults_end = random_schedule(args.random, timing, sim)
        bound = failover_bound(timing, scenario.sim, max(h.read_period for h in scenario.hosts))
        scenario = replace(scenario, until=faults_end + bound.total + TAIL)
        print("# " + yaml.safe_dump(scenario.to_mapping(), sort_keys=False).replace("\n", "\n# ").rstrip("# "))
    return scenario if args.until is None else replace(scenario, until=args.until)


def run(args: argparse.Namespace) -> int:
    try:
        scenario = _scenario(args)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    world = World(scenario, record_steps=args.decisions is not None, seed=args.random)
    try:
        result = world.run()
    except (SafetyViolation, SimError) as exc:
        print("\n".join(world.log))
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print("\n".join(result.log))
    for start, end in engine_outages(result.engine_ok, scenario.until):
        shown = "still down at the end" if end is None else f"{end - start:.1f} s"
        print(f"engine down from {start:.1f}: {shown}")
    if args.decisions is not None:
        with args.decisions.open("w", encoding="utf-8") as out:
            for state, observation, record in result.recorded:
                out.write(json.dumps(log_entry(state, observation, record)) + "\n")
    return 0
