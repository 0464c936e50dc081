"""Blocking file-system and O_DIRECT calls of the storage admin commands, off the event loop.

Initialisation and repair read whole areas (the lockspace, the metadata), create and size
files, zero slots and write hosted-engine.conf. Each call runs on one daemon thread (a
``he_ha.offloop.Lane``) under a deadline: hung storage gives ``AreaError`` naming the path
and the call, never a frozen command. Reads and writes of area contents use O_DIRECT
(he_ha.whiteboard.direct_io), so they see and reach shared storage, not the page cache.
"""

from __future__ import annotations

import mmap
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from he_ha.atomicfile import write_atomically
from he_ha.offloop import CallTimeout, Lane, LaneStuck
from he_ha.whiteboard import StorageError, read_direct, write_direct

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
ZERO_CHUNK = 1024 * 1024  # one O_DIRECT write per MiB when zeroing an area
ALIGNMENT = 4096  # read lengths are rounded up to this (fits 512- and 4096-byte sectors)


def all_zero(data: bytes) -> bool:
    """True when every byte is 0 (at C speed: ``any()`` over 16 MiB takes seconds)."""
    return data.count(0) == len(data)


class AreaError(Exception):
    """A storage call of an admin command failed or missed its deadline."""

    def __init__(self, path: Path | str, op: str, problem: str) -> None:
        self.path = Path(path)
        self.op = op
        self.problem = problem
        super().__init__(f"{op} of {path}: {problem}")


@dataclass(frozen=True)
class AreaStat:
    path: Path
    exists: bool
    size: int  # bytes (0 when missing)
    block: bool  # a block device (its size is fixed)


class AreaIo:
    """The admin commands' storage calls, one at a time, each with ``timeout`` seconds."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.timeout = timeout
        self._lane = Lane("storage-admin")

    def close(self) -> None:
        self._lane.close()

    def __enter__(self) -> AreaIo:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def stat(self, path: Path) -> AreaStat:
        return await self._run("stat", path, partial(_stat, path))

    async def is_dir(self, path: Path) -> bool:
        return await self._run("stat", path, path.is_dir)

    async def read(self, path: Path, length: int) -> bytes:
        """Bytes [0, length) with O_DIRECT; fewer when the area is shorter."""
        return await self._run("read", path, partial(_read, path, length))

    async def write(self, path: Path, offset: int, data: bytes) -> None:
        """``data`` (a multiple of 4096 bytes) at ``offset``, O_DIRECT|O_DSYNC."""
        await self._run("write", path, partial(write_direct, str(path), offset, data))

    async def zero(self, path: Path, offset: int, length: int) -> None:
        """Write zeros over [offset, offset+length) in 1 MiB O_DIRECT writes."""
        await self._run("zero", path, partial(_zero, path, offset, length))

    async def create_file(self, path: Path, size: int) -> None:
        """A new sparse (all-zero) file of ``size`` bytes; refuses to replace an existing one."""
        await self._run("create", path, partial(_create, path, size))

    async def extend_file(self, path: Path, size: int) -> None:
        """Grow a regular file to ``size`` bytes; the new bytes read as zero."""
        await self._run("extend", path, partial(_extend, path, size))

    async def read_text(self, path: Path) -> str | None:
        """A small local text file (UTF-8); None when it does not exist."""
        return await self._run("read", path, partial(_read_text, path))

    async def write_text(self, path: Path, text: str) -> None:
        """Replace a small text file atomically (scratch file + rename), creating its directory."""
        await self._run("write", path, partial(_write_text, path, text))

    async def _run(self, op: str, path: Path, call: Callable[[], T]) -> T:
        try:
            return await self._lane.run(f"{op} {path}", call, self.timeout)
        except CallTimeout:
            raise AreaError(path, op, f"no answer within {self.timeout:g} s (storage stalled?)") from None
        except LaneStuck as exc:
            raise AreaError(path, op, f"refused: an earlier call has been stuck for {exc.oldest.age:.1f} s") from None
        except StorageError as exc:
            raise AreaError(path, op, str(exc)) from None
        except OSError as exc:
            raise AreaError(path, op, exc.strerror or str(exc)) from None
        except UnicodeDecodeError as exc:
            raise AreaError(path, op, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


# --- blocking bodies (run on the lane's thread) ---------------------------------------------


def _stat(path: Path) -> AreaStat:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return AreaStat(path, False, 0, False)
    if stat.S_ISBLK(info.st_mode):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return AreaStat(path, True, os.lseek(fd, 0, os.SEEK_END), True)
        finally:
            os.close(fd)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(0, "neither a regular file nor a block device")
    return AreaStat(path, True, info.st_size, False)


def _read(path: Path, length: int) -> bytes:
    padded = -(-length // ALIGNMENT) * ALIGNMENT
    with mmap.mmap(-1, padded) as buf:  # page-aligned, as O_DIRECT needs
        count = read_direct(str(path), buf, padded)
        return bytes(buf[: min(count, length)])


def _zero(path: Path, offset: int, length: int) -> None:
    done = 0
    while done < length:
        count = min(ZERO_CHUNK, length - done)
        write_direct(str(path), offset + done, bytes(count))
        done += count


def _create(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o660)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text)


def _extend(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)
            os.fsync(fd)
    finally:
        os.close(fd)
