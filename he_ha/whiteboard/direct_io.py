"""Blocking O_DIRECT reads and writes of the metadata volume (run these off the event loop).

O_DIRECT bypasses the page cache, so every read sees what other hosts wrote to shared storage
and every write reaches it; it needs buffers, offsets and lengths aligned to the device's
logical sector. Buffers here are anonymous mmaps (page-aligned); slot offsets and lengths are
multiples of 4096, which suits both 512- and 4096-byte sectors.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import stat
import struct
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from he_ha.whiteboard.whiteboard_errors import StorageError

BLKSSZGET = 0x1268  # <linux/fs.h>: logical sector size of a block device, as an int
REGULAR_FILE_ALIGNMENT = 4096  # safe for O_DIRECT on any local or network filesystem

P = ParamSpec("P")
T = TypeVar("T")


def logical_sector_size(fd: int) -> int:
    """The alignment O_DIRECT needs on ``fd``: BLKSSZGET for a block device, else 4096."""
    if not stat.S_ISBLK(os.fstat(fd).st_mode):
        return REGULAR_FILE_ALIGNMENT
    (size,) = struct.unpack("i", fcntl.ioctl(fd, BLKSSZGET, b"\0" * 4))
    return int(size)


def read_direct(path: str, buf: mmap.mmap, length: int) -> int:
    """Read up to ``length`` bytes from offset 0 into ``buf``; return how many were read.

    A short file or device is not an error: the caller treats the rest as zero.
    """
    fd = _open(path, "read", os.O_RDONLY)
    try:
        sector = _aligned_sector(path, "read", fd, length)
        done = 0
        with memoryview(buf) as view:
            while done < length:
                count = _io(path, "read", os.preadv, fd, [view[done:length]], done)
                done += count
                if count == 0 or count % sector:  # end of data (an unaligned tail ends the file)
                    break
        return done
    finally:
        os.close(fd)


def write_direct(path: str, offset: int, data: bytes) -> None:
    """Write ``data`` (a multiple of 4096 bytes) at ``offset`` with O_DIRECT|O_DSYNC."""
    fd = _open(path, "write", os.O_WRONLY | os.O_DSYNC)
    try:
        _aligned_sector(path, "write", fd, len(data), offset)
        with mmap.mmap(-1, len(data)) as buf:
            buf.write(data)
            written = _io(path, "write", os.pwrite, fd, buf, offset)
        if written != len(data):
            raise StorageError(path, "write", f"short write of {written} of {len(data)} bytes at offset {offset}")
    finally:
        os.close(fd)


def _open(path: str, op: str, flags: int) -> int:
    return _io(path, op, os.open, path, flags | os.O_DIRECT | os.O_CLOEXEC)


def _aligned_sector(path: str, op: str, fd: int, length: int, offset: int = 0) -> int:
    sector = _io(path, op, logical_sector_size, fd)
    if length % sector or offset % sector:
        raise StorageError(path, op, f"{length} bytes at offset {offset} are not aligned to the {sector}-byte sector")
    return sector


def _io(path: str, op: str, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run one system call, turning OSError into a StorageError that names file and call."""
    try:
        return call(*args, **kwargs)
    except OSError as exc:
        raise StorageError(path, op, f"{call.__name__} failed: {exc.strerror or exc}", errno=exc.errno) from None
