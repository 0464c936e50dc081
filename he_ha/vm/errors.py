"""Typed errors of the VM-control layer.

The supervisor tells three situations apart: the hypervisor cannot be asked (unreachable,
hung, busy), libvirt answered with an error, or we refused to act (no lease, bad XML).
"hypervisor unreachable" must never be read as "VM down".
"""

from __future__ import annotations


class VmError(Exception):
    """Base of every error raised by he_ha.vm."""


class HypervisorError(VmError):
    """libvirt could not be asked: the answer says nothing about the VM itself."""


class HypervisorTimeout(HypervisorError):
    """A libvirt call missed its deadline; its thread may still be stuck in libvirt."""

    def __init__(self, operation: str, deadline: float):
        self.operation = operation
        self.deadline = deadline
        super().__init__(f"libvirt call {operation!r} did not return within {deadline:g} s")


class HypervisorBusy(HypervisorError):
    """Refused at once: an earlier call is still stuck, or every libvirt thread is taken."""

    def __init__(self, operation: str, reason: str):
        self.operation = operation
        self.reason = reason
        super().__init__(f"libvirt call {operation!r} refused: {reason}")


class HypervisorUnreachable(HypervisorError):
    """No usable connection to libvirt right now (a reconnect runs in the background)."""

    def __init__(self, operation: str, detail: str):
        self.operation = operation
        self.detail = detail
        super().__init__(f"libvirt call {operation!r}: hypervisor unreachable: {detail}")


class LibvirtCallError(VmError):
    """libvirt answered a call with an error; ``code`` is the VIR_ERR_* number."""

    def __init__(self, operation: str, code: int, domain: int, message: str):
        self.operation = operation
        self.code = code
        self.domain = domain
        self.message = message
        super().__init__(f"libvirt call {operation!r} failed (error {code}): {message}")


class EventLoopConflict(VmError):
    """libvirtaio (or another event implementation) was registered before ours."""


class StartWithoutLease(VmError):
    """Refused to launch the VM: the caller's lease token says the VM lease is not held."""


class DomainXmlError(VmError):
    """The domain XML (or the vm.conf carrying it) is unusable; names what is wrong."""


class DomainNotFound(VmError):
    """The engine VM is not defined or running in this libvirt (for pause/resume/migrate)."""


class DomainConflict(VmError):
    """Another libvirt domain uses the engine VM's name or UUID."""


class MigrationUnsupported(VmError):
    """The hypervisor cannot live-migrate this domain (libvirt's test driver never can)."""

    def __init__(self, destination: str, message: str):
        self.destination = destination
        super().__init__(f"live migration to {destination!r} is not supported here: {message}")


class StartPausedUnsupported(VmError):
    """The hypervisor driver cannot start a domain paused (libvirt's test driver cannot)."""
