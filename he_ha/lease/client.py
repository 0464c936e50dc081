"""Async API over sanlock for one host: lockspace membership, peer liveness and the VM lease.

``LeaseClient`` runs every sanlock call in a lease worker process
(he_ha.lease.worker) started with this host's SANLOCK_RUN_DIR, and waits for the
answer on a pipe with a deadline. Why a process and not a thread pool: libsanlock picks its
daemon from SANLOCK_RUN_DIR once per process, so a worker per host is what lets several
simulated hosts share one test or demo process, and production (one host per supervisor)
runs exactly the same code. A call stuck on dead storage ties up a worker thread, never
the event loop; its caller gets ``LeaseCallTimeout``.

Sanlock failures arrive as typed ``SanlockError`` subclasses (he_ha.lease.lease_errors);
none is swallowed. Who holds the VM lease: by default the worker process itself (sanlock
releases it when the worker exits, i.e. when the supervisor is gone); pass ``holder_pid``
to acquire on behalf of another registered process (a lease keeper or QEMU), whose exit
alone releases it. See docs/leases.md.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import sys
from pathlib import Path
from typing import Any

import structlog

from he_ha.lease import lease_model
from he_ha.lease.lease_errors import (
    JoinInProgress,
    LeaseAreaInUse,
    LeaseCallTimeout,
    LeaseError,
    LeaseNotInitialised,
    LeaseProtocolError,
    LeaseWorkerDied,
    LockspaceNotInitialised,
    LockspaceNotJoined,
    SanlockError,
    VolumeError,
    WrongHostId,
    map_sanlock_error,
)
from he_ha.lease.lease_layout import LeaseLayout, Lockspace, VmLease, wait_deadline
from he_ha.lease.lease_model import (
    HeldResource,
    HostInfo,
    JoinOutcome,
    LeaseOwner,
    LockspaceState,
    VolumeInfo,
)
from he_ha.lease.lease_protocol import MAX_LINE, Failure, Request, decode_reply, encode
from he_ha.lease.sanlock_env import process_env

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT = 30.0
LSFLAG_ADD = 1  # sanlock.LSFLAG_ADD: the lockspace entry is being added (not removed)


class LeaseClient:
    """The lease calls of one host. Create with ``await LeaseClient.start(...)``."""

    def __init__(self, process: asyncio.subprocess.Process, run_dir: Path | None, default_timeout: float) -> None:
        self._process = process
        self.run_dir = run_dir
        self.default_timeout = default_timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._abandoned: dict[int, str] = {}
        self._dead: LeaseWorkerDied | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read_replies(), name=f"lease-worker-{process.pid}")

    @classmethod
    async def start(
        cls,
        *,
        run_dir: Path | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
        stderr: Path | None = None,
    ) -> LeaseClient:
        """Start a worker talking to the daemon of ``run_dir`` (None: the system daemon,
        /run/sanlock). Its stderr goes to ``stderr`` (appended) or to ours."""
        err = open(stderr, "ab") if stderr is not None else None  # noqa: SIM115 - handed to the child, closed below
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "he_ha.lease.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=process_env(run_dir),
                limit=MAX_LINE,
                start_new_session=True,  # a terminal's Ctrl-C must not kill the lease holder behind our back
            )
        finally:
            if err is not None:
                err.close()
        log.debug("lease worker started", pid=process.pid, run_dir=str(run_dir) if run_dir else None)
        return cls(process, run_dir, default_timeout)

    @property
    def pid(self) -> int:
        """The worker's pid: the sanlock client that holds leases acquired without holder_pid."""
        return self._process.pid

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the worker (leases it holds itself are released by sanlock as it exits)."""
        process = self._process
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        if not await self._exited_within(timeout):
            log.warning("lease worker did not exit on EOF; killing it", pid=process.pid)
            process.kill()
            if not await self._exited_within(timeout):
                self._reader.cancel()
                raise LeaseError(
                    f"lease worker pid {process.pid} survives SIGKILL: stuck in the kernel "
                    "(storage I/O that never returns?)"
                )
        await self._reader

    async def _exited_within(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._process.wait()
        except TimeoutError:
            return False
        return True

    async def __aenter__(self) -> LeaseClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- transport ----------------------------------------------------------------------

    async def _read_replies(self) -> None:
        assert self._process.stdout is not None
        try:
            while line := await self._process.stdout.readline():
                reply = decode_reply(line)
                future = self._pending.pop(reply.id, None)
                if future is None:
                    log.warning(
                        "late lease worker reply discarded",
                        op=self._abandoned.pop(reply.id, "?"),
                        failure=reply.failure,
                    )
                elif not future.done():
                    future.set_result(reply)
            reason = f"lease worker pid {self._process.pid} exited (code {await self._process.wait()})"
        except (LeaseProtocolError, ValueError) as exc:  # ValueError: a line over MAX_LINE
            self._process.kill()
            reason = f"lease worker pid {self._process.pid} sent a bad reply: {exc}"
        self._dead = LeaseWorkerDied(reason)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(self._dead)
        self._pending.clear()

    async def _call(self, op: str, target: str, timeout: float | None, **args: Any) -> Any:
        if self._dead is not None:
            raise self._dead
        deadline = self.default_timeout if timeout is None else timeout
        request = Request(next(self._ids), op, args)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = future
        assert self._process.stdin is not None
        try:
            async with asyncio.timeout(deadline):
                self._process.stdin.write(encode(request))
                await self._process.stdin.drain()
                reply = await future
        except TimeoutError:
            self._pending.pop(request.id, None)
            self._abandoned[request.id] = op
            raise LeaseCallTimeout(op, deadline, target) from None
        except (BrokenPipeError, ConnectionResetError):
            self._pending.pop(request.id, None)
            raise self._dead or LeaseWorkerDied(f"lease worker pid {self.pid} closed its pipe") from None
        if reply.failure is not None:
            raise _error(op, target, reply.failure, args.get("path"))
        return reply.result

    # --- volumes and initialisation (admin) ---------------------------------------------

    async def volume_info(self, path: Path, *, timeout: float | None = None) -> VolumeInfo:
        record = await self._call("volume_info", str(path), timeout, path=str(path))
        return lease_model.volume_info(path, record)

    async def detect_layout(
        self,
        path: Path,
        *,
        resource: str,
        io_timeout: int = 10,
        lease_path: Path | None = None,
        lease_offset: int | None = None,
        timeout: float | None = None,
    ) -> LeaseLayout:
        """The default layout for ``path`` with the sector size its storage needs."""
        info = await self.volume_info(path, timeout=timeout)
        return LeaseLayout.on_volume(
            path,
            resource=resource,
            sector_size=info.sector_size,
            io_timeout=io_timeout,
            lease_path=lease_path,
            lease_offset=lease_offset,
        )

    async def initialise(self, layout: LeaseLayout, *, overwrite: bool = False, timeout: float | None = None) -> None:
        """Write the lockspace and the VM lease area. Refuses to wipe existing ones unless
        ``overwrite`` (which resets every host's delta lease: only with all agents stopped)."""
        await self.init_lockspace(layout.lockspace, overwrite=overwrite, timeout=timeout)
        await self.init_vm_lease(layout.vm_lease, overwrite=overwrite, timeout=timeout)

    async def init_lockspace(
        self, lockspace: Lockspace, *, overwrite: bool = False, timeout: float | None = None
    ) -> None:
        await self._init_area(
            lockspace,
            "read_lockspace",
            "write_lockspace",
            LockspaceNotInitialised,
            overwrite,
            timeout,
            lockspace=lockspace.name,
            io_timeout=lockspace.io_timeout,
        )

    async def init_vm_lease(self, lease: VmLease, *, overwrite: bool = False, timeout: float | None = None) -> None:
        await self._init_area(
            lease,
            "read_resource",
            "write_resource",
            LeaseNotInitialised,
            overwrite,
            timeout,
            lockspace=lease.lockspace,
            resource=lease.resource,
        )

    async def _init_area(
        self,
        area: Lockspace | VmLease,
        read_op: str,
        write_op: str,
        blank: type[LeaseError],
        overwrite: bool,
        timeout: float | None,
        **names: Any,
    ) -> None:
        """Write a lockspace or lease area after checking the volume and, unless
        ``overwrite``, that ``read_op`` finds nothing there (``blank`` is its "empty" error)."""
        await self._check_volume(area.path, area.offset + area.align, area.sector_size, timeout)
        geometry = {"path": str(area.path), "offset": area.offset, "align": area.align, "sector": area.sector_size}
        if not overwrite:
            try:
                found = await self._call(read_op, area.describe(), timeout, **geometry)
            except blank:
                pass  # the expected case: nothing there yet
            else:
                raise LeaseAreaInUse(
                    f"{area.describe()}: storage already holds {found}; overwrite=True "
                    "wipes it (every host's delta lease, or the lease's owner)"
                )
        await self._call(write_op, area.describe(), timeout, **names, **geometry)
        log.info("lease area initialised", area=area.describe(), sector_size=area.sector_size, align=area.align)

    async def _check_volume(self, path: Path, needed: int, sector_size: int, timeout: float | None) -> None:
        info = await self.volume_info(path, timeout=timeout)
        if info.size < needed:
            raise VolumeError(str(path), f"is {info.size} bytes; the lease layout needs at least {needed}")
        if sector_size < info.sector_size:
            raise VolumeError(str(path), f"needs {info.sector_size}-byte sectors; the layout says {sector_size}")

    # --- lockspace membership and peer liveness -----------------------------------------

    async def lockspace_state(
        self, lockspace: Lockspace, host_id: int, *, timeout: float | None = None
    ) -> LockspaceState:
        """Whether this host holds ``host_id`` in the lockspace (cheap: no storage I/O)."""
        inq = await self._call(
            "inq_lockspace", lockspace.describe(), timeout, wait=False, **_ls_args(lockspace, host_id)
        )
        adding = False
        if inq is None:
            entries = await self._call("get_lockspaces", lockspace.describe(), timeout)
            adding = any(e["lockspace"] == lockspace.name and e["flags"] & LSFLAG_ADD for e in entries)
        return lease_model.lockspace_state(inq, adding)

    async def join(self, lockspace: Lockspace, host_id: int, *, timeout: float | None = None) -> JoinOutcome:
        """Acquire ``host_id`` in the lockspace. Idempotent: a host id the daemon already holds
        (e.g. after a supervisor restart) is ALREADY_JOINED. About 2-3 io timeouts normally."""
        lockspace.check_host_id(host_id)
        loop = asyncio.get_running_loop()
        end = loop.time() + (wait_deadline(lockspace.io_timeout) if timeout is None else timeout)
        if await self._settled_state(lockspace, host_id, end) is LockspaceState.JOINED:
            return JoinOutcome.ALREADY_JOINED
        try:
            await self._call(
                "add_lockspace",
                lockspace.describe(),
                end - loop.time(),
                io_timeout=lockspace.io_timeout,
                **_ls_args(lockspace, host_id),
            )
        except WrongHostId as exc:
            held = await self._held_host_id(lockspace)
            raise WrongHostId(
                exc.op, exc.errno, exc.message, exc.target, f"this host holds host id {held}, not {host_id}"
            ) from None
        except JoinInProgress:
            # Another join (e.g. of our crashed predecessor) is still running: wait for it.
            if await self._settled_state(lockspace, host_id, end) is not LockspaceState.JOINED:
                raise
            return JoinOutcome.ALREADY_JOINED
        except SanlockError as exc:
            if exc.errno != errno.EEXIST:
                raise
            return JoinOutcome.ALREADY_JOINED
        log.info("joined lockspace", lockspace=lockspace.name, host_id=host_id)
        return JoinOutcome.JOINED

    async def _settled_state(self, lockspace: Lockspace, host_id: int, end: float) -> LockspaceState:
        """The lockspace state after any join/leave in progress has finished."""
        remaining = end - asyncio.get_running_loop().time()
        state = await self.lockspace_state(lockspace, host_id, timeout=remaining)
        if state in (LockspaceState.JOINING, LockspaceState.LEAVING):
            remaining = end - asyncio.get_running_loop().time()
            await self._call(
                "inq_lockspace", lockspace.describe(), remaining, wait=True, **_ls_args(lockspace, host_id)
            )
            state = await self.lockspace_state(lockspace, host_id, timeout=remaining)
        return state

    async def _held_host_id(self, lockspace: Lockspace) -> int | None:
        entries = await self._call("get_lockspaces", lockspace.describe(), None)
        return next((e["host_id"] for e in entries if e["lockspace"] == lockspace.name), None)

    async def leave(
        self, lockspace: Lockspace, host_id: int, *, force: bool = False, timeout: float | None = None
    ) -> bool:
        """Release ``host_id``; False if this host was not joined. Refuses (LockspaceBusy)
        while a resource lease in it is held on this host, unless ``force``, which makes
        sanlock kill the holders: never use it while the VM may run (invariant 2)."""
        deadline = 6 * lockspace.io_timeout + 10 if timeout is None else timeout
        try:
            await self._call(
                "rem_lockspace", lockspace.describe(), deadline, unused=not force, **_ls_args(lockspace, host_id)
            )
        except LockspaceNotJoined:
            return False
        log.info("left lockspace", lockspace=lockspace.name, host_id=host_id)
        return True

    async def hosts(self, lockspace: Lockspace, host_id: int = 0, *, timeout: float | None = None) -> list[HostInfo]:
        """Every host id sanlock has seen in the lockspace (or just ``host_id``) with its status.
        Needs this host joined (LockspaceNotJoined) and a few renewals (LockspaceNotReady)."""
        records = await self._call(
            "get_hosts", lockspace.describe(), timeout, lockspace=lockspace.name, host_id=host_id
        )
        return [lease_model.host_info(record) for record in records]

    # --- the VM lease -------------------------------------------------------------------

    async def acquire(self, lease: VmLease, *, holder_pid: int | None = None, timeout: float | None = None) -> None:
        """Take the lease for the worker itself, or for ``holder_pid`` (a process registered
        with this host's daemon). Raises LeaseHeldElsewhere at once when another live host
        holds it. If the owner stopped renewing (host failing), sanlock blocks until that host
        is dead (8 io timeouts + 60 s) and then grants it, so the default deadline covers that.
        After a LeaseCallTimeout the daemon may still grant it: check ``held()``."""
        deadline = wait_deadline(lease.io_timeout) if timeout is None else timeout
        await self._call("acquire", lease.describe(), deadline, holder_pid=holder_pid, **_lease_args(lease))
        log.info("VM lease acquired", lease=lease.describe(), holder_pid=holder_pid or self.pid)

    async def release(self, lease: VmLease, *, holder_pid: int | None = None, timeout: float | None = None) -> None:
        await self._call("release", lease.describe(), timeout, holder_pid=holder_pid, **_lease_args(lease))
        log.info("VM lease released", lease=lease.describe(), holder_pid=holder_pid or self.pid)

    async def owners(self, lease: VmLease, *, timeout: float | None = None) -> list[LeaseOwner]:
        """Who owns the lease on storage (host id, generation); empty when free."""
        records = await self._call(
            "read_resource_owners",
            lease.describe(),
            timeout,
            align=lease.align,
            sector=lease.sector_size,
            **_lease_args(lease),
        )
        return [lease_model.lease_owner(record) for record in records]

    async def held(self, *, holder_pid: int | None = None, timeout: float | None = None) -> list[HeldResource]:
        """The leases the worker (or ``holder_pid``) holds on this host, from the daemon."""
        target = f"holder pid {holder_pid or self.pid}"
        records = await self._call("inquire", target, timeout, holder_pid=holder_pid)
        return [lease_model.held_resource(record) for record in records]


def _ls_args(lockspace: Lockspace, host_id: int) -> dict[str, Any]:
    return {"lockspace": lockspace.name, "host_id": host_id, "path": str(lockspace.path), "offset": lockspace.offset}


def _lease_args(lease: VmLease) -> dict[str, Any]:
    return {"lockspace": lease.lockspace, "resource": lease.resource, "path": str(lease.path), "offset": lease.offset}


def _error(op: str, target: str, failure: Failure, path: str | None) -> LeaseError:
    if failure.kind == "sanlock" and failure.errno is not None:
        return map_sanlock_error(op, failure.errno, failure.message, target, daemon_up=failure.daemon_up)
    if failure.kind == "os":
        return VolumeError(path or target, f"{op}: {failure.message}", failure.errno)
    return LeaseProtocolError(f"{op} on {target}: worker reported {failure.kind}: {failure.message}")
