"""What ``--init-storage``, ``--clean-metadata`` and ``--reinitialize-lockspace`` share:
running their async storage work with a clean failure for every storage error, and the
shared paths from hosted-engine.conf.

These commands go to storage directly (O_DIRECT, sanlock through this host's daemon), so
they work while the he-ha daemon is stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.arguments import UsageError
from cli.command import EXIT_FAILED, error, require_deployed
from cli.environment import CliEnvironment
from he_ha.config import ConfigError, HostedEngineConf
from he_ha.lease import LeaseError
from he_ha.provision import AreaError, ProvisionError
from he_ha.repair.clean_metadata import CleanAborted

STORAGE_ERRORS = (AreaError, LeaseError, ProvisionError, CleanAborted, ConfigError)
NOT_CONFIGURED = "Hosted Engine is not configured."
DRY_RUN_DONE = "Dry run: nothing was changed."


def run_storage_work(work: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """``asyncio.run(work())``; a storage error is printed on stderr (exit 1), never a traceback."""
    try:
        return asyncio.run(work())
    except STORAGE_ERRORS as exc:
        error(str(exc))
        return EXIT_FAILED


@dataclass(frozen=True)
class SharedAreas:
    conf: HostedEngineConf
    lockspace: Path
    metadata: Path


def shared_areas(env: CliEnvironment) -> SharedAreas | None:
    """This host's configuration and shared paths, or None after saying what is missing
    (not deployed, unreadable file, not configured, no path)."""
    if require_deployed(env) is None:
        return None
    try:
        conf = env.engine_conf()
        if not conf.configured:
            error(f"{NOT_CONFIGURED} ('configured' is not True in {env.paths.hosted_engine_conf})")
            return None
        volumes = env.volumes()
    except ConfigError as exc:
        error(str(exc))
        return None
    return SharedAreas(conf, volumes.lockspace.path, volumes.metadata.path)


def int_option(command: str, name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{command}: {name}={value!r} is not a number") from None
    if not low <= number <= high:
        raise UsageError(f"{command}: {name}={number} is outside {low}..{high}")
    return number


def watching(seconds: float) -> None:
    print(f"Watching shared storage for {seconds:.0f} s to see which hosts are alive...", flush=True)


def print_lines(prefix: str, lines: list[str], *, to_stderr: bool = False) -> None:
    for line in lines:
        if to_stderr:
            error(f"{prefix}{line}")
        else:
            print(f"{prefix}{line}")
