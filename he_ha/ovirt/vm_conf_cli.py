"""``he-ha vm-conf``: the vm.conf he-ha derives from the engine's OVF.

- ``--from-ovf FILE``: convert one OVF file (he_ha.ovirt.ovf);
- ``--from-store``: read ``<vmid>.ovf`` from the OVF_STORE volumes of the deployed layout
  that hosted-engine.conf describes (he_ha.ovirt.ovf_store), then convert it.

stdout gets the vm.conf body exactly as it is written to disk after the three-line header
(``key=value`` lines, ``devices=`` lines last); stderr gets what the conversion changed, which
store was read, and why a definition is refused. Exit status: 0 startable; 3 refused (the
legacy keys are still printed: the original would have written them; he-ha will not start
the VM from them); 1 the OVF or the store cannot be used (nothing printed on stdout);
2 hosted-engine.conf does not load or lacks a key the lookup needs.

Not here yet: the form without an option, which asks the running daemon for the definition
it would use now and its source.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from he_ha.config import ConfigError, ConfigPaths, load_hosted_engine_conf
from he_ha.ovirt.layout import DEFAULT_MOUNT_ROOT, VdsmRoots
from he_ha.ovirt.ovf import OvfConversion, OvfError, convert_ovf
from he_ha.ovirt.ovf_store import OvfStoreError, StoreRead, find_domain_stores, read_vm_conversion

EXIT_UNUSABLE = 1
EXIT_CONFIG = 2
EXIT_REFUSED = 3
DEFAULT_TIMEOUT = 60.0  # seconds for the storage reads of --from-store

T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-ovf", type=Path, metavar="FILE", help="convert this engine OVF file")
    source.add_argument("--from-store", action="store_true",
                        help="read the VM's OVF from the OVF_STORE volumes of the hosted-engine storage domain")
    parser.add_argument("--hosted-engine-conf", type=Path, default=ConfigPaths().hosted_engine_conf, metavar="FILE",
                        help="with --from-store: the host's hosted-engine.conf (vmid, sdUUID, the volumes)")
    parser.add_argument("--mount-root", type=Path, default=DEFAULT_MOUNT_ROOT, metavar="DIR",
                        help=f"with --from-store: VDSM's storage mount root (default {DEFAULT_MOUNT_ROOT})")
    parser.add_argument("--lv-tags", type=Path, metavar="FILE",
                        help="with --from-store on a block domain: the LV tags as JSON (he-ha does not run lvs yet)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"with --from-store: give up on storage after this long (default {DEFAULT_TIMEOUT:g})")


def run(args: argparse.Namespace) -> int:
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
        found = _with_deadline(read, args.timeout)
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
        return _fail(f"refused: he-ha will not start VM {conversion.vm_id} from this definition: "
                     f"{conversion.refusal}", EXIT_REFUSED)
    return 0


def _fail(message: str, code: int) -> int:
    print(f"he-ha vm-conf: {message}", file=sys.stderr)
    return code


def _with_deadline(call: Callable[[], T], timeout: float) -> T:
    """Run a blocking storage call on a daemon thread; TimeoutError when it takes longer
    (the thread is left behind: a hung NFS read cannot be interrupted; the process exits)."""
    outcome: list[tuple[bool, object]] = []

    def target() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name="vm-conf-storage", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise TimeoutError
    ok, value = outcome[0]
    if not ok:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]
