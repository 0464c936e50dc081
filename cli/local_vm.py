"""The engine VM's state in this host's libvirt, asked directly (no daemon needed).

Heavy imports (libvirt): command modules import this module only when they run.
"""

from __future__ import annotations

import asyncio

from he_ha.monitors import LibvirtUnavailable
from he_ha.monitors.libvirt_domain import DomainInfo, LibvirtDomain
from he_ha.vm import VmState, state_from_libvirt

LIBVIRT_TIMEOUT = 10.0


class LibvirtNotAnswering(Exception):
    """libvirt could not be asked (down, refused, no answer within the deadline)."""


def engine_vm_state(uri: str, vmid: str, timeout: float = LIBVIRT_TIMEOUT) -> VmState:
    """The VM's state (ABSENT when libvirt has no such domain); every call off-thread with
    a deadline, so a hung libvirtd gives LibvirtNotAnswering, not a hung command."""

    async def look() -> DomainInfo:
        domain = LibvirtDomain(vmid, uri=uri, timeout=timeout)
        try:
            return await domain.observe()
        finally:
            await domain.aclose()

    try:
        info = asyncio.run(look())
    except LibvirtUnavailable as exc:
        raise LibvirtNotAnswering(str(exc)) from None
    if not info.exists or info.state is None or info.reason is None:
        return VmState.absent()
    return state_from_libvirt(info.state, info.reason)
