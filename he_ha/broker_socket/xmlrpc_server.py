"""The broker socket's life cycle: the socket file where VDSM looks for it, the HTTP server on it.

The file is made as the original's systemd unit left it for VDSM (vdsm:kvm): mode 0666
(connecting needs write permission on the file; who may change things is checked per call,
by SO_PEERCRED), owned by vdsm:kvm when they exist (else root's), in a directory created
0755 if missing. A stale socket file is replaced; one another process answers on (e.g. the
original broker) makes start() refuse.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from aiohttp import web

from he_ha.admin.socket_file import SocketFile, SocketFileError, serve_app
from he_ha.broker_socket.access import MutationAccess, lookup_vdsm_ids
from he_ha.broker_socket.methods import BrokerBackend, BrokerMethods
from he_ha.broker_socket.wire import xmlrpc_app

log = structlog.get_logger(__name__)

SOCKET_MODE = 0o666
DIR_MODE = 0o755
MAX_BODY = 64 * 1024  # a put_stats of a 4096-byte block is ~6 KiB of XML


class BrokerServerError(Exception):
    """The broker socket cannot be set up (path in use, not a socket, too long, ...)."""


class BrokerServer:
    def __init__(self, backend: BrokerBackend, path: Path, *, max_body: int = MAX_BODY) -> None:
        self.backend = backend
        self.path = Path(path)
        self.max_body = max_body
        self._file = SocketFile(self.path, mode=SOCKET_MODE, what="broker")
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        if self._runner is not None:
            raise BrokerServerError(f"{self.path}: already serving")
        ids = await lookup_vdsm_ids()
        try:
            sock = await self._file.open(uid=ids.uid, gid=ids.gid, dir_mode=DIR_MODE)
        except SocketFileError as exc:
            raise BrokerServerError(str(exc)) from None
        app = xmlrpc_app(BrokerMethods(self.backend, MutationAccess(ids)), max_body=self.max_body)
        self._runner = await serve_app(app, sock, self._file)
        log.info("broker socket serving", path=str(self.path), uid=ids.uid, gid=ids.gid)

    async def stop(self) -> None:
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        self._file.remove()  # first: no new connections while we wind down
        await runner.cleanup()
        log.info("broker socket closed", path=str(self.path))
