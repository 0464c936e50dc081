"""The admin API's status and metrics, built from what a tick saw (pure, from memory)."""

from __future__ import annotations

import math

import pytest

from he_ha import __version__
from he_ha.admin.metrics_text import render
from he_ha.durations import DurationHistogram
from he_ha.fsm import DecisionRecord, LeaseStatus, Publish, StateName, step
from he_ha.lease import HostInfo, HostStatus, LockspaceState
from he_ha.notify import NotifierStats
from he_ha.supervisor.metrics import MetricInputs, build_metrics
from he_ha.supervisor.observe import SanlockView, TickInputs
from he_ha.supervisor.publish import SlotContext, build_slot
from he_ha.supervisor.status import cluster_status
from he_ha.supervisor.tick_snapshot import TickStats
from he_ha.whiteboard import GlobalBlock, HostSlot, encode_global_block
from tests.unit.fsm.builders import OWN, UP_GOOD, obs, peer, state_in
from tests.unit.supervisor.test_board_and_publish import board
from tests.unit.whiteboard.samples import UP_STATUS, host_slot

HOSTS = (HostInfo(1, HostStatus.LIVE, 1, 10, 10), HostInfo(2, HostStatus.DEAD, 1, 5, 10))
SANLOCK = SanlockView(LockspaceState.JOINED, HOSTS, (), True, (), 0.004)


def tick_of() -> tuple[TickInputs, DecisionRecord, HostSlot]:
    observation = obs(UP_GOOD, peers=(peer(2),), lease=LeaseStatus(OWN, True), network=0.8)
    _, _, record = step(state_in(StateName.ENGINE_UP), observation)
    read = board(
        host_slot(2, score=2000, engine_status=UP_STATUS),
        raw={3: b"junk|bytes"},
        global_block=encode_global_block(GlobalBlock(maintenance=False)),
    )
    inputs = TickInputs(observation, {}, read, None, SANLOCK, None)
    action = record.actions[0]
    assert isinstance(action, Publish)
    published = build_slot(action.record, record.score, SlotContext(OWN, "host1", True, 100.0, 1.7e9), now_epoch=1.7e9)
    return inputs, record, published


def test_status_lists_ours_exactly_and_every_peer_slot() -> None:
    inputs, record, published = tick_of()
    assert inputs.board is not None
    status = cluster_status(
        host_id=OWN,
        inputs=inputs,
        record=record,
        published=published,
        publishing=True,
        now=inputs.board.read_at + 2.5,
        storage_error=None,
        vm_here="running",
        hypervisor="connected",
    )
    own, two, three = status.hosts
    assert own.local and own.live and own.state == "EngineUp" and own.sanlock == "live"
    assert own.score_breakdown is not None and [p.name for p in own.score_breakdown.penalties] == ["network"]
    assert own.score == own.score_breakdown.total == 3400 - 319
    assert not two.local and two.score == 2000 and two.engine_status == {"vm": "up", "health": "good", "detail": "Up"}
    assert two.sanlock == "dead" and two.state == "EngineDown"
    assert three.error is not None and three.hostname is None
    assert status.whiteboard_age == 2.5 and status.global_maintenance is False and status.lease_owner == OWN
    assert status.engine_liveness == "healthy"


def test_status_before_the_first_tick() -> None:
    status = cluster_status(
        host_id=OWN,
        inputs=None,
        record=None,
        published=None,
        publishing=False,
        now=0.0,
        storage_error="whiteboard read: no answer within 5 s",
        vm_here="unknown",
        hypervisor="connecting",
    )
    assert status.hosts == [] and status.global_maintenance is None and status.whiteboard_age is None
    assert status.storage_error is not None


def test_metrics_cover_state_score_penalties_peers_and_counters() -> None:
    inputs, record, _ = tick_of()
    stats = TickStats(count=7, transitions=3, sanlock_errors=2)
    for seconds in (0.02, 0.05, 0.03):
        stats.durations.observe(seconds)
    probes = {"network": DurationHistogram()}
    probes["network"].observe(1.5)
    metrics = build_metrics(
        MetricInputs(
            record=record,
            inputs=inputs,
            ticks=stats,
            peer_changes={2: (5000, 90.0)},
            last_read=None,
            last_write=None,
            notifier=NotifierStats(1, 2, 3, 4, 5, 6, 7, None, None),
            monitor_readings={"network": 9},
            monitor_errors={},
            decisions_dropped=0,
            vm_actions_failed=1,
            lease_held=True,
            storage={"read": DurationHistogram(), "write": DurationHistogram()},
            probes=probes,
        ),
        now=100.0,
    )
    by_key = {(m.name, tuple(sorted(m.labels.items()))): m for m in metrics}
    render(metrics)  # every check of the exposition passes
    (build,) = [m for m in metrics if m.name == "he_ha_build_info"]
    assert build.value == 1 and build.labels["version"] == __version__
    tick = by_key[("he_ha_tick_duration_seconds", ())]
    assert (tick.kind, tick.value, round(tick.sum, 3), tick.buckets[4]) == ("histogram", 3, 0.1, (0.025, 1))
    assert by_key[("he_ha_monitor_probe_duration_seconds", (("monitor", "network"),))].buckets[-1] == (math.inf, 1)
    assert by_key[("he_ha_whiteboard_duration_seconds", (("op", "write"),))].value == 0
    assert by_key[("he_ha_sanlock_query_errors_total", ())].value == 2
    assert {m.name for m in metrics if m.kind == "counter"} <= {m.name for m in metrics if m.name.endswith("_total")}
    assert by_key[("he_ha_state", (("state", "EngineUp"),))].value == 1.0
    assert by_key[("he_ha_state", (("state", "EngineDown"),))].value == 0.0
    assert by_key[("he_ha_score", ())].value == 3081
    assert by_key[("he_ha_score_penalty", (("name", "network"),))].value == 319
    assert by_key[("he_ha_score_penalty", (("name", "memory"),))].value == 0
    assert by_key[("he_ha_transitions_total", ())].kind == "counter"
    assert by_key[("he_ha_peer_age_seconds", (("host_id", "2"),))].value == 10.0
    assert by_key[("he_ha_peer_live", (("host_id", "2"),))].value == 1.0
    assert by_key[("he_ha_notify_mails_total", (("result", "sent"),))].value == 3
    assert by_key[("he_ha_lease_owner", (("owner", str(OWN)),))].value == 1
    assert by_key[("he_ha_lease_held", ())].value == 1.0
    assert by_key[("he_ha_engine_liveness", (("liveness", "healthy"),))].value == 1.0
    assert by_key[("he_ha_engine_liveness", (("liveness", "not-ready"),))].value == 0.0
    assert all(m.name.startswith("he_ha_") for m in metrics)


def test_alerts_reach_status_and_metrics() -> None:
    """Issue 14: an active alert is a status field (with its age) and a metric; HA giving up too."""
    from tests.unit.fsm.builders import DOWN_UNEXPECTED, T0

    observation = obs(DOWN_UNEXPECTED, peers=())
    state = state_in(StateName.ENGINE_UP, peers=(), restarts=(T0 - 100, T0 - 50, T0 - 20))
    _, _, record = step(state, observation)
    assert record.rule == "up.vm-crashed"
    inputs = TickInputs(observation, {}, None, None, SANLOCK, None)
    status = cluster_status(
        host_id=OWN,
        inputs=inputs,
        record=record,
        published=None,
        publishing=False,
        now=T0 + 30,
        storage_error=None,
        vm_here="absent",
        hypervisor="connected",
    )
    [alert] = status.alerts
    assert alert.kind == "gave-up.retry-limit" and alert.age == 30 and "retry limit" in alert.reason
    assert status.gave_up is True and status.engine_liveness is None
    metrics = build_metrics(
        MetricInputs(
            record=record,
            inputs=inputs,
            ticks=TickStats(),
            peer_changes={},
            last_read=None,
            last_write=None,
            notifier=NotifierStats(0, 0, 0, 0, 0, 0, 0, None, None, alerts=1),
            monitor_readings={},
            monitor_errors={},
            decisions_dropped=0,
            vm_actions_failed=0,
            lease_held=False,
        ),
        now=T0,
    )
    by_key = {(m.name, tuple(sorted(m.labels.items()))): m for m in metrics}
    assert by_key[("he_ha_alert", (("alert", "gave-up.retry-limit"),))].value == 1.0
    assert by_key[("he_ha_alert", (("alert", "vm-without-lease"),))].value == 0.0
    assert by_key[("he_ha_gave_up", ())].value == 1.0
    assert by_key[("he_ha_notify_alerts_total", ())].value == 1


@pytest.mark.parametrize(
    ("lease", "owner"), [(LeaseStatus(None, False), "none"), (None, "unknown"), (LeaseStatus(2, False), "2")]
)
def test_lease_owner_is_a_label_never_a_sentinel(lease: LeaseStatus | None, owner: str) -> None:
    observation = obs(UP_GOOD, peers=(peer(2),), lease=lease)
    inputs = TickInputs(observation, {}, None, None, SANLOCK, None)
    metrics = build_metrics(
        MetricInputs(
            record=None,
            inputs=inputs,
            ticks=TickStats(),
            peer_changes={},
            last_read=None,
            last_write=None,
            notifier=None,
            monitor_readings={},
            monitor_errors={},
            decisions_dropped=0,
            vm_actions_failed=0,
            lease_held=False,
        ),
        now=0.0,
    )
    assert [(m.labels, m.value) for m in metrics if m.name == "he_ha_lease_owner"] == [({"owner": owner}, 1.0)]
