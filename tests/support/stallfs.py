"""A FUSE filesystem exposing one real file whose reads and writes can be made to hang or fail.

This is how tests simulate a hung NFS server or a dead SAN path: a process that reads the
file blocks in the kernel, exactly as it would on real storage, until ``resume()``. It can
also fail instead of hanging: ``fail_io()`` makes every read and write fail with EIO (a
failing disk or an NFS server answering errors); ``vanish()`` makes the file gone (lookups
and opens fail with ENOENT, I/O on files opened before with ESTALE, as NFS does for a file
removed on the server). ``resume()`` ends any of these modes.

    with StallFS(mountpoint, backing_file) as fs:
        fs.path            # the file inside the mount, backed by backing_file
        fs.stall()         # from now on every read/write of fs.path blocks
        fs.wait_blocked()  # wait until some caller is actually blocked in it
        fs.resume()        # release the blocked calls; I/O flows again
        fs.fail_io()       # every read/write fails with EIO until resume()
        fs.vanish()        # the file is gone (ENOENT; ESTALE on open files) until resume()

The filesystem runs as a separate process (fusepy over libfuse2) so its threads and libfuse's
signal handlers stay out of the test process. It is controlled through a second file in the
mount, ``.control``, that never blocks: write ``stall``/``eio``/``gone``/``resume``, read the
status (``stalled``, ``blocked``, ``mode``, ``failed``: calls failed on purpose so far). Leaving
the ``with`` block always resumes first (so no caller stays stuck), unmounts (lazily if the
mount is still busy) and ends the process it started. The mount uses ``direct_io``: every
read reaches the filesystem, none is served from the page cache. Needs root and /dev/fuse.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

CONTROL_NAME = ".control"
_MOUNT_WAIT = 10.0
_EXIT_WAIT = 10.0
_UNMOUNT_WAIT = 3.0


class StallFSError(RuntimeError):
    """The FUSE process could not be started, controlled or stopped."""


class StallFS:
    """Context manager: mount the stallable view of ``backing`` at ``mountpoint``."""

    def __init__(self, mountpoint: Path, backing: Path, name: str = "metadata") -> None:
        if "/" in name or name in ("", ".", "..", CONTROL_NAME):
            raise ValueError(f"bad file name {name!r}")
        self.mountpoint = Path(mountpoint)
        self.backing = Path(backing)
        self.path = self.mountpoint / name
        self._name = name
        self._control = self.mountpoint / CONTROL_NAME
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - the FUSE process's stderr for its lifetime; a pipe could fill and block it
        self._made_mountpoint = False

    # --- control ---------------------------------------------------------------------------------

    def stall(self) -> None:
        """Make every following read and write of ``path`` block until ``resume``."""
        self._command("stall")

    def resume(self) -> None:
        """Release every blocked call and let I/O through again (also ends ``fail_io``/``vanish``)."""
        self._command("resume")

    def fail_io(self) -> None:
        """Make every following read and write of ``path`` fail with EIO until ``resume``."""
        self._command("eio")

    def vanish(self) -> None:
        """Make ``path`` gone until ``resume``: ENOENT for lookups and opens, ESTALE for I/O on
        files opened before."""
        self._command("gone")

    def failed(self) -> int:
        """How many calls the filesystem failed on purpose (EIO, ENOENT, ESTALE) so far."""
        return int(self._status()["failed"])

    def wait_failed(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until at least ``count`` calls failed on purpose, proving the mode took hold."""
        deadline = time.monotonic() + timeout
        while self.failed() < count:
            if time.monotonic() > deadline:
                raise StallFSError(f"no {count} failed call(s) on {self.path} within {timeout} s")
            time.sleep(0.01)

    def blocked(self) -> int:
        """How many reads/writes are blocked in the filesystem right now."""
        return int(self._status()["blocked"])

    def wait_blocked(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until at least ``count`` calls are blocked, proving the stall took hold."""
        deadline = time.monotonic() + timeout
        while self.blocked() < count:
            if time.monotonic() > deadline:
                raise StallFSError(f"no {count} blocked call(s) on {self.path} within {timeout} s")
            time.sleep(0.01)

    def _command(self, word: str) -> None:
        with open(self._control, "wb", buffering=0) as control:
            control.write(word.encode())

    def _status(self) -> dict[str, str]:
        with open(self._control, "rb", buffering=0) as control:
            text = control.read(4096).decode()
        return dict(item.split("=", 1) for item in text.split())

    # --- lifetime -------------------------------------------------------------------------------

    def __enter__(self) -> StallFS:
        if not self.backing.is_file():
            raise StallFSError(f"backing file {self.backing} does not exist")
        if not self.mountpoint.exists():
            self.mountpoint.mkdir(parents=True)
            self._made_mountpoint = True
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(self.mountpoint), str(self.backing), self._name],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        try:
            self._wait_mounted()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()

    def _wait_mounted(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + _MOUNT_WAIT
        while not os.path.ismount(self.mountpoint):
            if self._process.poll() is not None:
                raise StallFSError(f"FUSE process exited with {self._process.returncode}: {self._stderr()}")
            if time.monotonic() > deadline:
                raise StallFSError(f"{self.mountpoint} not mounted within {_MOUNT_WAIT} s")
            time.sleep(0.02)

    def _stop(self) -> None:
        """Resume (so no caller stays blocked), unmount, end our process, remove our mountpoint."""
        problems: list[str] = []
        exit_wait = _EXIT_WAIT
        if os.path.ismount(self.mountpoint):
            try:
                self.resume()
            except OSError as exc:
                problems.append(f"resume failed: {exc}")
            unmount = self._unmount_when_idle()
            if unmount.returncode != 0:
                # Busy (a file still open): detach now. The daemon would serve the open files
                # until they close, so it is ended below; their calls then fail with ENOTCONN.
                lazy = subprocess.run(["fusermount", "-u", "-z", str(self.mountpoint)], capture_output=True, text=True)
                problems.append(f"mount was busy ({unmount.stderr.strip()}); detached lazily")
                if lazy.returncode != 0:
                    problems.append(f"lazy unmount failed: {lazy.stderr.strip()}")
                exit_wait = 1.0
        if self._process is not None:
            try:
                self._process.wait(timeout=exit_wait)
            except subprocess.TimeoutExpired:
                # Unmounted, but the process is slow to exit (seen only on a starved 2-core box):
                # nothing is left behind once it is killed, so this is said, not a failure. A
                # mount that stayed busy or could not be detached still fails the test (above).
                self._process.kill()
                self._process.wait()
                print(
                    f"stallfs: FUSE process {self._process.pid} did not exit within {exit_wait:g} s "
                    "after the unmount; killed",
                    file=sys.stderr,
                )
            self._process = None
        self._log.close()
        if self._made_mountpoint and not os.path.ismount(self.mountpoint):
            self.mountpoint.rmdir()
        if problems:
            raise StallFSError(f"tearing down {self.mountpoint}: " + "; ".join(problems))

    def _unmount_when_idle(self) -> subprocess.CompletedProcess[str]:
        """Retry a normal unmount briefly: resumed callers need a moment to close their files."""
        deadline = time.monotonic() + _UNMOUNT_WAIT
        while True:
            unmount = subprocess.run(["fusermount", "-u", str(self.mountpoint)], capture_output=True, text=True)
            if unmount.returncode == 0 or time.monotonic() > deadline:
                return unmount
            time.sleep(0.05)

    def _stderr(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()


# --- the filesystem process --------------------------------------------------------------------


def _serve(mountpoint: str, backing: str, name: str) -> None:
    import fuse  # fusepy (untyped); only the FUSE process needs it

    class StallOps(fuse.Operations):
        use_ns = True

        def __init__(self) -> None:
            self._flowing = threading.Event()
            self._flowing.set()
            self._count_lock = threading.Lock()
            self._blocked = 0
            self._mode = "ok"  # ok | eio | gone
            self._failed = 0

        def _fail(self, code: int) -> None:
            with self._count_lock:
                self._failed += 1
            raise fuse.FuseOSError(code)

        def _gate(self) -> None:
            with self._count_lock:
                self._blocked += 1
            self._flowing.wait()
            with self._count_lock:
                self._blocked -= 1
            if self._mode == "eio":
                self._fail(errno.EIO)
            if self._mode == "gone":
                self._fail(errno.ESTALE)

        def getattr(self, path: str, fh: int | None = None) -> dict[str, float]:
            if path == "/":
                return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
            if path == "/" + CONTROL_NAME:
                return {"st_mode": stat.S_IFREG | 0o600, "st_nlink": 1, "st_size": 0}
            if path == "/" + name and self._mode == "gone":
                self._fail(errno.ENOENT)
            if path == "/" + name:
                st = os.stat(backing)
                return {
                    "st_mode": stat.S_IFREG | 0o644,
                    "st_nlink": 1,
                    "st_size": st.st_size,
                    "st_mtime": st.st_mtime,
                    "st_ctime": st.st_ctime,
                    "st_atime": st.st_atime,
                }
            raise fuse.FuseOSError(errno.ENOENT)

        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", CONTROL_NAME] + ([] if self._mode == "gone" else [name])

        def open(self, path: str, flags: int) -> int:
            if path == "/" + CONTROL_NAME:
                return 0
            if path != "/" + name:
                raise fuse.FuseOSError(errno.ENOENT)
            if self._mode == "gone":
                self._fail(errno.ENOENT)
            return os.open(backing, flags & os.O_ACCMODE)

        def release(self, path: str, fh: int) -> int:
            if path == "/" + name:
                os.close(fh)
            return 0

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            if path == "/" + CONTROL_NAME:
                status = (
                    f"stalled={int(not self._flowing.is_set())} blocked={self._blocked} mode={self._mode} "
                    f"failed={self._failed}\n"
                ).encode()
                return status[offset : offset + size]
            self._gate()
            return os.pread(fh, size, offset)

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            if path == "/" + CONTROL_NAME:
                word = data.decode(errors="replace").strip()
                if word == "stall":
                    self._flowing.clear()
                elif word in ("eio", "gone"):
                    self._mode = word
                elif word == "resume":
                    self._mode = "ok"
                    self._flowing.set()
                else:
                    raise fuse.FuseOSError(errno.EINVAL)
                return len(data)
            self._gate()
            return os.pwrite(fh, data, offset)

        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            if path == "/" + name:
                os.truncate(backing, length)
            return 0

        def flush(self, path: str, fh: int) -> int:
            return 0

        def fsync(self, path: str, datasync: int, fh: int) -> int:
            if path == "/" + name and self._mode != "ok":
                self._fail(errno.EIO if self._mode == "eio" else errno.ESTALE)
            if path == "/" + name:
                os.fsync(fh)
            return 0

    fuse.FUSE(StallOps(), mountpoint, foreground=True, nothreads=False, direct_io=True)


if __name__ == "__main__":
    _serve(*sys.argv[1:4])
