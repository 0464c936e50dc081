"""The broker socket's ``reset_lockspace`` as the daemon runs it (he_ha/supervisor/lockspace_reset.py)
against real sanlock daemons: the command's guards, plus this daemon's own host id."""

from __future__ import annotations

from he_ha.admin.contract import CommandResult
from he_ha.lease import LeaseClient
from he_ha.repair.reinit_lockspace import ACTIVE_AGENT, GLOBAL_ONLY
from he_ha.supervisor.lockspace_reset import HOW_TO_PROCEED, LockspaceReset
from tests.integration.repair.conftest import Daemons, Storage, global_maintenance, joined, run
from tests.integration.repair.test_reinitialize_lockspace import delta_leases


def reset(daemons: Daemons, storage: Storage, global_on: bool | None) -> CommandResult:
    """reset_lockspace by the daemon of host 1 (its sanlock daemon: ``daemons.local``)."""

    async def call() -> CommandResult:
        async with await LeaseClient.start(run_dir=daemons.local.run_dir) as client:
            target = LockspaceReset(
                client, storage.layout.lockspace, 1, storage.metadata, storage.layout.vm_lease, query_timeout=5.0
            )
            return await target.run(global_on)

    return run(call())


def refused_while_held(host_id: int) -> list[str]:
    """The lines of the refusal while this daemon holds ``host_id``, outside global maintenance."""
    return [
        "reset_lockspace refused:",
        GLOBAL_ONLY,
        "    this daemon's latest whiteboard read shows global maintenance off",
        ACTIVE_AGENT,
        f"    host {host_id} (this host): its he-ha daemon holds its host id in lockspace 'hosted-engine' (joined)",
        HOW_TO_PROCEED,
    ]


def test_refused_at_once_while_this_daemon_holds_its_host_id(storage: Storage, daemons: Daemons) -> None:
    with joined(daemons.local, storage.layout, 1):
        result = reset(daemons, storage, False)
        assert delta_leases(storage)[1][:2] == (1, 1)  # not rewritten: host 1 still holds its id
    assert not result.ok
    assert result.message.splitlines() == refused_while_held(1)


def test_refused_outside_global_maintenance_with_the_commands_evidence(storage: Storage, daemons: Daemons) -> None:
    before = storage.snapshot()
    result = reset(daemons, storage, None)
    assert not result.ok
    assert result.message.splitlines()[1:] == [
        GLOBAL_ONLY,
        f"    the global block (slot 0) of {storage.metadata} is empty: global maintenance is off",
        HOW_TO_PROCEED,
    ]
    assert storage.snapshot() == before


def test_a_damaged_lockspace_the_daemon_could_not_keep_is_rewritten(storage: Storage, daemons: Daemons) -> None:
    global_maintenance(storage.metadata, True)
    with open(storage.lockspace, "r+b") as volume:  # a power cut tore host 1..8's sectors
        volume.write(b"\xa5" * 8 * 512)
    result = reset(daemons, storage, True)
    assert result.ok, result.message
    assert result.message.startswith(f"Reinitialized lockspace 'hosted-engine' on {storage.lockspace}")
    assert delta_leases(storage) == {}
