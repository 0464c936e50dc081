"""Issue 18 on a real ``he-ha run``: its log entries in journald's native protocol on a real
datagram socket and as JSON lines in the optional log file, and its metrics over the admin
socket and the read-only TCP listener, checked by ``promtool check metrics`` and compared with
the sample in the docs (HE_HA_REGENERATE_DOCS=1 rewrites the sample from this run)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from he_ha import __version__
from he_ha.devcluster.cluster import Cluster, state_of
from tests.unit.monitoring.test_monitoring_files import metric_names_used
from tests.unit.test_logsetup import parse_native

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "docs" / "metrics-sample.txt"


class Journal:
    """A datagram socket standing in for /run/systemd/journal/socket, read by a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[dict[str, str]] = []
        self.raw: list[bytes] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(1 << 20)
            except TimeoutError:
                continue
            self.raw.append(data)
            self.entries.append(parse_native(data))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.socket")
    yield j
    j.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, accept: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, method=method, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def families(text: str) -> dict[str, tuple[str, str, frozenset[str]]]:
    """name as exposed (a counter's with its _total) -> (type, help, label names)."""
    out: dict[str, tuple[str, str, frozenset[str]]] = {}
    for family in parse_text(text):
        labels = frozenset(k for s in family.samples for k in s.labels if k != "le")
        name = family.name + "_total" if family.type == "counter" else family.name
        out[name] = (family.type, family.documentation, labels)
    return out


def test_logs_and_metrics_of_a_real_daemon(
    make_cluster: Callable[..., Cluster], journal: Journal, tmp_path: Path
) -> None:
    cluster = make_cluster(1)
    host = cluster.hosts[0]
    port = free_port()
    agent_log = tmp_path / "ovirt-hosted-engine-ha" / "agent.log"
    host.start_supervisor(
        "--log-target",
        "journal",
        "--log-file",
        str(agent_log),
        "--metrics-listen",
        f"127.0.0.1:{port}",
        env={"HE_HA_JOURNAL_SOCKET": str(journal.path)},
    )
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp")

    # --- logs: journald's protocol, and every line of the file JSON ---------------------------
    entries = list(journal.entries)
    assert entries, host.supervisors[-1].log_tail()
    for entry in entries:
        assert entry["SYSLOG_IDENTIFIER"] == "he-ha" and entry["HE_HA_VERSION"] == __version__
        assert entry["PRIORITY"] in {"2", "3", "4", "6", "7"} and entry["LOGGER"]
        assert not entry["MESSAGE"][:4].isdigit()  # no timestamp of ours: journald's is the one
    (transition, *_) = [e for e in entries if e["MESSAGE"].startswith("state transition old=")]
    assert transition["PRIORITY"] == "6" and transition["LOGGER"] == "he_ha.supervisor.core"
    assert {"OLD", "NEW", "RULE", "SCORE"} <= set(transition)
    print("journald entry:", journal.raw[entries.index(transition)])
    lines = agent_log.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records and all(r["version"] == __version__ and r["logger"] and r["timestamp"] for r in records)
    assert any(r["event"] == "state transition" for r in records)

    # --- metrics: the TCP listener serves /metrics alone, read-only ----------------------------
    url = f"http://127.0.0.1:{port}/metrics"
    status, content_type, text = http("GET", url)
    assert status == 200 and content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert families(text) == families(host.admin.get("/metrics"))  # the admin socket's, the same set
    assert http("POST", url)[0] == 405 and http("PUT", url)[0] == 405
    assert http("GET", f"http://127.0.0.1:{port}/v1/status")[0] == 404
    status, content_type, om = http("GET", url, accept="application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text") and list(parse_openmetrics(om))

    found = families(text)
    assert found["he_ha_tick_duration_seconds"][0] == "histogram"
    assert found["he_ha_whiteboard_duration_seconds"] == (
        "histogram",
        found["he_ha_whiteboard_duration_seconds"][1],
        frozenset({"op"}),
    )
    assert {
        "he_ha_build_info",
        "he_ha_monitor_probe_duration_seconds",
        "he_ha_sanlock_query_duration_seconds",
        "he_ha_lease_owner",
    } <= set(found)
    assert 'he_ha_lease_owner{owner="1"} 1.0' in text
    assert {f"{name} {kind}" for name, (kind, _, _) in found.items() if kind == "counter"} == {
        line.split()[2] + " counter" for line in text.splitlines() if line.endswith(" counter")
    }  # all _total
    assert metric_names_used() <= set(found), metric_names_used() - set(found)  # rules and dashboard

    if shutil.which("promtool") is not None:
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        print("promtool check metrics:", check.returncode, repr(check.stdout + check.stderr))
        assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout + check.stderr

    # --- the docs' sample is this output ------------------------------------------------------
    if os.environ.get("HE_HA_REGENERATE_DOCS") == "1":
        SAMPLE.write_text(text)
    assert families(SAMPLE.read_text()) == found, "regenerate: HE_HA_REGENERATE_DOCS=1 pytest " + __file__
