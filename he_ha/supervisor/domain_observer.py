"""The monitors' view of the engine VM, through the supervisor's one libvirt connection.

The cpu and engine-health monitors need a ``DomainObserver``. Their default implementation
(``LibvirtDomain``) opens a connection of its own; the supervisor already keeps one
(``LibvirtConnection``, with reconnects and deadlines), so this adapter runs the same two
calls through it: one connection, one place that knows whether libvirtd is reachable.
"""

from __future__ import annotations

import time

import libvirt

from he_ha.monitors import DomainInfo, LibvirtUnavailable
from he_ha.vm import DomainId, HypervisorError, LibvirtCallError, LibvirtConnection


class ConnectionDomainObserver:
    """``DomainObserver`` over a ``LibvirtConnection``; never closes the connection."""

    def __init__(self, connection: LibvirtConnection, domain: DomainId, *, timeout: float = 5.0) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        self.timeout = timeout
        self._connection = connection
        self._domain = domain

    async def observe(self) -> DomainInfo:
        try:
            return await self._connection.call("observe-domain", self._observe, self.timeout)
        except (HypervisorError, LibvirtCallError) as exc:
            raise LibvirtUnavailable(f"libvirt ({self._connection.uri}): {exc}") from None

    async def aclose(self) -> None:
        """Nothing to release: the connection belongs to the supervisor."""

    def _observe(self, conn: libvirt.virConnect) -> DomainInfo:
        try:
            if self._domain.uuid:
                dom = conn.lookupByUUIDString(self._domain.uuid)
            else:
                dom = conn.lookupByName(self._domain.name)
            state, reason = dom.state()
            cpu_time_ns = dom.info()[4]
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return DomainInfo(exists=False, observed_at=time.monotonic())
            raise
        return DomainInfo(True, state, reason, cpu_time_ns, time.monotonic())
