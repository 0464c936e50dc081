"""A blocking client of the local he-ha daemon's admin socket (HTTP over a unix socket).

The shim is a short-lived synchronous command, so a plain ``http.client`` connection with a
socket timeout is the whole client: every call has a deadline and fails with a typed error
that says which socket and why.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT = 30.0  # the daemon bounds its own mutating calls at 30 s


class DaemonUnreachable(Exception):
    """Nothing answers on the admin socket (daemon stopped, wrong path, permissions).

    ``down``: nothing listens there at all (no socket file, or the connection is refused),
    as opposed to a daemon that accepted and then did not answer in time (hung or busy)."""

    def __init__(self, path: Path, reason: str, *, down: bool = False) -> None:
        super().__init__(f"the he-ha daemon does not answer on {path}: {reason}")
        self.path = path
        self.reason = reason
        self.down = down


class AdminError(Exception):
    """The daemon answered with an error status; ``message`` is its explanation."""

    def __init__(self, status: int, message: str, body: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body


class AdminClient:
    def __init__(self, path: Path, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout

    def request(self, method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status, decoded body): JSON bodies decoded, others as text. Raises DaemonUnreachable."""
        conn = _UnixHTTPConnection(self.path, self.timeout)
        try:
            payload = None if body is None else json.dumps(body)
            headers = {} if payload is None else {"Content-Type": "application/json"}
            conn.request(method, url, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read().decode("utf-8", errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            down = isinstance(exc, (FileNotFoundError, ConnectionRefusedError))  # only connect() raises these
            raise DaemonUnreachable(self.path, str(exc) or type(exc).__name__, down=down) from exc
        finally:
            conn.close()
        if response.getheader("Content-Type", "").startswith("application/json"):
            try:
                return response.status, json.loads(data)
            except json.JSONDecodeError as exc:
                raise DaemonUnreachable(self.path, f"answer is not valid JSON: {exc}") from exc
        return response.status, data

    def get(self, url: str) -> Any:
        """The body of a 200 answer; AdminError for any other status."""
        status, data = self.request("GET", url)
        if status != 200:
            raise AdminError(status, _message(data), data)
        return data

    def post(self, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        return self.request("POST", url, body or {})


def _message(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return str(data)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("he-ha", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self._path))
