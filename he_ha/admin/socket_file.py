"""The file of a listening unix socket: created safely, replaced only when stale, removed only if ours.

Shared by the admin server and the broker socket. The socket is bound under a temporary
name, given its mode and owner, and only then renamed into place, so it is never reachable
with the wrong permissions. An existing socket file is replaced only when nothing answers
on it; a live one means another process serves this path and ``open`` refuses. ``remove``
unlinks the path only if it still names our socket (a successor may own it by then).
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

import structlog
from aiohttp import web

logger = structlog.get_logger(__name__)

MAX_UNIX_PATH = 107  # sun_path is 108 bytes including the terminating NUL
_PROBE_TIMEOUT = 2.0


class SocketFileError(Exception):
    """The socket file cannot be set up (path in use, not a socket, too long, ...)."""


class SocketFile:
    """The socket file at ``path`` with permission bits ``mode``; ``what`` names it in logs."""

    def __init__(self, path: Path, *, mode: int, what: str) -> None:
        if not 0 <= mode <= 0o777:
            raise ValueError(f"socket mode {mode:#o} is not a permission mode (0 to 0o777)")
        self.path = Path(path)
        self.mode = mode
        self.what = what
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of our socket file

    def check_path(self) -> None:
        if len(os.fsencode(self.path)) > MAX_UNIX_PATH:
            raise SocketFileError(f"{self.path}: too long for a unix socket (max {MAX_UNIX_PATH} bytes)")

    async def open(
        self, *, uid: int | None = None, gid: int | None = None, dir_mode: int | None = None
    ) -> socket.socket:
        """A listening, non-blocking socket at ``path`` owned by ``uid``/``gid`` (None: left
        as created). A missing directory is created (``dir_mode``: its mode, else the umask's)."""
        self.check_path()
        directory = self.path.parent
        if not directory.exists():
            directory.mkdir(parents=True, exist_ok=True)
            if dir_mode is not None:
                os.chmod(directory, dir_mode)  # mkdir's mode is masked by the umask
        await self._clear_stale()
        return self._bind(uid, gid)

    async def _clear_stale(self) -> None:
        try:
            info = self.path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise SocketFileError(f"{self.path}: exists and is not a socket; refusing to replace it")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(self.path)), _PROBE_TIMEOUT)
        except ConnectionRefusedError:
            logger.info(f"removing stale {self.what} socket", path=str(self.path))
            self.path.unlink(missing_ok=True)
            return
        except FileNotFoundError:
            return
        except TimeoutError:
            raise SocketFileError(
                f"{self.path}: a process is listening but did not accept within {_PROBE_TIMEOUT:g} s; "
                "another daemon seems to serve this socket"
            ) from None
        except OSError as exc:
            raise SocketFileError(f"{self.path}: cannot probe the existing socket: {exc.strerror}") from None
        writer.close()
        raise SocketFileError(f"{self.path}: another process is serving this socket; stop it first")

    def _bind(self, uid: int | None, gid: int | None) -> socket.socket:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        if len(os.fsencode(temporary)) > MAX_UNIX_PATH:
            temporary = self.path.with_name(f".{os.getpid()}.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            temporary.unlink(missing_ok=True)  # our pid's leftover from a crash
            sock.bind(str(temporary))
            os.chmod(temporary, self.mode)
            if uid is not None or gid is not None:
                os.chown(temporary, -1 if uid is None else uid, -1 if gid is None else gid)
            sock.listen(128)
            os.rename(temporary, self.path)
        except OSError as exc:
            sock.close()
            temporary.unlink(missing_ok=True)
            raise SocketFileError(f"{self.path}: cannot create the socket: {exc}") from None
        info = self.path.lstat()
        self._identity = (info.st_dev, info.st_ino)
        sock.setblocking(False)
        return sock

    def remove(self) -> None:
        """Unlink the socket only if the path still names ours (a successor may own it)."""
        if self._identity is None:
            return
        try:
            info = self.path.lstat()
        except FileNotFoundError:
            info = None
        if info is not None and (info.st_dev, info.st_ino) == self._identity:
            self.path.unlink()
        self._identity = None


async def serve_app(app: web.Application, sock: socket.socket, file: SocketFile) -> web.AppRunner:
    """Serve ``app`` on ``sock``, the listening socket of ``file``; on failure nothing is left
    (socket closed, file removed)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        await runner.cleanup()
        sock.close()
        file.remove()
        raise
    return runner
