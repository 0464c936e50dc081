"""``python -m he_ha.sim scenario.yaml``: the same as ``he-ha simulate``."""

from __future__ import annotations

import argparse
import sys

from he_ha.sim.simulate_cli import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m he_ha.sim", description="Run a he-ha cluster simulation.")
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
