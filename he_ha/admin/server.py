"""The admin HTTP server on a unix socket: socket life cycle around the routes.

The socket file (he_ha/admin/socket_file.py) is bound under a temporary name, given its
mode and group, and only then renamed into place. An existing socket file is replaced only
when nothing answers on it; a live one means another daemon serves this path and start()
refuses. stop() removes the socket only if it is still ours.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from aiohttp import web

from he_ha.admin.calls import ControllerCalls
from he_ha.admin.contract import Controller
from he_ha.admin.peercred import Authorizer, UnknownGroupError, resolve_group
from he_ha.admin.requests import DEFAULT_MAX_BODY
from he_ha.admin.routes import AdminRoutes, json_errors
from he_ha.admin.socket_file import SocketFile, SocketFileError, serve_app

logger = structlog.get_logger(__name__)

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
        self._file = SocketFile(path, mode=mode, what="admin")  # ValueError for a bad mode
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

    async def start(self) -> None:
        if self._runner is not None:
            raise AdminServerError(f"{self.path}: already serving")
        try:
            self._file.check_path()
            gid = await self._group_id()  # before anything is created
            sock = await self._file.open(gid=gid)
        except SocketFileError as exc:
            raise AdminServerError(str(exc)) from None
        calls = ControllerCalls(self.deadline)
        app = web.Application(middlewares=[json_errors], client_max_size=self.max_body)
        AdminRoutes(self.controller, Authorizer(self.group, gid), calls, self.max_body).install(app)
        self._runner, self._calls = await serve_app(app, sock, self._file), calls
        logger.info("admin socket serving", path=str(self.path), mode=f"{self.mode:#o}", group=self.group)

    async def stop(self) -> None:
        if self._runner is None:
            return
        runner, calls = self._runner, self._calls
        self._runner = self._calls = None
        self._file.remove()  # first: no new connections while we wind down
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
