"""Restart locally first (issue 14): the VM crashed here and no live peer can take it.
Shared by EngineStarting, EngineUp, EngineUpBadHealth and EngineMaybeAway."""

from __future__ import annotations

from he_ha.fsm.peer_choice import eligible_peers, lease_blocks_start
from he_ha.fsm.rules import Rule, rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict
from he_ha.fsm.timing import TimingConfig

_CRASH_SOURCES = {S.ENGINE_UP, S.ENGINE_UP_BAD_HEALTH, S.ENGINE_STARTING, S.ENGINE_MAYBE_AWAY}
CRASH_RESTART_HERE = rule(
    "vm-crashed.restart-here",
    _CRASH_SOURCES,
    S.ENGINE_START,
    "the VM crashed here, no live peer can take it, retries left: restart it here at once (lease first)",
)
CRASH_RESTART_BACKOFF = rule(
    "vm-crashed.restart-backoff",
    _CRASH_SOURCES,
    S.ENGINE_DOWN,
    "the VM crashed here again, no live peer can take it, retries left: restart it here after the back-off",
)


def restart_delay(timing: TimingConfig, earlier: int) -> float:
    """The back-off before a local restart that follows ``earlier`` ones inside the retry window."""
    return 0.0 if earlier == 0 else timing.restart_backoff * 2 ** (earlier - 1)


def restart_locally(ctx: StepContext) -> tuple[Verdict | None, str]:
    """The VM crashed here: restart it here when no live peer can take it (issue 14).

    Restarts count toward the retry limit with the failed starts; at the limit (or when a
    live peer can take it, or this host cannot start it) the original's path applies: score 0
    in EngineUnexpectedlyDown while others take over. Returns the verdict, or None and why not.
    The first restart inside the retry window goes straight to EngineStart, whose action
    takes the lease before the launch (invariant 1), without releasing it first; later ones
    go to EngineDown and wait their back-off there (down.restart-backoff)."""
    retries = len(ctx.failures) + len(ctx.restarts)
    if retries >= ctx.timing.max_retries:
        return None, f"retry limit reached ({retries} of {ctx.timing.max_retries} inside the retry window)"
    peers = eligible_peers(ctx)
    if peers:
        return None, f"host {peers[0].host_id} can take it over"
    if ctx.local.local_maintenance:
        return None, "local maintenance"
    if ctx.local.storage_ok is not True:
        return None, f"storage_ok={ctx.local.storage_ok}"
    if ctx.cluster.too_new:
        return None, f"hosts {list(ctx.cluster.too_new)} write newer metadata"
    held = lease_blocks_start(ctx)
    if held:
        return None, held
    delay = restart_delay(ctx.timing, len(ctx.restarts))
    note = f"no live peer can take it; local restart {len(ctx.restarts) + 1} (retries {retries + 1} of {ctx.timing.max_retries})"
    if delay == 0:
        return Verdict(CRASH_RESTART_HERE, note, restart=True), ""
    return Verdict(CRASH_RESTART_BACKOFF, f"{note}, after {delay:g} s", restart=True), ""


def crashed(ctx: StepContext, otherwise: Rule) -> Verdict:
    verdict, why_not = restart_locally(ctx)
    return verdict or Verdict(otherwise, f"no local restart: {why_not}")
