"""``he-ha vm-conf``: the vm.conf he-ha derives from the engine's OVF, or the one it uses.

- ``--from-ovf FILE``: convert one OVF file (he_ha.ovirt.ovf);
- ``--from-store``: read ``<vmid>.ovf`` from the OVF_STORE volumes of the deployed layout
  that hosted-engine.conf describes (he_ha.ovirt.ovf_store), then convert it;
- no option: ask the running daemon (``--admin-socket``, ``GET /v1/vm/definition``) for the
  definition it uses now and its source;
- ``--resolved``: ask the daemon for the domain XML a start would hand libvirt now, resolved
  by the daemon itself (its host facts, its volume lookup, its lease holder): the same code
  and the same inputs as the start, so what is printed is what libvirt gets.

stdout gets the vm.conf body exactly as it is written to disk after the three-line header
(``key=value`` lines, ``devices=`` lines last), or with ``--resolved`` the domain XML; stderr
gets what the conversion (or resolution) changed, which store or source was read, and why a
definition is refused. Exit status: 0 startable; 3 refused (the legacy keys are still
printed: the original would have written them; he-ha will not start the VM from them; with
no option: the daemon has only such a definition); 1 the OVF or the store cannot be used,
the daemon does not answer, has no definition, or (``--resolved``) cannot resolve it: nothing
on stdout; 2 hosted-engine.conf does not load or lacks a key the lookup needs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cli.admin_client import AdminClient, AdminError, DaemonUnreachable
from he_ha.config import ConfigError, ConfigPaths, load_hosted_engine_conf
from he_ha.ovirt.layout import DEFAULT_MOUNT_ROOT, VdsmRoots
from he_ha.ovirt.ovf import OvfConversion, OvfError, convert_ovf
from he_ha.ovirt.ovf_store import OvfStoreError, StoreRead, find_domain_stores, read_vm_conversion
from he_ha.ovirt.vm_definition import call_with_deadline

EXIT_UNUSABLE = 1
EXIT_CONFIG = 2
EXIT_REFUSED = 3
DEFAULT_TIMEOUT = 60.0  # seconds for the storage reads of --from-store, and for the daemon's answer
DEFAULT_ADMIN_SOCKET = Path("/run/he-ha/admin.sock")
DEFINITION_ROUTE = "/v1/vm/definition"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from-ovf", type=Path, metavar="FILE", help="convert this engine OVF file")
    source.add_argument(
        "--from-store",
        action="store_true",
        help="read the VM's OVF from the OVF_STORE volumes of the hosted-engine storage domain",
    )
    source.add_argument(
        "--resolved",
        action="store_true",
        help="print the domain XML the running daemon would hand libvirt at a start now",
    )
    parser.add_argument(
        "--admin-socket",
        type=Path,
        default=DEFAULT_ADMIN_SOCKET,
        metavar="PATH",
        help=f"without --from-*: the daemon's admin socket (default {DEFAULT_ADMIN_SOCKET})",
    )
    parser.add_argument(
        "--hosted-engine-conf",
        type=Path,
        default=ConfigPaths().hosted_engine_conf,
        metavar="FILE",
        help="with --from-store: the host's hosted-engine.conf (vmid, sdUUID, the volumes)",
    )
    parser.add_argument(
        "--mount-root",
        type=Path,
        default=DEFAULT_MOUNT_ROOT,
        metavar="DIR",
        help=f"with --from-store: VDSM's storage mount root (default {DEFAULT_MOUNT_ROOT})",
    )
    parser.add_argument(
        "--lv-tags",
        type=Path,
        metavar="FILE",
        help="with --from-store on a block domain: the LV tags as JSON, instead of from lvs",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up on storage (--from-store) or on the daemon after this long (default {DEFAULT_TIMEOUT:g})",
    )


def run(args: argparse.Namespace) -> int:
    if args.from_ovf is None and not args.from_store:
        return _from_daemon(args)
    if args.from_ovf is not None:
        try:
            data = args.from_ovf.read_bytes()
        except OSError as exc:
            return _fail(f"cannot read {args.from_ovf}: {exc.strerror or exc}", EXIT_UNUSABLE)
        try:
            conversion = convert_ovf(data)
        except OvfError as exc:
            return _fail(f"{args.from_ovf}: {exc}", EXIT_UNUSABLE)
        return _print(conversion)
    try:
        conf = load_hosted_engine_conf(args.hosted_engine_conf)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    if not conf.vmid:
        return _fail(f"{args.hosted_engine_conf}: no vmid: which VM's OVF to read is unknown", EXIT_CONFIG)
    roots = VdsmRoots.from_mount_root(args.mount_root)
    vm_id = conf.vmid

    def read() -> StoreRead[OvfConversion]:
        scan = find_domain_stores(conf, roots, args.hosted_engine_conf, lv_tags=args.lv_tags)
        return read_vm_conversion(scan, vm_id)

    try:
        found = call_with_deadline(read, args.timeout, "vm-conf-storage")
    except OvfStoreError as exc:
        return _fail(str(exc), EXIT_UNUSABLE)
    except ConfigError as exc:  # a key the volume lookup needs is missing or wrong
        return _fail(str(exc), EXIT_CONFIG)
    except TimeoutError:
        return _fail(f"the storage did not answer within {args.timeout:g} s", EXIT_UNUSABLE)
    for failure in found.failures:
        print(f"he-ha vm-conf: skipped: {failure}", file=sys.stderr)
    store = found.store
    print(f"he-ha vm-conf: from {store.label}, {store.state}", file=sys.stderr)
    return _print(found.value)


def _print(conversion: OvfConversion) -> int:
    sys.stdout.write(conversion.text)
    sys.stdout.flush()
    for note in conversion.notes:
        print(f"he-ha vm-conf: note: {note}", file=sys.stderr)
    if conversion.refusal is not None:
        return _fail(
            f"refused: he-ha will not start VM {conversion.vm_id} from this definition: {conversion.refusal}",
            EXIT_REFUSED,
        )
    return 0


def _fail(message: str, code: int) -> int:
    print(f"he-ha vm-conf: {message}", file=sys.stderr)
    return code


def _from_daemon(args: argparse.Namespace) -> int:
    """The definition the running daemon uses (and, with --resolved, what it would launch)."""
    route = DEFINITION_ROUTE + ("?resolved=true" if args.resolved else "")
    try:
        detail: dict[str, Any] = AdminClient(args.admin_socket, timeout=args.timeout).get(route)
    except DaemonUnreachable as exc:
        return _fail(str(exc), EXIT_UNUSABLE)
    except AdminError as exc:
        return _fail(f"the daemon refused {route}: {exc.message}", EXIT_UNUSABLE)
    definition = detail["definition"]
    if detail["vm_conf"] is None:
        return _fail(definition["problem"] or "the daemon has no VM definition", EXIT_UNUSABLE)
    age = "" if definition["age"] is None else f", read {definition['age']:g} s ago"
    print(f"he-ha vm-conf: source {definition['source']}: {definition['path']}{age}", file=sys.stderr)
    if definition["problem"]:
        print(f"he-ha vm-conf: problem: {definition['problem']}", file=sys.stderr)
    if args.resolved:
        return _print_launch(detail)
    sys.stdout.write(detail["vm_conf"])
    sys.stdout.flush()
    if not detail["startable"]:
        return _fail(f"refused: the daemon has no definition it can start VM {detail['vm_id']} from", EXIT_REFUSED)
    return 0


def _print_launch(detail: dict[str, Any]) -> int:
    launch = detail["launch"]
    if launch is None:
        return _fail(f"cannot be made startable: {detail['launch_error']}", EXIT_UNUSABLE)
    sys.stdout.write(launch["xml"] + "\n")
    sys.stdout.flush()
    if not launch["engine_xml"]:
        print("he-ha vm-conf: a plain domain XML: passed to libvirt as it is", file=sys.stderr)
    for change in launch["changes"]:
        print(f"he-ha vm-conf: resolved: {change}", file=sys.stderr)
    for network in launch["networks"]:
        print(f"he-ha vm-conf: needs libvirt network {network}", file=sys.stderr)
    lease = launch["engine_lease"]
    if lease is not None:
        print(
            f"he-ha vm-conf: the engine's disk lease {lease['key']} in lockspace {lease['lockspace']} at "
            f"{lease['path']}:{lease['offset']} (held by QEMU beside he-ha's own lease with the qemu lease "
            "holder; the keeper and worker holders leave it out)",
            file=sys.stderr,
        )
    return 0
