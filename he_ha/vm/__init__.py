"""VM control via libvirt: connection holder, domain operations, lifecycle events.

See docs/vm.md. Typical use by the supervisor::

    conn = LibvirtConnection("qemu:///system")
    await conn.start()
    vm = VmController(conn, spec.id)
    watch = VmWatch(vm)
    watch.subscribe(lambda update: tick_now.set())
    await watch.start()
    await vm.start(spec, lease_token)
"""

from he_ha.vm.connection import Backoff, HealthStatus, HypervisorHealth, LibvirtConnection
from he_ha.vm.deadlines import Deadlines
from he_ha.vm.domain import (
    MIGRATE_FLAGS,
    LeaseToken,
    StartOutcome,
    StartResult,
    StopOutcome,
    StopResult,
    VmController,
)
from he_ha.vm.domain_xml import (
    DomainId,
    DomainSpec,
    LeaseSpec,
    domain_spec_from_vm_conf,
    inject_lease,
    leases_in,
    load_domain_spec,
    parse_domain_xml,
)
from he_ha.vm.errors import (
    DomainConflict,
    DomainNotFound,
    DomainXmlError,
    EventLoopConflict,
    HypervisorBusy,
    HypervisorError,
    HypervisorTimeout,
    HypervisorUnreachable,
    LibvirtCallError,
    MigrationUnsupported,
    StartPausedUnsupported,
    StartWithoutLease,
    VmError,
)
from he_ha.vm.events import EventKind, LifecycleEvent, UpdateCause, VmUpdate, VmWatch, classify
from he_ha.vm.state import (
    CrashedReason,
    PausedReason,
    RunningReason,
    ShutoffReason,
    VmState,
    VmStatus,
    state_from_libvirt,
)

__all__ = [
    "MIGRATE_FLAGS",
    "Backoff",
    "CrashedReason",
    "Deadlines",
    "DomainConflict",
    "DomainId",
    "DomainNotFound",
    "DomainSpec",
    "DomainXmlError",
    "EventKind",
    "EventLoopConflict",
    "HealthStatus",
    "HypervisorBusy",
    "HypervisorError",
    "HypervisorHealth",
    "HypervisorTimeout",
    "HypervisorUnreachable",
    "LeaseSpec",
    "LeaseToken",
    "LibvirtCallError",
    "LibvirtConnection",
    "LifecycleEvent",
    "MigrationUnsupported",
    "PausedReason",
    "RunningReason",
    "ShutoffReason",
    "StartOutcome",
    "StartPausedUnsupported",
    "StartResult",
    "StartWithoutLease",
    "StopOutcome",
    "StopResult",
    "UpdateCause",
    "VmController",
    "VmError",
    "VmState",
    "VmStatus",
    "VmUpdate",
    "VmWatch",
    "classify",
    "domain_spec_from_vm_conf",
    "inject_lease",
    "leases_in",
    "load_domain_spec",
    "parse_domain_xml",
    "state_from_libvirt",
]
