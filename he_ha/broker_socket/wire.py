"""XML-RPC over HTTP on a unix socket, as the original broker speaks it (ohe/lib/unixrpc.py).

The original served Python's ``SimpleXMLRPCDispatcher`` one request at a time; this serves
every connection concurrently (aiohttp). What clients rely on is kept: POST on ``/RPC2`` or
``/`` (the paths SimpleXMLRPCRequestHandler accepts), the Host header is not looked at (the
original client puts the base16-encoded socket path there), one call per connection
(``Connection: close``), ``<nil/>`` allowed both ways, a method name starting with ``_`` or
unknown, and a request that does not parse, answered with an XML-RPC fault. Bodies are
bounded (413 past ``max_body``); the stdlib parser (expat 2.4+) refuses entity expansion
bombs on its own.
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from he_ha.admin.peercred import PeerCred, peer_credentials

log = structlog.get_logger(__name__)

RPC_PATHS = ("/RPC2", "/")
CONTENT_TYPE = "text/xml"


@dataclass(frozen=True)
class Call:
    method: str
    params: tuple[Any, ...]
    peer: PeerCred | None  # None: the connection's credentials could not be read


# Returns the result to marshal, or raises xmlrpc.client.Fault.
Dispatch = Callable[[Call], Awaitable[Any]]


def xmlrpc_app(dispatch: Dispatch, *, max_body: int) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        return _reply(await _answer(dispatch, request))

    app = web.Application(client_max_size=max_body)
    for path in RPC_PATHS:
        app.router.add_post(path, handle)
    return app


async def _answer(dispatch: Dispatch, request: web.Request) -> str:
    body = await request.read()  # aiohttp answers 413 past client_max_size
    try:
        params, method = xmlrpc.client.loads(body, use_builtin_types=True)
    except Exception as exc:  # expat, or the unmarshaller on an unknown or broken value
        return _fault(xmlrpc.client.PARSE_ERROR, f"not an XML-RPC request: {type(exc).__name__}: {exc}")
    if method is None:
        return _fault(xmlrpc.client.PARSE_ERROR, "not an XML-RPC request: no methodName (a methodResponse?)")
    call = Call(method, params, _peer(request))
    try:
        result = await dispatch(call)
    except xmlrpc.client.Fault as fault:
        return _marshal(fault)
    except Exception as exc:  # a bug must answer as a fault, never as a dropped connection
        log.error("broker call failed", method=method, exc_info=exc)
        return _fault(xmlrpc.client.INTERNAL_ERROR, f"{method}: {type(exc).__name__}: {exc}")
    try:
        return _marshal((result,))
    except (TypeError, OverflowError) as exc:
        log.error("broker result cannot be marshalled", method=method, result=repr(result)[:200])
        return _fault(xmlrpc.client.INTERNAL_ERROR, f"{method}: the result cannot be marshalled: {exc}")


def _peer(request: web.Request) -> PeerCred | None:
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is None:
        return None
    try:
        return peer_credentials(sock)
    except OSError:
        return None


def _fault(code: int, message: str) -> str:
    return _marshal(xmlrpc.client.Fault(code, message))


def _marshal(value: tuple[Any, ...] | xmlrpc.client.Fault) -> str:
    return xmlrpc.client.dumps(value, methodresponse=True, allow_none=True)


def _reply(payload: str) -> web.Response:
    response = web.Response(text=payload, content_type=CONTENT_TYPE)
    response.force_close()  # one call per connection, as the original's HTTP/1.0 replies
    return response
