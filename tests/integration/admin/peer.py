"""Run one admin request from a child process with other credentials.

SO_PEERCRED records the credentials at connect() time, so the child drops to the given
uid/gid BEFORE connecting; connecting first and dropping afterwards would still read as root.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

_CHILD = r"""
import http.client, json, os, socket, sys
path, uid, gid, method, url, body = sys.argv[1:7]
uid, gid = int(uid), int(gid)
os.setgroups([])
os.setresgid(gid, gid, gid)
os.setresuid(uid, uid, uid)

class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(path)

try:
    connection = UnixConnection("he-ha")
    headers = {"Content-Type": "application/json"} if body else {}
    connection.request(method, url, body=body or None, headers=headers)
    response = connection.getresponse()
    print(json.dumps({"status": response.status, "body": json.loads(response.read())}))
except PermissionError as exc:
    print(json.dumps({"status": None, "connect_error": exc.strerror}))
"""


@dataclass(frozen=True)
class PeerResult:
    status: int | None
    body: dict | None
    connect_error: str | None


async def request_as(path: Path, uid: int, gid: int, method: str, url: str, body: dict | None = None) -> PeerResult:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-c",
        _CHILD,
        str(path),
        str(uid),
        str(gid),
        method,
        url,
        json.dumps(body) if body is not None else "",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    answer = json.loads(stdout)
    return PeerResult(answer["status"], answer.get("body"), answer.get("connect_error"))
