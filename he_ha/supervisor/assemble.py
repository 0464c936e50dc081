"""The tick machinery of one host, wired from a ``HostEnv`` (env.py).

The daemon (daemon.py, real environment) and the simulator (he_ha/sim, one simulated
environment per host) both build their supervisors here, so the simulator runs exactly the
objects the daemon runs: Observer → fsm.step → ActionExecutor / publish, driven by the Ticker,
with action results reaching the next tick through the FreshHealthGate and a dead owner's
freed lease through the LeaseFreeWatch (docs/tick.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from he_ha.fsm import FsmState
from he_ha.supervisor.board import BoardReader
from he_ha.supervisor.core import Supervisor
from he_ha.supervisor.engine_launch import EngineXmlPreparer
from he_ha.supervisor.env import HostEnv
from he_ha.supervisor.execute import ActionExecutor
from he_ha.supervisor.health_gate import FreshHealthGate
from he_ha.supervisor.lease_watch import LeaseFreeWatch, lease_wait
from he_ha.supervisor.observe import Completed, Observer
from he_ha.supervisor.tick_snapshot import StatusFeed, first_snapshot
from he_ha.supervisor.ticker import Ticker, Wake


@dataclass(frozen=True)
class TickSettings:
    """What the tick machinery takes besides the environment."""

    host_id: int
    hostname: str
    conf_up_to_date: bool  # also published as conf_on_shared_storage
    vm_memory_mib: int | None
    storage_timeout: float
    tick_period: float
    migrate_uri: str
    io_timeout: int
    join_timeout: float


@dataclass(frozen=True)
class TickMachinery:
    supervisor: Supervisor
    ticker: Ticker
    gate: FreshHealthGate
    observer: Observer
    executor: ActionExecutor
    reader: BoardReader
    lease_watch: LeaseFreeWatch
    feed: StatusFeed  # each tick's StatusSnapshot: what the admin API, broker socket and metrics read


def assemble(
    env: HostEnv,
    settings: TickSettings,
    fsm_state: FsmState,
    stopping: asyncio.Event,
    *,
    engine_xml: EngineXmlPreparer | None = None,
    on_result: Callable[[Completed], None] | None = None,
) -> TickMachinery:
    """Build (not start) one host's supervisor; the caller runs ``ticker.run``, ``gate.run``
    and ``lease_watch.run``.
    ``on_result``: also told every VM action's result (the simulator's event log)."""
    s = settings
    feed = StatusFeed(first_snapshot(s.host_id, fsm_state, env.clock.monotonic()))
    reader = BoardReader(env.whiteboard, env.clock, on_read=feed.note_read)
    observer = Observer(
        host_id=s.host_id,
        env=env,
        reader=reader,
        vm_memory_mib=s.vm_memory_mib,
        conf_up_to_date=s.conf_up_to_date,
        storage_timeout=s.storage_timeout,
    )

    def action_done(done: Completed) -> None:
        if on_result is not None:
            on_result(done)
        supervisor.action_done(done)
        gate.request("action-result", f"#{done.result.seq} {done.result.outcome.value}", done.done_at)

    executor = ActionExecutor(
        vm=env.vm,
        holder=env.holder,
        specs=env.definitions,
        health=env.health,
        notifier=env.notifier,
        on_done=action_done,
        migrate_uri=s.migrate_uri,
        io_timeout=s.io_timeout,
        engine_xml=engine_xml,
        clock=env.clock,
    )
    supervisor = Supervisor(
        fsm_state=fsm_state,
        env=env,
        observer=observer,
        executor=executor,
        hostname=s.hostname,
        conf_on_shared_storage=s.conf_up_to_date,
        stopping=stopping,
        join_timeout=s.join_timeout,
        feed=feed,
    )

    async def tick(causes: tuple[Wake, ...]) -> float:
        after = await supervisor.tick(causes)
        lease_watch.decided()
        return after

    ticker = Ticker(tick, period=s.tick_period, clock=env.clock)
    gate = FreshHealthGate(env.readings, ticker)
    lease_watch = LeaseFreeWatch(
        env.sanlock,
        env.lockspace,
        lambda: lease_wait(supervisor.record),
        lambda what: ticker.wake("lease-freed", what),
        timeout=s.storage_timeout,
    )
    return TickMachinery(supervisor, ticker, gate, observer, executor, reader, lease_watch, feed)
