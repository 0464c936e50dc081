"""Shared pieces of the VM-layer tests: node XML for libvirt's test driver, vm.conf files,
a stand-in lease token and a loop-lag probe. The private libvirtd lives in
he_ha.devcluster.libvirtd (shared with the supervisor tests and the demo)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from he_ha.vm import (
    Backoff,
    Deadlines,
    DomainId,
    EventKind,
    LibvirtConnection,
    UpdateCause,
    VmController,
    VmUpdate,
    VmWatch,
)

ENGINE_NAME = "HostedEngine"
ENGINE_UUID = "8f2ddd55-fa2a-4bbc-9fc2-18e6f3dbc1a1"
OTHER_UUID = "0b3e6bb0-7b8a-4a4e-8e36-0e0e0e0e0e0e"
ENGINE = DomainId(ENGINE_NAME, ENGINE_UUID)

# Short deadlines keep the failure paths fast; generous enough for a loaded 2-core box.
TEST_DEADLINES = Deadlines(open=5.0, query=2.0, start=5.0, shutdown_request=2.0, destroy=5.0, migrate=5.0, close=2.0)


def make_connection(uri: str, **kwargs: object) -> LibvirtConnection:
    kwargs.setdefault("deadlines", TEST_DEADLINES)
    kwargs.setdefault("backoff", Backoff(initial=0.05, maximum=0.5))
    return LibvirtConnection(uri, **kwargs)  # type: ignore[arg-type]


@asynccontextmanager
async def started_connection(uri: str, **kwargs: object) -> AsyncIterator[LibvirtConnection]:
    conn = make_connection(uri, **kwargs)
    await conn.start()
    try:
        yield conn
    finally:
        await conn.close()


def domain_xml(name: str = ENGINE_NAME, uuid: str | None = ENGINE_UUID, devices: str = "") -> str:
    uuid_element = f"<uuid>{uuid}</uuid>" if uuid else ""
    return (
        f"<domain type='test'><name>{name}</name>{uuid_element}"
        "<memory>1048576</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
        f"<devices>{devices}</devices></domain>"
    )


def write_node(directory: Path, *domains: str) -> str:
    """A private fake hypervisor for libvirt's test driver; returns its test:/// URI."""
    path = directory / "node.xml"
    path.write_text("<node>" + "".join(domains) + "</node>")
    return f"test://{path}"


def write_vm_conf(path: Path, xml: str, vm_id: str = ENGINE_UUID) -> Path:
    """vm.conf as the original writes it: key=value lines with the XML in xmlBase64."""
    encoded = base64.b64encode(xml.encode()).decode()
    path.write_text(
        "# Editing the hosted engine VM is only possible via the manager UI\\API\n"
        f"vmId={vm_id}\nmemSize=1024\nvmName={ENGINE_NAME}\nxmlBase64={encoded}\n"
    )
    return path


class StandInLease:
    """Stands in for the lease layer's token (not built yet): ``held`` is set by the test."""

    def __init__(self, held: bool) -> None:
        self.held = held
        self.checks = 0

    def is_held(self) -> bool:
        self.checks += 1
        return self.held


EVENT_WAIT = 5.0  # generous: delivery normally takes well under a millisecond


class Collector:
    """A subscriber that queues every update, as a supervisor would trigger a tick."""

    def __init__(self) -> None:
        self.updates: asyncio.Queue[VmUpdate] = asyncio.Queue()
        self.initial: VmUpdate | None = None

    def __call__(self, update: VmUpdate) -> None:
        self.updates.put_nowait(update)

    async def next(self) -> VmUpdate:
        return await asyncio.wait_for(self.updates.get(), EVENT_WAIT)

    async def next_event(self, kind: EventKind) -> VmUpdate:
        """The next EVENT update, skipping only OTHER events (DEFINED/UNDEFINED)."""
        while True:
            update = await self.next()
            assert update.cause is UpdateCause.EVENT, update
            assert update.event is not None
            if update.event.kind is not EventKind.OTHER:
                assert update.event.kind is kind, update
                return update


@asynccontextmanager
async def watching(vm: VmController, *first: Callable[[VmUpdate], None]) -> AsyncIterator[Collector]:
    """A started VmWatch (``first`` subscribed ahead of the collector); its INITIAL update
    is kept in ``collector.initial``. Stopped on exit."""
    watch = VmWatch(vm)
    for subscriber in first:
        watch.subscribe(subscriber)
    events = Collector()
    watch.subscribe(events)
    await watch.start()
    try:
        events.initial = await events.next()
        assert events.initial.cause is UpdateCause.INITIAL
        yield events
    finally:
        await watch.stop()


class LoopLagProbe:
    """A coroutine that ticks every ``interval`` and records how late each tick woke up."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.max_lag = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLagProbe:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)
            self.max_lag = max(self.max_lag, time.monotonic() - before - self.interval)
            self.ticks += 1
