"""Random fault schedules: seeded, reproducible, checked for safety and for recovery.

A schedule is 2-5 hosts with random clocks, tick phases and read periods, with or without
sanlock status, and 1-3 faults (each with its end where it has one) after the cluster has
started the engine. In half of the schedules the hosts have random priorities (issue 14),
and in a quarter of those failback is on. After the last fault ends (time F) the engine must
run healthy again within the failover bound, and still run at the end of a short tail.
"""

from __future__ import annotations

import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import yaml

from he_ha.fsm.timing import TimingConfig
from he_ha.sim.bound import failover_bound
from he_ha.sim.safety import SafetyViolation
from he_ha.sim.scenario import Event, HostSpec, Scenario, SimParams
from he_ha.sim.world import SimError, World

FAULTS = (
    "power-cycle",
    "vm-crash",
    "engine-hang",
    "engine-migrate",
    "gateway-loss",
    "hypervisor-hang",
    "storage-stall",
    "supervisor-restart",
    "local-maintenance",
    "global-maintenance",
)
INSTANT = ("vm-crash", "supervisor-restart", "engine-migrate")
FIRST_FAULT = 200.0  # the cold-started cluster runs the engine by then
FAULT_WINDOW = 300.0
SHORT_FAULT = 250.0  # most faults last up to this long...
LONG_FAULT = 700.0  # ...one in four up to this: long enough for every timeout to fire
TAIL = 60.0  # the engine must still run this long after it recovered
PRIORITIES = (0, 0, 1, 2, 5, -1)  # drawn per host in the schedules with priorities


@dataclass(frozen=True, slots=True)
class ScheduleOutcome:
    seed: int
    hosts: int
    faults_end: float
    recovery: float | None  # seconds after faults_end until the lasting healthy period; None: never
    bound: float
    stable: bool  # that period lasted through the tail
    steps: int

    @property
    def ok(self) -> bool:
        return self.recovery is not None and self.recovery <= self.bound and self.stable


def random_schedule(seed: int, timing: TimingConfig, sim: SimParams) -> tuple[Scenario, float]:
    """The scenario for `seed` and the time its last fault ends."""
    rng = random.Random(seed)
    # Priorities and failback come from a generator of their own, so a seed keeps the hosts
    # and faults it had before priorities existed.
    prio_rng = random.Random(f"priorities-{seed}")
    with_priorities = prio_rng.random() < 0.5
    # Likewise hosts whose libvirt refuses live migration (failed migrations fall back to a
    # shutdown and a cold start elsewhere; issue 14).
    migration_rng = random.Random(f"migration-{seed}")
    count = rng.randint(2, 5)
    hosts = tuple(
        HostSpec(
            i,
            f"host{i}",
            read_period=rng.choice((5.0, 10.0)),
            tick_phase=round(rng.uniform(0, timing.loop_delay), 1),
            clock_offset=float(rng.randint(0, 10**6)),
            priority=prio_rng.choice(PRIORITIES) if with_priorities else 0,
            refuses_migration=migration_rng.random() < 0.3,
        )
        for i in range(1, count + 1)
    )
    if with_priorities and prio_rng.random() < 0.25:
        timing = replace(timing, failback=True)
    events: list[Event] = []
    ends = [FIRST_FAULT]
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(FAULTS)
        at = round(FIRST_FAULT + rng.uniform(0, FAULT_WINDOW), 1)
        end = round(at + rng.uniform(5, SHORT_FAULT if rng.random() < 0.75 else LONG_FAULT), 1)
        host = rng.randint(1, count)
        events.extend(_fault(kind, at, end, host))
        ends.append(end if kind not in INSTANT else at + sim.supervisor_restart_time)
    scenario = Scenario(
        name=f"random-{seed}",
        hosts=hosts,
        events=tuple(sorted(events, key=lambda e: e.at)),
        until=0.0,  # run_schedule drives the clock
        sim=replace(sim, sanlock_status=rng.random() < 0.7),
        timing=timing,
    )
    return scenario, max(ends)


def _fault(kind: str, at: float, end: float, host: int) -> list[Event]:
    if kind == "power-cycle":
        return [Event(at, "power-off", host), Event(end, "power-on", host)]
    if kind == "vm-crash":
        return [Event(at, "vm-crash")]
    if kind == "engine-migrate":
        return [Event(at, "engine-migrate", host)]
    if kind == "engine-hang":
        return [Event(at, "engine-hang"), Event(end, "engine-recover")]
    if kind == "hypervisor-hang":
        return [Event(at, "hypervisor-hang", host), Event(end, "hypervisor-recover", host)]
    if kind == "gateway-loss":
        return [Event(at, "gateway-loss", host), Event(end, "gateway-restore", host)]
    if kind == "storage-stall":
        return [Event(at, "storage-stall", host), Event(end, "storage-resume", host)]
    if kind == "supervisor-restart":
        return [Event(at, "supervisor-restart", host)]
    if kind == "local-maintenance":
        return [Event(at, "local-maintenance", host, True), Event(end, "local-maintenance", host, False)]
    return [Event(at, "global-maintenance", None, True), Event(end, "global-maintenance", None, False)]


def run_schedule(seed: int, timing: TimingConfig, sim: SimParams) -> ScheduleOutcome:
    """Run one schedule; SafetyViolation (with the seed and schedule) propagates.

    Recovery is the start of the healthy period that lasts through the tail (a stop decided
    during the faults may still take the engine down shortly after F); it must begin
    within the bound after F.
    """
    scenario, faults_end = random_schedule(seed, timing, sim)
    priorities = len({h.priority for h in scenario.hosts}) > 1
    bound = failover_bound(timing, scenario.sim, max(h.read_period for h in scenario.hosts), priorities).total
    world = World(scenario, seed=seed)
    try:
        world.run_until(faults_end)
        deadline = faults_end + bound
        while True:
            while not world.engine_ok[-1][1] and world.t < deadline:
                world.run_until(min(world.t + timing.loop_delay, deadline))
            if not world.engine_ok[-1][1]:
                return ScheduleOutcome(seed, len(scenario.hosts), faults_end, None, bound, False, world.steps)
            healthy_since = world.engine_ok[-1][0]
            world.run_until(world.t + TAIL)
            if world.engine_ok[-1] == (healthy_since, True):
                recovery = max(0.0, healthy_since - faults_end)
                return ScheduleOutcome(seed, len(scenario.hosts), faults_end, recovery, bound, True, world.steps)
            if world.t >= deadline:
                return ScheduleOutcome(seed, len(scenario.hosts), faults_end, None, bound, False, world.steps)
    finally:
        world.close()  # its supervisors' tasks end with it


@dataclass(frozen=True, slots=True)
class Summary:
    schedules: int
    failures: tuple[str, ...]  # one message per failing seed: the seed, what broke, the schedule
    worst_recovery: float
    worst_seed: int | None
    bound: float
    steps: int


def _run_chunk(args: tuple[list[int], TimingConfig, SimParams]) -> Summary:
    seeds, timing, sim = args
    failures: list[str] = []
    worst, worst_seed, steps, bound = 0.0, None, 0, 0.0
    for seed in seeds:
        try:
            outcome = run_schedule(seed, timing, sim)
        except (SafetyViolation, SimError) as exc:
            failures.append(f"seed {seed}: {exc}")
            continue
        steps += outcome.steps
        bound = max(bound, outcome.bound)
        if not outcome.ok:
            schedule = yaml.safe_dump(random_schedule(seed, timing, sim)[0].to_mapping(), sort_keys=False)
            failures.append(f"seed {seed}: no lasting recovery within {outcome.bound:.0f} s: {outcome}\n{schedule}")
        elif outcome.recovery is not None and outcome.recovery >= worst:
            worst, worst_seed = outcome.recovery, seed
    return Summary(len(seeds), tuple(failures), worst, worst_seed, bound, steps)


def run_many(seeds: range, timing: TimingConfig, sim: SimParams, workers: int = 1) -> Summary:
    """Run every seed, in `workers` processes when more than one; collect all failures."""
    chunks = [list(seeds[i : i + 250]) for i in range(0, len(seeds), 250)]
    jobs = [(chunk, timing, sim) for chunk in chunks]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(_run_chunk, jobs))
    else:
        parts = [_run_chunk(job) for job in jobs]
    worst = max(parts, key=lambda p: p.worst_recovery)
    return Summary(
        schedules=sum(p.schedules for p in parts),
        failures=tuple(f for p in parts for f in p.failures),
        worst_recovery=worst.worst_recovery,
        worst_seed=worst.worst_seed,
        bound=max(p.bound for p in parts),
        steps=sum(p.steps for p in parts),
    )
