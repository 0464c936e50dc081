"""The engine's own disk lease in the start path (he_ha/supervisor/lease_holder.py, engine_launch.py):
the lease holder is told once per start which engine lease the resolved definition carries; the
QEMU holder joins the storage domain's lockspace ``<SD>`` (dom_md/ids) under this host's id and
launches with BOTH leases (he-ha's and the engine's), the other holders ignore it; the domain
lockspace is found from the lease's path (file and block layouts) or the start is refused."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from he_ha.devcluster.cluster import domain_xml
from he_ha.lease import (
    MIB,
    JoinOutcome,
    LeaseConfigError,
    LeaseError,
    LeaseNotHeld,
    Lockspace,
    VmLease,
    WrongHostId,
    domain_lockspace,
)
from he_ha.lease.domain_lockspace import domain_ids_path
from he_ha.supervisor.engine_launch import EngineXmlPreparer
from he_ha.supervisor.execute import ActionExecutor, SpecSource
from he_ha.supervisor.lease_holder import QemuHolder, WorkerHolder, add_lease
from he_ha.supervisor.observe import launch_overlaps
from he_ha.vm import DomainSpec, LeaseSpec, LibvirtConnection, leases_in, parse_domain_xml
from tests.unit.supervisor.test_ovf_source import IDENTITY
from tests.unit.supervisor.test_ovf_source_launch import HOST, engine_host, engine_spec

SD = "5ab5e4f0-31a4-4b3c-a5a7-2b1c48c4cd35"
IMG = "a0b1c2d3-1111-4222-8333-944455556666"
VOL = "f0e1d2c3-7777-4888-9999-aaaabbbbcccc"
MOUNT = Path("/rhev/data-center/mnt/nfs.example.com:_he")
OURS = VmLease(Path("/he/lockspace"), "engine-vm", MIB)
ENGINE = LeaseSpec(SD, VOL, MOUNT / SD / "images" / IMG / f"{VOL}.lease", 0)


class FakeClient:
    def __init__(self, error: LeaseError | None = None) -> None:
        self.joins: list[tuple[Lockspace, int]] = []
        self.error = error

    async def join(self, lockspace: Lockspace, host_id: int, *, timeout: float | None = None) -> JoinOutcome:
        self.joins.append((lockspace, host_id))
        if self.error is not None:
            raise self.error
        return JoinOutcome.ALREADY_JOINED if len(self.joins) > 1 else JoinOutcome.JOINED


def qemu(client: FakeClient, host_id: int | None = 3) -> QemuHolder:
    # The type: ignore must stay on the line mypy reports: not reformatted.
    # fmt: off
    return QemuHolder(client, OURS, on_lost=lambda reason: None, host_id=host_id, io_timeout=1)  # type: ignore[arg-type]
    # fmt: on


def plain() -> DomainSpec:
    return parse_domain_xml(domain_xml(), "harness")


def test_the_domain_lockspace_is_found_from_the_lease_path() -> None:
    assert domain_ids_path(SD, ENGINE.path) == MOUNT / SD / "dom_md" / "ids"
    assert domain_ids_path(SD, MOUNT / SD / "dom_md" / "xleases") == MOUNT / SD / "dom_md" / "ids"
    assert domain_ids_path(SD, Path(f"/dev/{SD}/leases")) == Path(f"/dev/{SD}/ids")
    lockspace = domain_lockspace(SD, Path(f"/dev/{SD}/leases"), io_timeout=10)
    assert (lockspace.name, lockspace.offset, lockspace.sector_size, lockspace.align, lockspace.io_timeout) == (
        SD,
        0,
        512,
        MIB,
        10,
    )
    for wrong in (
        Path("/he/lockspace"),
        MOUNT / "other-sd" / "images" / IMG / f"{VOL}.lease",
        Path(f"/dev/{SD}/{VOL}"),
    ):
        with pytest.raises(LeaseConfigError, match="ids volume cannot be found"):
            domain_ids_path(SD, wrong)


async def test_without_an_engine_lease_qemu_holds_ours_alone() -> None:
    client = FakeClient()
    holder = qemu(client)
    holder.choose(None)
    await holder.acquire(5)
    spec = holder.prepare(plain())
    holder.launched()
    assert client.joins == []
    assert [(lease.lockspace, lease.key) for lease in leases_in(spec)] == [(OURS.lockspace, OURS.resource)]


async def test_with_the_engine_lease_qemu_holds_both_after_joining_the_domain_lockspace() -> None:
    client = FakeClient()
    holder = qemu(client)
    holder.choose(ENGINE)
    assert holder.engine_lease == ENGINE
    await holder.acquire(5)
    ((lockspace, host_id),) = client.joins
    assert (lockspace.name, lockspace.path, lockspace.io_timeout, host_id) == (SD, MOUNT / SD / "dom_md" / "ids", 1, 3)
    assert holder.domain_lockspaces == {SD: lockspace}
    spec = holder.prepare(plain())
    assert holder.is_held()
    holder.launched()
    assert not holder.is_held() and holder.engine_lease is None
    assert leases_in(spec) == [LeaseSpec(OURS.lockspace, OURS.resource, OURS.path, OURS.offset), ENGINE]
    # single-use: a start the preparer told nothing launches with ours alone
    await holder.acquire(5)
    assert len(client.joins) == 1 and len(leases_in(holder.prepare(plain()))) == 1
    holder.launched()


async def test_the_engine_lease_is_never_launched_unless_its_lockspace_was_joined() -> None:
    holder = qemu(FakeClient(WrongHostId("add_lockspace", -17, "busy", "ids", "this host holds host id 5, not 3")))
    holder.choose(ENGINE)
    with pytest.raises(LeaseError, match="host id 5"):
        await holder.acquire(5)
    with pytest.raises(LeaseNotHeld, match="not joined"):
        holder.prepare(plain())
    assert not holder.is_held()
    nobody = qemu(FakeClient(), host_id=None)
    nobody.choose(ENGINE)
    with pytest.raises(LeaseError, match="has none"):
        await nobody.acquire(5)
    outside = qemu(FakeClient())
    outside.choose(LeaseSpec(SD, VOL, Path("/somewhere/else.lease"), 0))
    with pytest.raises(LeaseConfigError):
        await outside.acquire(5)


def test_the_other_holders_ignore_the_engine_lease() -> None:
    holder = WorkerHolder(FakeClient(), OURS, on_lost=lambda reason: None)  # type: ignore[arg-type]
    holder.choose(ENGINE)
    spec = plain()
    assert holder.prepare(spec) is spec


def test_add_lease_keeps_the_existing_leases_and_the_rest_of_the_xml() -> None:
    spec = add_lease(plain(), ENGINE)
    root = ET.fromstring(spec.xml)
    assert leases_in(spec) == [ENGINE] and root.find("name") is not None


async def test_the_preparer_tells_the_holder_the_engine_lease_of_each_start(tmp_path: Path) -> None:
    host, disk = engine_host(tmp_path)
    node = tmp_path / "node.xml"
    node.write_text("<node></node>")
    connection = LibvirtConnection(f"test://{node}")  # a private test driver for the networks
    await connection.start()
    chosen: list[LeaseSpec | None] = []
    preparer = EngineXmlPreparer(
        conf=host.conf, roots=host.roots, connection=connection, timeout=5, host=HOST, on_launch=chosen.append
    )
    try:
        await connection.wait_connected(10)
        launch = await preparer.prepare(engine_spec(host))
        assert chosen == [launch.engine_lease] and launch.engine_lease is not None
        assert launch.engine_lease.key == disk.volume and leases_in(launch.spec) == []  # the holder adds it
        await preparer.prepare(plain())
        assert chosen[-1] is None
    finally:
        preparer.close()
        await connection.close()


async def test_the_resolved_preview_is_the_xml_the_start_hands_libvirt(tmp_path: Path) -> None:
    """``he-ha vm-conf --resolved`` / ``?resolved=true``: with the QEMU holder and an engine lease
    the preview carries both ``<lease>`` elements in the order the launch puts them (he-ha's, then
    the engine's), built by the holder's own prepare; the holder itself is left as it was."""
    host, disk = engine_host(tmp_path)
    plan = host.plan()
    specs = SpecSource(plan, IDENTITY, plan.resolve(), timeout=5)
    connection = LibvirtConnection("test:///default")
    client = FakeClient()
    holder = qemu(client)
    preparer = EngineXmlPreparer(
        conf=host.conf, roots=host.roots, connection=connection, timeout=5, host=HOST, on_launch=holder.choose
    )
    # The type: ignore must stay on the line mypy reports: not reformatted.
    # fmt: off
    executor = ActionExecutor(vm=None, holder=holder, specs=specs, health=None, notifier=None,  # type: ignore[arg-type]
                              on_done=lambda done: None, migrate_uri="", io_timeout=1, engine_xml=preparer)
    # fmt: on
    try:
        preview = await executor.preview_launch()
        engine = preview.engine_lease
        assert engine is not None and (engine.lockspace, engine.key) == (host.conf.sd_uuid, disk.volume)
        assert leases_in(preview.spec) == [LeaseSpec(OURS.lockspace, OURS.resource, OURS.path, OURS.offset), engine]
        assert client.joins == [] and holder.engine_lease is None and not holder.is_held()
        # the start's own path: the preparer tells the holder, acquire joins <SD>, prepare builds the XML
        launch = await preparer.resolve(engine_spec(host))
        holder.choose(launch.engine_lease)
        await holder.acquire(5)
        launched = holder.prepare(launch.spec)
        holder.launched()
        assert launched.xml == preview.spec.xml
        # keeper and worker holders: the engine lease stays out, as at their launch
        executor._holder = WorkerHolder(client, OURS, on_lost=lambda reason: None)  # type: ignore[arg-type]
        assert leases_in((await executor.preview_launch()).spec) == []
    finally:
        preparer.close()
        specs.close()


async def test_the_qemu_holders_launch_epoch_is_odd_exactly_while_a_launch_is_under_way() -> None:
    # observe.py: a tick whose VM reading or lease answer falls inside a launch decides nothing
    # on the lease (the paused QEMU does not hold it yet: libvirt acquires it during createXML).
    holder = qemu(FakeClient())
    assert holder.launch_epoch == 0
    holder.choose(None)
    await holder.acquire(5)
    holder.prepare(plain())
    assert holder.launch_epoch == 1
    holder.launched()
    assert holder.launch_epoch == 2
    # a start that failed before prepare (the engine lease's lockspace not joined) launched nothing
    refused = qemu(FakeClient(WrongHostId("add_lockspace", -17, "busy", "ids", "host id 5")))
    refused.choose(ENGINE)
    with pytest.raises(LeaseError):
        await refused.acquire(5)
    with pytest.raises(LeaseNotHeld):
        refused.prepare(plain())
    refused.launched()
    assert refused.launch_epoch == 0


def test_the_other_holders_lease_is_taken_before_the_launch_so_they_never_count_one() -> None:
    worker = WorkerHolder(FakeClient(), OURS, on_lost=lambda reason: None)  # type: ignore[arg-type]
    worker.prepare(plain())
    worker.launched()
    assert worker.launch_epoch == 0


def test_a_lease_answer_from_across_a_launch_is_cannot_tell() -> None:
    assert not launch_overlaps(0, 0) and not launch_overlaps(2, 2)
    assert launch_overlaps(1, 1)  # under way all along
    assert launch_overlaps(0, 1)  # began between the VM reading and the lease answer
    assert launch_overlaps(1, 2)  # ended meanwhile: the reading may show the paused QEMU
    assert launch_overlaps(2, 4)  # a whole launch in between
