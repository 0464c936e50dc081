"""The status snapshot (tick_snapshot.py): one frozen value per tick, published at its end, so
a reader during a tick sees the previous tick complete; whiteboard reads between ticks
replace only its board."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from he_ha.fsm import Action, LeaseStatus, StateName
from he_ha.storage.codec import HostSlot
from he_ha.storage.whiteboard_errors import WhiteboardError
from he_ha.supervisor.board import BoardReader
from he_ha.supervisor.core import Supervisor
from he_ha.supervisor.env import SYSTEM_CLOCK, HostEnv
from he_ha.supervisor.observe import Completed, TickInputs
from he_ha.supervisor.tick_snapshot import StatusFeed, first_snapshot
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
