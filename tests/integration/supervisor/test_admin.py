"""The admin API of a running supervisor over its real unix socket: status with the score
breakdown, replayable decisions, metrics, maintenance modes, VM poweroff and start, and
status answering while whiteboard I/O hangs (a FUSE file whose reads block), where a second
SIGTERM forces the exit."""

from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from he_ha.devcluster.cluster import Cluster, causes_of, rule_of, state_of
from he_ha.fsm import replay_matches
from he_ha.supervisor.controller import LOCAL_REFUSED
from tests.support.stallfs import StallFS

pytestmark = pytest.mark.root


def test_status_decisions_metrics_maintenance_and_vm_control(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1)
    host = cluster.hosts[0]
    host.start_supervisor()
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    admin = host.admin

    status = admin.get("/v1/status")
    (own,) = status["hosts"]
    assert own["local"] and own["state"] == "EngineUp" and own["score"] == 3400 and own["live"]
    assert own["score_breakdown"] == {"base": 3400, "penalties": [], "override": None, "total": 3400}
    assert status["vm_here"] == "running" and status["hypervisor"] == "connected" and status["lease_owner"] == 1
    assert status["global_maintenance"] is False

    decisions = admin.get("/v1/decisions?limit=3")["decisions"]
    assert len(decisions) == 3 and all(replay_matches(entry) for entry in decisions)

    metrics = admin.get("/metrics")
    assert 'he_ha_state{state="EngineUp"} 1' in metrics and "he_ha_score 3400" in metrics
    assert "he_ha_lease_held 1" in metrics

    seen = len(host.decisions())
    code, answer = admin.post("/v1/maintenance", {"mode": "global"})
    assert code == 200 and answer["ok"], answer
    _, entry = host.wait_for_decision(lambda e: state_of(e) == "GlobalMaintenance", after=seen)
    assert {"admin", "peer-change"} & set(causes_of(entry)), causes_of(entry)  # woken, not periodic
    assert admin.get("/v1/status")["global_maintenance"] is True

    # In global maintenance the admin stops and starts the VM by hand; nothing restarts it.
    code, answer = admin.post("/v1/vm/poweroff")
    assert code == 200 and answer["ok"], answer
    host.wait_for_vm(False)
    code, answer = admin.post("/v1/vm/poweroff")  # gone already: still success (B16)
    assert code == 200, answer
    code, answer = admin.post("/v1/vm/start")
    assert code == 200 and answer["ok"], answer
    host.wait_for_vm(True)
    code, answer = admin.post("/v1/vm/start")
    assert code == 409 and "already runs here" in answer["message"]

    seen = len(host.decisions())
    code, answer = admin.post("/v1/maintenance", {"mode": "local"})
    # The VM runs here and no other host could take it: refused, the original's words first.
    assert code == 409 and answer["message"].startswith(LOCAL_REFUSED), answer
    assert answer["detail"]["refusal"] == "vm_running_here"
    code, answer = admin.post("/v1/maintenance", {"mode": "none"})  # global maintenance ends
    assert code == 200 and answer["ok"], answer
    # Set behind the API's back (ha.conf, as VDSM writes it), the FSM keeps the VM up with
    # nowhere to go, and the record says why.
    host.set_local_maintenance(True)
    _, entry = host.wait_for_decision(lambda e: rule_of(e).startswith("up.local-maintenance"), after=seen)
    assert host.vm() is not None

    code, answer = admin.post("/v1/maintenance", {"mode": "none"})
    assert code == 200 and answer["ok"], answer
    assert "local_maintenance=False" in host.ha_conf.read_text()


@pytest.fixture
def mountpoint() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="he-ha-sv-fuse-", dir="/tmp"))
    yield path
    path.rmdir()  # StallFS has unmounted it by then


@pytest.mark.slow
def test_status_answers_while_whiteboard_reads_hang(make_cluster: Callable[..., Cluster], mountpoint: Path) -> None:
    cluster = make_cluster(1, metadata=mountpoint / "metadata")
    host = cluster.hosts[0]
    with StallFS(mountpoint, cluster.metadata_file) as fs:
        host.start_supervisor()
        host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
        fs.stall()
        fs.wait_blocked(1, timeout=30)
        seen = len(host.decisions())
        worst = 0.0
        for _ in range(50):
            started = time.monotonic()
            status = host.admin.get("/v1/status")
            worst = max(worst, time.monotonic() - started)
            time.sleep(0.05)
        assert worst < 1.0, f"status took {worst:.3f} s while storage hung"  # a bound proving it did not block
        # The ticks go on (the read times out into whiteboard=None) and the status says why.
        host.wait_for_decision(lambda e: e["observation"]["whiteboard"] is None, after=seen)
        assert host.admin.get("/v1/status")["storage_error"], status
        assert host.vm() is not None
        # SIGTERM now waits for storage (the tick in progress, the stopped flag's publish); a
        # second SIGTERM forces the exit. The process can only be reaped once its threads stuck
        # in the hung file system return (uninterruptible sleep), i.e. after the resume.
        supervisor = host.supervisors[-1]
        supervisor.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert supervisor.process.poll() is None
        supervisor.process.send_signal(signal.SIGTERM)
        fs.resume()
        assert supervisor.process.wait(timeout=30) == 3
        assert "second stop signal: exiting at once" in supervisor.log_tail(5)
        assert host.vm() is not None  # never touched
