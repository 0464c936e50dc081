"""Who is on the other end of a unix socket (SO_PEERCRED), and may they change things.

The kernel records the peer's pid, uid and gid at connect() time, so a client cannot
change what we see by dropping or gaining privileges afterwards.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass
from typing import Any

from he_ha.admin.http_errors import ApiError

_UCRED = struct.Struct("3i")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }


class UnknownGroupError(ValueError):
    """The configured admin group is not in the group database."""


@dataclass(frozen=True, slots=True)
class PeerCred:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: Any) -> PeerCred:
    """Read SO_PEERCRED from a connected AF_UNIX socket (a socket.socket, asyncio's
    TransportSocket or uvloop's PseudoSocket: all offer getsockopt)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCred(pid=pid, uid=uid, gid=gid)


def resolve_group(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise UnknownGroupError(f"unknown group {name!r}: not in the group database") from None


def member_gids(uid: int) -> set[int]:
    """The uid's primary and supplementary groups per the user and group databases.

    The peer's own supplementary groups are not in SO_PEERCRED; the databases are the
    authority (as for a login). A uid without a passwd entry belongs to no group.
    """
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return set()
    return set(os.getgrouplist(entry.pw_name, entry.pw_gid))


class Authorizer:
    """Mutating calls need root, or membership (primary, supplementary or the peer's
    gid) in the configured group; with no group configured, root only."""

    def __init__(self, group: str | None, gid: int | None, *, lookup_timeout: float = 5.0) -> None:
        self.group = group
        self.gid = gid
        self.lookup_timeout = lookup_timeout

    @property
    def requirement(self) -> str:
        return "root" if self.group is None else f"root or membership in group {self.group!r}"

    async def check(self, cred: PeerCred) -> None:
        """Return if allowed; raise ApiError 403 naming the uid and the requirement."""
        if cred.uid == 0:
            return
        if self.gid is not None:
            if cred.gid == self.gid:
                return
            # NSS may be remote (LDAP, sssd): look up in a thread, under a deadline.
            try:
                gids = await asyncio.wait_for(asyncio.to_thread(member_gids, cred.uid), self.lookup_timeout)
            except TimeoutError:
                raise ApiError(
                    503,
                    "unavailable",
                    f"cannot check the groups of uid {cred.uid}: the user/group database "
                    f"did not answer within {self.lookup_timeout:g} s",
                ) from None
            if self.gid in gids:
                return
        raise ApiError(
            403,
            "forbidden",
            f"uid {cred.uid} (gid {cred.gid}, pid {cred.pid}) may not change anything here: "
            f"requires {self.requirement}",
        )
