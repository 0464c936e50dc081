"""The admin HTTP server on a unix socket: socket life cycle around the routes.

The socket is bound under a temporary name, given its mode and group, and only then
renamed into place, so it is never reachable with the wrong permissions. An existing
socket file is replaced only when nothing answers on it; a live one means another daemon
serves this path and start() refuses. stop() removes the socket only if it is still ours.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

import structlog
from aiohttp import web

from he_ha.admin.calls import ControllerCalls
from he_ha.admin.contract import Controller
from he_ha.admin.peercred import Authorizer, UnknownGroupError, resolve_group
from he_ha.admin.requests import DEFAULT_MAX_BODY
from he_ha.admin.routes import AdminRoutes, json_errors

logger = structlog.get_logger(__name__)

_MAX_UNIX_PATH = 107  # sun_path is 108 bytes including the terminating NUL
_PROBE_TIMEOUT = 2.0
_LOOKUP_TIMEOUT = 5.0


class AdminServerError(Exception):
    """The admin socket cannot be set up (path in use, unknown group, bad path, ...)."""


class AdminServer:
    """Serve ``controller`` at the unix socket ``path``.

    ``group`` (a group name) gets the socket file and, with root, the right to call the
    mutating routes; ``mode`` is the socket file's permission bits. ``deadline`` bounds
    every mutating Controller call (504 past it); ``max_body`` bounds request bodies (413).
    """

    def __init__(
        self,
        controller: Controller,
        path: Path,
        *,
        group: str | None = None,
        mode: int = 0o660,
        deadline: float = 30.0,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if not 0 <= mode <= 0o777:
            raise ValueError(f"socket mode {mode:#o} is not a permission mode (0 to 0o777)")
        if deadline <= 0:
            raise ValueError(f"deadline must be positive, got {deadline}")
        if max_body < 1:
            raise ValueError(f"max_body must be positive, got {max_body}")
        self.controller = controller
        self.path = Path(path)
        self.group = group
        self.mode = mode
        self.deadline = deadline
        self.max_body = max_body
        self._runner: web.AppRunner | None = None
        self._calls: ControllerCalls | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of our socket file

    async def start(self) -> None:
        if self._runner is not None:
            raise AdminServerError(f"{self.path}: already serving")
        if len(os.fsencode(self.path)) > _MAX_UNIX_PATH:
            raise AdminServerError(f"{self.path}: too long for a unix socket (max {_MAX_UNIX_PATH} bytes)")
        gid = await self._group_id()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._clear_stale_socket()
        sock = self._bind(gid)
        calls = ControllerCalls(self.deadline)
        app = web.Application(middlewares=[json_errors], client_max_size=self.max_body)
        AdminRoutes(self.controller, Authorizer(self.group, gid), calls, self.max_body).install(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            self._remove_socket_file()
            raise
        self._runner, self._calls = runner, calls
        logger.info("admin socket serving", path=str(self.path), mode=f"{self.mode:#o}", group=self.group)

    async def stop(self) -> None:
        if self._runner is None:
            return
        runner, calls = self._runner, self._calls
        self._runner = self._calls = None
        self._remove_socket_file()  # first: no new connections while we wind down
        assert calls is not None
        await calls.cancel_all()
        await runner.cleanup()
        logger.info("admin socket closed", path=str(self.path))

    async def _group_id(self) -> int | None:
        if self.group is None:
            return None
        try:  # NSS may be remote: off the loop, under a deadline
            return await asyncio.wait_for(asyncio.to_thread(resolve_group, self.group), _LOOKUP_TIMEOUT)
        except UnknownGroupError as exc:
            raise AdminServerError(f"{self.path}: {exc}") from None
        except TimeoutError:
            raise AdminServerError(
                f"{self.path}: group {self.group!r}: the group database did not answer within {_LOOKUP_TIMEOUT:g} s"
            ) from None

    async def _clear_stale_socket(self) -> None:
        try:
            info = self.path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise AdminServerError(f"{self.path}: exists and is not a socket; refusing to replace it")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(self.path)), _PROBE_TIMEOUT)
        except ConnectionRefusedError:
            logger.info("removing stale admin socket", path=str(self.path))
            self.path.unlink(missing_ok=True)
            return
        except FileNotFoundError:
            return
        except TimeoutError:
            raise AdminServerError(
                f"{self.path}: a process is listening but did not accept within {_PROBE_TIMEOUT:g} s; "
                "another daemon seems to serve this socket"
            ) from None
        except OSError as exc:
            raise AdminServerError(f"{self.path}: cannot probe the existing socket: {exc.strerror}") from None
        writer.close()
        raise AdminServerError(f"{self.path}: another process is serving this socket; stop it first")

    def _bind(self, gid: int | None) -> socket.socket:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        if len(os.fsencode(temporary)) > _MAX_UNIX_PATH:
            temporary = self.path.with_name(f".{os.getpid()}.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            temporary.unlink(missing_ok=True)  # our pid's leftover from a crash
            sock.bind(str(temporary))
            os.chmod(temporary, self.mode)
            if gid is not None:
                os.chown(temporary, -1, gid)
            sock.listen(128)
            os.rename(temporary, self.path)
        except OSError as exc:
            sock.close()
            temporary.unlink(missing_ok=True)
            raise AdminServerError(f"{self.path}: cannot create the socket: {exc}") from None
        info = self.path.lstat()
        self._identity = (info.st_dev, info.st_ino)
        sock.setblocking(False)
        return sock

    def _remove_socket_file(self) -> None:
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
