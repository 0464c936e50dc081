"""Adopting a VM started by VDSM (mixed cluster): its QEMU holds only the engine's disk lease
``<SD>:<VOL>``, not he-ha's. The QEMU holder's check counts it as held here only when this
host's engine QEMU holds ``<SD>:<VOL>`` (inquire on this host's sanlock daemon) AND storage
records this host, in its current generation in ``<SD>``, as the owner; every other case is
answered as before (he-ha's own lease decides), so invariant 4's rules still kill the VM."""

from __future__ import annotations

from pathlib import Path

from he_ha.fsm import LeaseStatus
from he_ha.lease import (
    HeldResource,
    HolderNotRegistered,
    HostInfo,
    HostStatus,
    LeaseCallTimeout,
    LeaseOwner,
    Lockspace,
    LockspaceNotJoined,
    LockspaceNotReady,
    VmLease,
)
from he_ha.ovirt.engine_xml import EngineXmlError
from he_ha.supervisor.daemon import _expect_engine_lease
from he_ha.supervisor.lease_holder import LeaseContext, QemuHolder, engine_qemu_pids
from he_ha.supervisor.observe import SanlockView, lease_status
from tests.unit.supervisor.test_engine_lease import ENGINE, OURS, SD, VOL

OWN = 3
GEN = 7
QEMU = 4242


class Sanlock:
    """This host's sanlock daemon and storage as the holder's check sees them."""

    def __init__(
        self,
        *,
        holders: dict[int, list[tuple[str, str]]] | None = None,
        owners: list[LeaseOwner] | None = None,
        generation: int | None = GEN,
        error: Exception | None = None,
        hosts_error: Exception | None = None,
    ) -> None:
        self.holders = {QEMU: [(SD, VOL)]} if holders is None else holders
        self.engine_owners = [LeaseOwner(OWN, GEN, 1)] if owners is None else owners
        self.generation = generation
        self.error = error
        self.hosts_error = hosts_error
        self.asked: list[str] = []

    async def held(self, *, holder_pid: int | None = None, timeout: float | None = None) -> list[HeldResource]:
        self.asked.append(f"held {holder_pid}")
        if self.error is not None:
            raise self.error
        if holder_pid not in self.holders:
            raise HolderNotRegistered("inquire", -1, "not registered", f"pid {holder_pid}", "")
        return [HeldResource(ls, res, 1, ()) for ls, res in self.holders[holder_pid]]

    async def hosts(self, lockspace: Lockspace, host_id: int = 0, *, timeout: float | None = None) -> list[HostInfo]:
        assert (lockspace.name, lockspace.path, host_id) == (SD, ENGINE.path.parents[2] / "dom_md" / "ids", OWN)
        self.asked.append("hosts")
        if self.hosts_error is not None:
            raise self.hosts_error
        if self.generation is None:
            return []
        return [HostInfo(OWN, HostStatus.LIVE, self.generation, 100, 1)]

    async def owners(self, lease: VmLease, *, timeout: float | None = None) -> list[LeaseOwner]:
        assert (lease.lockspace, lease.resource, lease.path, lease.offset) == (SD, VOL, ENGINE.path, ENGINE.offset)
        self.asked.append("owners")
        return self.engine_owners


def holder(sanlock: Sanlock, pids: list[int] | None = None, *, engine: bool = True) -> QemuHolder:
    # The type: ignore must stay on the line mypy reports: not reformatted.
    # fmt: off
    h = QemuHolder(sanlock, OURS, on_lost=lambda reason: None, host_id=OWN, io_timeout=1,  # type: ignore[arg-type]
                   qemu_pids=lambda: [QEMU] if pids is None else pids)
    # fmt: on
    if engine:
        h.expect_engine_lease(ENGINE)
    return h


NOT_OURS = LeaseContext(OWN, 5, ())  # he-ha's lease: free
OURS_HELD = LeaseContext(OWN, 5, (LeaseOwner(OWN, 5, 1),))


async def test_a_vdsm_started_vm_holding_the_engine_lease_counts_as_held_here() -> None:
    sanlock = Sanlock()
    assert await holder(sanlock).check(NOT_OURS) is True
    assert sanlock.asked == [f"held {QEMU}", "hosts", "owners"]


async def test_also_when_hehas_lease_is_recorded_for_another_host() -> None:
    assert await holder(Sanlock()).check(LeaseContext(OWN, 5, (LeaseOwner(1, 2, 1),))) is True


async def test_hehas_own_lease_decides_first_without_asking_about_the_engine_lease() -> None:
    sanlock = Sanlock()
    assert await holder(sanlock).check(OURS_HELD) is True
    assert await holder(sanlock).check(LeaseContext(OWN, None, ())) is None  # cannot tell: as before
    assert sanlock.asked == []


async def test_no_engine_lease_known_is_todays_answer() -> None:
    sanlock = Sanlock()
    assert await holder(sanlock, engine=False).check(NOT_OURS) is False
    assert sanlock.asked == []


async def test_no_engine_qemu_on_this_host_is_not_held() -> None:
    sanlock = Sanlock()
    assert await holder(sanlock, pids=[]).check(NOT_OURS) is False
    assert sanlock.asked == []


async def test_a_qemu_registered_with_another_hosts_daemon_is_not_held() -> None:
    # Several hosts on one machine (the test tiers): another host's QEMU matches by uuid, but
    # this host's daemon does not know it.
    assert await holder(Sanlock(holders={}), pids=[999]).check(NOT_OURS) is False


async def test_a_qemu_holding_something_else_is_not_held() -> None:
    assert (
        await holder(Sanlock(holders={QEMU: [(SD, "other-volume"), ("hosted-engine", VOL)]})).check(NOT_OURS) is False
    )


async def test_the_engine_lease_owned_by_another_host_is_not_held() -> None:
    assert await holder(Sanlock(owners=[LeaseOwner(1, 4, 1)])).check(NOT_OURS) is False
    assert await holder(Sanlock(owners=[])).check(NOT_OURS) is False


async def test_an_owner_record_of_an_older_generation_is_not_held() -> None:
    assert await holder(Sanlock(owners=[LeaseOwner(OWN, GEN - 1, 1)])).check(NOT_OURS) is False
    assert await holder(Sanlock(generation=None)).check(NOT_OURS) is False


async def test_the_domain_lockspace_not_joined_is_not_held() -> None:
    sanlock = Sanlock(hosts_error=LockspaceNotJoined("get_hosts", -2, "not joined", SD, ""))
    assert await holder(sanlock).check(NOT_OURS) is False


async def test_the_domain_lockspace_just_joined_is_cannot_tell() -> None:
    sanlock = Sanlock(hosts_error=LockspaceNotReady("get_hosts", -11, "not ready", SD, ""))
    assert await holder(sanlock).check(NOT_OURS) is None


async def test_a_failed_query_is_cannot_tell() -> None:
    assert await holder(Sanlock(error=LeaseCallTimeout("inquire", 60, "pid"))).check(NOT_OURS) is None
    sanlock = Sanlock(hosts_error=LeaseCallTimeout("get_hosts", 60, SD))
    assert await holder(sanlock).check(NOT_OURS) is None


async def test_every_start_teaches_the_holder_the_engine_lease_and_none_keeps_it() -> None:
    h = holder(Sanlock(), engine=False)
    h.choose(ENGINE)
    h.launched()
    assert h.adoptable_lease == ENGINE
    h.choose(None)
    h.expect_engine_lease(None)
    assert h.adoptable_lease == ENGINE


def test_the_observer_maps_held_here_to_this_host_as_owner() -> None:
    # he-ha's lease free, the engine lease held here: the FSM sees this host as owner and
    # holder, so no safety rule fires and ReinitializeFSM adopts the running VM.
    view = SanlockView(None, (HostInfo(OWN, HostStatus.LIVE, 5, 1, 1),), (), True)
    assert lease_status(OWN, view) == LeaseStatus(OWN, True)
    view = SanlockView(None, (HostInfo(OWN, HostStatus.LIVE, 5, 1, 1),), (), False)
    assert lease_status(OWN, view) == LeaseStatus(None, False)


def test_engine_qemu_pids_finds_the_vm_by_its_uuid(tmp_path: Path) -> None:
    uuid = "1a2b3c4d-0000-4000-8000-000000000001"
    for pid, args in (
        (10, ["qemu-system-x86_64", "-name", "guest=HostedEngine", "-uuid", uuid.upper(), "-m", "1"]),
        (11, ["qemu-system-x86_64", "-uuid", "ffffffff-0000-4000-8000-000000000001"]),
        (12, ["sh", "-c", f"echo -uuid {uuid}"]),
        (13, []),
    ):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in args) + b"\0")
    (tmp_path / "self").mkdir()
    (tmp_path / "14").mkdir()  # gone meanwhile: no cmdline
    assert engine_qemu_pids(uuid, tmp_path) == [10]


class _Definition:
    def __init__(self, spec: object) -> None:
        self.spec = spec


class _Specs:
    def __init__(self, spec: object) -> None:
        self._spec = spec

    def in_use(self) -> _Definition | None:
        return None if self._spec is None else _Definition(self._spec)


class _Preparer:
    def __init__(self, result: object) -> None:
        self.result = result

    async def resolve(self, spec: object) -> object:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class _Launch:
    engine_lease = ENGINE


async def test_start_up_teaches_the_holder_the_engine_lease_of_the_definition_in_use() -> None:
    h = holder(Sanlock(), engine=False)
    await _expect_engine_lease(h, _Specs("spec"), _Preparer(_Launch()))  # type: ignore[arg-type]
    assert h.adoptable_lease == ENGINE


async def test_start_up_without_a_resolvable_definition_learns_nothing_and_goes_on() -> None:
    for specs, preparer in (
        (_Specs(None), _Preparer(_Launch())),
        (_Specs("spec"), _Preparer(EngineXmlError("placeholder HOST-SERIAL: unknown"))),
        (_Specs("spec"), _Preparer(OSError("stalled"))),
    ):
        h = holder(Sanlock(), engine=False)
        await _expect_engine_lease(h, specs, preparer)  # type: ignore[arg-type]
        assert h.adoptable_lease is None
        assert await h.check(NOT_OURS) is False  # as before: a running VM is not held here
