"""The line protocol between the lease client and its worker process (pure).

One JSON object per line. Request: ``{"id": n, "op": name, "args": {...}}``. Reply:
``{"id": n, "result": value}`` or ``{"id": n, "error": {"kind", "errno", "message", ...}}``.
Error kinds: ``sanlock`` (a SanlockException; ``daemon_up`` says whether the daemon socket
answered), ``os`` (an OSError of the worker's own volume checks), ``request`` (an op the
worker does not know) and ``internal`` (anything else: a bug).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from he_ha.lease.lease_errors import LeaseProtocolError

MAX_LINE = 16 * 1024 * 1024  # get_hosts of 2000 hosts is ~200 KB; leave plenty of room


@dataclass(frozen=True)
class Request:
    id: int
    op: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Failure:
    kind: str
    errno: int | None
    message: str
    daemon_up: bool = True


@dataclass(frozen=True)
class Reply:
    id: int
    result: Any = None
    failure: Failure | None = None


def encode(message: Request | Reply) -> bytes:
    if isinstance(message, Request):
        body: dict[str, Any] = {"id": message.id, "op": message.op, "args": message.args}
    elif message.failure is None:
        body = {"id": message.id, "result": message.result}
    else:
        failure = message.failure
        body = {
            "id": message.id,
            "error": {
                "kind": failure.kind,
                "errno": failure.errno,
                "message": failure.message,
                "daemon_up": failure.daemon_up,
            },
        }
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def _object(line: bytes) -> dict[str, Any]:
    try:
        body = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LeaseProtocolError(f"not a JSON line: {line[:200]!r}: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("id"), int):
        raise LeaseProtocolError(f"message without an integer id: {line[:200]!r}")
    return body


def decode_request(line: bytes) -> Request:
    body = _object(line)
    op, args = body.get("op"), body.get("args")
    if not isinstance(op, str) or not isinstance(args, dict):
        raise LeaseProtocolError(f"request {body['id']} lacks op or args: {line[:200]!r}")
    return Request(body["id"], op, args)


def decode_reply(line: bytes) -> Reply:
    body = _object(line)
    if "error" not in body:
        if "result" not in body:
            raise LeaseProtocolError(f"reply {body['id']} has neither result nor error")
        return Reply(body["id"], result=body["result"])
    error = body["error"]
    if (
        not isinstance(error, dict)
        or not isinstance(error.get("kind"), str)
        or not isinstance(error.get("message"), str)
    ):
        raise LeaseProtocolError(f"reply {body['id']} has a malformed error: {error!r}")
    errno = error.get("errno")
    if errno is not None and not isinstance(errno, int):
        raise LeaseProtocolError(f"reply {body['id']} has a non-integer errno: {errno!r}")
    return Reply(
        body["id"], failure=Failure(error["kind"], errno, error["message"], bool(error.get("daemon_up", True)))
    )
