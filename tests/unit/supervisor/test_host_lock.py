"""The host lock (he_ha/supervisor/runfiles.py): one actor at a time on this host's engine VM,
the daemon or a hosted-engine VM command acting without it. Real flock on a real file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from he_ha.supervisor.runfiles import HOST_LOCK, HostLockBusy, host_lock_holder, try_host_lock


def test_the_lock_is_exclusive_names_its_holder_and_is_released_by_closing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"  # created on first use
    fd = try_host_lock(run_dir, "hosted-engine start (pid 1)")
    assert host_lock_holder(run_dir) == "hosted-engine start (pid 1)"
    with pytest.raises(HostLockBusy, match=r"hosted-engine start \(pid 1\) holds .*host\.lock"):
        try_host_lock(run_dir, "he-ha run 2")
    assert host_lock_holder(run_dir) == "hosted-engine start (pid 1)"  # the refused one wrote nothing
    os.close(fd)
    fd = try_host_lock(run_dir, "he-ha run 2")
    assert (run_dir / HOST_LOCK).read_text() == "he-ha run 2\n"  # the longer old text is gone
    os.close(fd)


def test_a_child_process_never_inherits_the_lock(tmp_path: Path) -> None:
    # A lease keeper started by the daemon must not keep the lock after the daemon died.
    fd = try_host_lock(tmp_path, "he-ha run 1")
    assert not os.get_inheritable(fd)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], pass_fds=())
    try:
        os.close(fd)
        os.close(try_host_lock(tmp_path, "he-ha run 2"))  # free although the child still runs
    finally:
        child.kill()
        child.wait()


def test_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from he_ha.supervisor.runfiles import try_host_lock; "
        "try_host_lock(Path(sys.argv[1]), 'he-ha run 7'); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(HostLockBusy, match="he-ha run 7"):
            try_host_lock(tmp_path, "hosted-engine start")
    finally:
        holder.kill()
        holder.wait()
    os.close(try_host_lock(tmp_path, "hosted-engine start"))  # no stale lock after a crash
