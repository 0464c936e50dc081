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
from tests.integration.vm.conftest import ENGINE, make_connection
from tests.integration.vm.helpers import (
    ENGINE_UUID,
    OTHER_UUID,
    Collector,
    StandInLease,
    domain_xml,
    write_node,
)

@pytest.fixture
async def watched(vm: VmController) -> AsyncIterator[tuple[VmController, Collector]]:
    watch = VmWatch(vm)
    collector = Collector()
    watch.subscribe(collector)
    await watch.start()
    initial = await collector.next()
    assert initial.cause is UpdateCause.INITIAL and initial.state.status is VmStatus.RUNNING
    assert initial.health.status is HealthStatus.CONNECTED
    yield vm, collector
    await watch.stop()


async def test_destroy_is_classified_and_the_state_re_read(watched: tuple[VmController, Collector]) -> None:
    vm, events = watched
    await vm.destroy()

    update = await events.next_event(EventKind.DESTROYED)

    assert update.state.status is VmStatus.SHUTOFF and update.state.reason is ShutoffReason.DESTROYED


async def test_start_pause_resume_shutdown_events(watched: tuple[VmController, Collector]) -> None:
    vm, events = watched
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


async def test_a_change_made_behind_the_controllers_back_is_seen(watched: tuple[VmController, Collector]) -> None:
    vm, events = watched
    # Not through VmController: an operator's virsh would do the same on a real host.
    await vm.connection.call("suspend", lambda c: c.lookupByUUIDString(ENGINE_UUID).suspend())

    update = await events.next_event(EventKind.PAUSED)

    assert update.state.status is VmStatus.PAUSED


async def test_events_of_other_domains_are_filtered_out(tmp_path: Path) -> None:
    other = domain_xml(name="other-vm", uuid=OTHER_UUID)
    conn = make_connection(write_node(tmp_path, domain_xml(), other))
    await conn.start()
    watch = VmWatch(VmController(conn, ENGINE))
    events = Collector()
    watch.subscribe(events)
    await watch.start()
    try:
        await events.next()  # INITIAL
        await conn.call("destroy other", lambda c: c.lookupByUUIDString(OTHER_UUID).destroy())
        await conn.call("destroy engine", lambda c: c.lookupByUUIDString(ENGINE_UUID).destroy())
        # Events are delivered in order: had the other VM's destroy got through, it
        # would come first.
        update = await events.next_event(EventKind.DESTROYED)
        assert update.state.status is VmStatus.SHUTOFF
        assert events.updates.empty()
    finally:
        await watch.stop()
        await conn.close()


async def test_a_failing_subscriber_does_not_stop_delivery(vm: VmController) -> None:
    calls: list[VmUpdate] = []

    def broken(update: VmUpdate) -> None:
        calls.append(update)
        raise RuntimeError("subscriber bug")

    watch = VmWatch(vm)
    watch.subscribe(broken)
    events = Collector()
    watch.subscribe(events)
    await watch.start()
    try:
        await events.next()  # INITIAL
        await vm.destroy()
        update = await events.next_event(EventKind.DESTROYED)
        assert update.state.status is VmStatus.SHUTOFF
        assert [u.cause for u in calls] == [UpdateCause.INITIAL, UpdateCause.EVENT]
    finally:
        await watch.stop()


async def test_one_watch_per_connection(watched: tuple[VmController, Collector], vm: VmController) -> None:
    with pytest.raises(RuntimeError, match="already taken"):
        await VmWatch(vm).start()


async def test_a_stopped_watch_delivers_nothing_and_frees_the_registration(vm: VmController) -> None:
    first = VmWatch(vm)
    late = Collector()
    first.subscribe(late)
    await first.start()
    await late.next()  # INITIAL
    await first.stop()

    # A new watch can register again (the libvirt callback was really removed) ...
    second = VmWatch(vm)
    events = Collector()
    second.subscribe(events)
    await second.start()
    try:
        await events.next()  # INITIAL
        await vm.destroy()
        await events.next_event(EventKind.DESTROYED)
        # ... and the stopped one heard nothing of the destroy.
        assert late.updates.empty()
    finally:
        await second.stop()


def test_events_are_delivered_under_uvloop(tmp_path: Path) -> None:
    """The supervisor runs uvloop; events come from libvirt's event thread to it as well."""
    uri = write_node(tmp_path, domain_xml())

    async def scenario() -> VmUpdate:
        conn = make_connection(uri)
        await conn.start()
        vm = VmController(conn, ENGINE)
        watch = VmWatch(vm)
        events = Collector()
        watch.subscribe(events)
        await watch.start()
        try:
            await events.next()  # INITIAL
            await vm.destroy()
            return await events.next_event(EventKind.DESTROYED)
        finally:
            await watch.stop()
            await conn.close()

    update = uvloop.run(scenario())
    assert update.state.status is VmStatus.SHUTOFF
    assert type(asyncio.get_event_loop_policy()).__module__ != "uvloop"  # run() did not leak its policy
