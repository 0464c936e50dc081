"""The guards (the original's decorators, spec §3.5): each state's, outermost first, the rules
they fire and the check that fires them; and when a state's timer fires."""

from __future__ import annotations

from he_ha.fsm.rules import Guard, GuardKind, guard_rule, guard_rule_id, rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict
from he_ha.fsm.timing import TimingConfig


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


def _declare_timeout_rules() -> None:
    """``timeout.<State>``: one rule per timed state, to the state its timeout guard names."""
    for state, guards in STATE_GUARDS.items():
        for guard in guards:
            if guard.kind is GuardKind.TIMEOUT:
                what = f"{guard.timeout} of engine silence" if guard.silence else f"{guard.timeout}"
                rule(
                    guard_rule_id(state, guard),
                    {state},
                    guard.dest,
                    f"{what} expired",
                    nowait=state in _NOWAIT_TIMEOUTS,
                )


def _declare_flag_rules(kind: GuardKind, text: str) -> None:
    """``guard.<kind>`` (to the guard's state) and ``guard.<kind>.hold``, each for every state
    carrying that guard."""
    dests = {g.dest for gs in STATE_GUARDS.values() for g in gs if g.kind is kind and g.dest is not None}
    if dests:
        rule(f"guard.{kind.value}", _guard_sources(kind, False), dests.pop(), text)
    if _guard_sources(kind, True):
        rule(f"guard.{kind.value}.hold", _guard_sources(kind, True), None, text)


# The flag guards' conditions are in _flag_fired below.
_declare_timeout_rules()
_declare_flag_rules(GuardKind.GLOBAL, "global maintenance is set")
_declare_flag_rules(GuardKind.LOCAL, "local maintenance is set and no VM runs here")
_declare_flag_rules(GuardKind.VM_UNKNOWN, "the local VM state is unknown")


def check_guards(ctx: StepContext) -> Verdict | None:
    """The first of the state's guards that fires, outermost first, or None."""
    guards = STATE_GUARDS[ctx.state.name]
    # Hands-off global maintenance (issue 14): the global guard comes before a state's timer,
    # so no expiring timer can stop the VM in the tick global maintenance is first seen.
    global_first = ctx.global_on and any(g.kind is GuardKind.GLOBAL and g.dest is not None for g in guards)
    for guard in guards:
        if guard.kind is not GuardKind.TIMEOUT:
            if _flag_fired(ctx, guard.kind):
                return Verdict(guard_rule(ctx.state.name, guard))
        elif not global_first:
            fired = _timer_fired(ctx, guard)
            if fired is not None:
                return fired
    return None


def _flag_fired(ctx: StepContext, kind: GuardKind) -> bool:
    health = ctx.health
    if kind is GuardKind.GLOBAL:
        return ctx.global_on
    if kind is GuardKind.LOCAL:
        return ctx.local.local_maintenance and not (health is not None and health.running)
    # VM_UNKNOWN; ReinitializeFSM waits for a first reading in its own logic (B14)
    return (health is None and ctx.state.name is not S.REINITIALIZE) or (health is not None and health.unknown)


def _timer_fired(ctx: StepContext, guard: Guard) -> Verdict | None:
    state = ctx.state
    assert guard.timeout is not None
    limit = getattr(ctx.timing, guard.timeout)
    start = silence_start(ctx) if guard.silence else state.entered_at
    if start is None or ctx.now < start + limit:
        return None
    what = f"{limit:g} s of engine silence" if guard.silence else f"{limit:g} s"
    return Verdict(guard_rule(state.name, guard), f"{what} in {state.name.value}")


def silence_start(ctx: StepContext) -> float | None:
    """Since when the local engine has shown no life in this state (the silence timers' start).

    Entering the state starts it; every step at which the engine is healthy or answers but is
    not ready restarts it (slow is not dead, issue 14)."""
    state = ctx.state
    start = state.entered_at
    if start is None:
        return None
    if state.alive_at is not None:
        start = max(start, state.alive_at)
    if ctx.health is not None and ctx.health.alive:
        start = ctx.now
    return start


def timeout_at(name: S, entered_at: float | None, alive_at: float | None, timing: TimingConfig) -> float | None:
    """When the state's timer fires if nothing changes: for the silence timers, the engine's
    last sign of life plus the timeout, but never after the not-ready ceiling."""
    if entered_at is None:
        return None
    for guard in STATE_GUARDS.get(name, ()):
        if guard.kind is GuardKind.TIMEOUT and guard.timeout is not None:
            limit = getattr(timing, guard.timeout)
            if not guard.silence:
                return entered_at + limit
            start = entered_at if alive_at is None else max(entered_at, alive_at)
            return min(start + limit, entered_at + max(timing.not_ready_timeout, limit))
    return None
