"""The transition table as data: every rule ``step`` can fire, with a stable id, the states
it may fire in and the state it leads to. ``step`` only ever returns these rules, the
state diagram is drawn from them, and tests check every decision against them.

Guards are the original's decorators (spec §3.5): checks that run before a state's own
logic, outermost first. ``STATE_GUARDS`` gives each state's guards in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from he_ha.fsm.states import StateName as S

DECISION_STATES = frozenset(s for s in S if s is not S.AGENT_STOPPED)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    sources: frozenset[S]
    dest: S | None  # None: stay in the current state
    nowait: bool  # tick again at once (the original's NOWAIT)
    text: str

    def target(self, current: S) -> S:
        return current if self.dest is None else self.dest


RULES: dict[str, Rule] = {}


def _rule(rule_id: str, sources: frozenset[S] | set[S], dest: S | None, text: str, *, nowait: bool = False) -> Rule:
    if rule_id in RULES:
        raise ValueError(f"duplicate rule id {rule_id!r}")
    rule = Rule(rule_id, frozenset(sources), dest, nowait, text)
    RULES[rule_id] = rule
    return rule


# --- guards (the original's decorators) ------------------------------------------------


class GuardKind(StrEnum):
    TIMEOUT = "timeout"
    GLOBAL = "global"  # global maintenance flag set
    LOCAL = "local"  # local maintenance flag set and no VM running here (see docs/fsm.md)
    VM_UNKNOWN = "vm-unknown"  # local engine health says vm "unknown"


@dataclass(frozen=True, slots=True)
class Guard:
    kind: GuardKind
    dest: S | None  # None: hold the current state
    timeout: str | None = None  # TimingConfig attribute holding the timeout
    # The timer counts engine silence only: it restarts whenever the local engine shows life
    # (healthy or answering but not ready), so slow is never taken for dead (issue 14).
    silence: bool = False


def _timeout(dest: S, attribute: str, *, silence: bool = False) -> Guard:
    return Guard(GuardKind.TIMEOUT, dest, attribute, silence)


_GLOBAL = Guard(GuardKind.GLOBAL, S.GLOBAL_MAINTENANCE)
_LOCAL = Guard(GuardKind.LOCAL, S.LOCAL_MAINTENANCE)
_UNKNOWN = Guard(GuardKind.VM_UNKNOWN, S.UNKNOWN_LOCAL_VM_STATE)

STATE_GUARDS: dict[S, tuple[Guard, ...]] = {
    S.REINITIALIZE: (_GLOBAL, _UNKNOWN, _LOCAL),
    S.ENGINE_DOWN: (_GLOBAL, _UNKNOWN, _LOCAL),
    S.ENGINE_START: (_GLOBAL, _UNKNOWN, _LOCAL),
    S.ENGINE_STARTING: (_timeout(S.ENGINE_STOP, "starting_timeout", silence=True), _GLOBAL, _UNKNOWN, _LOCAL),
    # EngineUp handles local maintenance itself, by migrating (the original ignored it).
    S.ENGINE_UP: (_GLOBAL, _UNKNOWN),
    S.ENGINE_UP_BAD_HEALTH: (_timeout(S.ENGINE_STOP, "bad_health_timeout", silence=True), _GLOBAL, _UNKNOWN),
    S.ENGINE_MAYBE_AWAY: (_timeout(S.ENGINE_UNEXPECTEDLY_DOWN, "maybe_away_timeout"), _GLOBAL, _UNKNOWN, _LOCAL),
    S.ENGINE_UNEXPECTEDLY_DOWN: (_timeout(S.ENGINE_DOWN, "unexpectedly_down_timeout"), _GLOBAL, _UNKNOWN, _LOCAL),
    # The original's order here is global, local, vm-unknown.
    S.ENGINE_STOP: (_timeout(S.ENGINE_FORCE_STOP, "stop_timeout"), _GLOBAL, _LOCAL, _UNKNOWN),
    S.ENGINE_FORCE_STOP: (_GLOBAL, _LOCAL, _UNKNOWN),
    S.GLOBAL_MAINTENANCE: (Guard(GuardKind.GLOBAL, None), _LOCAL),
    # LocalMaintenance checks its own flag in its body (it may have a VM to migrate away).
    S.LOCAL_MAINTENANCE: (),
    S.LOCAL_MAINTENANCE_MIGRATE_VM: (_GLOBAL, Guard(GuardKind.VM_UNKNOWN, None)),
    S.ENGINE_MIGRATING_AWAY: (_GLOBAL, Guard(GuardKind.VM_UNKNOWN, None)),
    S.UNKNOWN_LOCAL_VM_STATE: (_GLOBAL, Guard(GuardKind.VM_UNKNOWN, None), _LOCAL),
}

_NOWAIT_TIMEOUTS = frozenset({S.ENGINE_MAYBE_AWAY})


def _guard_sources(kind: GuardKind, dest_is_none: bool) -> set[S]:
    return {
        s for s, guards in STATE_GUARDS.items() for g in guards if g.kind is kind and (g.dest is None) == dest_is_none
    }


def _guard_rule_id(state: S, guard: Guard) -> str:
    if guard.kind is GuardKind.TIMEOUT:
        return f"timeout.{state.value}"
    return f"guard.{guard.kind.value}" + (".hold" if guard.dest is None else "")


for _state, _guards in STATE_GUARDS.items():
    for _guard in _guards:
        if _guard.kind is GuardKind.TIMEOUT:
            _rule(
                _guard_rule_id(_state, _guard),
                {_state},
                _guard.dest,
                f"{_guard.timeout} of engine silence expired" if _guard.silence else f"{_guard.timeout} expired",
                nowait=_state in _NOWAIT_TIMEOUTS,
            )
for _kind, _text in (
    (GuardKind.GLOBAL, "global maintenance is set"),
    (GuardKind.LOCAL, "local maintenance is set and no VM runs here"),
    (GuardKind.VM_UNKNOWN, "the local VM state is unknown"),
):
    _dests = {g.dest for gs in STATE_GUARDS.values() for g in gs if g.kind is _kind and g.dest is not None}
    if _dests:
        _rule(f"guard.{_kind.value}", _guard_sources(_kind, False), _dests.pop(), _text)
    if _guard_sources(_kind, True):
        _rule(f"guard.{_kind.value}.hold", _guard_sources(_kind, True), None, _text)


def guard_rule(state: S, guard: Guard) -> Rule:
    return RULES[_guard_rule_id(state, guard)]


# --- safety ---------------------------------------------------------------------------------

SAFETY_FOREIGN_LEASE = _rule(
    "safety.foreign-lease",
    DECISION_STATES - {S.ENGINE_FORCE_STOP},
    S.ENGINE_FORCE_STOP,
    "the VM runs here while another host owns its lease: destroy it now (invariant 4)",
    nowait=True,
)
SAFETY_FOREIGN_LEASE_HOLD = _rule(
    "safety.foreign-lease.hold", {S.ENGINE_FORCE_STOP}, None, "foreign lease: destroy already under way"
)
SAFETY_LEASE_LOST = _rule(
    "safety.lease-lost",
    DECISION_STATES - {S.ENGINE_FORCE_STOP},
    S.ENGINE_FORCE_STOP,
    "the VM runs here but this host does not hold its lease: destroy it now (invariants 1, 2)",
    nowait=True,
)
SAFETY_LEASE_LOST_HOLD = _rule(
    "safety.lease-lost.hold", {S.ENGINE_FORCE_STOP}, None, "lease lost: destroy already under way"
)

# --- ReinitializeFSM ----------------------------------------------------------------------------

REINIT_AWAIT_HEALTH = _rule("reinit.await-health", {S.REINITIALIZE}, None, "no engine-health reading yet (B14)")
REINIT_VM_UP = _rule("reinit.vm-up", {S.REINITIALIZE}, S.ENGINE_STARTING, "the VM runs here", nowait=True)
REINIT_VM_DOWN = _rule("reinit.vm-down", {S.REINITIALIZE}, S.ENGINE_DOWN, "the VM does not run here")

# --- EngineDown -------------------------------------------------------------------------------------

_DOWN = {S.ENGINE_DOWN}
DOWN_ENGINE_HERE = _rule("down.engine-here", _DOWN, S.ENGINE_STARTING, "the best engine runs here", nowait=True)
DOWN_ENGINE_ELSEWHERE = _rule("down.engine-elsewhere", _DOWN, None, "a live peer runs the engine")
DOWN_VIEW_IMMATURE = _rule("down.view-immature", _DOWN, None, "not enough whiteboard history to judge liveness")
DOWN_VIEW_STALE = _rule("down.view-stale", _DOWN, None, "the whiteboard view is stale")
DOWN_STORAGE = _rule("down.storage-bad", _DOWN, None, "storage is not usable here")
DOWN_TOO_NEW = _rule("down.peer-too-new", _DOWN, None, "a live peer writes newer metadata (B13)")
DOWN_LEASE_HELD = _rule("down.lease-held", _DOWN, None, "a live peer holds the VM lease")
DOWN_LEASE_BACKOFF = _rule("down.lease-backoff", _DOWN, None, "the lease was busy moments ago")
DOWN_START = _rule("down.start", _DOWN, S.ENGINE_START, "no live peer has a higher score", nowait=True)
DOWN_BETTER_HOST = _rule("down.better-host", _DOWN, None, "a live peer has a higher score")

# Host priorities (issue 14; docs/fsm.md "Host priorities"). The band: hosts whose score is
# within yield_threshold of the best live score (this host's included). Inside it the better
# priority starts the VM; a lower-priority host defers to a better one that is ready, bounded.
DOWN_START_PREFERRED = _rule(
    "down.start.preferred",
    _DOWN,
    S.ENGINE_START,
    "a live peer scores higher, by less than yield_threshold, but has a lower priority: this host starts",
    nowait=True,
)
DOWN_PRIORITY_DEFER = _rule(
    "down.priority-defer",
    _DOWN,
    None,
    "a live eligible peer with a better priority, inside the band, is down and ready to start the VM: "
    "let it, for priority_start_delay at most",
)
DOWN_PRIORITY_EXPIRED = _rule(
    "down.priority-defer.expired",
    _DOWN,
    S.ENGINE_START,
    "the better-priority peer did not start the VM within priority_start_delay: this host starts",
    nowait=True,
)

DOWN_RESTART_BACKOFF = _rule(
    "down.restart-backoff", _DOWN, None, "a local restart after a VM crash waits its back-off (restart_backoff)"
)

# --- restart locally first (issue 14): the VM crashed here and no live peer can take it ------------------

_CRASH_SOURCES = {S.ENGINE_UP, S.ENGINE_UP_BAD_HEALTH, S.ENGINE_STARTING, S.ENGINE_MAYBE_AWAY}
CRASH_RESTART_HERE = _rule(
    "vm-crashed.restart-here",
    _CRASH_SOURCES,
    S.ENGINE_START,
    "the VM crashed here, no live peer can take it, retries left: restart it here at once (lease first)",
)
CRASH_RESTART_BACKOFF = _rule(
    "vm-crashed.restart-backoff",
    _CRASH_SOURCES,
    S.ENGINE_DOWN,
    "the VM crashed here again, no live peer can take it, retries left: restart it here after the back-off",
)

# --- EngineStart ----------------------------------------------------------------------------------------

_START = {S.ENGINE_START}
START_AWAIT = _rule("start.await", _START, None, "waiting for the start result")
START_OK = _rule("start.ok", _START, S.ENGINE_STARTING, "lease acquired and VM launched")
START_FAILED = _rule("start.failed", _START, S.ENGINE_DOWN, "the start failed")
START_LEASE_BUSY = _rule("start.lease-busy", _START, S.ENGINE_DOWN, "another host holds the VM lease")
START_TIMEOUT = _rule("start.timeout", _START, S.ENGINE_DOWN, "no start result within action_timeout")

# --- EngineStarting -------------------------------------------------------------------------------------

_STARTING = {S.ENGINE_STARTING}
STARTING_UP = _rule("starting.up", _STARTING, S.ENGINE_UP, "the VM is up and the engine healthy")
STARTING_POWERING_UP = _rule("starting.powering-up", _STARTING, None, "the VM is up, the engine not healthy yet")
STARTING_NOT_READY = _rule(
    "starting.not-ready",
    _STARTING,
    None,
    "the engine answers but is not ready (alive): the starting timeout counts silence only",
)
STARTING_NOT_READY_CEILING = _rule(
    "starting.not-ready-ceiling",
    _STARTING,
    S.ENGINE_STOP,
    "the engine was not healthy for not_ready_timeout (its ceiling) since the VM started",
)
STARTING_DOWN = _rule(
    "starting.vm-down", _STARTING, S.ENGINE_FORCE_STOP, "the VM went down: another host took over", nowait=True
)
STARTING_VANISHED = _rule(
    "starting.vm-vanished", _STARTING, S.ENGINE_MAYBE_AWAY, "the VM went down unexpectedly", nowait=True
)

# --- EngineUp and EngineUpBadHealth -----------------------------------------------------------------------

_UP = {S.ENGINE_UP, S.ENGINE_UP_BAD_HEALTH}
UP_VM_DOWN = _rule("up.vm-down", _UP, S.ENGINE_MAYBE_AWAY, "the VM went down (shut down or migrated away)")
UP_VM_CRASHED = _rule("up.vm-crashed", _UP, S.ENGINE_UNEXPECTEDLY_DOWN, "the VM went down unexpectedly")
UP_VM_NOT_UP = _rule("up.vm-not-up", _UP, S.ENGINE_MAYBE_AWAY, "the VM is not up here", nowait=True)
UP_ENGINE_ELSEWHERE = _rule("up.engine-elsewhere", _UP, S.ENGINE_STOP, "a live peer runs a better-ranked engine")
UP_MIGRATE = _rule(
    "up.local-maintenance.migrate", _UP, S.LOCAL_MAINTENANCE_MIGRATE_VM, "local maintenance: migrate the VM away"
)
UP_NO_TARGET = _rule(
    "up.local-maintenance.no-target", _UP, None, "local maintenance, but no live eligible host to migrate to"
)
UP_EVACUATE = _rule(
    "up.local-maintenance.evacuate",
    _UP,
    S.ENGINE_STOP,
    "local maintenance: live migration failed, shut the VM down for an eligible peer to start it",
)
UP_YIELD_MIGRATE = _rule(
    "up.yield.migrate",
    _UP,
    S.ENGINE_MIGRATING_AWAY,
    "a peer out-scored us by the threshold for the dwell time: migrate the VM to it live",
)
UP_YIELD = _rule(
    "up.yield",
    _UP,
    S.ENGINE_STOP,
    "a peer out-scored us by the threshold for the dwell time and a live migration is not possible "
    "(it failed moments ago, or no eligible target): shut the VM down for it to start",
)
UP_BAD_HEALTH = _rule("up.bad-health", {S.ENGINE_UP}, S.ENGINE_UP_BAD_HEALTH, "the engine is not healthy")
UP_BAD_HEALTH_PERSISTS = _rule(
    "up.bad-health.persists", {S.ENGINE_UP_BAD_HEALTH}, None, "the engine is still not healthy"
)
UP_NOT_READY = _rule(
    "up.not-ready",
    _UP,
    S.ENGINE_UP_BAD_HEALTH,
    "the engine answers but is not ready (alive): the bad-health timeout counts silence only",
)
UP_NOT_READY_CEILING = _rule(
    "up.not-ready-ceiling",
    {S.ENGINE_UP_BAD_HEALTH},
    S.ENGINE_STOP,
    "the engine was not healthy for not_ready_timeout (its ceiling) in EngineUpBadHealth",
)
UP_FAILBACK_MIGRATE = _rule(
    "up.failback.migrate",
    {S.ENGINE_UP},
    S.ENGINE_MIGRATING_AWAY,
    "failback (configured): a better-priority host inside the band was eligible and ready for failback_dwell: "
    "migrate the VM to it live",
)
UP_FAILBACK = _rule(
    "up.failback",
    {S.ENGINE_UP},
    S.ENGINE_STOP,
    "failback (configured): a better-priority host inside the band was eligible and ready for failback_dwell; "
    "a live migration failed moments ago: shut the VM down for it to start",
)
UP_FAILBACK_DWELL = _rule(
    "up.failback.dwell",
    {S.ENGINE_UP},
    None,
    "failback (configured): a better-priority host is eligible; its dwell is not over, or a failed failback backs off",
)
UP_OUTRANKED = _rule("up.outranked", _UP, S.ENGINE_UP, "a peer out-scores us by the threshold; dwell not over")
UP_OK = _rule("up.ok", _UP, S.ENGINE_UP, "the engine is up and healthy here")

# --- EngineMaybeAway / EngineUnexpectedlyDown --------------------------------------------------------------

_AWAY = {S.ENGINE_MAYBE_AWAY}
AWAY_VM_DOWN = _rule("maybe-away.vm-down", _AWAY, S.ENGINE_DOWN, "the VM is down here")
AWAY_VM_CRASHED = _rule("maybe-away.vm-crashed", _AWAY, S.ENGINE_UNEXPECTEDLY_DOWN, "the VM went down unexpectedly")
AWAY_VM_UP = _rule("maybe-away.vm-up", _AWAY, S.ENGINE_UP, "the VM is up here again")
AWAY_ELSEWHERE = _rule("maybe-away.engine-elsewhere", _AWAY, S.ENGINE_DOWN, "a live peer runs the engine")
AWAY_WAIT = _rule("maybe-away.wait", _AWAY, None, "the VM is missing here and runs nowhere else yet")

_UNEXPECTED = {S.ENGINE_UNEXPECTEDLY_DOWN}
UD_ENGINE_HERE = _rule("unexpectedly-down.engine-here", _UNEXPECTED, S.ENGINE_UP, "the engine runs here again")
UD_WAIT = _rule("unexpectedly-down.wait", _UNEXPECTED, None, "score 0 while other hosts take over")

# --- EngineStop / EngineForceStop ---------------------------------------------------------------------------

_STOP = {S.ENGINE_STOP}
STOP_VM_GONE = _rule("stop.vm-gone", _STOP, S.ENGINE_DOWN, "the VM is no longer up here")
STOP_PAUSED = _rule("stop.paused", _STOP, S.ENGINE_FORCE_STOP, "the VM is paused: force it off", nowait=True)
STOP_FAILED = _rule("stop.failed", _STOP, S.REINITIALIZE, "the shutdown request failed")
STOP_AWAIT = _rule("stop.await", _STOP, None, "waiting for the guest to shut down")

_FORCE = {S.ENGINE_FORCE_STOP}
FORCE_DONE = _rule("force-stop.done", _FORCE, S.ENGINE_DOWN, "the VM was destroyed")
FORCE_FAILED = _rule("force-stop.failed", _FORCE, S.REINITIALIZE, "destroying the VM failed")
FORCE_TIMEOUT = _rule("force-stop.timeout", _FORCE, S.REINITIALIZE, "no destroy result within action_timeout")
FORCE_AWAIT = _rule("force-stop.await", _FORCE, None, "waiting for the destroy result")

# --- maintenance ------------------------------------------------------------------------------------------------

GM_CLEARED = _rule("global-maintenance.cleared", {S.GLOBAL_MAINTENANCE}, S.REINITIALIZE, "global maintenance cleared")
GM_VM_WITHOUT_LEASE = _rule(
    "global-maintenance.vm-without-lease",
    {S.GLOBAL_MAINTENANCE},
    None,
    "global maintenance: the VM runs here without its lease and no live host holds it: reported, not destroyed",
)

_LM = {S.LOCAL_MAINTENANCE}
LM_CLEARED = _rule("local-maintenance.cleared", _LM, S.REINITIALIZE, "local maintenance cleared")
LM_MIGRATE = _rule("local-maintenance.migrate", _LM, S.LOCAL_MAINTENANCE_MIGRATE_VM, "a VM runs here: migrate it away")
LM_NO_TARGET = _rule(
    "local-maintenance.no-target", _LM, None, "a VM runs here, but no live eligible host to migrate to"
)
LM_EVACUATE = _rule(
    "local-maintenance.evacuate",
    _LM,
    S.ENGINE_STOP,
    "a VM runs here and live migration failed: shut it down for an eligible peer to start it",
)
LM_IDLE = _rule("local-maintenance.idle", _LM, None, "in local maintenance")
LM_GLOBAL_HANDS_OFF = _rule(
    "local-maintenance.global-hands-off",
    _LM,
    None,
    "a VM runs here, but global maintenance is set: it is neither migrated nor shut down",
)

_MIGRATE = {S.LOCAL_MAINTENANCE_MIGRATE_VM}
MIGRATE_DONE = _rule("migrate.done", _MIGRATE, S.LOCAL_MAINTENANCE, "the VM left this host")
MIGRATE_FAILED = _rule("migrate.failed", _MIGRATE, S.ENGINE_UP, "the migration failed; the VM stays up here")
MIGRATE_TIMEOUT = _rule("migrate.timeout", _MIGRATE, S.ENGINE_UP, "no migration result within migrate_timeout")
MIGRATE_VM_LOST = _rule("migrate.vm-lost", _MIGRATE, S.REINITIALIZE, "the migration failed and the VM is not up")
MIGRATE_AWAIT = _rule("migrate.await", _MIGRATE, None, "migration under way")

# EngineMigratingAway (issue 14): the yield and failback paths by live migration. A failed or
# timed-out migration goes back to EngineUp with the migration back-off set, where the same
# rule then takes the cold path (up.yield / up.failback: shut down, the better host starts).
_AWAY_MIGRATE = {S.ENGINE_MIGRATING_AWAY}
MIGRATING_AWAY_DONE = _rule(
    "migrating-away.done", _AWAY_MIGRATE, S.ENGINE_DOWN, "the VM left this host for the better one"
)
MIGRATING_AWAY_FAILED = _rule(
    "migrating-away.failed",
    _AWAY_MIGRATE,
    S.ENGINE_UP,
    "the migration failed; the VM stays up here (the cold path follows if the better host still is)",
)
MIGRATING_AWAY_TIMEOUT = _rule(
    "migrating-away.timeout", _AWAY_MIGRATE, S.ENGINE_UP, "no migration result within migrate_timeout"
)
MIGRATING_AWAY_VM_LOST = _rule(
    "migrating-away.vm-lost", _AWAY_MIGRATE, S.REINITIALIZE, "the migration failed and the VM is not up"
)
MIGRATING_AWAY_AWAIT = _rule("migrating-away.await", _AWAY_MIGRATE, None, "migration under way")

ULVS_KNOWN = _rule(
    "unknown-vm-state.known",
    {S.UNKNOWN_LOCAL_VM_STATE},
    S.REINITIALIZE,
    "the local VM state is known again",
    nowait=True,
)

AGENT_STOPPED = _rule("agent.stopped", DECISION_STATES, S.AGENT_STOPPED, "the supervisor is stopping")
