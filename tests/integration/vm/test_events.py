"""Lifecycle events from libvirt's test driver reach subscribers classified, with the state
re-read after each event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvloop

from he_ha.vm import (
    EventKind,
    HealthStatus,
    PausedReason,
    ShutoffReason,
    UpdateCause,
    VmController,
    VmStatus,
    VmUpdate,
    VmWatch,
    parse_domain_xml,
)
from tests.integration.vm.helpers import (
    ENGINE,
    ENGINE_UUID,
    OTHER_UUID,
    Collector,
    StandInLease,
    domain_xml,
    started_connection,
    watching,
    write_node,
)


@pytest.fixture
async def events(vm: VmController) -> AsyncIterator[Collector]:
    async with watching(vm) as collector:
        assert collector.initial is not None
        assert collector.initial.state.status is VmStatus.RUNNING
        assert collector.initial.health.status is HealthStatus.CONNECTED
        yield collector


async def test_destroy_is_classified_and_the_state_re_read(vm: VmController, events: Collector) -> None:
    await vm.destroy()

    update = await events.next_event(EventKind.DESTROYED)

    assert update.state.status is VmStatus.SHUTOFF and update.state.reason is ShutoffReason.DESTROYED


async def test_start_pause_resume_shutdown_events(vm: VmController, events: Collector) -> None:
    await vm.destroy()
    await events.next_event(EventKind.DESTROYED)

    await vm.start(parse_domain_xml(domain_xml(), "test"), StandInLease(held=True))
    started = await events.next_event(EventKind.STARTED)
    await vm.pause()
    paused = await events.next_event(EventKind.PAUSED)
    await vm.resume()
    resumed = await events.next_event(EventKind.RESUMED)
    await vm.shutdown(timeout=5.0)
    stopped = await events.next_event(EventKind.GUEST_SHUTDOWN)

    assert started.state.status is VmStatus.RUNNING
    assert paused.state.status is VmStatus.PAUSED and paused.state.reason is PausedReason.USER
    assert resumed.state.status is VmStatus.RUNNING
    assert stopped.state.status is VmStatus.ABSENT  # the transient engine VM is gone
    assert stopped.event is not None and (stopped.event.event, stopped.event.detail) == (5, 0)


async def test_a_change_made_behind_the_controllers_back_is_seen(vm: VmController, events: Collector) -> None:
    # Not through VmController: an operator's virsh would do the same on a real host.
    await vm.connection.call("suspend", lambda c: c.lookupByUUIDString(ENGINE_UUID).suspend())

    update = await events.next_event(EventKind.PAUSED)

    assert update.state.status is VmStatus.PAUSED


async def test_events_of_other_domains_are_filtered_out(tmp_path: Path) -> None:
    other = domain_xml(name="other-vm", uuid=OTHER_UUID)
    async with (
        started_connection(write_node(tmp_path, domain_xml(), other)) as conn,
        watching(VmController(conn, ENGINE)) as events,
    ):
        await conn.call("destroy other", lambda c: c.lookupByUUIDString(OTHER_UUID).destroy())
        await conn.call("destroy engine", lambda c: c.lookupByUUIDString(ENGINE_UUID).destroy())
        # Delivered in order: had the other VM's destroy got through, it would come first.
        update = await events.next_event(EventKind.DESTROYED)
        assert update.state.status is VmStatus.SHUTOFF
        assert events.updates.empty()


async def test_a_failing_subscriber_does_not_stop_delivery(vm: VmController) -> None:
    calls: list[VmUpdate] = []

    def broken(update: VmUpdate) -> None:
        calls.append(update)
        raise RuntimeError("subscriber bug")

    async with watching(vm, broken) as events:
        await vm.destroy()
        update = await events.next_event(EventKind.DESTROYED)
        assert update.state.status is VmStatus.SHUTOFF
        assert [u.cause for u in calls] == [UpdateCause.INITIAL, UpdateCause.EVENT]


async def test_one_watch_per_connection(vm: VmController, events: Collector) -> None:
    with pytest.raises(RuntimeError, match="already taken"):
        await VmWatch(vm).start()


async def test_a_stopped_watch_delivers_nothing_and_frees_the_registration(vm: VmController) -> None:
    async with watching(vm) as late:
        pass

    # A new watch can register again (the libvirt callback was really removed) ...
    async with watching(vm) as events:
        await vm.destroy()
        await events.next_event(EventKind.DESTROYED)
        # ... and the stopped one heard nothing of the destroy.
        assert late.updates.empty()


def test_events_are_delivered_under_uvloop(tmp_path: Path) -> None:
    """The supervisor runs uvloop; events come from libvirt's event thread to it as well."""
    uri = write_node(tmp_path, domain_xml())

    async def scenario() -> VmUpdate:
        async with started_connection(uri) as conn:
            vm = VmController(conn, ENGINE)
            async with watching(vm) as events:
                await vm.destroy()
                return await events.next_event(EventKind.DESTROYED)

    update = uvloop.run(scenario())
    assert update.state.status is VmStatus.SHUTOFF
    assert not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)  # run() leaked nothing
