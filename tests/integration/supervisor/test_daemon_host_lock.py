"""The daemon and the host lock (he_ha/supervisor/runfiles.py) with a real ``he-ha run``: it
waits at start-up while a hosted-engine VM command acting without it holds the lock (so it
then adopts what that command did), and refuses to run beside another daemon."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from he_ha.devcluster.cluster import Cluster, state_of
from he_ha.supervisor.runfiles import try_host_lock

WATCH = 8.0  # seconds the waiting daemon is watched doing nothing


def test_a_starting_daemon_waits_for_a_direct_vm_command_then_runs(make_cluster: Callable[..., Cluster]) -> None:
    host = make_cluster(1).hosts[0]
    lock = try_host_lock(host.run_dir, "hosted-engine start (pid 1)")
    try:
        supervisor = host.start_supervisor()
        deadline = time.monotonic() + WATCH
        while time.monotonic() < deadline:
            assert supervisor.process.poll() is None, supervisor.log_tail()
            assert not host.admin_socket.exists() and not host.decisions()  # nothing done yet
            time.sleep(0.2)
        assert "waiting for it" in supervisor.log_path.read_text(), supervisor.log_tail()
    finally:
        os.close(lock)
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp")


def test_a_second_daemon_on_the_same_run_directory_exits_at_once(make_cluster: Callable[..., Cluster]) -> None:
    host = make_cluster(1).hosts[0]
    first = host.start_supervisor()
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    second = host.start_supervisor()
    assert second.process.wait(timeout=60) == 1
    assert f"he-ha run {first.pid} holds" in second.log_path.read_text(), second.log_tail()
    assert first.process.poll() is None
