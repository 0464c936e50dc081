"""A small, bounded set of threads for blocking libvirt calls, each with a deadline.

A libvirt call cannot be interrupted: when libvirtd or QEMU hangs, the thread stays inside
libvirt until it answers. So a missed deadline raises HypervisorTimeout at once (the loop
goes on) and the call is remembered as *stuck*. While any stuck call remains, new calls are
refused at once with HypervisorBusy instead of queueing behind it; and there are never more
than ``max_threads`` threads, so a hung hypervisor cannot pile them up. The mechanism is the
shared ``he_ha.offloop.Lane``; this class speaks the VM layer's errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import structlog

from he_ha.offloop import CallTimeout, Lane, LaneFull, LaneStuck, StuckCall
from he_ha.vm.errors import HypervisorBusy, HypervisorTimeout

log = structlog.get_logger(__name__)

T = TypeVar("T")

__all__ = ["LibvirtExecutor", "StuckCall"]


class LibvirtExecutor:
    def __init__(self, max_threads: int = 4, name: str = "libvirt") -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be >= 1, got {max_threads}")
        self.name = name
        # Several threads work side by side (a migration need not stop state queries), so a
        # call beyond the bound is refused rather than queued, and a caller that was merely
        # cancelled does not make the others refuse.
        self._lane = Lane(name, threads=max_threads, wait_for_turn=False, cancel_leaves_stuck=False)
        self._closed = False

    def stuck_calls(self) -> list[StuckCall]:
        return self._lane.stuck()

    def in_flight(self) -> int:
        return self._lane.in_flight()

    async def run(self, operation: str, fn: Callable[[], T], deadline: float, *, allow_while_stuck: bool = False) -> T:
        """Run ``fn`` in a pool thread; raise HypervisorTimeout after ``deadline`` seconds.

        ``allow_while_stuck`` lets one call through despite a stuck call (used to abort a
        migration whose own call timed out); the thread bound still holds.
        """
        if self._closed:
            raise HypervisorBusy(operation, "executor closed")
        try:
            return await self._lane.run(operation, fn, deadline, allow_while_stuck=allow_while_stuck)
        except CallTimeout:
            log.warning("libvirt call missed its deadline", operation=operation, deadline=deadline)
            raise HypervisorTimeout(operation, deadline) from None
        except LaneStuck as exc:
            oldest = exc.oldest
            raise HypervisorBusy(
                operation, f"earlier call {oldest.operation!r} stuck in libvirt for {oldest.age:.1f} s"
            ) from None
        except LaneFull as exc:
            raise HypervisorBusy(operation, f"all {exc.threads} libvirt threads are busy") from None

    def shutdown(self) -> None:
        """Stop accepting calls; stuck threads are left to finish on their own."""
        self._closed = True
        self._lane.close()
