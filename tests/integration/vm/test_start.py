"""Starting the engine VM on libvirt's test driver: lease guard, idempotence, clean-up."""

from __future__ import annotations

from pathlib import Path

import libvirt
import pytest

from he_ha.vm import (
    DomainConflict,
    LeaseSpec,
    LibvirtConnection,
    StartOutcome,
    StartPausedUnsupported,
    StartWithoutLease,
    VmController,
    VmStatus,
    inject_lease,
    leases_in,
    load_domain_spec,
    parse_domain_xml,
)
from he_ha.vm.state import RunningReason
from tests.integration.vm.helpers import (
    ENGINE,
    ENGINE_UUID,
    OTHER_UUID,
    StandInLease,
    domain_xml,
    started_connection,
    write_node,
    write_vm_conf,
)


async def _persistent(conn: LibvirtConnection) -> bool:
    return bool(await conn.call("isPersistent", lambda c: c.lookupByUUIDString(ENGINE_UUID).isPersistent()))


async def test_start_from_vm_conf_creates_a_transient_domain(empty_vm: VmController, tmp_path: Path) -> None:
    spec = load_domain_spec(write_vm_conf(tmp_path / "vm.conf", domain_xml()))
    assert spec.id == ENGINE

    result = await empty_vm.start(spec, StandInLease(held=True))

    assert result.outcome is StartOutcome.STARTED
    assert result.state.status is VmStatus.RUNNING and result.state.reason is RunningReason.BOOTED
    assert not result.cleaned_up
    assert await empty_vm.state() == result.state
    # Transient: libvirt keeps no definition, so nothing can autostart it on host boot.
    assert not await _persistent(empty_vm.connection)


async def test_start_from_plain_xml_file(empty_vm: VmController, tmp_path: Path) -> None:
    path = tmp_path / "engine.xml"
    path.write_text(domain_xml())

    result = await empty_vm.start(load_domain_spec(path), StandInLease(held=True))

    assert result.outcome is StartOutcome.STARTED
    assert (await empty_vm.state()).status is VmStatus.RUNNING


async def test_start_is_refused_without_the_lease_and_touches_nothing(empty_vm: VmController) -> None:
    lease = StandInLease(held=False)

    with pytest.raises(StartWithoutLease, match="does not hold the VM lease"):
        await empty_vm.start(parse_domain_xml(domain_xml(), "test"), lease)

    assert lease.checks == 1
    assert (await empty_vm.state()).status is VmStatus.ABSENT


async def test_start_is_refused_when_the_lease_is_lost_during_clean_up(vm: VmController) -> None:
    # The node's engine domain is defined and shut off: start must clean it up first, and
    # checks the lease again after that, right before launching.
    await vm.destroy()

    class LostAfterFirstCheck(StandInLease):
        def is_held(self) -> bool:
            super().is_held()
            return self.checks == 1

    lease = LostAfterFirstCheck(held=True)
    with pytest.raises(StartWithoutLease):
        await vm.start(parse_domain_xml(domain_xml(), "test"), lease)

    assert lease.checks == 2
    assert not (await vm.state()).active


async def test_start_twice_reports_already_running(empty_vm: VmController) -> None:
    spec = parse_domain_xml(domain_xml(), "test")
    first = await empty_vm.start(spec, StandInLease(held=True))
    second = await empty_vm.start(spec, StandInLease(held=True))

    assert first.outcome is StartOutcome.STARTED
    assert second.outcome is StartOutcome.ALREADY_RUNNING
    assert second.state.status is VmStatus.RUNNING


async def test_paused_vm_counts_as_already_running_and_is_left_alone(vm: VmController) -> None:
    await vm.pause()

    result = await vm.start(parse_domain_xml(domain_xml(), "test"), StandInLease(held=True))

    assert result.outcome is StartOutcome.ALREADY_RUNNING
    assert result.state.status is VmStatus.PAUSED
    assert (await vm.state()).status is VmStatus.PAUSED


async def test_shut_off_definition_is_cleaned_up_then_started_transient(vm: VmController) -> None:
    await vm.destroy()
    assert (await vm.state()).status is VmStatus.SHUTOFF
    assert await _persistent(vm.connection)

    result = await vm.start(parse_domain_xml(domain_xml(), "test"), StandInLease(held=True))

    assert result.outcome is StartOutcome.STARTED and result.cleaned_up
    assert result.state.status is VmStatus.RUNNING
    assert not await _persistent(vm.connection)


async def test_running_persistent_domain_loses_its_autostart(vm: VmController) -> None:
    await vm.connection.call("setAutostart", lambda c: c.lookupByUUIDString(ENGINE_UUID).setAutostart(1))

    result = await vm.start(parse_domain_xml(domain_xml(), "test"), StandInLease(held=True))

    assert result.outcome is StartOutcome.ALREADY_RUNNING
    assert await vm.connection.call("autostart", lambda c: c.lookupByUUIDString(ENGINE_UUID).autostart()) == 0


async def test_start_paused_on_the_test_driver_is_a_typed_error(empty_vm: VmController) -> None:
    # libvirt's test driver rejects VIR_DOMAIN_START_PAUSED ("unsupported flags (0x1)").
    with pytest.raises(StartPausedUnsupported, match="unsupported flags"):
        await empty_vm.start(parse_domain_xml(domain_xml(), "test"), StandInLease(held=True), paused=True)
    assert (await empty_vm.state()).status is VmStatus.ABSENT


async def test_another_domain_with_the_engine_name_is_a_conflict(tmp_path: Path) -> None:
    async with started_connection(write_node(tmp_path, domain_xml(uuid=OTHER_UUID))) as conn:
        vm = VmController(conn, ENGINE)
        with pytest.raises(DomainConflict, match=OTHER_UUID):
            await vm.start(parse_domain_xml(domain_xml(), "test"), StandInLease(held=True))
        # The foreign domain is untouched.
        state = await conn.call("state", lambda c: c.lookupByUUIDString(OTHER_UUID).state())
        assert state[0] == libvirt.VIR_DOMAIN_RUNNING


async def test_spec_for_another_vm_is_refused(empty_vm: VmController) -> None:
    with pytest.raises(DomainConflict, match="manages"):
        await empty_vm.start(parse_domain_xml(domain_xml(uuid=OTHER_UUID), "test"), StandInLease(held=True))


async def test_injected_lease_reaches_libvirt(empty_vm: VmController, tmp_path: Path) -> None:
    lease = LeaseSpec("hosted-engine", "engine-vm", tmp_path / "vm.lease", 1048576)
    spec = inject_lease(parse_domain_xml(domain_xml(), "test"), lease)

    await empty_vm.start(spec, StandInLease(held=True))

    live_xml = await empty_vm.connection.call("XMLDesc", lambda c: c.lookupByUUIDString(ENGINE_UUID).XMLDesc())
    assert leases_in(parse_domain_xml(live_xml, "live")) == [lease]
