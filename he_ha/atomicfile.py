"""Replace a small file so that a reader sees the old content or the new, never a torn file."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_atomically(path: Path, text: str, *, mode: int | None = None, unique_scratch: bool = False) -> None:
    """Blocking: write ``text`` to a scratch file beside ``path``, fsync it, rename it over
    ``path``, fsync the directory: after a crash ``path`` holds the old content or the new.

    The scratch file is ``<name>.tmp``; ``unique_scratch``: a name of its own instead, for a
    path that several processes may write at once (each renames its own file; the last
    rename wins). ``mode``: the new file's permission bits; None: 0666 less the umask, as
    ``open()`` creates files.
    """
    name = f".{path.name}.{secrets.token_hex(4)}.tmp" if unique_scratch else f"{path.name}.tmp"
    scratch = path.with_name(name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if unique_scratch else os.O_TRUNC)
    fd = os.open(scratch, flags, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            if mode is not None:
                os.fchmod(file.fileno(), mode)
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(scratch, path)
    except BaseException:
        with contextlib.suppress(OSError):
            scratch.unlink()
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # the rename is done; only its durability is not confirmed
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on a directory
            os.fsync(fd)
    finally:
        os.close(fd)
