"""The host lock in the run directory (its other small files, the keeper record and the fence
target, are written with he_ha.atomicfile.replace_file)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

# --- the host lock -----------------------------------------------------------------------------
#
# One process at a time acts on this host's engine VM and its lease holder: the daemon (for its
# whole life) or a ``hosted-engine`` VM command acting without it (cli/direct_vm.py). Without it
# a daemon starting while such a command is half-way (lockspace joined, keeper not recorded yet)
# would not adopt that command's lease keeper. flock: released by the kernel when the holder
# dies, so a crash leaves no stale lock; the file says who holds it, for the messages.

HOST_LOCK = "host.lock"


class HostLockBusy(Exception):
    """Another process holds the host lock; the message names it."""


def _lock_path(run_dir: Path) -> Path:
    return run_dir / HOST_LOCK


def try_host_lock(run_dir: Path, holder: str) -> int:
    """Take the host lock without waiting: an open descriptor (close it to release), after
    writing ``holder`` (e.g. ``he-ha run 1234``) into the file. HostLockBusy naming the
    holder when another process has it. Blocking, but only on the local run directory."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = _lock_path(run_dir)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)  # never inherited by a keeper
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise HostLockBusy(f"{host_lock_holder(run_dir) or 'another process'} holds {path}") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{holder}\n".encode(), 0)
    return fd


def host_lock_holder(run_dir: Path) -> str:
    """Who wrote the host lock file last (its holder while it is held); "" when unknown."""
    try:
        return _lock_path(run_dir).read_text().strip()
    except OSError:
        return ""
