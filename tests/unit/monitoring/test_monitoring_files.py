"""The shipped Prometheus alert rules and Grafana dashboard (packaging/monitoring/), checked by
promtool: the rules' syntax, their behaviour on sample series (alerts-test.yml), and every
dashboard query's PromQL. That they name only metrics a real daemon exposes is checked
against its output in tests/integration/supervisor/test_operations.py."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import require_tool

REPO = Path(__file__).resolve().parents[3]
MONITORING = REPO / "packaging" / "monitoring"
RULES = MONITORING / "he-ha-alerts.yml"
DASHBOARD = MONITORING / "he-ha-dashboard.json"


@pytest.fixture(autouse=True)
def _promtool() -> None:
    require_tool("promtool", "prometheus")


def promtool(*args: str, cwd: Path = REPO) -> str:
    result = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_alert_rules_pass_promtool_check_rules() -> None:
    assert promtool("check", "rules", str(RULES)).strip().endswith("SUCCESS: 12 rules found")


def test_alert_rules_fire_as_the_rule_tests_expect() -> None:
    assert "SUCCESS" in promtool("test", "rules", "alerts-test.yml", cwd=Path(__file__).parent)


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # Grafana's variables replaced as Grafana would; each query checked as a recording rule.
    queries = [q.replace("$instance", ".*").replace("$__rate_interval", "5m") for q in dashboard_queries()]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"he_ha:dashboard_query_{n}", "expr": q} for n, q in enumerate(queries)],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    assert promtool("check", "rules", str(path)).strip().endswith(f"SUCCESS: {len(queries)} rules found")


def test_dashboard_covers_state_scores_failovers_and_storage_latency() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"HA state per host", "Scores", "Failovers and transitions", "Whiteboard I/O latency"} <= titles
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["instance"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def metric_names_used() -> set[str]:
    """he_ha_* names in the rules and the dashboard, histogram suffixes stripped."""
    text = RULES.read_text() + "\n".join(dashboard_queries())
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in re.findall(r"\bhe_ha_[a-z_]+\b", text)}
