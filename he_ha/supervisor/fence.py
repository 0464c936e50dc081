"""``he-ha fence FENCE_FILE KEEPER_PID``: what sanlock runs when this host loses the lockspace.

The lease keeper registers this command as its sanlock killpath. When the lockspace fails
(storage unreachable for 8 io timeouts) sanlock must end every holder of a lease in it. Plain
SIGKILL of the keeper would free the lease while the VM keeps running; instead sanlock runs
this: destroy the engine VM through libvirt, and only once it is gone, end the keeper. If
libvirt cannot be reached the keeper is left alone (exit 1): sanlock runs us again, and after
its kill grace time (40 s) it sends SIGKILL itself; a production host's watchdog then resets
the host if the lease cannot be given up.

FENCE_FILE (written by the supervisor at start-up) names the libvirt URI and the domain;
arguments are kept short because sanlock allows 128 bytes for all of them. Every run appends
one line to ``fence.log`` next to it (sanlock discards our output).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import libvirt

from he_ha.atomicfile import replace_file
from he_ha.lease import is_keeper
from he_ha.vm import DomainId

DEADLINE = 30  # seconds: sanlock's helper must never wait on us forever
EXIT_NOT_DESTROYED = 1


@dataclass(frozen=True)
class FenceTarget:
    uri: str
    domain: DomainId

    def to_json(self) -> str:
        return json.dumps({"uri": self.uri, "name": self.domain.name, "uuid": self.domain.uuid})


class FenceFileError(Exception):
    """The fence file is missing or not one of ours."""


def write_fence_file(path: Path, target: FenceTarget) -> None:
    replace_file(path, target.to_json())


def read_fence_file(path: Path) -> FenceTarget:
    try:
        data = json.loads(path.read_text())
        return FenceTarget(str(data["uri"]), DomainId(str(data["name"]), data.get("uuid")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FenceFileError(f"{path}: not a fence file: {exc}") from None


def destroy(target: FenceTarget) -> str:
    """Destroy the domain; what happened. Raises libvirt.libvirtError if it may still run."""
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # no stderr noise
    conn = libvirt.open(target.uri)
    try:
        try:
            if target.domain.uuid:
                dom = conn.lookupByUUIDString(target.domain.uuid)
            else:
                dom = conn.lookupByName(target.domain.name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return "no such domain"
            raise
        if not dom.isActive():
            return "not running"
        try:
            dom.destroy()
        except libvirt.libvirtError:
            if dom.isActive():
                raise
        return "destroyed"
    finally:
        conn.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fence_file", type=Path, help="written by 'he-ha run' in its run directory")
    parser.add_argument("keeper_pid", type=int, help="the lease keeper to end once the VM is gone")


def run(args: argparse.Namespace) -> int:
    signal.alarm(DEADLINE)  # SIGALRM's default action ends us
    fence_file: Path = args.fence_file
    try:
        target = read_fence_file(fence_file)
        outcome = destroy(target)
    except (FenceFileError, libvirt.libvirtError) as exc:
        _note(fence_file, f"VM NOT destroyed, lease keeper {args.keeper_pid} left alone: {exc}")
        return EXIT_NOT_DESTROYED
    ended = is_keeper(args.keeper_pid)
    if ended:
        os.kill(args.keeper_pid, signal.SIGTERM)  # its exit releases the lease
    _note(
        fence_file,
        f"VM {target.domain} {outcome}; lease keeper {args.keeper_pid} {'ended' if ended else 'was not running'}",
    )
    return 0


def _note(fence_file: Path, text: str) -> None:
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} he-ha fence: {text}\n"
    try:
        with open(fence_file.parent / "fence.log", "a", encoding="utf-8") as out:
            out.write(line)
    except OSError as exc:
        print(f"{line.rstrip()} (fence.log not writable: {exc})", file=sys.stderr)
