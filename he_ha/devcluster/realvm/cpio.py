"""A writer for the cpio "newc" format, the one the Linux kernel unpacks as an initramfs.

Pure code: entries in, bytes out. Only what an initramfs needs: directories, regular files,
symlinks and device nodes, all owned by root, with a fixed mtime so that the same inputs
give the same bytes (the image cache compares hashes of its inputs, not of the archive).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


class CpioError(ValueError):
    """An entry cannot be stored: the message names it."""


@dataclass(frozen=True)
class Entry:
    """One archive member. ``path`` is relative ("init", "bin/busybox"), no leading slash."""

    path: str
    mode: int  # file type bits and permissions, as in st_mode
    data: bytes = b""  # file contents, or the link target of a symlink
    rdev: tuple[int, int] = (0, 0)  # (major, minor) of a device node

    def __post_init__(self) -> None:
        if not self.path or self.path.startswith("/") or ".." in self.path.split("/"):
            raise CpioError(f"cpio entry path must be relative without '..', got {self.path!r}")
        kind = stat.S_IFMT(self.mode)
        if kind not in (stat.S_IFDIR, stat.S_IFREG, stat.S_IFLNK, stat.S_IFCHR, stat.S_IFBLK):
            raise CpioError(f"{self.path}: unsupported file type {oct(kind)}")
        if self.data and kind not in (stat.S_IFREG, stat.S_IFLNK):
            raise CpioError(f"{self.path}: only files and symlinks carry data")


def directory(path: str, perm: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | perm)


def file(path: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | perm, data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def char_device(path: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(path, stat.S_IFCHR | perm, rdev=(major, minor))


def archive(entries: list[Entry]) -> bytes:
    """The newc archive of ``entries`` (in the given order: parents before children)."""
    seen: set[str] = set()
    chunks = []
    for inode, entry in enumerate(entries, start=1):
        if entry.path in seen:
            raise CpioError(f"duplicate cpio entry {entry.path!r}")
        seen.add(entry.path)
        chunks.append(_member(entry.path, entry.mode, entry.data, entry.rdev, inode))
    chunks.append(_member(TRAILER, 0, b"", (0, 0), 0))
    return b"".join(chunks)


def _member(path: str, mode: int, data: bytes, rdev: tuple[int, int], inode: int) -> bytes:
    name = path.encode() + b"\0"
    fields = (
        inode,
        mode,
        0,
        0,
        2 if stat.S_ISDIR(mode) else 1,
        0,
        len(data),
        0,
        0,
        rdev[0],
        rdev[1],
        len(name),
        0,
    )  # ino mode uid gid nlink mtime size devmaj devmin rdevmaj rdevmin namesize check
    header = MAGIC + b"".join(b"%08X" % value for value in fields)
    return _pad4(header + name) + _pad4(data)


def _pad4(block: bytes) -> bytes:
    return block + b"\0" * (-len(block) % 4)
