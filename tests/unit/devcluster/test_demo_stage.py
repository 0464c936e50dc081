"""The demo's report of a recovery that did not happen: what each host last decided, read from
its decision log (he_ha/devcluster/demo_stage.py)."""

from __future__ import annotations

import json
from pathlib import Path

from he_ha.devcluster.cluster import Host
from he_ha.devcluster.demo_stage import last_decision


def _entry(from_state: str, to_state: str, rule: str, note: str) -> str:
    return json.dumps({"record": {"from_state": from_state, "to_state": to_state, "rule": rule, "note": note}})


def test_a_failed_wait_names_each_hosts_last_decision(tmp_path: Path) -> None:
    host = Host(2, tmp_path / "h2", tmp_path / "shared", "http://127.0.0.1:1/", tmp_path / "metadata")
    assert last_decision(host) == "  host2: no decision yet"
    host.decision_log.write_text(
        _entry("EngineStart", "EngineDown", "start.lease-busy", "acquire refused")
        + "\n"
        + _entry("EngineDown", "EngineDown", "down.lease-held", "host 1 holds the VM lease (sanlock: live)")
        + "\n"
    )
    assert last_decision(host) == (
        "  host2: EngineDown -> EngineDown (down.lease-held): host 1 holds the VM lease (sanlock: live)"
    )
