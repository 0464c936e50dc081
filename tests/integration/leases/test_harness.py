"""The sanlock daemon harness: real daemons side by side, clean stop, kill, no leftovers."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from he_ha.devcluster.sanlockd import SanlockDaemon, SanlockDaemonError, memlock_shim
from he_ha.lease import daemon_answers


def group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process remains in process group ``pgid``. The daemon's
    helper child is reparented to init when the daemon dies; init reaps it in its own time."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited while we looked
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            return True
    return False


def test_two_daemons_run_side_by_side(tmp_path: Path) -> None:
    with SanlockDaemon(tmp_path / "a", "host-a") as a, SanlockDaemon(tmp_path / "b", "host-b") as b:
        assert a.running and b.running and a.pid != b.pid
        assert daemon_answers(a.run_dir) and daemon_answers(b.run_dir)
        assert int((a.run_dir / "sanlock.pid").read_text()) == a.pid  # each has its own pid file
        pids = (a.pid, b.pid)
    assert not any(group_alive(pid) for pid in pids if pid is not None)
    log_a = (tmp_path / "a" / "sanlock.log").read_text()
    assert f"Using non-standard run directory '{tmp_path / 'a'}'" in log_a
    assert "sanlock daemon started" in log_a and "host host-a" in log_a


def test_kill_ends_daemon_and_helper_and_a_restart_works(tmp_path: Path) -> None:
    with SanlockDaemon(tmp_path / "a", "host-a") as daemon:
        pgid = daemon.pid
        assert pgid is not None and group_alive(pgid)
        daemon.kill()
        assert not daemon.running and not group_alive(pgid)  # the sanlock-helper child too
        assert not daemon_answers(daemon.run_dir)  # stale socket file, nobody listening
        daemon.start()  # same run dir, as a rebooted host
        assert daemon.running and daemon_answers(daemon.run_dir)


def test_context_manager_cleans_up_when_the_body_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="test body failed"), SanlockDaemon(tmp_path / "a", "host-a") as daemon:
        pgid = daemon.pid
        raise RuntimeError("test body failed")
    assert pgid is not None and not group_alive(pgid)


async def test_async_context_manager(tmp_path: Path) -> None:
    async with SanlockDaemon(tmp_path / "a", "host-a") as daemon:
        pgid = daemon.pid
        assert daemon_answers(daemon.run_dir)
    assert pgid is not None and not group_alive(pgid)


def test_a_second_daemon_on_one_run_dir_is_refused(tmp_path: Path) -> None:
    with SanlockDaemon(tmp_path / "a", "host-a"):
        clash = SanlockDaemon(tmp_path / "a", "host-a2")
        with pytest.raises(SanlockDaemonError, match="another sanlock daemon already answers"):
            clash.start()
        assert not clash.running


def test_a_daemon_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    # Without the run dir's lock file, sanlock refuses to start (its lockfile open fails).
    daemon = SanlockDaemon(tmp_path / "a", "host-a")
    daemon.run_dir.mkdir()
    (daemon.run_dir / "sanlock.pid").mkdir()  # a directory where the pid/lock file must go
    with pytest.raises(SanlockDaemonError, match=r"(?s)exited with code 1; see .*sanlock\.log:.*lockfile open error"):
        daemon.start()
    assert not daemon.running


def test_stop_falls_back_to_sigkill(tmp_path: Path) -> None:
    daemon = SanlockDaemon(tmp_path / "a", "host-a", stop_timeout=0.5)
    with daemon:
        assert daemon.pid is not None
        os.kill(daemon.pid, signal.SIGSTOP)  # a hung daemon: answers nothing, exits never
        pgid = daemon.pid
    assert not daemon.running and not group_alive(pgid)


def test_too_long_run_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SanlockDaemonError, match="too long"):
        SanlockDaemon(tmp_path / ("x" * 120), "host-a")


def test_memlock_shim_is_built_once_and_reused(tmp_path: Path) -> None:
    first = memlock_shim(tmp_path)
    built_at = first.stat().st_mtime_ns
    assert memlock_shim(tmp_path) == first and first.stat().st_mtime_ns == built_at
    assert first.read_bytes().startswith(b"\x7fELF")
