"""The lease worker: a small process that makes the sanlock calls of one host.

Run as ``python -m he_ha.lease.worker`` with the host's SANLOCK_RUN_DIR in its
environment (libsanlock reads it once per process, so one process talks to one daemon).
It reads requests on stdin and answers on stdout (he_ha.lease.lease_protocol); each call
runs on a thread of its own pool, so a join that takes seconds or a call stuck on dead
storage never delays the others. The supervisor's event loop only ever waits on a pipe.

The worker registers with sanlock on the first lease call without ``holder_pid``; leases it
acquires that way belong to it and sanlock releases them when it exits. It exits when stdin
closes (its supervisor is gone), without waiting for calls stuck in the kernel.
"""

from __future__ import annotations

import errno as E
import fcntl
import mmap
import os
import signal
import stat
import struct
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

import sanlock

from he_ha.lazylog import get_logger
from he_ha.lease.lease_errors import LeaseProtocolError
from he_ha.lease.lease_protocol import Failure, Reply, Request, decode_request, encode
from he_ha.lease.sanlock_env import current_run_dir, daemon_answers, socket_path

log = get_logger(__name__)  # structlog loaded only if this process ever logs (issue 16 item 3)

THREADS = 8  # concurrent calls; more than that queue (and time out client-side if stuck)
BLKSSZGET = 0x1268  # <linux/fs.h>: logical sector size of a block device
PROBE_SIZE = 512
DAEMON_GONE = (E.EPIPE, E.ECONNRESET)  # our registration's daemon died (and our leases with it)


class DaemonDown(Exception):
    """The daemon socket does not answer although the binding reported no error."""


def _jsonable(value: Any) -> Any:
    """Bytes (names, paths) become str; tuples become lists."""
    if isinstance(value, bytes):
        return os.fsdecode(value)
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


class SanlockCalls:
    """One method per request op; arguments arrive as JSON values (str for names/paths)."""

    def __init__(self) -> None:
        self._own_fd: int | None = None
        self._register_lock = threading.Lock()

    def _as_holder(self, holder_pid: int | None, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args, pid=holder_pid)``, or through our own registration when None."""
        if holder_pid is not None:
            return call(*args, pid=holder_pid)
        with self._register_lock:
            if self._own_fd is None:
                self._own_fd = sanlock.register()
            fd = self._own_fd
        try:
            return call(*args, slkfd=fd)
        except sanlock.SanlockException as exc:
            if exc.errno in DAEMON_GONE:
                self._forget_registration(fd)  # the next call registers with the new daemon
            raise

    def _forget_registration(self, fd: int) -> None:
        with self._register_lock:
            if self._own_fd == fd:
                self._own_fd = None
                os.close(fd)

    def volume_info(self, path: str) -> dict[str, Any]:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        try:
            info = os.fstat(fd)
            block = stat.S_ISBLK(info.st_mode)
            size = os.lseek(fd, 0, os.SEEK_END) if block else info.st_size
            sector = _block_sector_size(fd) if block else _probe_file_sector_size(fd)
        finally:
            os.close(fd)
        return {"size": size, "block": block, "sector_size": sector}

    def write_lockspace(self, lockspace: str, path: str, offset: int, align: int, sector: int, io_timeout: int) -> None:
        sanlock.write_lockspace(
            lockspace.encode(), os.fsencode(path), offset=offset, iotimeout=io_timeout, align=align, sector=sector
        )

    def read_lockspace(self, path: str, offset: int, align: int, sector: int) -> Any:
        return _jsonable(sanlock.read_lockspace(os.fsencode(path), offset=offset, align=align, sector=sector))

    def write_resource(self, lockspace: str, resource: str, path: str, offset: int, align: int, sector: int) -> None:
        sanlock.write_resource(
            lockspace.encode(), resource.encode(), [(os.fsencode(path), offset)], align=align, sector=sector
        )

    def read_resource(self, path: str, offset: int, align: int, sector: int) -> Any:
        return _jsonable(sanlock.read_resource(os.fsencode(path), offset=offset, align=align, sector=sector))

    def add_lockspace(self, lockspace: str, host_id: int, path: str, offset: int, io_timeout: int) -> None:
        sanlock.add_lockspace(
            lockspace.encode(), host_id, os.fsencode(path), offset=offset, iotimeout=io_timeout, wait=True
        )

    def inq_lockspace(self, lockspace: str, host_id: int, path: str, offset: int, wait: bool) -> bool | None:
        held = sanlock.inq_lockspace(lockspace.encode(), host_id, os.fsencode(path), offset=offset, wait=wait)
        # The binding also answers False when it cannot reach the daemon (socket missing).
        if held is False and not daemon_answers(current_run_dir()):
            raise DaemonDown(f"no sanlock daemon answers on {socket_path(current_run_dir())}")
        return held

    def get_lockspaces(self) -> Any:
        return _jsonable(sanlock.get_lockspaces())

    def rem_lockspace(self, lockspace: str, host_id: int, path: str, offset: int, unused: bool) -> None:
        sanlock.rem_lockspace(lockspace.encode(), host_id, os.fsencode(path), offset=offset, wait=True, unused=unused)

    def get_hosts(self, lockspace: str, host_id: int) -> Any:
        return _jsonable(sanlock.get_hosts(lockspace.encode(), host_id))

    def acquire(self, lockspace: str, resource: str, path: str, offset: int, holder_pid: int | None) -> None:
        self._as_holder(
            holder_pid, sanlock.acquire, lockspace.encode(), resource.encode(), [(os.fsencode(path), offset)]
        )

    def release(self, lockspace: str, resource: str, path: str, offset: int, holder_pid: int | None) -> None:
        self._as_holder(
            holder_pid, sanlock.release, lockspace.encode(), resource.encode(), [(os.fsencode(path), offset)]
        )

    def inquire(self, holder_pid: int | None) -> Any:
        return _jsonable(self._as_holder(holder_pid, sanlock.inquire))

    def read_resource_owners(
        self, lockspace: str, resource: str, path: str, offset: int, align: int, sector: int
    ) -> Any:
        owners = sanlock.read_resource_owners(
            lockspace.encode(), resource.encode(), [(os.fsencode(path), offset)], align=align, sector=sector
        )
        return _jsonable(owners)


def _block_sector_size(fd: int) -> int:
    (size,) = struct.unpack("i", fcntl.ioctl(fd, BLKSSZGET, b"\0" * 4))
    return int(size)


def _probe_file_sector_size(fd: int) -> int:
    """A file's O_DIRECT granularity: a 512-byte direct read fails with EINVAL on 4K storage."""
    with mmap.mmap(-1, mmap.PAGESIZE) as buf, memoryview(buf) as view:  # page-aligned buffer
        try:
            os.preadv(fd, [view[:PROBE_SIZE]], 0)
        except OSError as exc:
            if exc.errno == E.EINVAL:
                return 4096
            raise
    return 512


def _failure(exc: Exception) -> Failure:
    if isinstance(exc, sanlock.SanlockException):
        args = exc.args
        message = ": ".join(str(part) for part in args[1:]) or str(exc)
        daemon_up = exc.errno not in (E.ENOENT, E.ECONNREFUSED) or daemon_answers(current_run_dir())
        return Failure("sanlock", exc.errno, message, daemon_up)
    if isinstance(exc, DaemonDown):
        return Failure("sanlock", E.ECONNREFUSED, str(exc), daemon_up=False)
    if isinstance(exc, OSError):
        return Failure("os", exc.errno, f"{exc.strerror or exc}")
    return Failure("internal", None, f"{type(exc).__name__}: {exc}")


class Worker:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._out_lock = threading.Lock()
        self._calls = SanlockCalls()
        self._pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="sanlock")

    def _send(self, reply: Reply) -> None:
        with self._out_lock:
            self._out.write(encode(reply))
            self._out.flush()

    def _serve(self, request: Request) -> None:
        method: Callable[..., Any] | None = getattr(self._calls, request.op, None)
        if request.op.startswith("_") or method is None:
            self._send(Reply(request.id, failure=Failure("request", None, f"unknown op {request.op!r}")))
            return
        try:
            result = method(**request.args)
        except Exception as exc:  # every failure goes back to the client as a typed reply
            self._send(Reply(request.id, failure=_failure(exc)))
        else:
            self._send(Reply(request.id, result=result))

    def run(self, requests: BinaryIO) -> None:
        for line in requests:
            try:
                request = decode_request(line)
            except LeaseProtocolError as exc:
                log.error("lease worker: unreadable request", error=str(exc))
                continue
            self._pool.submit(self._serve, request)


def main() -> None:
    # The worker ends when its client does (stdin closes), never on its own: `systemctl stop`
    # sends SIGTERM to every process of the unit, and a worker dying first left the supervisor
    # unable to stop cleanly (LeaseWorkerDied; found by the booted-systemd test). SIGKILL and
    # the closed pipe still end it.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Keep stdout for replies only: anything else writing to fd 1 lands on stderr.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    Worker(replies).run(sys.stdin.buffer)
    # stdin closed: our client is gone. Exit now; calls stuck in the kernel must not hold us.
    replies.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
