"""May the peer read a file it asks the daemon to read for it?

``POST /v1/vm/start {"vm_conf": path}`` makes the daemon (root) read a file named by the
client. A member of the admin group must not get, through the daemon, a file it could not
read itself: parse errors quote the offending line. So the file's owner, group and mode are
checked against the peer's uid and groups, the way the kernel checks a read (ACLs and the
search permission of parent directories aside: a file the daemon may not show is refused,
never one it may).
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from he_ha.admin.http_errors import ApiError
from he_ha.admin.peercred import PeerCred, member_gids

STAT_TIMEOUT = 5.0  # the path may be on hung storage


def _readable_by(path: Path, cred: PeerCred) -> ApiError | None:
    """Why ``cred`` may not read ``path``, or None if it may (blocking: stat, user database)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return ApiError(400, "invalid_field", f"{path}: {exc.strerror}", field="vm_conf")
    if not stat.S_ISREG(st.st_mode):
        return ApiError(400, "invalid_field", f"{path}: not a regular file", field="vm_conf")
    if cred.uid == 0:
        return None
    if st.st_uid == cred.uid:
        allowed = bool(st.st_mode & stat.S_IRUSR)
    elif st.st_gid == cred.gid or st.st_gid in member_gids(cred.uid):
        allowed = bool(st.st_mode & stat.S_IRGRP)
    else:
        allowed = bool(st.st_mode & stat.S_IROTH)
    if allowed:
        return None
    message = f"uid {cred.uid} may not read {path} ({stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid})"
    return ApiError(403, "forbidden", message, field="vm_conf")


async def require_readable_by_peer(path: Path, cred: PeerCred) -> None:
    """Raise ApiError 403 (not readable by the peer) or 400 (missing, not a file)."""
    try:
        problem = await asyncio.wait_for(asyncio.to_thread(_readable_by, path, cred), STAT_TIMEOUT)
    except TimeoutError:
        raise ApiError(
            503, "unavailable", f"{path}: no answer from the file system within {STAT_TIMEOUT:g} s", field="vm_conf"
        ) from None
    if problem is not None:
        raise problem
