"""A private libvirtd serving only libvirt's test driver (tests and the demo).

The in-process test driver (``test:///...``) lives and dies with the process that opened it.
To have a "hypervisor" that outlives a supervisor process (restart, kill -9, adoption of a
running VM), tests run a real libvirtd of their own and reach its test driver over its unix
socket. Only the shared ``default`` node keeps state across connections, and only while at
least one connection is open: ``pinned()`` holds one, as a real libvirtd keeps its QEMU
domains. Each private libvirtd is one simulated host's hypervisor. Needs root.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import libvirt


class LibvirtdError(RuntimeError):
    """The private libvirtd did not start; the message names its log."""


class PrivateLibvirtd:
    """A real libvirtd of our own, serving only libvirt's built-in test driver.

    Its socket lives in a fresh /tmp directory (unix socket paths are limited to 108
    bytes), and LIBVIRT_DRIVER_DIR points at an empty directory so no hypervisor driver
    (qemu, network, ...) loads and nothing touches the host's /run/libvirt. Clients reach
    the test driver through it with ``test+unix:///<node.xml>?socket=<path>`` (a private
    node per connection) or ``default_uri`` (one node shared by all connections).
    """

    def __init__(self, log_dir: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="he-ha-libvirtd-", dir="/tmp"))
        self.socket = self.dir / "libvirt-sock"
        (self.dir / "no-drivers").mkdir()
        self._conf = self.dir / "libvirtd.conf"
        self._conf.write_text(
            f'unix_sock_dir = "{self.dir}"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n'
            "listen_tls = 0\nlisten_tcp = 0\n"
        )
        self.log_path = Path(log_dir) / "libvirtd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def uri(self, node_xml: Path) -> str:
        """A connection with its own private node built from ``node_xml``."""
        return f"test+unix://{node_xml}?socket={self.socket}"

    @property
    def default_uri(self) -> str:
        """The daemon's shared ``default`` node (it has a running domain called ``test``)."""
        return f"test+unix:///default?socket={self.socket}"

    def start(self, timeout: float = 10.0) -> None:
        self.process = self._spawn()
        self._wait_listening(timeout)

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "LIBVIRT_DRIVER_DIR": str(self.dir / "no-drivers")}
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                ["libvirtd", "-f", str(self._conf), "--pid-file", str(self.dir / "libvirtd.pid")],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_listening(self, timeout: float) -> None:
        """Until the socket accepts; LibvirtdError if the daemon exits or the time runs out."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not self._accepts():
            if self.process.poll() is not None:
                raise LibvirtdError(f"libvirtd exited with {self.process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise LibvirtdError(f"libvirtd did not listen on {self.socket} within {timeout} s")
            time.sleep(0.02)

    def _accepts(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return True

    @contextmanager
    def pinned(self) -> Iterator[libvirt.virConnect]:
        """Hold a connection to the ``default`` node, so the domains on it survive their
        creators' connections (the test driver frees that node with its last connection)."""
        conn = libvirt.open(self.default_uri)
        try:
            yield conn
        finally:
            conn.close()

    def kill(self) -> None:
        """SIGKILL, as a crash or ``systemctl restart`` would end it, and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process must run to die
            self.process.kill()
            self.process.wait(timeout=10)
        self.socket.unlink(missing_ok=True)

    def freeze(self) -> None:
        """SIGSTOP: a hung libvirtd that keeps its socket open and never answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def __enter__(self) -> PrivateLibvirtd:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()
        for path in sorted(self.dir.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        self.dir.rmdir()
