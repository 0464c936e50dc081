"""A migration target must be in ``<SD>`` before it can receive the VM: libvirt's sanlock
plugin acquires the engine lease for the incoming QEMU on the target, which fails unless that
host is in the lease's lockspace. The QEMU holder joins ``<SD>`` at start-up, in the background,
when the definition in use carries the engine lease (``join_engine_lockspace``, called by the
daemon's ``_expect_engine_lease``), retrying until it is joined; it never leaves it."""

from __future__ import annotations

import asyncio

from he_ha.lease import JoinOutcome, LeaseCallTimeout, Lockspace, WrongHostId
from he_ha.supervisor.daemon import _expect_engine_lease
from tests.unit.supervisor.test_engine_lease import ENGINE, MOUNT, SD, FakeClient, qemu
from tests.unit.supervisor.test_engine_lease_adoption import _Launch, _Preparer, _Specs


class FlakyClient(FakeClient):
    """Fails the first ``failures`` joins, then joins."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def join(self, lockspace: Lockspace, host_id: int, *, timeout: float | None = None) -> JoinOutcome:
        self.joins.append((lockspace, host_id))
        if len(self.joins) <= self.failures:
            raise LeaseCallTimeout("add_lockspace", 6, lockspace.name)
        return JoinOutcome.JOINED


async def test_the_engine_lease_expected_at_start_up_gets_this_host_into_its_lockspace() -> None:
    client = FakeClient()
    holder = qemu(client)
    holder.expect_engine_lease(ENGINE)
    task = holder.join_engine_lockspace()
    assert task is not None
    await task
    ((lockspace, host_id),) = client.joins
    assert (lockspace.name, lockspace.path, lockspace.io_timeout, host_id) == (SD, MOUNT / SD / "dom_md" / "ids", 1, 3)
    assert holder.domain_lockspaces == {SD: lockspace}
    assert not holder.is_held()  # joining a lockspace holds no lease and launches nothing


async def test_a_failed_join_is_retried_until_it_succeeds() -> None:
    client = FlakyClient(failures=2)
    holder = qemu(client)
    holder.expect_engine_lease(ENGINE)
    task = holder.join_engine_lockspace(retry=0.01)
    assert task is not None
    await asyncio.wait_for(task, 5)
    assert len(client.joins) == 3 and SD in holder.domain_lockspaces


async def test_a_host_id_held_under_another_id_is_not_retried() -> None:
    client = FakeClient(WrongHostId("add_lockspace", -17, "wrong id", SD, "this host holds host id 5, not 3"))
    holder = qemu(client)
    holder.expect_engine_lease(ENGINE)
    task = holder.join_engine_lockspace(retry=0.01)
    assert task is not None
    await asyncio.wait_for(task, 5)
    assert len(client.joins) == 1 and holder.domain_lockspaces == {}


async def test_nothing_to_join_without_an_engine_lease_or_a_host_id_or_while_a_join_runs() -> None:
    assert qemu(FakeClient()).join_engine_lockspace() is None  # no engine lease expected
    no_id = qemu(FakeClient(), host_id=None)
    no_id.expect_engine_lease(ENGINE)
    assert no_id.join_engine_lockspace() is None
    holder = qemu(FlakyClient(failures=1000))
    holder.expect_engine_lease(ENGINE)
    task = holder.join_engine_lockspace(retry=0.01)
    assert task is not None and holder.join_engine_lockspace() is None  # one at a time
    holder.detach()  # supervisor shutdown: the retrying stops, nothing is left
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_the_daemon_joins_at_start_up_when_the_definition_carries_the_engine_lease() -> None:
    client = FakeClient()
    holder = qemu(client)
    await _expect_engine_lease(holder, _Specs("spec"), _Preparer(_Launch()))  # type: ignore[arg-type]
    assert holder.adoptable_lease == ENGINE
    for _ in range(10):
        await asyncio.sleep(0)
    assert SD in holder.domain_lockspaces and len(client.joins) == 1
