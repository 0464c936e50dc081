"""journald's native protocol, written by hand (no libsystemd, as he_ha/sdnotify.py).

https://systemd.io/JOURNAL_NATIVE_PROTOCOL/: one datagram per entry to
/run/systemd/journal/socket, each field ``NAME=value\\n``, or, for a value with a line feed,
``NAME\\n`` + its length as 64-bit little endian + the value + ``\\n``. An entry too big for a
datagram goes in a sealed memfd whose descriptor is passed instead. Field names are upper-case
letters, digits and ``_``, not starting with ``_`` (journald's trusted fields) nor a digit,
at most 64 characters.

``journal_fields`` (a structlog processor, the last of the journal handler's chain) turns an
event into the fields; ``JournalHandler`` sends them. A send never blocks: when journald does
not take the datagram (its queue full, no socket) the entry goes to stderr as ``<N>`` lines,
which journald reads with their priority when stderr is its stream, and is never lost
silently.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
IDENTIFIER = "he-ha"  # SYSLOG_IDENTIFIER: what journalctl shows before the message, and -t selects

# syslog(3) priorities by structlog/stdlib level name
PRIORITY = {"critical": 2, "exception": 3, "error": 3, "warning": 4, "warn": 4, "info": 6, "debug": 7}
# Fields journald or its tools give a meaning: an event key of that name gets a prefix.
_RESERVED = frozenset(
    {
        "MESSAGE",
        "MESSAGE_ID",
        "PRIORITY",
        "CODE_FILE",
        "CODE_LINE",
        "CODE_FUNC",
        "ERRNO",
        "TID",
        "UNIT",
        "USER_UNIT",
        "INVOCATION_ID",
        "USER_INVOCATION_ID",
        "DOCUMENTATION",
        "SYSLOG_FACILITY",
        "SYSLOG_IDENTIFIER",
        "SYSLOG_PID",
        "SYSLOG_TIMESTAMP",
        "SYSLOG_RAW",
        "LOGGER",
        "HE_HA_VERSION",
    }
)
# Rendered into MESSAGE or a field of their own, not repeated as key=value.
_META = ("event", "level", "logger", "version", "exception", "timestamp", "stack")
_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL


def stderr_is_journal(environ: Mapping[str, str], fd: int = 2) -> bool:
    """True when ``fd`` is the stream systemd connected to journald (``$JOURNAL_STREAM`` is
    ``<device>:<inode>`` of it); False for a terminal, a pipe or a file, even under systemd."""
    device, sep, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(fd)
        return bool(sep) and (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        return False


def field_name(key: str) -> str:
    name = re.sub(r"[^A-Z0-9_]", "_", key.upper()).lstrip("_") or "FIELD"
    if name[0].isdigit():
        name = f"F_{name}"
    if name in _RESERVED:
        name = f"HE_HA_{name}"
    return name[:64]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def journal_fields(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> str:
    """The journal entry of a rendered event, as a JSON object of field -> text (the handler
    encodes it): MESSAGE is what a console line would say (event, then ``key=value``, then
    the traceback on the following lines), every key also a field of its own."""
    level = str(event.get("level", "info"))
    pairs = [(k, v) for k, v in event.items() if k not in _META]
    message = " ".join([str(event.get("event", "")), *(f"{k}={_text(v)}" for k, v in pairs)])
    if event.get("exception"):
        message += "\n" + str(event["exception"]).rstrip("\n")
    fields = {
        "MESSAGE": message,
        "PRIORITY": str(PRIORITY.get(level, 6)),
        "SYSLOG_IDENTIFIER": IDENTIFIER,
        "LOGGER": str(event.get("logger", "")),
        "HE_HA_VERSION": str(event.get("version", "")),
    }
    for key, value in pairs:
        fields.setdefault(field_name(key), _text(value))
    return json.dumps(fields)


def encode(fields: Mapping[str, str]) -> bytes:
    out = bytearray()
    for name, value in fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode("ascii") + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode("ascii") + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """A logging handler sending each record to journald; its formatter's chain must end in
    ``journal_fields``."""

    def __init__(self, path: Path = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        self._failing = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, str] = json.loads(self.format(record))
        except Exception:  # logging must never raise into the caller
            self.handleError(record)
            return
        try:
            self._send(encode(fields))
        except OSError as exc:
            self._fall_back(fields, exc)
            return
        self._failing = False

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendto(data, self.path)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_memfd(data)

    def _send_memfd(self, data: bytes) -> None:
        # journald takes only a sealed memfd: the entry cannot change after it is read.
        fd = os.memfd_create("he-ha-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, data)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            # sendmsg itself: socket.send_fds ignores its address argument (Python 3.11).
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))]
            self._sock.sendmsg([b""], rights, 0, self.path)
        finally:
            os.close(fd)

    def _fall_back(self, fields: Mapping[str, str], exc: OSError) -> None:
        prefix = f"<{fields.get('PRIORITY', '6')}>"
        lines = fields.get("MESSAGE", "").split("\n")
        if not self._failing:
            self._failing = True
            lines.append(f"(journald did not take this entry: {exc}; written to stderr until it does)")
        try:
            sys.stderr.write("".join(f"{prefix}{line}\n" for line in lines))
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # nowhere left to say it

    def close(self) -> None:
        self._sock.close()
        super().close()
