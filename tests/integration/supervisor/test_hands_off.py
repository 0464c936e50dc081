"""Hands-off global maintenance with a real ``he-ha run`` (issue 14 item 4): an engine VM the
administrator starts outside he-ha, without the VM lease, is reported loudly (status alert,
an error log line, a mail queued) and left running while global maintenance lasts; when it
ends, the safety invariants apply again: it is destroyed and he-ha starts the VM properly."""

from __future__ import annotations

import time
from collections.abc import Callable

import libvirt
import pytest

from he_ha.devcluster.cluster import Cluster, rule_of, state_of

pytestmark = pytest.mark.root


def test_a_vm_without_its_lease_is_reported_not_killed_in_global_maintenance(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(1)
    host = cluster.hosts[0]
    supervisor = host.start_supervisor("--tick-period", "2", "--peer-poll", "0", "--timing", "history=70")
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    vm = host.vm()
    assert vm is not None
    xml = vm.XMLDesc(0)
    admin = host.admin

    seen = len(host.decisions())
    code, answer = admin.post("/v1/maintenance", {"mode": "global"})
    assert code == 200 and answer["ok"], answer
    host.wait_for_decision(lambda e: state_of(e) == "GlobalMaintenance", after=seen)
    code, answer = admin.post("/v1/vm/poweroff")
    assert code == 200 and answer["ok"], answer
    host.wait_for_vm(False)
    # The FSM releases the lease once the VM is confirmed gone (even in global maintenance);
    # a VM started before that would run under this host's lease, which is no finding.
    deadline = time.monotonic() + 60
    while admin.get("/v1/status")["lease_owner"] is not None:
        assert time.monotonic() < deadline, "the lease was not released after the poweroff"
        time.sleep(0.2)

    # The administrator starts the engine VM by hand, outside he-ha: no VM lease. Counted
    # before the start: libvirt's start event wakes the ticker at once, so the decision that
    # raises the alert (and mails it) can be logged before createXML has returned here.
    assert host.libvirtd is not None
    seen = len(host.decisions())
    conn = libvirt.open(host.libvirtd.default_uri)
    try:
        conn.createXML(xml, 0)
    finally:
        conn.close()
    found, entry = host.wait_for_decision(lambda e: rule_of(e) == "global-maintenance.vm-without-lease", after=seen)
    assert [a["kind"] for a in entry["record"]["alerts"]] == ["vm-without-lease"]
    assert any(a.get("alert") == "vm-without-lease" for a in entry["record"]["actions"])  # Notify: mailed
    status = admin.get("/v1/status")
    assert [a["kind"] for a in status["alerts"]] == ["vm-without-lease"] and status["gave_up"] is False
    assert 'he_ha_alert{alert="vm-without-lease"} 1' in admin.get("/metrics")
    # Left alone, tick after tick.
    host.wait_for_decision(lambda e: rule_of(e) == "global-maintenance.vm-without-lease", after=found + 3)
    assert host.vm() is not None
    assert all(not rule_of(e).startswith("safety.") for e in host.decisions()[seen:])
    assert "HA ALERT" in supervisor.log_path.read_text(errors="replace")

    # Global maintenance ends: outside it every invariant holds again.
    seen = len(host.decisions())
    code, answer = admin.post("/v1/maintenance", {"mode": "none"})
    assert code == 200 and answer["ok"], answer
    _, lost = host.wait_for_decision(lambda e: rule_of(e) == "safety.lease-lost", after=seen)
    assert lost["record"]["alerts"] == []
    started = time.monotonic()
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp", after=seen)
    assert host.vm() is not None and admin.get("/v1/status")["lease_owner"] == 1
    assert time.monotonic() - started < 120
