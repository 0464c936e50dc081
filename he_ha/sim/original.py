"""What the original's constants give for the scenarios the benches measure, as (low, high)
seconds from the fault, so he-ha's figures can be printed next to them.

Sources: spec/ovirt-ha-behaviour.md §3.7 (constants: 10 s loop, 60 s liveness) and §3.11
(sequences), sanlock's timing algebra in spec/peer-ha-systems.md §4.2. The original's FSM
constants are TimingConfig's defaults; sanlock's io_timeout and the VM's start + boot time
are parameters because the benches run with other values than production.
"""

from __future__ import annotations

from he_ha.fsm.timing import TimingConfig
from he_ha.lease import host_dead_seconds

ORIGINAL = TimingConfig()  # the defaults are the original's constants


def paxos_acquire_held_max(io_timeout: float) -> float:
    """The longest sanlock makes an acquire wait for a dead holder's lease: 140/210 s at
    io_timeout 10, 100/135 at 5, 220/360 at 20 (host_dead min / max)."""
    return host_dead_seconds(int(io_timeout)) + 7 * io_timeout


def host_crash(io_timeout: float, boot: float) -> tuple[float, float]:
    """Survivors see the dead host after the 60 s liveness window (plus a loop), then try to
    start every loop while the lease is held; it frees between host-dead time after the last
    renewal (which may precede the crash by one renewal interval) and paxos' maximum."""
    low = max(host_dead_seconds(int(io_timeout)) - 2 * io_timeout, ORIGINAL.liveness)
    high = max(paxos_acquire_held_max(io_timeout), ORIGINAL.liveness + ORIGINAL.loop_delay) + ORIGINAL.loop_delay
    return low + boot, high + boot


def vm_crash(boot: float) -> tuple[float, float]:
    """The crashed host scores 0; the best peer starts at its next read and loop."""
    return boot, 2 * ORIGINAL.loop_delay + boot


def global_maintenance() -> tuple[float, float]:
    """The broker flushes slot 0 within its 10 s storage period; each agent acts within a loop."""
    return 0.0, 2 * ORIGINAL.loop_delay


LOCAL_MAINTENANCE = "never: its CLI refuses --mode=local while the engine runs on the host"
