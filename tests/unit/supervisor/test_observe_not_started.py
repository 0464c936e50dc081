"""With the QEMU holder, a local QEMU that has not run guest code yet (engine-health detail
``WaitForLaunch``, libvirt's PAUSED/STARTING_UP) gets lease "cannot tell": libvirt's sanlock
plugin acquires every ``<lease>`` before its vCPUs run, so it is never a copy running without
its lease. Such a reading comes from this host's own launch (possibly delivered after the
launch ended, e.g. a start refused for the lease) or from the incoming QEMU of a live
migration to this host while the source still owns the leases (docs/supervisor.md "Live
migration"); the foreign-lease and lease-lost rules must not destroy it."""

from __future__ import annotations

from pathlib import Path

from he_ha.fsm import EngineHealth, LeaseStatus
from he_ha.lease import LeaseOwner
from he_ha.supervisor.env import SYSTEM_CLOCK, HaConfFile, HostEnv
from he_ha.supervisor.observe import Observer, not_started
from tests.unit.supervisor.test_engine_lease import OURS, FakeClient, qemu
from tests.unit.supervisor.test_observe import host, view

OWN = 2
STARTING = EngineHealth("up", "bad", "WaitForLaunch", "bad vm status")
RUNNING = EngineHealth("up", "good", "Up")
SOURCE_OWNS = view(False, [LeaseOwner(1, 4, 1)], [host(1, 4), host(OWN, 3)])  # host 1 holds the lease


class OtherHolder:
    kind = "keeper"
    launch_epoch = 0


def observer(holder: object) -> Observer:
    # The type: ignore must stay on the line mypy reports: not reformatted.
    # fmt: off
    env = HostEnv(clock=SYSTEM_CLOCK, whiteboard=None, sanlock=None, lockspace=None,  # type: ignore[arg-type]
                  vm_lease=OURS, holder=holder, vm=None, readings=None, health=None,  # type: ignore[arg-type]
                  ha_conf=HaConfFile(Path("/nonexistent"), 1.0), definitions=None, notifier=None,  # type: ignore[arg-type]
                  decisions=None, systemd=None)  # type: ignore[arg-type]
    # fmt: on
    # The type: ignore must stay on the line mypy reports: not reformatted.
    # fmt: off
    return Observer(host_id=OWN, env=env, reader=None, vm_memory_mib=None,  # type: ignore[arg-type]
                    conf_up_to_date=True, storage_timeout=1.0)
    # fmt: on


def test_a_qemu_that_never_ran_is_recognised() -> None:
    assert not_started(STARTING)
    assert not not_started(RUNNING) and not not_started(None)
    assert not not_started(EngineHealth("down", "bad", "Migration Destination", "bad vm status"))
    assert not not_started(EngineHealth("up", "bad", "Paused", "bad vm status"))  # it ran: its lease counts


def test_with_the_qemu_holder_its_lease_answer_is_cannot_tell() -> None:
    obs = observer(qemu(FakeClient()))
    assert obs._lease_status(SOURCE_OWNS, 0, STARTING) is None
    assert obs._lease_status(SOURCE_OWNS, 0, RUNNING) == LeaseStatus(1, False)  # running: the owner decides


def test_other_holders_answer_as_before() -> None:
    # the keeper holds the lease before the launch: a VM starting here without it is no launch of ours
    assert observer(OtherHolder())._lease_status(SOURCE_OWNS, 0, STARTING) == LeaseStatus(1, False)
