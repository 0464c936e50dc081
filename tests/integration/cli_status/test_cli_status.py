"""``hosted-engine --vm-status`` and ``--explain`` against a real two-host he-ha cluster
(he_ha/devcluster: real supervisors, sanlock daemons, libvirtd with the test driver), run as
real processes with each host's environment. Then one host's supervisor stops: its
``--vm-status`` must fail as the original's did (exit 1), and ``--from-storage`` read the
whiteboard on storage and say so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from he_ha.devcluster.cluster import Cluster, Host, health_page

pytestmark = [pytest.mark.root, pytest.mark.slow]  # ~25 s: one cluster start, a VM start

REPO = Path(__file__).resolve().parents[3]
WAIT = 60.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if shutil.which("libvirtd") is None or shutil.which("sanlock") is None:
        pytest.fail("needs the Debian packages sanlock and libvirt-daemon")
    with health_page() as url, Cluster(2, libvirtd=True, health_url=url) as started:
        for host in started.hosts:
            host.start_supervisor()
        yield started


def hosted_engine(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.hosted_engine", *args],
        cwd=REPO,
        env={**os.environ, **host.cli_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status_json(host: Host, ready: Any) -> dict[str, Any]:
    """``--vm-status --json`` of ``host``, polled until ``ready(document)`` holds."""
    deadline = time.monotonic() + WAIT
    while True:
        done = hosted_engine(host, "--vm-status", "--json")
        assert done.returncode == 0, done.stderr
        document: dict[str, Any] = json.loads(done.stdout)
        if ready(document) or time.monotonic() > deadline:
            return document
        time.sleep(0.5)


def assert_own_crc_is_the_stored_one(host: Host) -> None:
    """The daemon reports its own slot without a crc; the one shown must be the one on disk
    (compared when both show the same publish, i.e. the same host-ts)."""
    key = str(host.host_id)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        shown = json.loads(hosted_engine(host, "--vm-status", "--json").stdout)[key]
        stored = host.slot()
        if stored is not None and stored.host_ts == shown["host-ts"]:
            assert shown["crc32"] == stored.crc32
            return
    raise AssertionError("never saw the shown and the stored slot at the same publish")


def test_status_explain_daemon_down_and_from_storage(cluster: Cluster) -> None:
    up = cluster.engine_host()
    other = next(h for h in cluster.hosts if h is not up)
    key = str(up.host_id)

    # JSON as the Ansible role reads it: *."engine-status"."health" == good, detail Up.
    document = status_json(up, lambda d: "1" in d and "2" in d and d[key]["engine-status"]["health"] == "good")
    hosts = {k: v for k, v in document.items() if k != "global_maintenance"}
    assert sorted(hosts) == ["1", "2"] and document["global_maintenance"] is False
    assert [v["engine-status"]["health"] for v in hosts.values()].count("good") == 1
    assert hosts[key]["engine-status"]["detail"] == "Up" and hosts[key]["live-data"] is True
    assert hosts[key]["hostname"] == up.name
    assert_own_crc_is_the_stored_one(up)

    # Text mode: what roles/shutdown_env greps for, and our score breakdown.
    text = hosted_engine(up, "--vm-status")
    assert text.returncode == 0, text.stderr
    assert '"vm": "up"' in text.stdout
    assert f"--== Host {up.name} (id: {up.host_id}) status ==--" in text.stdout
    assert "he-ha score breakdown" in text.stdout and "he-ha FSM state                    : EngineUp" in text.stdout

    # The start decision, with its rule and action.
    explain = hosted_engine(up, "--explain", "--limit=20")
    assert explain.returncode == 0, explain.stderr
    assert "EngineDown -> EngineStart  [down.start]" in explain.stdout
    assert "acquire the VM lease, then start the VM here" in explain.stdout
    assert "EngineStarting -> EngineUp  [starting.up]" in explain.stdout

    # The other host's daemon stops: its --vm-status fails as the original's did with its
    # broker down (exit 1), and --from-storage reads the whiteboard from storage.
    other.supervisors[-1].terminate()
    down = hosted_engine(other, "--vm-status")
    assert (down.returncode, down.stdout) == (1, "")
    assert down.stderr.startswith(f"the he-ha daemon does not answer on {other.admin_socket}: ")
    assert down.stderr.splitlines()[1:] == [
        "Cannot connect to the HA daemon, please check the logs.",
        "An error occured while retrieving vm status, please make sure the HA daemon is ready and reachable.",
        "Unable to connect the HA Broker ",
    ]
    stored = hosted_engine(other, "--vm-status", "--from-storage")
    assert stored.returncode == 0, stored.stderr
    assert "status read from storage" in stored.stderr and stored.stderr.count("\n") == 1
    assert stored.stdout.count("Status up-to-date                  : False") == 2
    assert stored.stdout.count("Engine status                      : unknown stale-data") == 2
    assert f"--== Host {up.name} (id: {up.host_id}) status ==--" in stored.stdout
    as_json = json.loads(hosted_engine(other, "--vm-status", "--json", "--from-storage").stdout)
    assert as_json[key]["engine-status"]["vm"] == "up"  # JSON never masks
    assert [as_json[k]["live-data"] for k in ("1", "2")] == [False, False]
    assert as_json[str(other.host_id)]["stopped"] is True  # its clean stop was published

    # --explain needs the daemon: a clear error naming the socket.
    gone = hosted_engine(other, "--explain")
    assert gone.returncode == 1 and str(other.admin_socket) in gone.stderr
