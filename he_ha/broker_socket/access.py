"""Who may call the mutating broker methods: root, the ``vdsm`` user, or members of group
``kvm`` (VDSM runs as vdsm:kvm), by the peer's SO_PEERCRED; reads are open to anyone who can
connect. The same ids own the socket file when they exist."""

from __future__ import annotations

import asyncio
import grp
import pwd
import xmlrpc.client
from dataclasses import dataclass

import structlog

from he_ha.admin.http_errors import ApiError
from he_ha.admin.peercred import Authorizer, PeerCred

log = structlog.get_logger(__name__)

VDSM_USER = "vdsm"
KVM_GROUP = "kvm"
LOOKUP_TIMEOUT = 5.0


@dataclass(frozen=True)
class VdsmIds:
    uid: int | None  # None: no such user here
    gid: int | None  # group kvm's; None: no such group here


def _lookup() -> VdsmIds:
    try:
        uid: int | None = pwd.getpwnam(VDSM_USER).pw_uid
    except KeyError:
        uid = None
    try:
        gid: int | None = grp.getgrnam(KVM_GROUP).gr_gid
    except KeyError:
        gid = None
    return VdsmIds(uid, gid)


async def lookup_vdsm_ids() -> VdsmIds:
    """The vdsm user and kvm group. NSS may be remote: looked up off the loop, under a
    deadline; when it does not answer, neither counts (root alone may then change things)."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(_lookup), LOOKUP_TIMEOUT)
    except TimeoutError:
        log.error(
            "the user/group database did not answer: the broker socket's changes are for root only",
            timeout=LOOKUP_TIMEOUT,
        )
        return VdsmIds(None, None)


class MutationAccess:
    def __init__(self, ids: VdsmIds) -> None:
        self._vdsm_uid = ids.uid
        self._authorizer = Authorizer(None if ids.gid is None else KVM_GROUP, ids.gid)

    @property
    def requirement(self) -> str:
        vdsm = "" if self._vdsm_uid is None else f", or the user {VDSM_USER!r}"
        return self._authorizer.requirement + vdsm

    async def check(self, method: str, peer: PeerCred | None) -> None:
        """Return if ``peer`` may call ``method``; raise a Fault saying why not."""
        if peer is None:
            raise _denied(method, f"the caller cannot be identified (no SO_PEERCRED); requires {self.requirement}")
        if self._vdsm_uid is not None and peer.uid == self._vdsm_uid:
            return
        try:
            await self._authorizer.check(peer)
        except ApiError as exc:
            log.warning("broker call refused", method=method, uid=peer.uid, gid=peer.gid, pid=peer.pid)
            if exc.status == 403:
                raise _denied(
                    method,
                    f"uid {peer.uid} (gid {peer.gid}, pid {peer.pid}) may not change "
                    f"anything here: requires {self.requirement}",
                ) from None
            raise _denied(method, exc.message) from None


def _denied(method: str, why: str) -> xmlrpc.client.Fault:
    return xmlrpc.client.Fault(xmlrpc.client.APPLICATION_ERROR, f"permission denied: {method}: {why}")
