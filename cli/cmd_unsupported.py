"""Commands of the original that belong to VDSM-based deployment, not to the HA service.

He-ha has no VDSM: storage is reached through the paths in hosted-engine.conf, and deploying
the engine VM is the deployment tool's job. These commands say so and exit 1 rather than
pretending to work; ``--connect-storage`` checks instead that the HA storage areas are
reachable, which is what its callers need to know.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cli.arguments import Rules, Syntax
from cli.command import EXIT_FAILED, EXIT_OK, Command, error
from cli.environment import CliEnvironment
from cli.storage_admin import shared_areas


def _deploy(args: Sequence[str], env: CliEnvironment) -> int:
    error(
        "he-ha does not deploy the engine VM. Prepare the HA storage areas and this host's "
        "hosted-engine.conf with 'hosted-engine --init-storage' (see --help --init-storage)."
    )
    return EXIT_FAILED


def _connect_storage(args: Sequence[str], env: CliEnvironment) -> int:
    Syntax(rules=Rules.FIXED).parse("--connect-storage", args)  # the original passed them on, unread
    areas = shared_areas(env)
    if areas is None:
        return EXIT_FAILED
    problems = [f"{path}: {why}" for path in (areas.metadata, areas.lockspace) if (why := _unreachable(path))]
    for problem in problems:
        error(f"Connection to storage server failed: {problem}")
    return EXIT_FAILED if problems else EXIT_OK


def _unreachable(path: Path) -> str | None:
    """Why the area cannot be opened for reading and writing, or None if it can."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    return None


def _disconnect_storage(args: Sequence[str], env: CliEnvironment) -> int:
    error(
        "he-ha holds no storage-server connection of its own: nothing was disconnected. "
        "Unmount or log out of the storage with the system's tools once he-ha is stopped."
    )
    return EXIT_FAILED


COMMANDS = (
    Command(
        "--deploy",
        "--deploy [options]",
        "run the deployment (not part of he-ha)",
        "--deploy",
        "    he-ha does not deploy the engine VM; see --init-storage for the HA storage areas.",
        _deploy,
    ),
    Command(
        "--connect-storage",
        "--connect-storage",
        "check that the HA storage areas are reachable",
        "--connect-storage",
        "    Check that the metadata and lockspace areas named in hosted-engine.conf can be opened.\n"
        "    He-ha reaches storage through those paths; it has no storage-server connection of its own.",
        _connect_storage,
    ),
    Command(
        "--disconnect-storage",
        "--disconnect-storage",
        "not available: he-ha holds no storage connection",
        "--disconnect-storage",
        "    He-ha holds no storage-server connection; unmount the storage with the system's tools.",
        _disconnect_storage,
    ),
)
