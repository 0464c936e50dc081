"""The README's main command, run as a user runs it (real sanlock daemons, libvirtd processes,
he-ha supervisors, files and sockets), and the pieces it checks the cluster with: the VM
watcher that must catch two copies of the VM, and the health page that follows the VM.
Needs root."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from he_ha.devcluster.cluster import Cluster, HealthPage, processes_referencing
from he_ha.devcluster.vm_watch import VmWatcher

pytestmark = pytest.mark.root

DEMO = [sys.executable, "-m", "he_ha.main", "demo"]
SECONDS = r"\s+(\d+\.\d)\s"  # a seconds column of the summary


def _owned_paths(output: str) -> list[Path]:
    found = re.search(r"temporary directories: (.+)$", output, re.MULTILINE)
    assert found, output
    return [Path(p) for p in found.group(1).split(", ")]


def _assert_nothing_left(output: str) -> None:
    paths = _owned_paths(output)
    assert paths and all(str(p).startswith(("/var/tmp/he-ha-sv-", "/tmp/he-ha-libvirtd-")) for p in paths), paths
    assert [p for p in paths if p.exists()] == []
    assert processes_referencing(paths) == []
    assert "left behind: nothing" in output, output


@pytest.mark.slow
def test_the_demo_recovers_from_every_fault_and_leaves_nothing_behind() -> None:
    result = subprocess.run(DEMO, capture_output=True, text=True, timeout=420, stdin=subprocess.DEVNULL, check=False)
    out = result.stdout
    # First in the message, on one line (a CI excerpt keeps the summary line): how it ended.
    ending = repr(out.split("== shutting down")[-1][-3000:])
    assert result.returncode == 0, f"exit {result.returncode}; the end of the output: {ending}\n{out}{result.stderr}"
    for milestone in (
        r">> supervisors started -> engine VM running:",
        r"inject: host\d, which runs the engine VM, dies: kill -9",
        r">> host crash -> engine VM running on another host:",
        r">> host\d reboot -> back in the cluster \(EngineDown\):",
        r"inject: host\d, which runs the engine VM, goes into local maintenance",
        r">> local maintenance -> engine VM running on another host:",
        r"inject: the engine VM on host\d is destroyed",
        r">> VM crash -> engine VM running again:",
        r">> global maintenance on -> every host in GlobalMaintenance:",
        r">> the VM was powered off on host\d and stayed off for \d+ s: no host interfered",
        r">> global maintenance off -> engine VM running again:",
        r"SIGTERM to every supervisor: host1 exit 0, host2 exit 0, host3 exit 0",
    ):
        assert re.search(milestone, out), f"missing {milestone!r}; the end of the output: {ending}\n{out}"
    # What each host does, from its own decision log; the live status as a host sees it.
    assert re.search(r"host\d: EngineDown -> EngineStart \(down\.start\)", out), out
    assert re.search(r"host\d: \w+ -> LocalMaintenance \(", out), out
    assert "--== Host host3 (id: 3) status ==--" in out, out
    # The summary: a measured time for every recovery, no copies at once, nothing left.
    summary = out.split("== summary")[1]
    for row in (
        "host crash -> engine VM running on another host",
        "VM crash -> engine VM running again",
        "local maintenance -> engine VM running on another host",
        "global maintenance off -> engine VM running again",
    ):
        assert re.search(re.escape(row) + SECONDS, summary), summary
    crash = float(re.search(r"host crash -> engine VM running on another host" + SECONDS, summary).group(1))  # type: ignore[union-attr]
    assert crash >= 60, "the lease of a crashed host cannot be free before sanlock's host-dead time"
    assert "two copies of the engine VM at once: never" in summary
    assert "RESULT: OK" in summary
    _assert_nothing_left(out)


def _read_until(process: subprocess.Popen[str], pattern: str, timeout: float) -> str:
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if re.search(pattern, line):
            return "".join(seen)
    process.kill()
    raise AssertionError(f"no line matching {pattern!r}:\n{''.join(seen)}")


@pytest.mark.parametrize(
    ("signum", "whole_group", "moment"),
    [
        (signal.SIGINT, True, r"is dead; its VM lease stays on disk"),  # Ctrl-C in a terminal, mid host crash
        (signal.SIGTERM, False, r">> supervisors started -> engine VM running"),
    ],
)
def test_an_interrupted_demo_stops_everything(signum: int, whole_group: bool, moment: str) -> None:
    process = subprocess.Popen(
        [*DEMO, "--hosts", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        before = _read_until(process, moment, timeout=150)
        if whole_group:  # a terminal sends Ctrl-C to the whole foreground group (libvirtd too)
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    out = before + rest
    assert process.returncode == 130, out
    assert "RESULT: INTERRUPTED" in out, out
    _assert_nothing_left(out)


# --- the watcher and the health page on their own ------------------------------------------


@pytest.fixture
def two_hypervisors() -> Iterator[tuple[Cluster, HealthPage, VmWatcher]]:
    with (
        HealthPage() as page,
        Cluster(2, libvirtd=True, health_url=page.url) as cluster,
        VmWatcher(cluster.hosts) as watcher,
    ):
        page.gate = watcher.engine_problem
        yield cluster, page, watcher


def _page(page: HealthPage) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(page.url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_watcher_catches_two_copies_and_the_health_page_follows_the_vm(
    two_hypervisors: tuple[Cluster, HealthPage, VmWatcher],
) -> None:
    cluster, page, watcher = two_hypervisors
    first, second = cluster.hosts
    assert watcher.wait_for_stable(0, 0.5, 10)
    assert _page(page) == (503, "engine VM not running on any host")

    # A hand-over: the VM ends on one host, then starts on the other. Never two copies.
    started = time.monotonic()
    first.launch_vm()
    run = watcher.wait_for_start(started, 10)
    assert run is not None and run.host == first.name
    assert _page(page) == (200, "DB Up!Welcome to Health Status!")
    first.crash_vm()
    assert watcher.wait_for_stable(0, 0.3, 10)
    second.launch_vm()
    assert watcher.wait_for_stable(1, 0.5, 10) and watcher.running_on() == [second.name]
    assert watcher.violations == []

    # Two copies at once: caught, and the page stops answering "DB Up".
    first.launch_vm()
    assert watcher.wait_for_stable(2, 0.5, 10)
    assert [v.hosts for v in watcher.violations] == [(first.name, second.name)]
    status, body = _page(page)
    assert status == 503 and "running on 2 hosts" in body


def test_a_crashed_host_leaves_no_process_and_no_vm(two_hypervisors: tuple[Cluster, HealthPage, VmWatcher]) -> None:
    cluster, _, watcher = two_hypervisors
    host = cluster.hosts[0]
    host.launch_vm()
    assert watcher.wait_for_stable(1, 0.3, 10)
    groups, pids = host.processes()
    assert len(groups) == 1 and len(pids) == 1  # sanlock daemon; libvirtd (no supervisor started here)
    host.crash()
    assert watcher.wait_for_stable(0, 0.3, 10)
    assert host.vm() is None
    for pid in groups + pids:
        assert not Path(f"/proc/{pid}").exists(), f"{pid} survived the crash"
