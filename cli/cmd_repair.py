"""``--clean-metadata`` and ``--reinitialize-lockspace``: guarded repairs of shared storage.

Both go to storage directly (the he-ha daemon may be stopped) and decide who is alive from
storage over an observation window (he_ha.provision.liveness), not from what hosts claim.
Deliberate fixes of the original (spec/hosted-engine-cli.md §13, §14, §21 items 3-4):
a refusal exits 1 and names the evidence and the overriding option (``--force-cleanup``,
not the non-existent ``--force-clean``); "not configured" exits 1 with a message instead
of 0 (reinitialize) or 255 (clean); no vm.conf is needed; ``--dry-run`` shows what would
change; ``--clean-metadata --unreadable`` replaces the ``dd if=/dev/zero`` procedure.

Arguments as the original took them (cli/arguments.py): ``--clean-metadata`` by the agent's
optparse rules (``--force-clean``, ``--force``, ``--host-id 2``, ``--host=2`` all work; so do
prefixes of he-ha's own options); ``--reinitialize-lockspace`` forces only when its first
argument is exactly ``--force``, as the original; a ``--force`` elsewhere is ignored, said on
stderr. Unlike the original, which ignored everything else, an unknown option of this
destructive command is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from cli.arguments import Rules, Syntax, UsageError
from cli.command import EXIT_FAILED, EXIT_OK, Command, daemon_answers, error
from cli.environment import CliEnvironment
from cli.storage_admin import (
    DRY_RUN_DONE,
    SharedAreas,
    int_option,
    print_lines,
    run_storage_work,
    shared_areas,
    watching,
)
from he_ha.config import MAX_HOST_ID
from he_ha.lease import LeaseClient, socket_path
from he_ha.lease import daemon_answers as sanlock_answers
from he_ha.provision import AreaIo
from he_ha.repair.clean_metadata import CleanPlan, CleanTarget, apply_clean, plan_clean
from he_ha.repair.reinit_lockspace import ACTIVE_AGENT, GLOBAL_ONLY, apply_reinit, plan_reinit

T = TypeVar("T")

CANNOT_CLEAN = "Cannot clean unclean metadata block. Consider --force-cleanup."


def _prepared(
    parse: Callable[[Sequence[str]], T], args: Sequence[str], env: CliEnvironment
) -> tuple[T, SharedAreas] | None:
    """The parsed options and this host's shared areas, or None after saying what is wrong."""
    try:
        parsed = parse(args)
    except UsageError as exc:
        error(str(exc))
        return None
    areas = shared_areas(env)
    return None if areas is None else (parsed, areas)


# --- --clean-metadata ---------------------------------------------------------------------------


CLEAN_SYNTAX = Syntax(
    flags=("--force-cleanup", "--dry-run", "--unreadable"), valued=("--host-id",), rules=Rules.OPTPARSE
)


def _clean_options(args: Sequence[str]) -> tuple[dict[str, str | bool], int | None]:
    command = "--clean-metadata"
    options = CLEAN_SYNTAX.parse(command, args).options
    host_id = None
    if "--host-id" in options:
        host_id = int_option(command, "--host-id", str(options["--host-id"]), 1, MAX_HOST_ID)
    if host_id is not None and "--unreadable" in options:
        raise UsageError(f"{command}: --host-id and --unreadable exclude each other")
    return options, host_id


def _clean_metadata(args: Sequence[str], env: CliEnvironment) -> int:
    prepared = _prepared(_clean_options, args, env)
    if prepared is None:
        return EXIT_FAILED
    (options, host_id), areas = prepared
    unreadable = "--unreadable" in options
    targets = None if unreadable else [host_id or areas.conf.host_id]
    local = f"the local he-ha daemon answers on {env.admin_socket}" if daemon_answers(env) else None

    async def work() -> int:
        with AreaIo() as io:
            plan = await plan_clean(
                io,
                lockspace=areas.lockspace,
                metadata=areas.metadata,
                host_ids=targets,
                own_host_id=areas.conf.host_id,
                local_daemon=local,
                announce=watching,
            )
            return await _clean(io, areas, plan, force="--force-cleanup" in options, dry_run="--dry-run" in options)

    return run_storage_work(work)


async def _clean(io: AreaIo, areas: SharedAreas, plan: CleanPlan, *, force: bool, dry_run: bool) -> int:
    print_lines("Note: ", plan.notes)
    for host_id in plan.empty:
        print(f"Metadata for host {host_id} is already empty: nothing to clean.")
    if not plan.targets:
        if not plan.empty:
            print("No unreadable metadata slot: nothing to clean.")
        return EXIT_OK
    if plan.refusals and not force:
        print_lines("Refused: ", plan.refusals, to_stderr=True)
        error(CANNOT_CLEAN)
        return EXIT_FAILED
    print_lines("--force-cleanup overrides: ", plan.refusals)
    if dry_run:
        for target in plan.targets:
            print(f"Would clear {target.describe()}")
        print(DRY_RUN_DONE)
        return EXIT_OK

    def report(target: CleanTarget) -> None:
        print(f"Cleaning {target.describe('metadata block')}!", flush=True)

    await apply_clean(io, areas.metadata, plan, report)
    return EXIT_OK


# --- --reinitialize-lockspace ----------------------------------------------------------------------


REINIT_SYNTAX = Syntax(flags=("--dry-run",), valued=("--io-timeout",), ignore=("--force",))


def _reinit_options(args: Sequence[str]) -> tuple[dict[str, str | bool], int | None]:
    command = "--reinitialize-lockspace"
    force = bool(args) and args[0] == "--force"  # the original's rule: exactly --force, first
    options = REINIT_SYNTAX.parse(command, args[1:] if force else args).options
    if force:
        options["--force"] = True
    io_timeout = None
    if "--io-timeout" in options:
        io_timeout = int_option(command, "--io-timeout", str(options["--io-timeout"]), 1, 300)
    return options, io_timeout


def _reinitialize_lockspace(args: Sequence[str], env: CliEnvironment) -> int:
    prepared = _prepared(_reinit_options, args, env)
    if prepared is None:
        return EXIT_FAILED
    (options, io_timeout), areas = prepared
    force, dry_run = "--force" in options, "--dry-run" in options

    async def work() -> int:
        if not dry_run and not await asyncio.to_thread(sanlock_answers, env.sanlock_run_dir):
            error(
                f"This host's sanlock daemon does not answer on {socket_path(env.sanlock_run_dir)}: "
                "the lockspace is rewritten through it (start sanlock)."
            )
            return EXIT_FAILED
        with AreaIo() as io:
            async with await LeaseClient.start(run_dir=env.sanlock_run_dir) as client:
                plan = await plan_reinit(
                    client,
                    io,
                    lockspace=areas.lockspace,
                    metadata=areas.metadata,
                    io_timeout=io_timeout,
                    force=force,
                    announce=watching,
                    vm_lease_path=areas.conf.vm_lease_path,
                    vm_lease_offset=areas.conf.vm_lease_offset,
                )
                print_lines("Note: ", plan.notes)
                if plan.refused and not force:
                    for heading, evidence in ((GLOBAL_ONLY, plan.maintenance), (ACTIVE_AGENT, plan.active)):
                        if evidence:
                            error(heading)
                            print_lines("    ", evidence, to_stderr=True)
                    error("--force overrides these checks (DANGEROUS).")
                    return EXIT_FAILED
                print_lines("--force overrides: ", plan.maintenance + plan.active)
                if dry_run:
                    print(f"Would rewrite {plan.describe()}; every host's delta lease would be reset.")
                    print(DRY_RUN_DONE)
                    return EXIT_OK
                await apply_reinit(client, io, plan)
                print(f"Reinitialized {plan.describe()}; it reads back blank.")
                return EXIT_OK

    return run_storage_work(work)


_FORCE_HELP = """\
                        This option overrides the safety checks. Use at your own
                        risk DANGEROUS."""

COMMANDS = (
    Command(
        "--reinitialize-lockspace",
        "--reinitialize-lockspace",
        "reinitialize the sanlock lockspace file. This WIPES all locks.",
        "--reinitialize-lockspace [--force] [--dry-run] [--io-timeout=<seconds>]",
        f"""\
    Reinitialize the sanlock lockspace file. This WIPES all locks.
    Available only in properly deployed cluster in global maintenance
    mode with all the agents stopped: the command watches shared storage
    for 3 x the hosts' sanlock io timeout and refuses while a host renews its
    lease, publishes its metadata or holds the engine VM lease.

    --force
{_FORCE_HELP}
                        Taken only as the first argument, as by the original.
    --dry-run
                        Print what would be rewritten; change nothing.
    --io-timeout=<seconds>
                        The io timeout to write when no lockspace record on
                        storage can be read (default 10; otherwise kept).
""",
        _reinitialize_lockspace,
    ),
    Command(
        "--clean-metadata",
        "--clean-metadata",
        "remove host's metadata from the global status database",
        "--clean-metadata [--force-cleanup] [--host-id=<id>] [--unreadable] [--dry-run]",
        f"""\
    Remove host's metadata from the global status database.
    Available only in properly deployed cluster with properly stopped
    agent: the command watches shared storage for 3 x the hosts' sanlock io
    timeout and refuses while the host renews its lease or publishes its
    metadata, and refuses this host's own slot while the local he-ha
    daemon answers. It works with every daemon stopped.

    --force-cleanup
{_FORCE_HELP}
    --host-id=<id>, --host-id <id>
                        Clean the metadata of the host with this id
                        (default: this host's id).
    --unreadable
                        Clean every slot that cannot be decoded (corrupt,
                        written by a newer agent, leftover bytes) instead of
                        one host's. Readable slots are left alone.
    --dry-run
                        Print which slots would be cleaned; change nothing.
    Options are read as the original agent's optparse read them: a unique
    prefix of an option is that option (--force-clean, --host=2).
""",
        _clean_metadata,
    ),
)
