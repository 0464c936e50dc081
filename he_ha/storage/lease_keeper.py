"""A lease keeper: a process whose only job is to be the sanlock holder of the VM lease.

Sanlock ties a resource lease to the registered process it was acquired for and releases it
when that process exits. If the supervisor (or its lease worker) held the VM lease itself,
a supervisor crash would free the lease while the VM still runs (breaking invariant 2).
So the lease can be acquired FOR a keeper: ``LeaseClient.acquire(lease, holder_pid=keeper.pid)``
(sanlock's ``acquire(pid=...)``; verified to survive the acquiring process's exit and to end
with the keeper's). The keeper is started in its own session, so it outlives the supervisor.

Run as ``python -m he_ha.storage.lease_keeper`` with the host's SANLOCK_RUN_DIR: it
registers, prints ``ready <pid>``, and waits for SIGTERM/SIGINT; exiting releases its leases.

Not done here (the supervisor's issue): finding a keeper again after a supervisor restart,
and a sanlock killpath that destroys the VM if the lockspace is lost (sanlock would
otherwise just kill the keeper, freeing the lease while the VM runs). The alternative that
has both built in is libvirt's sanlock plugin, where QEMU itself is the holder.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import structlog

from he_ha.storage.lease_errors import LeaseError
from he_ha.storage.sanlock_env import process_env

log = structlog.get_logger(__name__)

READY = b"ready"


class LeaseKeeper:
    """Handle on a running keeper process (see the module doc)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        return self._process.pid

    @classmethod
    async def start(cls, *, run_dir: Path | None = None, timeout: float = 10.0) -> LeaseKeeper:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "he_ha.storage.lease_keeper",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, env=process_env(run_dir),
            start_new_session=True,  # must outlive the supervisor's process group
        )
        assert process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                line = await process.stdout.readline()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise LeaseError(f"lease keeper pid {process.pid} did not register within {timeout:g} s") from None
        if not line.startswith(READY):
            code = await process.wait()
            raise LeaseError(f"lease keeper pid {process.pid} failed to register with sanlock (exit code {code})")
        log.info("lease keeper registered", pid=process.pid)
        return cls(process)

    async def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM the keeper (sanlock releases what it held); SIGKILL after ``timeout``."""
        if self._process.returncode is None:
            self._process.terminate()
            try:
                async with asyncio.timeout(timeout):
                    return await self._process.wait()
            except TimeoutError:
                self._process.kill()
        return await self._process.wait()


def main() -> None:
    import sanlock  # only the keeper process itself talks to sanlock

    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # so sigwait receives them
    sanlock.register()  # the connection stays open for the life of the process
    sys.stdout.buffer.write(READY + b" %d\n" % os.getpid())
    sys.stdout.buffer.flush()
    signal.sigwait(stop_signals)


if __name__ == "__main__":
    main()
