"""Run a real sanlock daemon for one simulated host (tests and the demo).

Each daemon gets its own run dir (SANLOCK_RUN_DIR: socket, pid file) and host name, so
several run side by side on one machine; their clients must carry the same SANLOCK_RUN_DIR
(he_ha.lease.sanlock_env). Started as

    LD_PRELOAD=<memlock shim> sanlock daemon -D -w 0 -l 0 -L -1 -U root -G root -e <host>

- the shim: sanlock exits with "cannot set the limits for memlock" without CAP_SYS_RESOURCE;
  the shim's setrlimit calls the real one and reports success whatever it returned;
- ``-w 0``: no watchdog (test only: nothing would reset a host whose leases expire);
- ``-l 0``: no mlockall; ``-D``: foreground, all logging to stderr, which goes to
  ``<run dir>/sanlock.log``; ``-L -1``: no writes to the shared /var/log/sanlock.log.

``stop()`` asks for a clean shutdown (``sanlock client shutdown -f 1``: the daemon leaves its
lockspaces, so peers see the host id FREE at once) and SIGKILLs after a deadline; ``kill()``
SIGKILLs the daemon's process group (daemon and its helper) at once: a host dying. The
daemon also gets SIGKILL if the thread that started it dies (PR_SET_PDEATHSIG through
``setpriv``), so a killed test run leaves no daemon behind: start it from a long-lived
thread (the main thread or the event loop's).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import structlog

from he_ha.lease import SOCKET_NAME, daemon_answers, process_env

log = structlog.get_logger(__name__)

SANLOCK = "sanlock"
SHIM_SOURCE = b"""\
/* he-ha test shim: sanlock refuses to start when setrlimit(RLIMIT_MEMLOCK) fails. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/resource.h>
int setrlimit(__rlimit_resource_t resource, const struct rlimit *rlim) {
    int (*real)(__rlimit_resource_t, const struct rlimit *) = dlsym(RTLD_NEXT, "setrlimit");
    if (real) real(resource, rlim);
    return 0;
}
"""
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes including the NUL


class SanlockDaemonError(RuntimeError):
    """A daemon did not start or stop as asked; the message names the run dir and its log."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "he-ha"


def memlock_shim(cache_dir: Path | None = None) -> Path:
    """The compiled shim, built with gcc on first use. The file name carries a hash of the
    source, so an edit rebuilds it; building into a temporary name and renaming keeps
    concurrent builders (parallel test runs) from seeing a half-written library."""
    cache = cache_dir or default_cache_dir()
    target = cache / f"memlock-shim-{hashlib.sha256(SHIM_SOURCE).hexdigest()[:12]}.so"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        source, built = Path(scratch) / "shim.c", Path(scratch) / "shim.so"
        source.write_bytes(SHIM_SOURCE)
        result = subprocess.run(
            ["gcc", "-shared", "-fPIC", "-O2", "-o", str(built), str(source), "-ldl"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise SanlockDaemonError(f"building the memlock shim failed: {result.stderr.strip()}")
        os.replace(built, target)
    return target


class SanlockDaemon:
    """One sanlock daemon for one simulated host. Use as a (sync or async) context manager."""

    def __init__(
        self,
        run_dir: Path,
        host_name: str,
        *,
        start_timeout: float = 10.0,
        stop_timeout: float = 15.0,
        shim_cache: Path | None = None,
    ) -> None:
        self.run_dir = Path(run_dir).absolute()
        self.host_name = host_name
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._shim_cache = shim_cache
        self._process: subprocess.Popen[bytes] | None = None
        socket = self.run_dir / SOCKET_NAME
        if len(os.fsencode(socket)) > MAX_SOCKET_PATH:
            raise SanlockDaemonError(f"run dir {self.run_dir} is too long: {socket} exceeds {MAX_SOCKET_PATH} bytes")

    @property
    def log_path(self) -> Path:
        return self.run_dir / "sanlock.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def env(self) -> dict[str, str]:
        """The environment for a client process of this host."""
        return process_env(self.run_dir)

    # --- start --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the daemon and wait until its socket answers (blocking, ~0.1 s)."""
        self._spawn()
        self._wait_ready()

    def _spawn(self) -> None:
        if self.running:
            raise SanlockDaemonError(f"sanlock daemon for {self.host_name} already runs (pid {self.pid})")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if daemon_answers(self.run_dir):
            raise SanlockDaemonError(f"another sanlock daemon already answers in {self.run_dir}")
        env = self.env()
        env["LD_PRELOAD"] = str(memlock_shim(self._shim_cache))
        command = [
            "setpriv",
            "--pdeathsig",
            "KILL",
            "--",
            SANLOCK,
            "daemon",
            "-D",
            "-w",
            "0",
            "-l",
            "0",
            "-L",
            "-1",
            "-U",
            "root",
            "-G",
            "root",
            "-e",
            self.host_name,
        ]
        with open(self.log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        log.debug("sanlock daemon spawned", host=self.host_name, pid=self._process.pid, run_dir=str(self.run_dir))

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while not (self._owns_pid_file() and daemon_answers(self.run_dir, timeout=0.5)):
            if self._process.poll() is not None:
                raise SanlockDaemonError(
                    f"sanlock daemon for {self.host_name} exited with code "
                    f"{self._process.returncode}; see {self.log_path}:\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise SanlockDaemonError(
                    f"sanlock daemon for {self.host_name} did not answer on "
                    f"{self.run_dir / SOCKET_NAME} within {self.start_timeout:g} s"
                )
            time.sleep(0.02)
        log.info("sanlock daemon running", host=self.host_name, pid=self.pid, run_dir=str(self.run_dir))

    def _owns_pid_file(self) -> bool:
        """The daemon writes its pid once it holds the run dir's lock file: then the socket
        that answers is ours, not a leftover daemon's."""
        try:
            return int((self.run_dir / "sanlock.pid").read_text().split()[0]) == self.pid
        except (OSError, IndexError, ValueError):  # not written yet, or not ours to read
            return False

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(log unreadable: {exc})"

    # --- stop ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Clean shutdown (the daemon releases its lockspaces); SIGKILL after stop_timeout.
        A daemon that is not running is left alone."""
        if not self.running:
            self._reap()
            return
        deadline = time.monotonic() + self.stop_timeout
        try:
            subprocess.run(
                [SANLOCK, "client", "shutdown", "-f", "1"],
                env=self.env(),
                capture_output=True,
                timeout=max(deadline - time.monotonic(), 0.1),
                check=False,
            )
        except subprocess.TimeoutExpired:
            log.warning("sanlock shutdown request timed out", host=self.host_name)
        assert self._process is not None
        try:
            self._process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            log.warning("sanlock daemon ignored shutdown; killing it", host=self.host_name, pid=self.pid)
            self.kill()
            return
        self._kill_group()  # the helper child, if it outlived the daemon
        log.info("sanlock daemon stopped", host=self.host_name)

    def kill(self) -> None:
        """SIGKILL the daemon and its helper at once: the simulated host dies. Its delta
        lease stops being renewed; peers see it FAIL, then DEAD after the host-dead time."""
        if self._process is None:
            return
        self._kill_group()
        self._reap()
        log.info("sanlock daemon killed", host=self.host_name)

    def _kill_group(self) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
            os.killpg(self._process.pid, signal.SIGKILL)  # start_new_session: pgid == pid

    def _reap(self) -> None:
        if self._process is not None:
            self._process.wait()

    # --- context managers ---------------------------------------------------------------

    def __enter__(self) -> SanlockDaemon:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> SanlockDaemon:
        self._spawn()  # in the loop's thread: PR_SET_PDEATHSIG follows the spawning thread
        try:
            await asyncio.to_thread(self._wait_ready)
        except BaseException:
            self.kill()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)
