from __future__ import annotations

import grp
import os
import pwd
import socket

import pytest

from he_ha.admin.http_errors import ApiError
from he_ha.admin.peercred import Authorizer, PeerCred, UnknownGroupError, peer_credentials, resolve_group

NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid


def test_peer_credentials_of_a_real_socket_pair() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert peer_credentials(left) == PeerCred(pid=os.getpid(), uid=os.getuid(), gid=os.getgid())


def test_resolve_group() -> None:
    assert resolve_group("root") == 0
    with pytest.raises(UnknownGroupError, match="unknown group 'no-such-group-he-ha'"):
        resolve_group("no-such-group-he-ha")


async def test_root_always_allowed() -> None:
    await Authorizer(None, None).check(PeerCred(pid=1, uid=0, gid=12345))


@pytest.mark.parametrize(
    ("cred", "allowed"),
    [
        (PeerCred(pid=1, uid=NOBODY, gid=NOGROUP), True),  # the peer's gid
        (PeerCred(pid=1, uid=NOBODY, gid=54321), True),  # nobody's primary group in passwd
        (PeerCred(pid=1, uid=4242, gid=54321), False),  # no passwd entry: no groups
    ],
)
async def test_group_membership(cred: PeerCred, allowed: bool) -> None:
    authorizer = Authorizer("nogroup", NOGROUP)
    if allowed:
        await authorizer.check(cred)
    else:
        with pytest.raises(ApiError) as caught:
            await authorizer.check(cred)
        assert caught.value.status == 403
        assert "uid 4242 (gid 54321, pid 1)" in caught.value.message
        assert "root or membership in group 'nogroup'" in caught.value.message
