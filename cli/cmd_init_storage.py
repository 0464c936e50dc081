"""``--init-storage``: the HA part of deployment (he-ha's own command; the original's
deployment wizard did this through VDSM).

The first host lays out the lockspace, the VM lease, the configuration-volume lock and an
all-zero metadata area; every host writes its hosted-engine.conf. Areas that hold something
else are refused unless ``--force``, and nothing in use is rewritten while any host is
alive. Re-running with the same arguments changes nothing (exit 0). The logic is
he_ha.provision.provision.

When hosted-engine.conf names a configuration volume (``conf_image_UUID``/``conf_volume_UUID``,
found as he_ha/ovirt/layout.py says) whose first 20480 bytes are blank, the configuration
archive is written there in the original's format (he_ha/ovirt/conf_archive.py), so the
original agent and CLI can read a cluster he-ha initialised: ``version`` = he-ha's version,
a minimal ``fhanswers.conf``, ``hosted-engine.conf`` = this host's file as written,
``broker.conf`` = this host's broker.conf (or the original package's default) and
``vm.conf`` = this host's vm.conf when there is one. A valid archive is never replaced
without ``--force``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cli.arguments import Syntax, UsageError
from cli.command import EXIT_FAILED, EXIT_OK, Command, error
from cli.environment import CliEnvironment
from cli.storage_admin import DRY_RUN_DONE, int_option, print_lines, run_storage_work, watching
from he_ha import __version__
from he_ha.config import MAX_HOST_ID, ConfigError, load_hosted_engine_conf, parse_flat_file
from he_ha.lease import LeaseClient
from he_ha.ovirt.conf_archive import (
    ARCHIVE_SIZE,
    DEFAULT_BROKER_CONF,
    MEMBERS,
    ConfArchiveError,
    build_archive,
    minimal_fhanswers,
    parse_archive,
)
from he_ha.ovirt.layout import VdsmRoots, resolve_volumes
from he_ha.provision import (
    NETWORK_TESTS,
    AreaIo,
    HostSettings,
    InitPlan,
    InitRequest,
    ProvisionError,
    Role,
    Step,
    StorageAreas,
    all_zero,
    apply_init,
    normalise_vm_uuid,
    plan_init,
)

COMMAND = "--init-storage"
LOCKSPACE_FILE = "hosted-engine.lockspace"
METADATA_FILE = "hosted-engine.metadata"
VALUED = (
    "--storage",
    "--lockspace",
    "--metadata",
    "--host-id",
    "--vm-uuid",
    "--fqdn",
    "--vm-conf",
    "--conf-out",
    "--io-timeout",
    "--gateway",
    "--network-test",
    "--bridge",
    "--tcp-target",
)


def _areas(options: dict[str, str]) -> StorageAreas | None:
    """The areas the options name; None: none named (a deployed host: hosted-engine.conf's volumes)."""
    storage = options.get("--storage")
    if storage is not None and ("--lockspace" in options or "--metadata" in options):
        raise UsageError(f"{COMMAND}: give --storage=DIR or --lockspace=PATH and --metadata=PATH, not both")
    if storage is not None:
        return StorageAreas(Path(storage) / LOCKSPACE_FILE, Path(storage) / METADATA_FILE)
    if "--lockspace" not in options and "--metadata" not in options:
        return None
    if "--lockspace" not in options or "--metadata" not in options:
        raise UsageError(f"{COMMAND}: give both --lockspace=PATH and --metadata=PATH")
    return StorageAreas(Path(options["--lockspace"]), Path(options["--metadata"]))


def _deployed_request(options: dict[str, str], env: CliEnvironment) -> tuple[StorageAreas, int, str | None]:
    """A host ``hosted-engine --deploy`` set up: the volumes, host id and VM uuid come from its
    hosted-engine.conf, which is left as it is (it needs no he-ha key)."""
    written = [
        key
        for key in ("--conf-out", "--fqdn", "--vm-conf", "--gateway", "--network-test", "--bridge", "--tcp-target")
        if key in options
    ]
    if written:
        raise UsageError(
            f"{COMMAND}: {', '.join(written)} go into a new hosted-engine.conf; with no --storage or "
            f"--lockspace/--metadata the deployed {env.paths.hosted_engine_conf} is used as it is"
        )
    try:
        conf, volumes = env.engine_conf(), env.volumes()
    except ConfigError as exc:
        raise UsageError(
            f"{COMMAND}: without --storage or --lockspace/--metadata the volumes come from hosted-engine.conf: {exc}"
        ) from None
    if "--host-id" in options:
        host_id = int_option(COMMAND, "--host-id", options["--host-id"], 1, MAX_HOST_ID)
        if host_id != conf.host_id:
            raise UsageError(
                f"{COMMAND}: --host-id={host_id} differs from host_id={conf.host_id} in {env.paths.hosted_engine_conf}"
            )
    return StorageAreas(volumes.lockspace.path, volumes.metadata.path), conf.host_id, conf.vmid


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
    return HostSettings(
        fqdn=options.get("--fqdn"),
        vm_conf=Path(vm_conf) if vm_conf else None,
        gateway=options.get("--gateway"),
        network_test=test,
        bridge=options.get("--bridge"),
        tcp_address=address,
        tcp_port=port,
    )


def _request(args: Sequence[str], env: CliEnvironment) -> tuple[InitRequest, bool]:
    parsed = Syntax(flags=("--force", "--dry-run"), valued=VALUED).parse(COMMAND, args).options
    options = {key: str(value) for key, value in parsed.items() if isinstance(value, str)}
    areas = _areas(options)
    conf_out: Path | None = Path(options.get("--conf-out") or env.paths.hosted_engine_conf)
    if areas is None:
        areas, host_id, vm_uuid_text = _deployed_request(options, env)
        conf_out = None  # the deployed hosted-engine.conf is not rewritten
    elif "--host-id" not in options:
        raise UsageError(f"{COMMAND}: --host-id=N is needed")
    else:
        host_id, vm_uuid_text = int_option(COMMAND, "--host-id", options["--host-id"], 1, MAX_HOST_ID), None
    vm_uuid_text = options.get("--vm-uuid", vm_uuid_text)
    vm_uuid = None
    if vm_uuid_text is not None:
        try:
            vm_uuid = normalise_vm_uuid(vm_uuid_text)
        except ValueError as exc:
            raise UsageError(f"{COMMAND}: --vm-uuid: {exc}") from None
    request = InitRequest(
        areas=areas,
        host_id=host_id,
        conf_out=conf_out,
        vm_uuid=vm_uuid,
        io_timeout=(
            int_option(COMMAND, "--io-timeout", options["--io-timeout"], 1, 300) if "--io-timeout" in options else None
        ),
        settings=_settings(options),
        force="--force" in parsed,
    )
    return request, "--dry-run" in parsed


async def _plan_conf_volume(io: AreaIo, env: CliEnvironment, request: InitRequest, plan: InitPlan) -> None:
    """Add the step that creates the configuration archive, when hosted-engine.conf names a
    blank configuration volume (refusals and findings otherwise)."""
    conf_out = request.conf_out or env.paths.hosted_engine_conf
    if plan.blockers or not conf_out.exists():
        return
    try:
        conf = load_hosted_engine_conf(conf_out)
    except ConfigError:
        return  # plan_init has said what is wrong with it
    if not (conf.conf_image_uuid or conf.conf_volume_uuid):
        return
    try:
        found = resolve_volumes(conf, VdsmRoots.from_mount_root(env.mount_root), conf_out).conf
    except ConfigError as exc:
        plan.blockers.append(f"the configuration volume: {exc}")
        return
    assert found is not None
    path = found.path
    current = await io.read(path, ARCHIVE_SIZE)
    if not all_zero(current):
        try:
            parse_archive(current)
        except ConfArchiveError as exc:
            what = f"configuration volume {path} holds something that is not a configuration archive ({exc})"
        else:
            what = f"configuration volume {path} holds a configuration archive"
            if not request.force:
                plan.findings.append(f"{what} (kept)")
                return
        if not request.force:
            plan.refusals.append(f"{what}; --force overwrites it")
            return
        plan.notes.append(f"--force overrides: {what}")

    async def members() -> dict[str, str]:
        text = await io.read_text(conf_out) or ""
        vm_conf = await io.read_text(request.settings.vm_conf or conf.vm_conf)
        broker = await io.read_text(env.paths.broker_conf)
        return {
            "version": __version__,
            "fhanswers.conf": minimal_fhanswers(parse_flat_file(conf_out)),
            "hosted-engine.conf": text,
            "broker.conf": broker if broker is not None else DEFAULT_BROKER_CONF,
            "vm.conf": vm_conf or "",
        }

    try:
        build_archive(await members())  # it fits now; the step builds it again from the files as written
    except ConfArchiveError as exc:
        plan.blockers.append(f"configuration volume {path}: {exc}")
        return

    async def write() -> None:
        data = build_archive(await members())
        await io.write(path, 0, data)  # O_DIRECT at offset 0: the volume keeps its size
        if await io.read(path, ARCHIVE_SIZE) != data:
            raise ProvisionError(f"read back of the configuration volume {path}: not the archive just written")

    plan.steps.append(Step(f"write the configuration archive ({', '.join(MEMBERS)}) at the start of {path}", write))


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
                await _plan_conf_volume(io, env, request, plan)
                print_lines("Found: ", plan.findings)
                print_lines("Note: ", plan.notes)
                if plan.blockers or plan.refusals:
                    print_lines("Refused: ", plan.blockers + plan.refusals, to_stderr=True)
                    return EXIT_FAILED
                if not plan.steps:
                    print(
                        f"Nothing to change: storage and {request.conf_out or env.paths.hosted_engine_conf} "
                        f"are set up for host {request.host_id} (VM {plan.vm_uuid})."
                    )
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
        "--init-storage [--host-id=<id> --storage=<dir>] [options]",
        "initialize the HA storage areas and write this host's hosted-engine.conf",
        f"{COMMAND} [--host-id=<id> (--storage=<dir> | --lockspace=<path> --metadata=<path>)] [--vm-uuid=<uuid>] "
        "[--fqdn=<fqdn>] [--vm-conf=<file>] [--conf-out=<file>] [--io-timeout=<seconds>] [--gateway=<address>] "
        "[--network-test=<test>] [--tcp-target=<address>:<port>] [--bridge=<name>] [--force] [--dry-run]",
        f"""\
    Prepare the shared storage of the hosted engine HA and this host's
    hosted-engine.conf. On the first host it creates the sanlock lockspace
    'hosted-engine', the engine VM lease and an empty metadata area; on an
    additional host it verifies them, reads the VM uuid from the lease and
    refuses a host id that another live host uses. It also writes the lock
    that guards the configuration volume ('he-ha-conf', after the VM lease)
    and, when hosted-engine.conf names a configuration volume that is
    blank, the configuration archive the original tools read. Running it
    again with the same arguments changes nothing.

    On a host 'hosted-engine --deploy' set up, give no --storage or
    --lockspace/--metadata: the volumes, the host id and the VM uuid come
    from its hosted-engine.conf (found by VDSM's storage layout under
    $HE_HA_MOUNT_ROOT, default /rhev/data-center/mnt), and that file is not
    changed.

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
    --network-test=<{"|".join(NETWORK_TESTS)}>, --tcp-target=<address>:<port>
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
