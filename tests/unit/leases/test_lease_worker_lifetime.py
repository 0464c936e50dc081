"""The lease worker ends with its client, not on SIGTERM: `systemctl stop` signals every process
of he-ha's unit, and a worker that died first left the supervisor unable to finish its stop
(LeaseWorkerDied, 3 unclean stops in 20 under a booted systemd: tests/packaging/test_systemd_boot.py).
The real worker module is run; no sanlock call is made."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _ignores_sigterm(pid: int) -> bool:
    """The kernel's view: bit SIGTERM of the process's ignored-signals mask."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def test_sigterm_leaves_the_worker_running_and_a_closed_pipe_ends_it() -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "he_ha.lease.worker"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not _ignores_sigterm(worker.pid):  # past its imports, the disposition set
            assert worker.poll() is None and time.monotonic() < deadline, "the worker never ignored SIGTERM"
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert worker.poll() is None  # ignored: the worker still serves its client
        assert worker.stdin is not None
        worker.stdin.close()  # the client is gone
        assert worker.wait(timeout=10) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
