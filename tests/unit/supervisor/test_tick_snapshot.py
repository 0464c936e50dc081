"""The status snapshot (tick_snapshot.py): one frozen value per tick, published at its end, so
a reader during a tick sees the previous tick complete; whiteboard reads between ticks
replace only its board."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest

from he_ha.durations import DurationHistogram
from he_ha.fsm import Action, LeaseStatus, StateName
from he_ha.supervisor.board import BoardReader
from he_ha.supervisor.controller import ControllerParts, SupervisorController
from he_ha.supervisor.core import Supervisor
from he_ha.supervisor.env import SYSTEM_CLOCK, HostEnv
from he_ha.supervisor.execute import DefinitionState
from he_ha.supervisor.observe import Completed, TickInputs
from he_ha.supervisor.tick_snapshot import StatusFeed, first_snapshot
from he_ha.whiteboard import HostSlot, WhiteboardError
from tests.unit.fsm.builders import OWN, UP_GOOD, obs, peer, state_in
from tests.unit.supervisor.test_board_and_publish import board
from tests.unit.supervisor.test_board_scan import FakeBoard
from tests.unit.supervisor.test_status_metrics import SANLOCK


class HeldWhiteboard:
    """Publishes wait until the test lets them through (storage that hangs)."""

    own_host_id = OWN

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()
        self.slots: list[HostSlot] = []

    async def publish(self, slot: HostSlot) -> None:
        self.waiting.set()
        await self.gate.wait()
        self.slots.append(slot)


class Inputs:
    """The observer: the same tick inputs every time, with the peer's slot from the board."""

    host_id = OWN

    async def observe(self, completed: Completed | None) -> TickInputs:
        observation = obs(UP_GOOD, peers=(peer(2),), lease=LeaseStatus(OWN, True), network=0.8)
        return TickInputs(observation, {}, board(), None, SANLOCK, None)


class Quiet:
    """Definitions, decision sink, systemd and executor: nothing to do here."""

    loaded_at = 100.0
    loaded_epoch = 1.7e9
    watchdog_interval = None

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None

    def run(self, action: Action) -> None:
        pass


def supervisor(whiteboard: HeldWhiteboard) -> Supervisor:
    quiet: Any = Quiet()
    nothing: Any = None
    env = HostEnv(
        clock=SYSTEM_CLOCK,
        whiteboard=whiteboard,  # type: ignore[arg-type]
        sanlock=nothing,
        lockspace=nothing,
        vm_lease=nothing,
        holder=nothing,
        vm=nothing,
        readings=nothing,
        health=None,
        ha_conf=nothing,
        definitions=quiet,
        notifier=None,
        decisions=quiet,
        systemd=quiet,
    )
    fsm = state_in(StateName.ENGINE_UP)
    observer: Any = Inputs()
    feed = StatusFeed(first_snapshot(OWN, fsm, SYSTEM_CLOCK.monotonic()))
    common: Any = {"hostname": "host1", "conf_on_shared_storage": True, "stopping": asyncio.Event(), "join_timeout": 1}
    return Supervisor(fsm_state=fsm, env=env, observer=observer, executor=quiet, feed=feed, **common)


def test_a_snapshot_cannot_be_changed() -> None:
    snapshot = first_snapshot(OWN, state_in(StateName.ENGINE_UP), 5.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.record = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.ticks.count = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        snapshot.peer_changes[2] = (1, 2.0)  # type: ignore[index]
    assert snapshot.ticks.started_at == snapshot.taken_at == 5.0
    assert not snapshot.publishing and snapshot.storage_error is None


def test_a_reader_during_a_tick_sees_the_previous_tick_complete() -> None:
    async def scenario() -> None:
        whiteboard = HeldWhiteboard()
        sup = supervisor(whiteboard)
        before = sup.feed.current
        tick = asyncio.create_task(sup.tick(()))
        await whiteboard.waiting.wait()  # decided, publishing: the decision is not shown yet
        assert sup.feed.current is before and before.record is None and before.ticks.count == 0
        read = board()
        sup.feed.note_read(read, None)  # the peer poll reads meanwhile: only the board changes
        assert sup.feed.current == dataclasses.replace(before, board=read)
        whiteboard.gate.set()
        await tick
        first = sup.feed.current
        assert first.board is read  # the tick's snapshot keeps the newest read
        assert first.record is not None and first.published == whiteboard.slots[0] and first.publishing
        assert first.ticks.count == 1 and first.ticks.publishes == 1 and first.ticks.durations.count == 1
        assert first.ready and first.state is sup.state and dict(first.peer_changes) == {}

        whiteboard.gate.clear()
        whiteboard.waiting.clear()
        tick = asyncio.create_task(sup.tick(()))
        await whiteboard.waiting.wait()
        assert sup.feed.current is first  # the second tick's decision waits for its end
        assert first.ticks.count == 1 and first.ticks.durations.count == 1  # its counts are copies
        whiteboard.gate.set()
        await tick
        second = sup.feed.current
        assert second is not first and second.ticks.count == 2 and second.published == whiteboard.slots[1]
        assert first.ticks.count == 1 and first.ticks.durations.count == 1

    asyncio.run(scenario())


def test_reads_between_ticks_replace_only_the_board() -> None:
    async def scenario() -> None:
        fake = FakeBoard()
        fake.write(2)
        feed = StatusFeed(first_snapshot(OWN, state_in(StateName.ENGINE_UP), 5.0))
        reader = BoardReader(fake, on_read=feed.note_read)  # type: ignore[arg-type]
        first = feed.current
        read = await reader.read()
        seen = feed.current
        assert seen.board is read and seen.board_error is None
        assert dataclasses.replace(seen, board=None) == dataclasses.replace(first, board=None)

        async def broken(slots: int = 0) -> Any:
            raise WhiteboardError("whiteboard read: no answer within 5 s")

        fake.read_all = broken  # type: ignore[method-assign]
        with pytest.raises(WhiteboardError):
            await reader.read()
        failed = feed.current
        assert failed.board is read  # the newest read that worked stays, with the error beside it
        assert failed.board_error == "whiteboard read: no answer within 5 s" == failed.storage_error

    asyncio.run(scenario())


def controller(feed: StatusFeed) -> SupervisorController:
    """The controller with its sources outside the tick stubbed: what it shows of the tick
    can only come from the feed."""
    parts: Any = SimpleNamespace(
        feed=feed,
        watch=SimpleNamespace(latest=None),
        connection=SimpleNamespace(health=SimpleNamespace(status=SimpleNamespace(value="connected"))),
        specs=SimpleNamespace(state=lambda: DefinitionState(True, "conf", "/vm.conf", 1.0, None)),
        whiteboard=SimpleNamespace(last_read=None, last_write=None, durations={"read": DurationHistogram()}),
        notifier=None,
        snapshot=SimpleNamespace(published={}, failed={}, durations={}),
        decisions=SimpleNamespace(dropped=0),
        executor=SimpleNamespace(failed=0),
        holder=SimpleNamespace(is_held=lambda: True),
    )
    assert {f.name for f in dataclasses.fields(ControllerParts)} >= set(vars(parts))
    return SupervisorController(parts)


def test_status_metrics_and_the_broker_read_the_snapshot_while_a_tick_hangs() -> None:
    async def scenario() -> None:
        whiteboard = HeldWhiteboard()
        sup = supervisor(whiteboard)
        view = controller(sup.feed)
        assert view.status().hosts == [] and view.latest_board() is None
        whiteboard.gate.set()
        await sup.tick(())
        whiteboard.gate.clear()
        whiteboard.waiting.clear()
        tick = asyncio.create_task(sup.tick(()))
        await whiteboard.waiting.wait()  # the second tick hangs in its publish
        status = view.status()
        own = status.hosts[0]
        assert own.local and own.live and own.host_ts == whiteboard.slots[0].host_ts
        assert view.live_host_ids() == [OWN] and status.storage_error is None
        ticks = [m for m in view.metrics() if m.name == "he_ha_tick_duration_seconds"]
        assert [m.value for m in ticks] == [1]  # the first tick only
        whiteboard.gate.set()
        await tick
        assert [m.value for m in view.metrics() if m.name == "he_ha_tick_duration_seconds"] == [2]

    asyncio.run(scenario())
