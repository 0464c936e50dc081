"""``he-ha simulate``: run a scenario file and print its event log.

Exit codes: 0 the run completed, 1 a safety invariant broke (the schedule is printed),
2 the scenario file is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from he_ha.fsm import log_entry
from he_ha.sim.safety import SafetyViolation
from he_ha.sim.scenario import ScenarioError, load_scenario
from he_ha.sim.world import World, engine_outages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", type=Path, help="scenario YAML file (see docs/fsm.md)")
    parser.add_argument("--until", type=float, help="override the scenario's end time (virtual seconds)")
    parser.add_argument(
        "--decisions",
        type=Path,
        metavar="FILE",
        help="write every step as a JSON line (state, observation, record) for replay",
    )


def run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.until is not None:
        scenario = replace(scenario, until=args.until)
    world = World(scenario, record_steps=args.decisions is not None)
    try:
        result = world.run()
    except SafetyViolation as exc:
        print("\n".join(world.log))
        print(f"SAFETY VIOLATION: {exc}", file=sys.stderr)
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
