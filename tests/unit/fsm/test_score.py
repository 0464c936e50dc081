"""The score formula (spec §4.2), its state overrides (§4.3) and the breakdown."""

from __future__ import annotations

from typing import Unpack

import pytest

from he_ha.config import ScoreConfig
from he_ha.fsm import StateName as S
from he_ha.fsm import compute_score
from tests.unit.fsm.builders import LocalFields, local

CFG = ScoreConfig()


def score(
    state: S = S.ENGINE_DOWN, failures: int = 0, cfg: ScoreConfig = CFG, **readings: Unpack[LocalFields]
) -> tuple[int, dict[str, int], str | None]:
    breakdown = compute_score(state, local(**readings), failures, cfg, 3)
    return breakdown.total, {p.name: p.amount for p in breakdown.penalties}, breakdown.override


def test_healthy_host_scores_base() -> None:
    assert score() == (3400, {}, None)


@pytest.mark.parametrize(
    ("network", "penalty"),
    # 0.8 costs 319, not 320: int((1.0 - 0.8) * 1600) under IEEE doubles, exactly as the original.
    [(1.0, None), (0.8, 319), (0.6, 640), (0.4, 960), (0.2, 1280), (0.0, 1600), (None, 1600)],
)
def test_network_penalty(network: float | None, penalty: int | None) -> None:
    total, items, _ = score(network=network)
    assert items.get("network") == penalty and total == 3400 - (penalty or 0)


@pytest.mark.parametrize(("bridge", "penalty"), [(True, None), (False, 600), (None, 600)])
def test_bridge_unknown_counts_as_down(bridge: bool | None, penalty: int | None) -> None:
    assert score(bridge_up=bridge)[1].get("bridge") == penalty


@pytest.mark.parametrize(
    ("load", "penalty"),
    # 0.5 gives 199: (0.5 - 0.4) is 0.09999... in doubles; the original truncates the same way.
    [(None, None), (0.0, None), (0.4, None), (0.5, 199), (0.8, 800), (0.9, 1000), (1.0, 1000)],
)
def test_cpu_penalty_linear_between_min_and_max(load: float | None, penalty: int | None) -> None:
    assert score(cpu_load=load)[1].get("cpu") == penalty


def test_cpu_penalty_step_when_min_equals_max() -> None:
    cfg = ScoreConfig(cpu_load_penalty_min=0.5, cpu_load_penalty_max=0.5)
    assert score(cfg=cfg, cpu_load=0.49)[1].get("cpu") is None
    assert score(cfg=cfg, cpu_load=0.5)[1]["cpu"] == 1000


@pytest.mark.parametrize(
    ("free", "vm", "penalty"),
    [(8192.0, 4096, None), (4096.0, 4096, None), (4095.0, 4096, 400), (None, 4096, 400), (0.0, None, None)],
)
def test_memory_penalty(free: float | None, vm: int | None, penalty: int | None) -> None:
    assert score(free_memory_mib=free, vm_memory_mib=vm)[1].get("memory") == penalty


@pytest.mark.parametrize("state", [S.ENGINE_UP, S.ENGINE_UP_BAD_HEALTH, S.GLOBAL_MAINTENANCE])
def test_memory_not_judged_where_the_vm_runs(state: S) -> None:
    assert "memory" not in score(state, free_memory_mib=0.0)[1]


def test_config_penalty() -> None:
    assert score(conf_up_to_date=False) == (2400, {"config": 1000}, None)


@pytest.mark.parametrize(("failures", "total"), [(1, 3350), (2, 3300), (3, 0), (4, 0)])
def test_retry_penalty_and_zero_after_max(failures: int, total: int) -> None:
    """B1 fixed: 3 failed starts inside the window zero the score."""
    result_total, _, override = score(failures=failures)
    assert result_total == total
    assert (override is not None) is (failures >= 3)


@pytest.mark.parametrize(
    "state",
    [S.REINITIALIZE, S.LOCAL_MAINTENANCE, S.LOCAL_MAINTENANCE_MIGRATE_VM, S.ENGINE_UNEXPECTEDLY_DOWN, S.AGENT_STOPPED],
)
def test_zero_score_states_keep_their_breakdown(state: S) -> None:
    total, items, override = score(state, network=0.6)
    assert total == 0 and override
    assert items == {"network": 640}  # what the score would be is still explained


def test_clamped_at_zero() -> None:
    total, items, override = score(
        conf_up_to_date=False, network=0.0, bridge_up=False, cpu_load=1.0, free_memory_mib=0.0
    )
    assert sum(items.values()) == 1000 + 1600 + 600 + 1000 + 400 > 3400
    assert total == 0 and override is None


def test_every_penalty_has_a_reason() -> None:
    breakdown = compute_score(
        S.ENGINE_DOWN, local(network=0.4, bridge_up=None, cpu_load=0.7, free_memory_mib=None), 2, CFG, 3
    )
    assert [p.name for p in breakdown.penalties] == ["network", "bridge", "cpu", "memory", "retries"]
    assert all(p.reason for p in breakdown.penalties)
    assert breakdown.total == 3400 - 960 - 600 - 599 - 400 - 100  # cpu 0.7: int(599.99...)


def test_crash_restarts_count_with_failed_starts() -> None:
    """Issue 14: local restarts after a crash count toward the retry limit like failed starts."""
    one = compute_score(S.ENGINE_UP, local(), 0, CFG, 3, restarts=1)
    assert (
        one.total == 3350
        and one.penalties[-1].reason == "0 failed start(s) and 1 crash restart(s) inside the retry window"
    )
    limit = compute_score(S.ENGINE_DOWN, local(), 1, CFG, 3, restarts=2)
    assert limit.total == 0 and limit.override == "1 failed start(s) and 2 crash restart(s) inside the retry window"
