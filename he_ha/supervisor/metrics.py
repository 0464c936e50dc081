"""Prometheus series of one supervisor (exposed by he_ha.admin.metrics_text).

Conventions (docs/monitoring.md): counters end in ``_total``; durations are histograms in
seconds; an enumeration (state, liveness, lease owner) is one series per value, 1 for the
current, so that ``== 1`` selects it and its label says which.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from he_ha import __version__
from he_ha.admin.contract import Metric
from he_ha.durations import DurationHistogram
from he_ha.fsm import DecisionRecord, StateName
from he_ha.fsm.alerts import ALERT_KINDS, GAVE_UP
from he_ha.fsm.health import LIVENESS_HEALTHY, LIVENESS_NOT_READY, LIVENESS_SILENT
from he_ha.notify import NotifierStats
from he_ha.supervisor.execute import DefinitionState
from he_ha.supervisor.observe import TickInputs
from he_ha.supervisor.tick_snapshot import TickStats
from he_ha.whiteboard import IoStats, Op

PENALTIES = ("config", "network", "bridge", "cpu", "memory", "retries")
LIVENESS = (LIVENESS_HEALTHY, LIVENESS_NOT_READY, LIVENESS_SILENT)


@dataclass(frozen=True)
class MetricInputs:
    record: DecisionRecord | None
    inputs: TickInputs | None
    ticks: TickStats
    peer_changes: Mapping[int, tuple[int, float]]
    last_read: IoStats | None
    last_write: IoStats | None
    notifier: NotifierStats | None
    monitor_readings: Mapping[str, int]
    monitor_errors: Mapping[str, int]
    decisions_dropped: int
    vm_actions_failed: int
    lease_held: bool
    vm_definition: DefinitionState | None = None
    storage: Mapping[Op, DurationHistogram] | None = None  # whiteboard call durations by op
    probes: Mapping[str, DurationHistogram] | None = None  # monitor probe durations by monitor


def _gauge(metric: str, value: float, help_text: str, **labels: str) -> Metric:
    return Metric(name=metric, kind="gauge", help=help_text, value=value, labels=labels)


def _counter(metric: str, value: float, help_text: str, **labels: str) -> Metric:
    return Metric(name=metric, kind="counter", help=help_text, value=value, labels=labels)


def _histogram(metric: str, histogram: DurationHistogram, help_text: str, **labels: str) -> Metric:
    return Metric(
        name=metric,
        kind="histogram",
        help=help_text,
        value=histogram.count,
        labels=labels,
        buckets=histogram.cumulative(),
        sum=histogram.sum,
    )


def build_metrics(m: MetricInputs, now: float | None = None) -> list[Metric]:
    return list(_metrics(m, time.monotonic() if now is None else now))


def _metrics(m: MetricInputs, now: float) -> Iterator[Metric]:
    yield _gauge(
        "he_ha_build_info",
        1.0,
        "he-ha's version and the Python running it (always 1)",
        version=__version__,
        python=platform.python_version(),
    )
    record = m.record
    current = record.to_state if record is not None else None
    for state in StateName:
        yield _gauge(
            "he_ha_state",
            1.0 if state.value == current else 0.0,
            "current FSM state (1 for the current)",
            state=state.value,
        )
    if record is not None:
        score = record.score
        yield _gauge("he_ha_score", score.total, "published score")
        yield _gauge("he_ha_score_base", score.base, "base score")
        amounts = {p.name: p.amount for p in score.penalties}
        for name in PENALTIES:
            yield _gauge("he_ha_score_penalty", amounts.get(name, 0), "score penalty by cause", name=name)
        yield _gauge("he_ha_score_override", 1.0 if score.override else 0.0, "1 when the score is forced to 0")
        active = {a.kind for a in record.alerts}
        for kind in ALERT_KINDS:
            yield _gauge(
                "he_ha_alert",
                1.0 if kind in active else 0.0,
                "1 while the alert is active (docs/notifications.md)",
                alert=kind,
            )
        yield _gauge(
            "he_ha_gave_up",
            1.0 if active & GAVE_UP else 0.0,
            "1 while HA has given up: retry limit reached with no other host able to start the engine "
            "VM, or no host able to start it for longer than no_host_alert_after",
        )
        liveness = record.inputs.engine_liveness
        for name in LIVENESS:
            yield _gauge(
                "he_ha_engine_liveness",
                1.0 if name == liveness else 0.0,
                "this host's engine: healthy, not-ready (answers, not ready) or silent (1 for the current; "
                "all 0 when no VM runs here)",
                liveness=name,
            )
    yield _counter("he_ha_transitions_total", m.ticks.transitions, "FSM state transitions")
    yield _histogram(
        "he_ha_tick_duration_seconds",
        m.ticks.durations,
        "duration of each tick (observe, decide, act, publish); its _count is the ticks done",
    )
    yield _counter("he_ha_publish_failures_total", m.ticks.publish_failures, "whiteboard publishes that failed")
    for op, histogram in sorted((m.storage or {}).items()):
        yield _histogram(
            "he_ha_whiteboard_duration_seconds",
            histogram,
            "duration of each whiteboard call on shared storage, failed and timed-out ones included",
            op=op,
        )
    for op, stats in (("read", m.last_read), ("write", m.last_write)):
        if stats is not None:
            yield _gauge("he_ha_whiteboard_ok", 1.0 if stats.ok else 0.0, "1 if the last whiteboard call worked", op=op)
    yield _histogram(
        "he_ha_sanlock_query_duration_seconds",
        m.ticks.sanlock_durations,
        "duration of each tick's sanlock queries (lockspace, hosts, lease owner)",
    )
    yield _counter("he_ha_sanlock_query_errors_total", m.ticks.sanlock_errors, "sanlock queries that failed")
    inputs = m.inputs
    if inputs is not None:
        lease = inputs.observation.lease
        owner = "unknown" if lease is None else str(lease.owner) if lease.owner else "none"
        yield _gauge(
            "he_ha_lease_owner",
            1.0,
            "who owns the VM lease, as the owner label: a host id, none "
            "(free) or unknown (the last query failed); always 1",
            owner=owner,
        )
    yield _gauge("he_ha_lease_held", 1.0 if m.lease_held else 0.0, "1 while this host holds the VM lease")
    alive = {p.host_id for p in record.inputs.cluster.alive} if record is not None else set()
    for host_id, (_, changed_at) in sorted(m.peer_changes.items()):
        labels = {"host_id": str(host_id)}
        yield _gauge(
            "he_ha_peer_age_seconds",
            round(now - changed_at, 3),
            "seconds since the host's whiteboard timestamp last changed",
            **labels,
        )
        yield _gauge("he_ha_peer_live", 1.0 if host_id in alive else 0.0, "1 if the host is alive", **labels)
    if m.notifier is not None:
        n = m.notifier
        for result, value in (
            ("queued", n.matched),
            ("filtered", n.filtered),
            ("dropped", n.dropped),
            ("coalesced", n.coalesced),
        ):
            yield _counter(
                "he_ha_notify_transitions_total", value, "state transitions seen by the notifier", result=result
            )
        for result, value in (("sent", n.sent), ("failed", n.failed)):
            yield _counter("he_ha_notify_mails_total", value, "notification mails", result=result)
        yield _gauge("he_ha_notify_pending", n.pending, "transitions and alerts waiting to be mailed")
        yield _counter("he_ha_notify_alerts_total", n.alerts, "alerts queued to be mailed")
    for monitor, count in sorted(m.monitor_readings.items()):
        yield _counter("he_ha_monitor_readings_total", count, "monitor readings published", monitor=monitor)
        yield _counter(
            "he_ha_monitor_errors_total", m.monitor_errors.get(monitor, 0), "monitor error readings", monitor=monitor
        )
    for monitor, histogram in sorted((m.probes or {}).items()):
        yield _histogram(
            "he_ha_monitor_probe_duration_seconds",
            histogram,
            "duration of each monitor probe, up to its deadline",
            monitor=monitor,
        )
    yield _counter("he_ha_decisions_dropped_total", m.decisions_dropped, "decision-log entries not written")
    yield _counter("he_ha_vm_actions_failed_total", m.vm_actions_failed, "VM actions that did not succeed")
    definition = m.vm_definition
    if definition is not None:
        yield _gauge(
            "he_ha_vm_definition_usable",
            1.0 if definition.usable else 0.0,
            "1 while a VM definition with domain XML is known (a start can be made here)",
            source=definition.source or "none",
        )
        yield _gauge(
            "he_ha_vm_definition_problem",
            0.0 if definition.problem is None else 1.0,
            "1 while no source gives a startable VM definition, a better source (OVF_STORE) fails, "
            "or vm.conf cannot be written",
        )
        if definition.age is not None:
            yield _gauge(
                "he_ha_vm_definition_age_seconds",
                definition.age,
                "seconds since the VM definition in use was read from its source",
            )
