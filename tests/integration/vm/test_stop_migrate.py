"""Stopping, pausing and migrating the engine VM on libvirt's test driver."""

from __future__ import annotations

import pytest

from he_ha.vm import (
    DomainNotFound,
    MigrationUnsupported,
    PausedReason,
    RunningReason,
    ShutoffReason,
    StopOutcome,
    VmController,
    VmStatus,
    parse_domain_xml,
)
from tests.integration.vm.helpers import StandInLease, domain_xml


async def test_graceful_shutdown_of_a_persistent_domain(vm: VmController) -> None:
    result = await vm.shutdown(timeout=5.0)

    assert result.outcome is StopOutcome.STOPPED and result.ok
    assert result.state.status is VmStatus.SHUTOFF
    assert result.state.reason is ShutoffReason.SHUTDOWN


async def test_graceful_shutdown_of_the_transient_engine_leaves_nothing(empty_vm: VmController) -> None:
    await empty_vm.start(parse_domain_xml(domain_xml(), "test"), StandInLease(held=True))

    result = await empty_vm.shutdown(timeout=5.0)

    assert result.outcome is StopOutcome.STOPPED
    assert result.state.status is VmStatus.ABSENT


async def test_destroy(vm: VmController) -> None:
    result = await vm.destroy()

    assert result.outcome is StopOutcome.STOPPED
    assert result.state.status is VmStatus.SHUTOFF and result.state.reason is ShutoffReason.DESTROYED


async def test_destroy_of_an_absent_domain_is_success(empty_vm: VmController) -> None:
    result = await empty_vm.destroy()

    assert result.outcome is StopOutcome.ALREADY_STOPPED and result.ok
    assert result.state.status is VmStatus.ABSENT


async def test_stopping_a_stopped_domain_is_success(vm: VmController) -> None:
    await vm.destroy()

    # libvirt answers "domain is not running" (destroy) and an internal error (shutdown on
    # the test driver): both count as already stopped, judged by the state read after.
    again = await vm.destroy()
    shutdown = await vm.shutdown(timeout=1.0)

    for result in (again, shutdown):
        assert result.outcome is StopOutcome.ALREADY_STOPPED
        assert result.state.status is VmStatus.SHUTOFF


async def test_shutdown_of_an_absent_domain_is_success(empty_vm: VmController) -> None:
    result = await empty_vm.shutdown(timeout=1.0)
    assert result.outcome is StopOutcome.ALREADY_STOPPED


async def test_shutdown_timeout_must_be_positive(vm: VmController) -> None:
    with pytest.raises(ValueError, match="timeout"):
        await vm.shutdown(timeout=0)


async def test_pause_and_resume(vm: VmController) -> None:
    paused = await vm.pause()
    resumed = await vm.resume()

    assert paused.status is VmStatus.PAUSED and paused.reason is PausedReason.USER
    assert resumed.status is VmStatus.RUNNING and resumed.reason is RunningReason.UNPAUSED


async def test_pause_of_an_absent_domain_names_it(empty_vm: VmController) -> None:
    with pytest.raises(DomainNotFound, match="HostedEngine"):
        await empty_vm.pause()


async def test_migration_on_the_test_driver_is_unsupported(vm: VmController) -> None:
    # A real libvirt error: the test driver raises VIR_ERR_ARGUMENT_UNSUPPORTED (74).
    with pytest.raises(MigrationUnsupported, match="not supported") as caught:
        await vm.migrate("test:///default")

    assert caught.value.destination == "test:///default"
    assert (await vm.state()).status is VmStatus.RUNNING  # the VM stays where it was


async def test_migration_of_an_absent_domain_names_it(empty_vm: VmController) -> None:
    with pytest.raises(DomainNotFound):
        await empty_vm.migrate("test:///default")
