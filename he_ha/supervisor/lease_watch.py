"""Wake the ticker the moment a dead owner's VM lease can be taken, not at the next tick.

After the engine host dies its VM lease frees when sanlock declares that host dead: the
host-dead time, 8 × io_timeout + 60 s (140 s at the defaults). A survivor waiting in
EngineDown for it (``down.lease-held``: sanlock reports the owner LIVE or FAIL) used to find
out at its next periodic tick, up to a tick period (10 s) later: measured 152 s for a 140 s
host-dead time (issue 16 item 6). While the last decision waits on the lease, this watch asks
the local sanlock daemon every ``interval`` for the owner's status (a query of the daemon's
memory, no storage I/O); the first answer DEAD or FREE wakes the ticker, whose tick then sees
the same status and starts the VM. While nothing waits the watch sleeps on an event that each
decision sets (``decided``): no timer at all, which matters in the simulator, where every
timer is a step of the virtual clock on every host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from he_ha.fsm import DecisionRecord
from he_ha.lease import HostStatus, LeaseError, Lockspace
from he_ha.supervisor.env import SanlockIO

log = structlog.get_logger(__name__)

INTERVAL = 1.0  # seconds between queries while waiting: the failover loses at most about this
_FREED = (HostStatus.DEAD, HostStatus.FREE)


def lease_wait(record: DecisionRecord | None) -> int | None:
    """The host whose VM lease the decision ``record`` waits for, if it waits for one."""
    if record is None or record.rule != "down.lease-held":
        return None
    return record.inputs.lease_owner


class LeaseFreeWatch:
    """``waiting()`` gives the host id whose lease the last decision waited for (None: no
    wait); ``on_free(detail)`` is called once per wait when sanlock reports that host dead or free."""

    def __init__(
        self,
        client: SanlockIO,
        lockspace: Lockspace,
        waiting: Callable[[], int | None],
        on_free: Callable[[str], None],
        *,
        interval: float = INTERVAL,
        timeout: float = 5.0,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"lease watch interval must be > 0, got {interval!r}")
        self._client = client
        self._lockspace = lockspace
        self._waiting = waiting
        self._on_free = on_free
        self._interval = interval
        self._timeout = timeout
        self._woken_for: int | None = None  # the owner already reported free (one wake per wait)
        self._decided = asyncio.Event()
        self.queries = 0

    def decided(self) -> None:
        """A decision was taken: it may begin a wait (called after every tick)."""
        self._decided.set()

    async def run(self) -> None:
        while True:
            if self._waiting() is None:
                self._woken_for = None
                self._decided.clear()
                await self._decided.wait()  # idle until a decision that may wait
                continue
            await asyncio.sleep(self._interval)
            owner = self._waiting()
            if owner is None or owner == self._woken_for:
                continue  # the wait ended, or woken already: the tick's own decision ends or renews it
            status = await self._status(owner)
            if status in _FREED:
                self._woken_for = owner
                self._on_free(f"sanlock reports host {owner} {status.name.lower()}: its VM lease can be taken")

    async def _status(self, host_id: int) -> HostStatus | None:
        self.queries += 1
        try:
            hosts = await self._client.hosts(self._lockspace, host_id, timeout=self._timeout)
        except (LeaseError, TimeoutError) as exc:
            log.debug("lease watch: sanlock did not answer; the next tick asks again", error=str(exc))
            return None
        return next((h.status for h in hosts if h.host_id == host_id), None)
