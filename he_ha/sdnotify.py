"""A small client for the systemd notify protocol (sd_notify(3)), written by hand.

systemd passes ``NOTIFY_SOCKET`` (a filesystem path, or an abstract socket name starting
with ``@``) to a ``Type=notify`` service; the service sends newline-separated
``KEY=VALUE`` assignments in one datagram. ``WATCHDOG_USEC`` (and optionally
``WATCHDOG_PID``) tell the service how often it must send ``WATCHDOG=1``.

Sending never blocks the event loop: the socket is non-blocking, and a failed send is
logged and reported as ``False``, never raised into the caller's loop.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


class SdNotifyError(ValueError):
    """The environment systemd gave us is malformed (e.g. WATCHDOG_USEC is not a number)."""


def socket_address(value: str) -> str | bytes:
    """The address to ``sendto``: a path, or for ``@name`` the abstract name ``\\0name``."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def watchdog_period(env: Mapping[str, str], pid: int) -> float | None:
    """The watchdog period in seconds, or None when no watchdog applies to ``pid``.

    systemd sets WATCHDOG_PID when the variables were meant for one process only; a child
    that inherited them must not ping on the parent's behalf.
    """
    usec_text = env.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    pid_text = env.get("WATCHDOG_PID")
    if pid_text:
        try:
            target = int(pid_text)
        except ValueError:
            raise SdNotifyError(f"WATCHDOG_PID is not a process id: {pid_text!r}") from None
        if target != pid:
            return None
    try:
        usec = int(usec_text)
    except ValueError:
        raise SdNotifyError(f"WATCHDOG_USEC is not a whole number of microseconds: {usec_text!r}") from None
    if usec <= 0:
        raise SdNotifyError(f"WATCHDOG_USEC must be positive: {usec_text!r}")
    return usec / 1_000_000


class SystemdNotifier:
    """Sends READY/STATUS/WATCHDOG/STOPPING to systemd; a no-op outside a notify service."""

    def __init__(self, env: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        env = os.environ if env is None else env
        self._pid = os.getpid() if pid is None else pid
        raw = env.get("NOTIFY_SOCKET") or None
        self._address = None if raw is None else socket_address(raw)
        self._socket_name = raw
        self.watchdog_period = watchdog_period(env, self._pid)
        self._sock: socket.socket | None = None
        self._failures = 0
        if raw is None:
            log.debug("sd_notify disabled: NOTIFY_SOCKET is not set")

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """How often to send WATCHDOG=1: half the period, as sd_watchdog_enabled(3) advises."""
        return None if self.watchdog_period is None else self.watchdog_period / 2

    def ready(self, status: str | None = None) -> bool:
        fields = {"READY": "1"}
        if status is not None:
            fields["STATUS"] = status
        return self.notify(fields)

    def status(self, text: str) -> bool:
        return self.notify({"STATUS": text})

    def watchdog(self) -> bool:
        return self.notify({"WATCHDOG": "1"})

    def stopping(self, status: str | None = None) -> bool:
        fields = {"STOPPING": "1"}
        if status is not None:
            fields["STATUS"] = status
        return self.notify(fields)

    def notify(self, fields: Mapping[str, str]) -> bool:
        """Send the assignments in one datagram. True when sent, False when disabled or failed."""
        if self._address is None:
            return False
        payload = "\n".join(f"{key}={_one_line(value)}" for key, value in fields.items()).encode()
        try:
            sock = self._socket()
            sock.sendto(payload, self._address)
        except OSError as exc:  # includes BlockingIOError: a full receive queue drops this message
            self._failures += 1
            # Log the first failure of a run loudly; repeats (every watchdog ping) at debug.
            level = log.warning if self._failures == 1 else log.debug
            level("sd_notify send failed", socket=self._socket_name, error=str(exc), failures=self._failures)
            return False
        if self._failures:
            log.info("sd_notify send works again", socket=self._socket_name, after_failures=self._failures)
            self._failures = 0
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> socket.socket:
        # One socket for the life of the process: nothing is created per tick.
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        return self._sock


def _one_line(value: str) -> str:
    # The protocol separates assignments by newlines: a newline inside STATUS would forge keys.
    return value.replace("\r", " ").replace("\n", " ")
