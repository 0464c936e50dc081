"""The admin API's routes and its JSON error middleware.

GET routes answer from the Controller's memory only (status, decisions, metrics, the VM
definition are plain methods the supervisor keeps non-blocking); nothing here awaits storage
or libvirt for them. The one exception, ``GET /v1/vm/definition?resolved=true``, resolves the
engine XML (volume lookups on shared storage) under the same deadline as the POST calls.
POST routes check the peer's credentials first, then the body, then run the Controller
coroutine under the deadline.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from he_ha.admin.calls import ControllerCalls
from he_ha.admin.contract import CommandResult, Controller
from he_ha.admin.file_access import require_readable_by_peer
from he_ha.admin.http_errors import ApiError, code_for, error_response
from he_ha.admin.metrics_listener import metrics_response
from he_ha.admin.peercred import Authorizer, PeerCred, peer_credentials
from he_ha.admin.requests import ConsolePasswordRequest, MaintenanceRequest, NoFields, VmStartRequest, read_body

logger = structlog.get_logger(__name__)

DEFAULT_DECISIONS = 50
MAX_DECISIONS = 1000


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure leaves as ``{"error", "message"}`` JSON with its 4xx/5xx status."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, field=exc.field)
    except web.HTTPException as exc:  # raised by aiohttp: unknown route, wrong method, body size
        if exc.status < 400:
            raise
        headers = None
        message = exc.text or exc.reason
        if isinstance(exc, web.HTTPNotFound):
            message = f"no route {request.method} {request.path}"
        elif isinstance(exc, web.HTTPMethodNotAllowed):
            allowed = ", ".join(sorted(exc.allowed_methods))
            message = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
            headers = {"Allow": allowed}
        return error_response(exc.status, code_for(exc.status), message, headers=headers)
    except Exception as exc:  # a Controller bug must surface as a 500, never as a dropped connection
        logger.error("admin request failed", method=request.method, path=request.path, exc_info=exc)
        return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")


def _query(request: web.Request, allowed: frozenset[str]) -> None:
    for name in request.query:
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ApiError(400, "invalid_parameter", f"unknown query parameter {name!r} (known: {known})", field=name)


def parse_limit(request: web.Request) -> int:
    _query(request, frozenset({"limit"}))
    given = request.query.getall("limit", [])
    if not given:
        return DEFAULT_DECISIONS
    raw = given[0]
    # ASCII digits only ("²".isdigit() is true) and short: int() refuses huge digit strings
    if len(given) > 1 or not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_DECISIONS):
        raise ApiError(
            400,
            "invalid_parameter",
            f"query parameter 'limit' must be one integer from 1 to {MAX_DECISIONS}; "
            + (f"got {raw!r}" if len(given) == 1 else f"given {len(given)} times"),
            field="limit",
        )
    return int(raw)


FLAGS = {"true": True, "1": True, "false": False, "0": False}


def parse_flag(request: web.Request, name: str) -> bool:
    """An optional boolean query parameter (``true``/``1``/``false``/``0``), the only one allowed."""
    _query(request, frozenset({name}))
    given = request.query.getall(name, [])
    if not given:
        return False
    if len(given) > 1 or given[0].lower() not in FLAGS:
        raise ApiError(
            400,
            "invalid_parameter",
            f"query parameter {name!r} must be given once as true or false; got {', '.join(map(repr, given))}",
            field=name,
        )
    return FLAGS[given[0].lower()]


def _json(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="application/json")


def _result_response(result: CommandResult) -> web.Response:
    """ok → 200 with the CommandResult; refused → 409 with the CommandResult plus the
    error code, so it reads both as a CommandResult and as an error object."""
    if result.ok:
        return _json(result.model_dump_json())
    return _json(json.dumps({"error": "refused", **result.model_dump(mode="json")}), status=409)


class AdminRoutes:
    def __init__(self, controller: Controller, authorizer: Authorizer, calls: ControllerCalls, max_body: int) -> None:
        self.controller = controller
        self.authorizer = authorizer
        self.calls = calls
        self.max_body = max_body

    def install(self, app: web.Application) -> None:
        app.router.add_get("/v1/status", self.status)
        app.router.add_get("/v1/decisions", self.decisions)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/v1/vm/definition", self.vm_definition)
        app.router.add_post("/v1/maintenance", self.maintenance)
        app.router.add_post("/v1/vm/start", self.vm_start)
        app.router.add_post("/v1/vm/shutdown", self.vm_shutdown)
        app.router.add_post("/v1/vm/poweroff", self.vm_poweroff)
        app.router.add_post("/v1/vm/console-password", self.console_password)

    async def status(self, request: web.Request) -> web.Response:
        _query(request, frozenset())
        return _json(self.controller.status().model_dump_json())

    async def decisions(self, request: web.Request) -> web.Response:
        limit = parse_limit(request)
        return _json(json.dumps({"decisions": self.controller.decisions(limit)}))

    async def metrics(self, request: web.Request) -> web.Response:
        _query(request, frozenset())
        return metrics_response(self.controller.metrics(), request.headers.get("Accept", ""))

    async def vm_definition(self, request: web.Request) -> web.Response:
        if not parse_flag(request, "resolved"):
            return _json(self.controller.vm_definition().model_dump_json())
        try:
            detail = await asyncio.wait_for(self.controller.launch_preview(), self.calls.deadline)
        except TimeoutError:
            raise ApiError(
                504, "deadline_exceeded", f"resolving the VM definition: no result within {self.calls.deadline:g} s"
            ) from None
        return _json(detail.model_dump_json())

    async def maintenance(self, request: web.Request) -> web.Response:
        cred = await self._authorize(request, "set_maintenance")
        body = await read_body(request, MaintenanceRequest, self.max_body)
        return await self._run(cred, f"set_maintenance({body.mode.value})", self.controller.set_maintenance(body.mode))

    async def vm_start(self, request: web.Request) -> web.Response:
        cred = await self._authorize(request, "vm_start")
        body = await read_body(request, VmStartRequest, self.max_body)
        vm_conf = None if body.vm_conf is None else Path(body.vm_conf)
        if vm_conf is not None:
            await require_readable_by_peer(vm_conf, cred)
        action = f"vm_start(paused={body.paused}, vm_conf={body.vm_conf})"
        return await self._run(cred, action, self.controller.vm_start(paused=body.paused, vm_conf=vm_conf))

    async def vm_shutdown(self, request: web.Request) -> web.Response:
        cred = await self._authorize(request, "vm_shutdown")
        await read_body(request, NoFields, self.max_body)
        return await self._run(cred, "vm_shutdown", self.controller.vm_shutdown())

    async def vm_poweroff(self, request: web.Request) -> web.Response:
        cred = await self._authorize(request, "vm_poweroff")
        await read_body(request, NoFields, self.max_body)
        return await self._run(cred, "vm_poweroff", self.controller.vm_poweroff())

    async def console_password(self, request: web.Request) -> web.Response:
        cred = await self._authorize(request, "console_password")
        body = await read_body(request, ConsolePasswordRequest, self.max_body)
        # the password itself never reaches a log line
        call = self.controller.console_password(body.password, body.ttl)
        return await self._run(cred, f"console_password(ttl={body.ttl})", call)

    async def _authorize(self, request: web.Request, action: str) -> PeerCred:
        _query(request, frozenset())
        sock = request.transport.get_extra_info("socket") if request.transport is not None else None
        if sock is None:
            raise ApiError(500, "internal_error", "cannot identify the peer: the connection has no socket")
        cred = peer_credentials(sock)
        try:
            await self.authorizer.check(cred)
        except ApiError as exc:
            logger.warning(
                "admin call refused", action=action, uid=cred.uid, gid=cred.gid, pid=cred.pid, reason=exc.message
            )
            raise
        return cred

    async def _run(self, cred: PeerCred, action: str, call: Coroutine[Any, Any, CommandResult]) -> web.Response:
        log = logger.bind(action=action, uid=cred.uid, pid=cred.pid)
        log.info("admin call")
        result = await self.calls.run(action, call)
        log.info("admin call done", ok=result.ok, message=result.message)
        return _result_response(result)
