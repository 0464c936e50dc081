"""The ``he-ha`` command: one entry point, one subcommand per job.

Each subcommand module offers ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from he_ha import __version__

# subcommand name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("he_ha.devcluster.demo", "run a local demo cluster of simulated hosts on this machine"),
    "simulate": ("he_ha.sim.simulate_cli", "run a cluster scenario through the real state machine on a virtual clock"),
    "run": ("he_ha.supervisor.cli", "run the HA supervisor of this host (the systemd service)"),
    "failover-bound": (
        "he_ha.sim.bound_cli",
        "print the worst-case failover time of a timing configuration and check it",
    ),
    "storage-paths": ("he_ha.ovirt.paths_cli", "print where this host's shared volumes are and which rule found each"),
    "fence": ("he_ha.supervisor.fence", "destroy the local engine VM, then end the lease keeper (sanlock's killpath)"),
    "vm-conf": (
        "he_ha.ovirt.vm_conf_cli",
        "print the vm.conf from the engine's OVF (a file, the OVF_STORE) or the one the daemon uses",
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """he-ha's parser. With ``command``, only that subcommand's module is imported and given its
    options (the others are listed, bare): ``he-ha run`` does not load the simulator, the demo
    cluster and the other tools (3 MiB of the supervisor's RSS, issue 16 item 3), and sanlock's
    killpath (``he-ha fence``) does not load the supervisor."""
    parser = argparse.ArgumentParser(
        prog="he-ha", description="High-availability supervisor for the oVirt hosted engine."
    )
    parser.add_argument("--version", action="version", version=f"he-ha {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if command in (None, name):
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    command = words[0] if words and words[0] in SUBCOMMANDS else None  # argparse takes no abbreviation
    args = build_parser(command).parse_args(words)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
