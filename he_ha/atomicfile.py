"""Replace a small file so that, even across a power loss, it holds the old content or the new.

The sequence (checked by tests/unit/test_atomicfile.py, at the system-call level with strace):
1. create a scratch file of its own beside the target (``.<name>.<random>.tmp``, O_EXCL,
   mode 0600): two writers never share one, and nobody can read it while it is half written;
2. write the whole content;
3. set its final permission bits and owner (``fchmod``/``fchown``) BEFORE it gets the name:
   the target is never seen, nor left after a crash, with the scratch file's 0600 root:root;
4. ``fsync`` the file: its data and metadata are on disk before the rename can be;
5. ``rename`` it over the target (atomic in one directory);
6. ``fsync`` the directory: the rename itself is on disk.
Without 4, ext4 and XFS may persist the rename before the data: after a power loss the
target is an empty file (the failure issue 18 describes for hosted-engine.conf). Without 6
the old content may come back after a crash.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

_SCRATCH_MODE = 0o600


def write_atomically(
    path: Path, content: str | bytes, *, mode: int | None = None, owner: tuple[int, int] | None = None
) -> None:
    """Blocking: replace ``path`` with ``content`` (text is written as UTF-8), durably.

    ``mode``: the permission bits; None: the existing file's, else 0666 less the umask (what
    ``open()`` would create). ``owner``: (uid, gid); None: the existing file's, else the
    writer's. A symlink at ``path`` is replaced, not followed: resolve it first to keep it.
    Raises OSError (the target is then untouched and the scratch file removed).
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        current: os.stat_result | None = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        current = None
    if mode is None:
        mode = stat.S_IMODE(current.st_mode) if current is not None else 0o666 & ~_umask()
    if owner is None and current is not None:
        owner = (current.st_uid, current.st_gid)
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _SCRATCH_MODE)
    try:
        try:
            _write_all(fd, data)
            os.fchmod(fd, mode)
            if owner is not None:
                _set_owner(fd, owner)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(scratch, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
        raise
    fsync_directory(path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _set_owner(fd: int, owner: tuple[int, int]) -> None:
    # Only when it differs: an unprivileged writer replacing its own file needs no chown.
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != owner:
        os.fchown(fd, *owner)


def _umask() -> int:
    # Read, not set-and-restore: os.umask() would change it process-wide for a moment.
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    raise OSError("no Umask line in /proc/self/status")


def fsync_directory(directory: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable; failures are ignored."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # the rename is done; only its durability is not confirmed
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on a directory
            os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, creating its directory if needed: a reader
    (a restarted supervisor, sanlock's fence command) never sees a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text)
