"""Reading and rewriting the HE configuration volume, under a cross-host lock.

The archive format is he_ha/ovirt/conf_archive.py. The blocking functions here do the I/O
(O_DIRECT, so every host sees what the others wrote, never its page cache); callers run
them on a thread with a deadline (``fetch_conf_volume`` and ``update_conf_volume_locked``
do that on a ``he_ha.offloop.Lane``).

An update (``update_conf_volume``), unlike the original's (spec ovirt-host-integration.md §2.4):

1. holds the cross-host lock for its whole duration: the sanlock resource ``he-ha-conf``
   in the ``hosted-engine`` lockspace, at 2 x alignment on the lockspace volume
   (he_ha/lease/lease_layout.py), written by ``hosted-engine --init-storage``;
2. re-reads the archive under the lock, applies the edit, builds the new archive;
3. re-reads the archive immediately before writing and compares it with what step 2 read:
   a writer that does not take the lock (an original agent or CLI on another host) is
   detected and the update refused with the original's "changed by somebody else" text,
   not lost;
4. writes exactly 20480 bytes at offset 0 with O_DIRECT|O_DSYNC, never truncating the
   volume (the original's ``dd`` truncated file-domain volumes to 20480 bytes);
5. reads the archive back and checks it is what was written.

Nothing is written when anything before step 4 fails.
"""

from __future__ import annotations

import asyncio
import errno
import mmap
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import structlog

from he_ha.lease import (
    CONF_LOCK_RESOURCE,
    LOCKSPACE_NAME,
    JoinOutcome,
    LeaseAlreadyHeld,
    LeaseClient,
    LeaseError,
    LeaseHeldElsewhere,
    LeaseNotInitialised,
    Lockspace,
    LockspaceState,
    RecordError,
    RecordKind,
    SanlockError,
    VmLease,
    conf_lock_for,
    find_geometry,
    parse_leader,
    wait_deadline,
)
from he_ha.offloop import CallTimeout, Lane, LaneStuck
from he_ha.ovirt.conf_archive import ARCHIVE_SIZE, MEMBERS, ConfArchiveError, build_archive, parse_archive
from he_ha.provision import all_zero
from he_ha.whiteboard import StorageError, read_direct, write_direct

log = structlog.get_logger(__name__)

T = TypeVar("T")

CHANGED_BY_SOMEBODY_ELSE = "Update failed. The configuration file was changed by somebody else, try again."
IO_TIMEOUT = 30.0  # one read or write of the volume
LOCK_BUSY_WAIT = 60.0  # how long to wait while another host holds the lock (its update takes about a second)
LOCK_RETRY = 0.25  # seconds between acquire attempts while another host holds the lock
_GEOMETRY_PROBE = 1024 * 1024  # holds host 1's delta lease at every alignment
_READ_ALIGNMENT = 4096


class ConfVolumeError(Exception):
    """The configuration volume cannot be read, is not a valid archive, or an update failed."""


class ConfVolumeChanged(ConfVolumeError):
    """Another writer changed the archive during an update; nothing was written."""

    def __init__(self) -> None:
        super().__init__(CHANGED_BY_SOMEBODY_ELSE)


class ConfLockMissing(ConfVolumeError):
    """The lockspace volume holds no configuration-volume lock (storage laid out before it existed)."""


# --- blocking: the archive ----------------------------------------------------------------------


def read_archive_bytes(path: Path) -> bytes:
    """The first 20480 bytes of the volume (O_DIRECT); fewer when the volume is shorter."""
    return _read_head(path, ARCHIVE_SIZE)


def read_conf_volume(path: Path) -> dict[str, str]:
    """The five members of the archive on the volume (ConfVolumeError naming the problem)."""
    return _parse(path, read_archive_bytes(path))


def update_conf_volume(
    path: Path,
    member: str,
    edit: Callable[[str], str],
    lock: AbstractContextManager[Any],
    *,
    deadline: float | None = None,
) -> dict[str, str]:
    """Replace ``member`` by ``edit(current text)`` under ``lock`` (steps in the module doc);
    returns the members now on the volume. ``edit`` may raise to refuse the change (nothing
    is written). ``deadline`` (time.monotonic()): no write starts after it, so a caller that
    gave up and released the lock can never be followed by a late write."""
    if member not in MEMBERS:
        raise ValueError(f"{member!r} is not a member of the configuration archive ({', '.join(MEMBERS)})")
    with lock:
        before = read_archive_bytes(path)
        members = _parse(path, before)
        members[member] = edit(members[member])
        try:
            data = build_archive(members)
        except ConfArchiveError as exc:
            raise ConfVolumeError(f"{path}: {exc}; the configuration volume is unchanged") from None
        if data == before:
            return members  # nothing to change (the value was already there)
        if read_archive_bytes(path) != before:
            raise ConfVolumeChanged()
        if deadline is not None and time.monotonic() > deadline:
            raise ConfVolumeError(
                f"{path}: the update ran out of time before writing; the configuration volume is unchanged"
            )
        _write_and_verify(path, data)
    log.info("configuration volume updated", path=str(path), member=member)
    return members


def create_conf_volume(path: Path, members: dict[str, str], *, overwrite: bool = False) -> None:
    """Write a new archive at the start of the volume (storage initialisation). Refuses a
    volume whose first 20480 bytes are not all zero unless ``overwrite``."""
    data = _build(path, members)
    current = read_archive_bytes(path)
    if not overwrite and not all_zero(current):
        raise ConfVolumeError(f"{path}: the first {ARCHIVE_SIZE} bytes are not blank; refusing to replace them")
    _write_and_verify(path, data)
    log.info("configuration volume created", path=str(path))


def _build(path: Path, members: dict[str, str]) -> bytes:
    try:
        return build_archive(members)
    except ConfArchiveError as exc:
        raise ConfVolumeError(f"{path}: {exc}") from None


def _parse(path: Path, data: bytes) -> dict[str, str]:
    try:
        return parse_archive(data)
    except ConfArchiveError as exc:
        raise ConfVolumeError(f"configuration volume {path}: {exc}") from None


def _write_and_verify(path: Path, data: bytes) -> None:
    try:
        write_direct(str(path), 0, data)  # O_WRONLY without O_TRUNC: the volume keeps its size
    except StorageError as exc:
        raise ConfVolumeError(f"configuration volume {path}: {exc}") from None
    if read_archive_bytes(path) != data:
        raise ConfVolumeError(
            f"configuration volume {path}: reading back after the write found other bytes than "
            "were written (another writer, or storage that does not keep writes)"
        )


def _read_head(path: Path, length: int) -> bytes:
    padded = -(-length // _READ_ALIGNMENT) * _READ_ALIGNMENT
    try:
        with mmap.mmap(-1, padded) as buf:  # page-aligned, as O_DIRECT needs
            count = read_direct(str(path), buf, padded)
            return bytes(buf[: min(count, length)])
    except StorageError as exc:
        raise ConfVolumeError(f"configuration volume {path}: {exc}") from None


# --- blocking: where the lock is ------------------------------------------------------------------


def find_conf_lock(lockspace_path: Path) -> tuple[Lockspace, VmLease]:
    """The lockspace and the configuration-volume lock on ``lockspace_path``, with the
    geometry storage says (read, not assumed). ConfLockMissing when either is not there."""
    init = "run 'hosted-engine --init-storage' (with this host's usual arguments) to add it"
    geometry = find_geometry(_read_head(lockspace_path, _GEOMETRY_PROBE))
    if geometry is None:
        raise ConfLockMissing(f"{lockspace_path} holds no sanlock lockspace {LOCKSPACE_NAME!r}: {init}")
    lockspace = Lockspace(lockspace_path, geometry.name, 0, geometry.sector_size, geometry.align, geometry.io_timeout)
    lock = conf_lock_for(lockspace)
    area = _read_head(lockspace_path, lock.offset + geometry.sector_size)[lock.offset :]
    where = f"configuration-volume lock {CONF_LOCK_RESOURCE!r} at offset {lock.offset} of {lockspace_path}"
    if len(area) < geometry.sector_size:
        raise ConfLockMissing(f"there is no {where}: the volume ends before it; {init}")
    try:
        record = parse_leader(area)
    except RecordError as exc:
        raise ConfVolumeError(f"the {where} is damaged or foreign: {exc.problem}") from None
    if record is None:
        raise ConfLockMissing(f"there is no {where} (the area is blank): {init}")
    if (
        record.kind is not RecordKind.PAXOS
        or record.space_name != geometry.name
        or record.resource_name != CONF_LOCK_RESOURCE
    ):
        raise ConfVolumeError(
            f"the {where} holds a {record.kind.value} {record.resource_name!r} of lockspace "
            f"{record.space_name!r} instead"
        )
    return lockspace, lock


# --- the cross-host lock ----------------------------------------------------------------------------


class SanlockConfLock:
    """The configuration-volume lock as a plain context manager for the thread that updates
    the volume: entering acquires ``lease`` through ``client`` (on the event loop ``loop``,
    which must stay free meanwhile), leaving releases it. The holder is the lease worker
    process: if this process dies, sanlock releases the lock with it.

    While another host holds the lock (its update takes about a second), or another
    command on this host (sanlock answers EEXIST, or EAGAIN/EBUSY while that one acquires
    or releases it: this worker is new, so it is not the holder), the acquire is retried for up to ``busy_wait`` seconds; a holder that stopped renewing is waited out
    by sanlock itself (8 io timeouts + 60 s)."""

    def __init__(
        self, client: LeaseClient, lease: VmLease, loop: asyncio.AbstractEventLoop, *, busy_wait: float = LOCK_BUSY_WAIT
    ) -> None:
        self.client, self.lease, self.loop, self.busy_wait = client, lease, loop, busy_wait

    @property
    def longest_acquire(self) -> float:
        return self.busy_wait + wait_deadline(self.lease.io_timeout)

    def __enter__(self) -> SanlockConfLock:
        self._on_loop(self.acquire(), self.longest_acquire + 5)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._on_loop(self.client.release(self.lease), IO_TIMEOUT + 5)

    def _on_loop(self, coro: Any, timeout: float) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def acquire(self) -> None:
        give_up = time.monotonic() + self.busy_wait
        while True:
            try:
                await self.client.acquire(self.lease)
                return
            except LeaseNotInitialised as exc:
                raise ConfLockMissing(
                    f"{self.lease.describe()}: {exc}; run 'hosted-engine --init-storage' to add it"
                ) from None
            except SanlockError as exc:
                if not _busy(exc):
                    raise
                if time.monotonic() >= give_up:
                    raise ConfVolumeError(
                        f"another host or command has held the configuration-volume lock "
                        f"{self.lease.describe()} for over {self.busy_wait:g} s; "
                        "nothing was written, try again"
                    ) from None
            await asyncio.sleep(LOCK_RETRY)


def _busy(exc: SanlockError) -> bool:
    """Held by another host; or, on this host, held by another command (EEXIST) or being
    acquired or released by one (EAGAIN, EBUSY: seen with sanlock 3.8.5)."""
    return isinstance(exc, (LeaseHeldElsewhere, LeaseAlreadyHeld)) or exc.errno in (errno.EAGAIN, errno.EBUSY)


@asynccontextmanager
async def lockspace_member(
    client: LeaseClient, lockspace: Lockspace, host_id: int, say: Callable[[str], None]
) -> AsyncIterator[None]:
    """This host joined to ``lockspace`` as ``host_id`` for the block: already joined (the
    he-ha daemon runs) is used as it is; otherwise join now and leave afterwards."""
    if await client.lockspace_state(lockspace, host_id) is LockspaceState.JOINED:
        yield
        return
    say(
        f"Joining the sanlock lockspace {lockspace.name!r} as host {host_id} for the update "
        f"(the he-ha daemon does not hold it); this takes a few io timeouts ({lockspace.io_timeout} s each)..."
    )
    outcome = await client.join(lockspace, host_id)
    try:
        yield
    finally:
        if outcome is JoinOutcome.JOINED:
            try:
                await client.leave(lockspace, host_id)
            except LeaseError as exc:
                say(f"Warning: leaving the lockspace {lockspace.name!r} after the update failed: {exc}")


# --- async entry points (each blocking call on a lane, under a deadline) -------------------------------


async def fetch_conf_volume(path: Path, timeout: float = IO_TIMEOUT) -> dict[str, str]:
    """``read_conf_volume`` off the event loop, within ``timeout`` seconds."""
    lane = Lane("conf-volume")
    try:
        return await _on_lane(lane, f"read {path}", partial(read_conf_volume, path), timeout)
    finally:
        lane.close()


async def update_conf_volume_locked(
    path: Path,
    member: str,
    edit: Callable[[str], str],
    *,
    lockspace_path: Path,
    host_id: int,
    run_dir: Path | None,
    say: Callable[[str], None],
    busy_wait: float = LOCK_BUSY_WAIT,
) -> dict[str, str]:
    """``update_conf_volume`` under the sanlock lock, as a host's command does it: find the
    lock on ``lockspace_path`` (refused at once when it is missing), join the lockspace
    when this host's daemon has not (and leave afterwards), take the lock, update, release.
    ``run_dir``: this host's sanlock daemon; ``say``: progress for the user."""
    lane = Lane("conf-volume")
    try:
        lockspace, lease = await _on_lane(
            lane, f"read the lockspace {lockspace_path}", partial(find_conf_lock, lockspace_path), IO_TIMEOUT
        )
        lockspace.check_host_id(host_id)
        async with (
            await LeaseClient.start(run_dir=run_dir) as client,
            lockspace_member(client, lockspace, host_id, say),
        ):
            lock = SanlockConfLock(client, lease, asyncio.get_running_loop(), busy_wait=busy_wait)
            limit = lock.longest_acquire + 6 * IO_TIMEOUT
            deadline = time.monotonic() + limit - 2 * IO_TIMEOUT  # the last write still ends in time
            return await _on_lane(
                lane, f"update {path}", partial(update_conf_volume, path, member, edit, lock, deadline=deadline), limit
            )
    finally:
        lane.close()


async def _on_lane(lane: Lane, operation: str, call: Callable[[], T], timeout: float) -> T:
    try:
        return await lane.run(operation, call, timeout)
    except CallTimeout:
        raise ConfVolumeError(f"{operation}: no answer within {timeout:g} s (storage stalled?)") from None
    except LaneStuck as exc:
        raise ConfVolumeError(
            f"{operation}: refused, an earlier call has been stuck for {exc.oldest.age:.1f} s"
        ) from None
