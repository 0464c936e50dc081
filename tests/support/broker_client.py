"""A client of the broker socket written the way the original's is (ohe/lib/unixrpc.py): the
stdlib ``xmlrpc.client.ServerProxy`` with a Transport whose connection is an
``http.client.HTTPConnection`` connecting to the AF_UNIX socket; the URL's host is the
base16-encoded socket path (it lands in the Host header), the path the default ``/RPC2``,
``allow_none`` on. Stdlib only, so that ``call_as`` can run it in a child process under
another uid."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import subprocess
import sys
import xmlrpc.client
from pathlib import Path
from typing import Any


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, timeout: float | None = None) -> None:
        super().__init__(host, timeout=timeout)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(base64.b16decode(self.host).decode())
        self.sock = sock


class UnixTransport(xmlrpc.client.Transport):
    def __init__(self, timeout: float | None = None) -> None:
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return UnixHTTPConnection(host, timeout=self.timeout)


def broker_proxy(path: Path | str, timeout: float | None = None) -> xmlrpc.client.ServerProxy:
    """``timeout``: the socket timeout (None blocks, as the agent and the CLI do; VDSM uses 5 s)."""
    host = base64.b16encode(str(path).encode()).decode()
    return xmlrpc.client.ServerProxy(f"http://{host}", transport=UnixTransport(timeout), allow_none=True)


def slots(answer: dict[str, xmlrpc.client.Binary]) -> dict[int, bytes]:
    """A get_stats answer as the original client reads it: int keys, the blobs' bytes."""
    return {int(key): value.data for key, value in answer.items()}


def global_block(maintenance: bool) -> bytes:
    """What the original ``set_global_md_flag("maintenance", ...)`` sends: ``maintenance=1|0``
    (entries joined without a separator), NUL-padded to 4096 bytes."""
    return f"maintenance={int(maintenance)}".encode().ljust(4096, b"\0")


_CHILD = r"""
import ast, base64, json, os, sys, xmlrpc.client
directory, path, uid, gid, method, params = sys.argv[1:7]
os.setgroups([])
os.setresgid(int(gid), int(gid), int(gid))
os.setresuid(int(uid), int(uid), int(uid))  # before connecting: SO_PEERCRED is taken at connect()
sys.path.insert(0, directory)
from broker_client import broker_proxy

try:
    result = getattr(broker_proxy(path, timeout=20), method)(*ast.literal_eval(params))
    print(json.dumps({"result": result}, default=lambda blob: base64.b64encode(blob.data).decode()))
except xmlrpc.client.Fault as fault:
    print(json.dumps({"fault": [fault.faultCode, fault.faultString]}))
"""


def call_as(path: Path, uid: int, gid: int, method: str, *params: Any) -> dict[str, Any]:
    """Call ``method(*params)`` from a child process running as uid/gid (no supplementary
    groups); ``{"result": ...}`` (base64 blobs as text) or ``{"fault": [code, text]}``.
    ``params``: literals (bytes go out as base64)."""
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            _CHILD,
            str(Path(__file__).parent),
            str(path),
            str(uid),
            str(gid),
            method,
            repr(params),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer
