"""``/metrics`` over TCP for a Prometheus server on another machine (``--metrics-listen``).

Off by default, and only on the address given: there is no default bind address, so it is
never open to a network by accident. It serves ``GET /metrics`` (and HEAD) and nothing else:
no other path of the admin API, no method that changes anything (405), no request body read.
The metrics come from the Controller's memory, as on the admin socket, so a scrape answers
while storage hangs. Protect the port as any exporter's (a firewall, or a loopback address
behind a reverse proxy with TLS): the metrics name hosts and states, nothing secret.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from he_ha.admin.contract import Metric

# he_ha.admin.metrics_text (prometheus_client, 1.1 MiB of RSS) is loaded at the first scrape:
# a host nobody scrapes never loads it (issue 16 item 3).

log = structlog.get_logger(__name__)


class MetricsListenError(Exception):
    """The listener cannot be started (address in use, not an address of this host)."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` with a literal address; ValueError names what is wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r}: expected ADDRESS:PORT, e.g. 192.0.2.10:9716 or [::1]:9716")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address (give the address to listen on)") from None
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is out of range")
    return str(address), port


def metrics_response(metrics: list[Metric], accept: str) -> web.Response:
    """The exposition for a scraper's Accept header (shared by the admin socket's route)."""
    from he_ha.admin.metrics_text import encode

    body, content_type = encode(metrics, accept)
    return web.Response(body=body, headers={"Content-Type": content_type})


class MetricsListener:
    def __init__(self, metrics: Callable[[], list[Metric]], host: str, port: int) -> None:
        self._metrics = metrics
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(middlewares=[self._errors])
        app.router.add_get("/metrics", self._serve)  # add_get adds HEAD too
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # [::] means IPv6 only
            sock.bind((self.host, self.port))
            sock.listen(16)
            sock.setblocking(False)
            await web.SockSite(runner, sock).start()
        except OSError as exc:
            sock.close()
            await runner.cleanup()
            raise MetricsListenError(f"--metrics-listen {self.host}:{self.port}: {exc.strerror or exc}") from None
        self.port = sock.getsockname()[1]  # the one chosen for port 0
        self._runner = runner
        log.info("metrics listener started", address=self.host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, request: web.Request) -> web.Response:
        if request.query:
            raise web.HTTPBadRequest(text="/metrics takes no query parameters\n")
        return metrics_response(self._metrics(), request.headers.get("Accept", ""))

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        from he_ha.admin.metrics_text import MetricsFormatError

        try:
            return await handler(request)
        except web.HTTPException as exc:
            if isinstance(exc, web.HTTPNotFound):
                return web.Response(status=404, text="only /metrics is served here\n")
            if isinstance(exc, web.HTTPMethodNotAllowed):
                return web.Response(status=405, text="read-only: GET /metrics\n", headers={"Allow": "GET, HEAD"})
            raise
        except MetricsFormatError as exc:
            log.error("metrics cannot be exposed", error=str(exc))
            return web.Response(status=500, text=f"metrics cannot be exposed: {exc}\n")
