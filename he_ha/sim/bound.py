"""The worst-case failover bound, computed from the timing configuration.

After the last fault has stopped at time F, a healthy engine runs again by F + ``total``:

  ready = max(H, Bt + J + L + R + D, MA + UD, ST + X + D) + D + Bk [+ P]
  total = ready + D + S + B

where
  H  = sanlock host-dead time (8 * io_timeout + watchdog fire timeout): the VM lease of a
       holder that died frees at most H after F (sooner if it rejoins: new generation);
  Bt + J + L + R + D = host boot, lockspace join, liveness, read period and one loop:
       a host that came back at F has a mature, fresh whiteboard view by then;
  MA + UD = EngineMaybeAway then EngineUnexpectedlyDown timeouts: a host whose VM died
       before F publishes score 0 at most that long (it matters only when every host did);
  ST + X + D = stop timeout, destroy time and a loop: a host stopping the VM before F has
       it gone by then (the graceful request may have reached a hung guest);
  D  = loop delay (the next tick), Bk = lease-busy back-off (a race lost just before);
  P  = priority_start_delay, only when the hosts' priorities differ (issue 14): a host ready
       to start defers that long at most to a better-priority peer that looks ready but does
       not start (its storage failed, say);
  S, B = VM start time and boot time until the engine is healthy.
Each term is a wait that can run in parallel with the others, hence the max; the random
schedule test checks every run against ``total`` and docs/fsm.md shows the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from he_ha.fsm.timing import TimingConfig
from he_ha.sim.scenario import SimParams


@dataclass(frozen=True, slots=True)
class FailoverBound:
    terms: dict[str, float]
    ready: float
    total: float


def failover_bound(timing: TimingConfig, sim: SimParams, read_period: float, priorities: bool = False) -> FailoverBound:
    loop = timing.loop_delay
    terms = {
        "dead holder's lease frees (H)": sim.host_dead_time,
        "returning host rejoins, view matures (Bt+J+L+R+D)": sim.host_boot_time
        + sim.lockspace_join_time
        + timing.liveness
        + read_period
        + loop,
        "crashed-VM host leaves score 0 (MA+UD)": timing.maybe_away_timeout + timing.unexpectedly_down_timeout,
        "stopping host destroys the VM (ST+X+D)": timing.stop_timeout + sim.vm_destroy_time + loop,
    }
    ready = max(terms.values()) + loop + timing.lease_busy_backoff
    if priorities:
        ready += timing.priority_start_delay
    return FailoverBound(terms, ready, ready + loop + sim.vm_start_time + sim.vm_boot_time)
