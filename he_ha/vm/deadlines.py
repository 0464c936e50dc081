"""How long each kind of libvirt call may take before it counts as hung."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Deadlines:
    """Seconds. Defaults sized for a real libvirtd with QEMU on a busy host.

    ``start``: QEMU start-up plus libvirt's sanlock plugin acquiring the lease.
    ``destroy``: libvirt itself waits up to ~30 s for QEMU to die after SIGKILL on heavy I/O.
    ``migrate``: a whole live migration of a multi-GiB VM.
    """

    open: float = 10.0
    query: float = 5.0
    start: float = 60.0
    shutdown_request: float = 10.0
    destroy: float = 60.0
    migrate: float = 900.0
    close: float = 5.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"deadline {name!r} must be > 0 seconds, got {value!r}")
