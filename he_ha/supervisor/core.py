"""One tick: observe, step the state machine, act, publish; then its status snapshot.

The tick never waits for a VM action (those are tasks, execute.py) and every storage or
sanlock call inside it has a deadline, so a tick takes at most about two storage timeouts
even while storage hangs, and our slot keeps being published while a start waits ~70 s for
a dead owner's lease. What the admin API, the broker socket and the metrics show is the
``StatusSnapshot`` each tick publishes at its end (tick_snapshot.py), in memory; the fields
of ``Supervisor`` are the tick's own working state and are read by nobody else.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import structlog

from he_ha.durations import DurationHistogram
from he_ha.fsm import DecisionRecord, FsmState, Observation, Publish, step, stop
from he_ha.lease import LeaseError, LockspaceState
from he_ha.supervisor.board import peer_signature
from he_ha.supervisor.env import HostEnv
from he_ha.supervisor.execute import ActionExecutor
from he_ha.supervisor.observe import Completed, Observer, TickInputs
from he_ha.supervisor.peer_watch import PeerWatch
from he_ha.supervisor.publish import SlotContext, build_slot
from he_ha.supervisor.tick_snapshot import StatusFeed, StatusSnapshot, TickStats, histogram_copy
from he_ha.supervisor.ticker import Wake
from he_ha.whiteboard import DecodedBoard as RawView
from he_ha.whiteboard import HostSlot, WhiteboardError

log = structlog.get_logger(__name__)


@dataclass
class _Counters:
    """The tick's running counts; each snapshot gets a frozen copy (``TickStats``)."""

    started_at: float
    count: int = 0
    durations: DurationHistogram = field(default_factory=DurationHistogram)
    sanlock_durations: DurationHistogram = field(default_factory=DurationHistogram)
    sanlock_errors: int = 0
    transitions: int = 0
    publishes: int = 0
    publish_failures: int = 0

    def frozen(self) -> TickStats:
        return TickStats(
            count=self.count,
            durations=histogram_copy(self.durations),
            sanlock_durations=histogram_copy(self.sanlock_durations),
            sanlock_errors=self.sanlock_errors,
            transitions=self.transitions,
            publishes=self.publishes,
            publish_failures=self.publish_failures,
            started_at=self.started_at,
        )


def _log_alerts(before: FsmState, record: DecisionRecord) -> None:
    """Alerts (he_ha.fsm.alerts) are logged loudly when raised, and once when they clear; the
    Notify action mails them and status shows them meanwhile."""
    was = {a.kind for a in before.alerts}
    for alert in record.alerts:
        if alert.kind not in was:
            log.error("HA ALERT", alert=alert.kind, reason=alert.reason, state=record.to_state, rule=record.rule)
    for kind in sorted(was - {a.kind for a in record.alerts}):
        log.warning("HA alert cleared", alert=kind, state=record.to_state)


class Supervisor:
    def __init__(
        self,
        *,
        fsm_state: FsmState,
        env: HostEnv,
        observer: Observer,
        executor: ActionExecutor,
        hostname: str,
        conf_on_shared_storage: bool,
        stopping: asyncio.Event,
        join_timeout: float,
        feed: StatusFeed,
        peer_watch: PeerWatch | None = None,
    ) -> None:
        self.state = fsm_state
        self.env = env
        self.clock = env.clock
        self.observer = observer
        self.executor = executor
        self.whiteboard = env.whiteboard
        self.specs = env.definitions
        self.hostname = hostname
        self.conf_on_shared_storage = conf_on_shared_storage
        self.client = env.sanlock
        self.lockspace = env.lockspace
        self.decisions = env.decisions
        self.systemd = env.systemd
        self.stopping = stopping
        self.join_timeout = join_timeout
        self.peer_watch = peer_watch
        self.host_id = observer.host_id
        self.feed = feed  # where each tick's StatusSnapshot goes: what every reader reads
        self._counts = _Counters(started_at=feed.current.ticks.started_at)
        self.completed: Completed | None = None  # the latest VM action result not yet consumed
        self.record: DecisionRecord | None = None  # the last decision, at once (the lease watch: assemble.py)
        # The tick's working state: readers see it through the feed's snapshots only.
        self._inputs: TickInputs | None = None
        self._published: HostSlot | None = None
        self._publish_error: str | None = None
        self._ready = False
        self._peer_changes: dict[int, tuple[int, float]] = {}  # host id -> (host_ts, when it changed)
        self._last_ping = 0.0
        self._rejoin: asyncio.Task[None] | None = None

    # --- results and wake-ups --------------------------------------------------------------

    def action_done(self, completed: Completed) -> None:
        self.completed = completed

    # --- the tick ------------------------------------------------------------------------------

    async def tick(self, causes: tuple[Wake, ...]) -> float:
        started = self.clock.monotonic()
        period = self.state.config.timing.loop_delay
        if self.stopping.is_set():
            return period
        inputs = await self.observer.observe(self.completed)
        self._counts.sanlock_durations.observe(inputs.sanlock.duration)
        self._counts.sanlock_errors += len(inputs.sanlock.errors)
        obs = inputs.observation
        if self.stopping.is_set():  # B18: no decision, let alone a VM action, after SIGTERM
            return period
        before = self.state
        self.state, actions, record = step(before, obs)
        self._inputs, self.record = inputs, record
        self._log_decision(before, obs, record, causes, started)
        pending = self.state.pending
        if self.completed is not None and (pending is None or pending.seq != self.completed.result.seq):
            self.completed = None  # consumed, or answers an action the FSM no longer waits for
        if record.from_state != record.to_state:
            self._counts.transitions += 1
            log.info(
                "state transition",
                old=record.from_state,
                new=record.to_state,
                rule=record.rule,
                note=record.note,
                score=record.score.total,
            )
        _log_alerts(before, record)
        if inputs.board is not None:
            self._note_peers(inputs.board.raw, inputs.board.read_at)
        publish: Publish | None = None
        for action in actions:
            if isinstance(action, Publish):
                publish = action
            else:
                self.executor.run(action)
        if publish is not None:
            await self._publish(publish, record, inputs)
        self._tick_done(started, record)
        self.feed.publish(self._snapshot())
        return record.tick_after

    def _note_peers(self, raw: RawView, read_at: float) -> None:
        """Remember when each peer's timestamp last changed (its age, for metrics and status)."""
        for host_id, slot in raw.hosts.items():
            seen = self._peer_changes.get(host_id)
            if seen is None or seen[0] != slot.host_ts:
                self._peer_changes[host_id] = (slot.host_ts, read_at)
        for host_id in set(self._peer_changes) - set(raw.hosts):
            del self._peer_changes[host_id]
        if self.peer_watch is not None:
            self.peer_watch.note(peer_signature(raw, self.host_id))

    def _log_decision(
        self, before: FsmState, obs: Observation, record: DecisionRecord, causes: tuple[Wake, ...], started: float
    ) -> None:
        meta: dict[str, Any] = {
            "tick": self._counts.count + 1,
            "wall_time": datetime.fromtimestamp(self.clock.wall(), UTC).isoformat(timespec="milliseconds"),
            "started": started,
            "causes": [wake.to_json() for wake in causes],
        }
        self.decisions.decided(before, obs, record, meta)

    async def _publish(self, publish: Publish, record: DecisionRecord, inputs: TickInputs) -> None:
        if inputs.sanlock.lockspace is not None and inputs.sanlock.lockspace is not LockspaceState.JOINED:
            # Spec §12.3 item 5: write the slot only while holding our host id.
            self._publish_error = f"not publishing: lockspace {inputs.sanlock.lockspace.value}"
            self._counts.publish_failures += 1
            self._start_rejoin()
            return
        ctx = SlotContext(
            self.host_id, self.hostname, self.conf_on_shared_storage, self.specs.loaded_at, self.specs.loaded_epoch
        )
        slot = build_slot(publish.record, record.score, ctx, now_epoch=self.clock.wall() - self.clock.monotonic())
        try:
            await self.whiteboard.publish(slot)
        except WhiteboardError as exc:
            self._publish_error = str(exc)
            self._counts.publish_failures += 1
            return
        self._published, self._publish_error = slot, None
        self._counts.publishes += 1

    def _tick_done(self, started: float, record: DecisionRecord) -> None:
        duration = self.clock.monotonic() - started
        stats = self._counts
        stats.count += 1
        stats.durations.observe(duration)
        health = record.inputs.local_health
        vm = health.vm if health is not None else "no reading"
        self.systemd.status(f"{record.to_state}, score {record.score.total}, vm {vm}")
        if self._published is not None and not self._ready:
            self._ready = True
            self.systemd.ready(f"{record.to_state}, score {record.score.total}")
            log.info("supervisor ready", state=record.to_state, score=record.score.total)
        interval = self.systemd.watchdog_interval
        now = self.clock.monotonic()
        if interval is not None and now - self._last_ping >= interval:
            self.systemd.watchdog()  # only from a completed tick: proves we decide, not just run
            self._last_ping = now

    def _snapshot(self) -> StatusSnapshot:
        """What the readers see until the next tick ends: copies of everything that changes."""
        last = self.feed.current
        return StatusSnapshot(
            host_id=self.host_id,
            taken_at=self.clock.monotonic(),
            state=self.state,
            inputs=self._inputs,
            record=self.record,
            published=self._published,
            publish_error=self._publish_error,
            board=last.board,  # kept up to date by the BoardReader (StatusFeed.note_read)
            board_error=last.board_error,
            ticks=self._counts.frozen(),
            peer_changes=MappingProxyType(dict(self._peer_changes)),
            ready=self._ready,
        )

    # --- lockspace membership --------------------------------------------------------------

    def _start_rejoin(self) -> None:
        if self._rejoin is None or self._rejoin.done():
            self._rejoin = asyncio.create_task(self._join_again(), name="lockspace-rejoin")

    async def _join_again(self) -> None:
        log.error("this host lost its lockspace membership; joining again", lockspace=self.lockspace.name)
        try:
            outcome = await self.client.join(self.lockspace, self.host_id, timeout=self.join_timeout)
        except LeaseError as exc:
            log.error("joining the lockspace again failed; next tick retries", error=str(exc))
            return
        log.info("lockspace joined again", outcome=outcome.value)

    # --- shutdown ----------------------------------------------------------------------------------

    async def publish_stopped(self) -> bool:
        """Publish AgentStopped (score 0, stopped=1). The VM is left as it is."""
        if self._rejoin is not None:
            self._rejoin.cancel()
        inputs = self._inputs
        now = self.clock.monotonic()
        if inputs is None:
            log.warning("stopping before the first tick: nothing published yet, nothing to withdraw")
            return False
        obs = Observation(
            now=now,
            local=inputs.observation.local,
            whiteboard=None,
            sanlock_hosts=inputs.observation.sanlock_hosts,
            lease=inputs.observation.lease,
        )
        before = self.state
        self.state, actions, record = stop(before, obs)
        self._log_decision(before, obs, record, (Wake("stop", "SIGTERM", now),), now)
        publish = next(a for a in actions if isinstance(a, Publish))
        await self._publish(publish, record, inputs)
        self.feed.publish(self._snapshot())
        if self._publish_error is not None:
            log.error("could not publish the stopped flag", error=self._publish_error)
            return False
        log.info("published AgentStopped")
        return True
