"""The monitors' view of the engine VM, through the supervisor's one libvirt connection.

The cpu and engine-health monitors need a ``DomainObserver``. Their default implementation
(``LibvirtDomain``) opens a connection of its own; the supervisor already keeps one
(``LibvirtConnection``, with reconnects and deadlines), so this adapter runs the same two
calls through it: one connection, one place that knows whether libvirtd is reachable.
"""

from __future__ import annotations

import libvirt

from he_ha.monitors import DomainInfo, LibvirtUnavailable
from he_ha.monitors.libvirt_domain import read_domain
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
        return read_domain(conn, domain_uuid=self._domain.uuid, name=self._domain.name)
