"""Maintenance flags: the original's mode rules and the ha.conf local-flag update.

``plan`` maps an admin mode to the three flags (spec CLI §4, behaviour §7.1); the modes
exclude each other. ``apply_local_flags`` writes the two ha.conf keys the way every other
writer of that file expects; ``read_local_flags`` reads them without tearing.

Why the file is rewritten IN PLACE under ``flock(LOCK_EX)``, not via temp file + rename:
other writers (VDSM's setHaMaintenanceMode through the original client library, the old
CLI) open ha.conf, block in flock on THAT inode, re-read and rewrite it in place. After a
rename, a writer that was blocked on the old inode would wake up holding a lock on an
unlinked file, re-read stale content and write into it: its update would be lost without a
trace. So we keep the one inode and the one lock everyone honours, and order the write so
an unlocked reader never sees an empty or truncated file: the whole new text goes out in
ONE pwrite at offset 0, padded with newlines (blank lines, ignored by every parser) to at
least the old length, and only then ftruncate drops the padding. A reader doing a single
read() sees the old text or the new text (with or without trailing blank lines). A reader
that needs a guaranteed-consistent view, as he-ha's own loop does, uses
``read_local_flags``, which reads under ``flock(LOCK_SH)``: no writer that honours the
lock can interleave with it. Power loss: the file never shrinks before the new text is
written, and the write is fsynced (the directory too when the file was created), so ha.conf
cannot come back empty or short; only a write the disk itself tore could mix old and new
bytes (the price of keeping the inode, see above; every other configuration and state file
is replaced by he_ha/atomicfile.py).

flock has no timeout and a stuck writer can hold the lock forever, so locking is a
non-blocking retry loop with a deadline, and the whole update runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from he_ha.admin.contract import MaintenanceMode
from he_ha.atomicfile import fsync_directory
from he_ha.config import LocalMaintenance, load_ha_conf, parse_flat_file

LOCAL_KEY = "local_maintenance"
MANUAL_KEY = "local_maintenance_manual"

_RETRY_FIRST = 0.005
_RETRY_MAX = 0.02  # flock has no fairness: poll often enough not to starve behind busy writers
_THREAD_GRACE = 1.0  # the worker thread's own deadline fires first; this only bounds the await

T = TypeVar("T")


class MaintenanceFileError(Exception):
    """ha.conf could not be locked, read or written within the deadline."""


@dataclass(frozen=True, slots=True)
class MaintenancePlan:
    global_flag: bool  # slot 0 ``maintenance=1`` on the whiteboard
    local: bool  # ha.conf local_maintenance
    manual: bool  # ha.conf local_maintenance_manual


def plan(mode: MaintenanceMode) -> MaintenancePlan:
    """local → local and manual, global cleared; global → global, local flags cleared;
    none → everything cleared (so ``local`` on any host ends global maintenance)."""
    match mode:
        case MaintenanceMode.GLOBAL:
            return MaintenancePlan(global_flag=True, local=False, manual=False)
        case MaintenanceMode.LOCAL:
            return MaintenancePlan(global_flag=False, local=True, manual=True)
        case MaintenanceMode.NONE:
            return MaintenancePlan(global_flag=False, local=False, manual=False)
    raise ValueError(f"unknown maintenance mode {mode!r}")


def _flag(value: bool) -> str:
    return "True" if value else "False"


def edit_flat_text(text: str, updates: dict[str, str]) -> str:
    """Set ``key=value`` for each update, keeping every other line (comments, blank lines,
    unknown keys) as it is. A key written several times is set on each of its lines (the
    parser takes the last); a missing key is appended."""
    lines = text.splitlines(keepends=True)
    found: set[str] = set()
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key = stripped.partition("=")[0].strip()
        if key in updates:
            ending = line[len(line.rstrip("\r\n")) :]
            lines[index] = f"{key}={updates[key]}{ending}"
            found.add(key)
    missing = [key for key in updates if key not in found]
    if missing and lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.extend(f"{key}={updates[key]}\n" for key in missing)
    return "".join(lines)


def _lock(fd: int, operation: int, path: Path, deadline: float) -> None:
    pause = _RETRY_FIRST
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MaintenanceFileError(f"{path}: another writer holds the lock; gave up waiting for it")
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, _RETRY_MAX)


def _write_in_place(fd: int, new: bytes, old_length: int) -> None:
    padded = new + b"\n" * (old_length - len(new))  # never shorter than the old text
    written = os.pwrite(fd, padded, 0)
    if written != len(padded):
        raise OSError(f"short write: {written} of {len(padded)} bytes")
    os.ftruncate(fd, len(new))
    os.fsync(fd)


async def _in_thread(call: Callable[[float], T], path: Path, timeout: float) -> T:
    """Run ``call(deadline)`` in a worker thread; its lock loop honours the deadline, and
    the await is bounded too in case the file system itself stops answering."""
    deadline = time.monotonic() + timeout
    try:
        return await asyncio.wait_for(asyncio.to_thread(call, deadline), timeout + _THREAD_GRACE)
    except TimeoutError:
        raise MaintenanceFileError(f"{path}: no answer from the file system within {timeout:g} s") from None


def _rewrite(path: Path, updates: dict[str, str], deadline: float) -> None:
    """The original's protocol: open read/write (create), LOCK_EX, re-read, rewrite."""
    created = not path.exists()  # a race only costs one more directory fsync
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise MaintenanceFileError(f"{path}: cannot open for update: {exc.strerror}") from None
    try:
        _lock(fd, fcntl.LOCK_EX, path, deadline)
        old = os.pread(fd, os.fstat(fd).st_size, 0)
        # Validates the text as the reader will see it (ConfigError naming file and line)
        # BEFORE anything is written: a malformed file is left exactly as it was.
        parse_flat_file(path)
        new = edit_flat_text(old.decode("utf-8"), updates).encode("utf-8")
        if new != old:
            _write_in_place(fd, new, len(old))
    except OSError as exc:
        raise MaintenanceFileError(f"{path}: cannot update: {exc}") from None
    finally:
        os.close(fd)  # releases the lock
    if created:
        fsync_directory(path.parent)  # the new file's name is on disk, not only its data


async def apply_local_flags(ha_conf: Path, *, local: bool, manual: bool, timeout: float) -> None:
    """Set ``local_maintenance`` and ``local_maintenance_manual`` in ha.conf.

    Raises MaintenanceFileError (lock not obtained within ``timeout`` s, I/O error) or
    he_ha.config.ConfigError (the existing file is malformed; it is left untouched).
    """
    await update_flat_file(ha_conf, {LOCAL_KEY: _flag(local), MANUAL_KEY: _flag(manual)}, timeout=timeout)


async def update_flat_file(path: Path, updates: dict[str, str], *, timeout: float) -> None:
    """Set ``updates`` in a ``key=value`` file under the original's LOCK_EX protocol (the
    other keys, comments and order kept). Raises like apply_local_flags."""
    await _in_thread(partial(_rewrite, path, updates), path, timeout)


def _read_locked(path: Path, deadline: float) -> LocalMaintenance:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return LocalMaintenance()
    except OSError as exc:
        raise MaintenanceFileError(f"{path}: cannot open: {exc.strerror}") from None
    try:
        _lock(fd, fcntl.LOCK_SH, path, deadline)
        return load_ha_conf(path)
    finally:
        os.close(fd)


async def read_local_flags(ha_conf: Path, *, timeout: float) -> LocalMaintenance:
    """ha.conf's local maintenance flags, read under a shared lock so that no writer
    honouring flock can be half-way through its rewrite. Missing file: no maintenance."""
    return await _in_thread(partial(_read_locked, ha_conf), ha_conf, timeout)
