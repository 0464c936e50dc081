"""``--init-storage``: the HA part of deployment (he-ha's own command; the original's
deployment wizard did this through VDSM).

The first host lays out the lockspace, the VM lease and an all-zero metadata area; every
host writes its hosted-engine.conf. Areas that hold something else are refused unless
``--force``, and nothing in use is rewritten while any host is alive. Re-running with the
same arguments changes nothing (exit 0). The logic is he_ha.storage.provision.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cli.command import EXIT_FAILED, EXIT_OK, Command, UsageError, error, parse_options
from cli.environment import CliEnvironment
from cli.storage_admin import DRY_RUN_DONE, int_option, print_lines, run_storage_work, watching
from he_ha.config import MAX_HOST_ID
from he_ha.storage.area_io import AreaIo
from he_ha.storage.hostconf import NETWORK_TESTS
from he_ha.storage.leases import LeaseClient
from he_ha.storage.provision import (
    HostSettings,
    InitRequest,
    Role,
    StorageAreas,
    apply_init,
    normalise_vm_uuid,
    plan_init,
)

COMMAND = "--init-storage"
LOCKSPACE_FILE = "hosted-engine.lockspace"
METADATA_FILE = "hosted-engine.metadata"
VALUED = ("--storage", "--lockspace", "--metadata", "--host-id", "--vm-uuid", "--fqdn", "--vm-conf", "--conf-out",
          "--io-timeout", "--gateway", "--network-test", "--bridge", "--tcp-target")


def _areas(options: dict[str, str]) -> StorageAreas:
    storage = options.get("--storage")
    if storage is not None and ("--lockspace" in options or "--metadata" in options):
        raise UsageError(f"{COMMAND}: give --storage=DIR or --lockspace=PATH and --metadata=PATH, not both")
    if storage is not None:
        return StorageAreas(Path(storage) / LOCKSPACE_FILE, Path(storage) / METADATA_FILE)
    if "--lockspace" not in options or "--metadata" not in options:
        raise UsageError(f"{COMMAND}: the areas are needed: --storage=DIR, or --lockspace=PATH and --metadata=PATH")
    return StorageAreas(Path(options["--lockspace"]), Path(options["--metadata"]))


def _settings(options: dict[str, str]) -> HostSettings:
    test = options.get("--network-test")
    if test is not None and test not in NETWORK_TESTS:
        raise UsageError(f"{COMMAND}: --network-test={test!r} is not one of {', '.join(NETWORK_TESTS)}")
    address = port = None
    if "--tcp-target" in options:
        address, sep, text = options["--tcp-target"].rpartition(":")
        if not sep or not address:
            raise UsageError(f"{COMMAND}: --tcp-target needs ADDRESS:PORT, got {options['--tcp-target']!r}")
        port = int_option(COMMAND, "--tcp-target port", text, 1, 65535)
    vm_conf = options.get("--vm-conf")
    return HostSettings(fqdn=options.get("--fqdn"), vm_conf=Path(vm_conf) if vm_conf else None,
                        gateway=options.get("--gateway"), network_test=test, bridge=options.get("--bridge"),
                        tcp_address=address, tcp_port=port)


def _request(args: Sequence[str], env: CliEnvironment) -> tuple[InitRequest, bool]:
    parsed, _ = parse_options(COMMAND, args, flags=("--force", "--dry-run"), valued=VALUED)
    options = {key: str(value) for key, value in parsed.items() if isinstance(value, str)}
    if "--host-id" not in options:
        raise UsageError(f"{COMMAND}: --host-id=N is needed")
    vm_uuid = None
    if "--vm-uuid" in options:
        try:
            vm_uuid = normalise_vm_uuid(options["--vm-uuid"])
        except ValueError as exc:
            raise UsageError(f"{COMMAND}: --vm-uuid: {exc}") from None
    request = InitRequest(
        areas=_areas(options),
        host_id=int_option(COMMAND, "--host-id", options["--host-id"], 1, MAX_HOST_ID),
        conf_out=Path(options.get("--conf-out") or env.paths.hosted_engine_conf),
        vm_uuid=vm_uuid,
        io_timeout=(int_option(COMMAND, "--io-timeout", options["--io-timeout"], 1, 300)
                    if "--io-timeout" in options else None),
        settings=_settings(options),
        force="--force" in parsed,
    )
    return request, "--dry-run" in parsed


def _init_storage(args: Sequence[str], env: CliEnvironment) -> int:
    try:
        request, dry_run = _request(args, env)
    except UsageError as exc:
        error(str(exc))
        return EXIT_FAILED

    async def work() -> int:
        with AreaIo() as io:
            async with await LeaseClient.start(run_dir=env.sanlock_run_dir) as client:
                plan = await plan_init(client, io, request, announce=watching)
                print_lines("Found: ", plan.findings)
                print_lines("Note: ", plan.notes)
                if plan.blockers or plan.refusals:
                    print_lines("Refused: ", plan.blockers + plan.refusals, to_stderr=True)
                    return EXIT_FAILED
                if not plan.steps:
                    print(f"Nothing to change: storage and {request.conf_out} are set up for host {request.host_id} "
                          f"(VM {plan.vm_uuid}).")
                    return EXIT_OK
                if dry_run:
                    print_lines("Would ", [step.text for step in plan.steps])
                    print(DRY_RUN_DONE)
                    return EXIT_OK
                await apply_init(plan, lambda text: print(f"Done: {text}", flush=True))
                role = "the first host" if plan.role is Role.FIRST else "an additional host"
                print(f"Storage ready: host {request.host_id} set up as {role} of VM {plan.vm_uuid}.")
                return EXIT_OK

    return run_storage_work(work)


COMMANDS = (
    Command(
        COMMAND,
        "--init-storage --host-id=<id> --storage=<dir> [options]",
        "initialize the HA storage areas and write this host's hosted-engine.conf",
        f"{COMMAND} --host-id=<id> (--storage=<dir> | --lockspace=<path> --metadata=<path>) [--vm-uuid=<uuid>] "
        "[--fqdn=<fqdn>] [--vm-conf=<file>] [--conf-out=<file>] [--io-timeout=<seconds>] [--gateway=<address>] "
        "[--network-test=<test>] [--tcp-target=<address>:<port>] [--bridge=<name>] [--force] [--dry-run]",
        f"""\
    Prepare the shared storage of the hosted engine HA and this host's
    hosted-engine.conf. On the first host it creates the sanlock lockspace
    'hosted-engine', the engine VM lease and an empty metadata area; on an
    additional host it verifies them, reads the VM uuid from the lease and
    refuses a host id that another live host uses. Running it again with
    the same arguments changes nothing.

    --host-id=<id>
                        This host's id, 1..{MAX_HOST_ID}.
    --storage=<dir>
                        Use {LOCKSPACE_FILE} and {METADATA_FILE} in <dir>
                        (created at the right size when missing).
    --lockspace=<path>, --metadata=<path>
                        The two areas, each a file (created when missing) or an
                        existing block device.
    --vm-uuid=<uuid>
                        The engine VM's uuid; needed on the first host (the VM
                        lease is named after it), read from storage otherwise.
    --fqdn=<fqdn>, --vm-conf=<file>, --gateway=<address>, --bridge=<name>,
    --network-test=<{'|'.join(NETWORK_TESTS)}>, --tcp-target=<address>:<port>
                        Written to hosted-engine.conf as fqdn, conf, gateway,
                        bridge, network_test, tcp_t_address/tcp_t_port.
    --conf-out=<file>
                        Where to write hosted-engine.conf (default: this host's).
    --io-timeout=<seconds>
                        sanlock io timeout of a new lockspace (default 10).
    --force
                        Overwrite areas or hosted-engine.conf values that hold
                        something else. Never while any host is alive.
    --dry-run
                        Print what would be done; change nothing.
""",
        _init_storage,
    ),
)
