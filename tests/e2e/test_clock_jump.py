"""The engine host's wall clock jumps by an hour, forwards and back (issue 19): nothing
changes. he-ha decides on monotonic time only (the state machine's ``now``, peers' liveness
by the observer's monotonic clock, DESIGN.md); the wall clock only labels things (the decision
log's ``wall_time``, the slot's ``timestamp=`` text, mail ``{time}``).

The engine host's supervisor (with its lease keeper) runs under libfaketime
(tests/support/clockshift.py): its CLOCK_REALTIME is the real one plus an offset read from a
file at every call, the monotonic clocks stay real, and the other hosts keep the machine's
clock. The offset goes 0 -> +1 h -> -1 h -> 0 (jumps of +1 h, -2 h, +1 h), each held for
more than the liveness window; after each jump every host keeps deciding exactly as before
(same rule, same state, no action but publishing) and keeps seeing every other host live,
and the VM's one run never ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from he_ha.devcluster.cluster import actions_of, rule_of, state_of
from tests.e2e.world import World
from tests.support.clockshift import WallClock

pytestmark = [pytest.mark.slow, pytest.mark.root]

HOUR = 3600.0
# Liveness 10 s instead of the harness's 3 s: this test runs beside others (scripts/test.sh) and
# its engine host pays libfaketime's cost on every clock call; a few seconds' stall under load
# must not pass for a jump's effect. The claim is the same at any liveness.
LIVENESS = ("--timing", "liveness=10")
HOLD = 12  # decisions of every host after each jump (1 s ticks: > the 10 s liveness window)


def _alive(entry: dict[str, Any]) -> set[int]:
    return {p["host_id"] for p in entry["record"]["inputs"]["cluster"]["alive"]}


def _sees_alive(hosts: set[int]) -> Callable[[dict[str, Any]], bool]:
    """A decision predicate: exactly ``hosts`` are alive in that decision's cluster view."""
    return lambda entry: _alive(entry) == hosts


def _kind(entry: dict[str, Any]) -> tuple[str, str]:
    return rule_of(entry), state_of(entry)


def _clock_offset(entry: dict[str, Any]) -> float:
    """The deciding process's wall clock minus the real one when the entry was read (the
    entry is at most a few seconds old: it is compared with the offset rounded to the hour)."""
    return datetime.fromisoformat(entry["meta"]["wall_time"]).timestamp() - datetime.now(UTC).timestamp()


def test_a_wall_clock_jump_of_an_hour_changes_no_decision(make_world: Callable[..., World]) -> None:
    world = make_world(3)
    engine_host, *peers = world.hosts
    clock = WallClock(world.cluster.base / "clock")
    started = time.monotonic()
    # The engine host as engine_on_first starts it, but under the movable clock.
    engine_host.start_supervisor(*LIVENESS, env=clock.env())
    first = world.wait_for_new_run(started)
    assert first.host == engine_host.name
    engine_host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    for peer in peers:
        peer.start_supervisor(*LIVENESS)
    for peer in peers:
        peer.wait_for_decision(lambda e: rule_of(e) == "down.engine-elsewhere")
    everyone = {h.host_id for h in world.hosts}
    for host in world.hosts:  # settled: every host sees all the others live
        host.wait_for_decision(_sees_alive(everyone - {host.host_id}), after=len(host.decisions()))
    steady = {host.name: _kind(host.decisions()[-1]) for host in world.hosts}
    assert steady[engine_host.name][1] == "EngineUp" and all(steady[p.name][1] == "EngineDown" for p in peers), steady

    jumped_at = time.monotonic()
    for offset in (HOUR, -HOUR, 0.0):
        marks = {h.name: len(h.decisions()) for h in world.hosts}
        clock.jump(offset)
        for host in world.hosts:
            host.wait_for_decision(lambda e: True, after=marks[host.name] + HOLD)
        # the jumped supervisor's clock did move (its decisions are stamped with it)
        seen_offset = _clock_offset(engine_host.decisions()[-1])
        assert abs(seen_offset - offset) < 60, (offset, seen_offset)
        for host in world.hosts:
            after = host.decisions()[marks[host.name] :]
            changed = [
                (e["meta"]["tick"], _kind(e), actions_of(e))
                for e in after
                if _kind(e) != steady[host.name] or set(actions_of(e)) - {"Publish"}
            ]
            assert changed == [], f"{host.name} after a jump to {offset:+.0f} s: {changed}"
            not_live = [(e["meta"]["tick"], sorted(_alive(e))) for e in after if _alive(e) != everyone - {host.host_id}]
            assert not_live == [], f"{host.name} after a jump to {offset:+.0f} s saw hosts not live: {not_live}"
        print(
            f"\nwall clock of {engine_host.name} at {offset:+.0f} s: its decisions stamped {seen_offset:+.0f} s "
            f"off the real clock; {HOLD}+ decisions per host, all {steady}"
        )

    runs = world.runs_since(jumped_at)
    assert [(r.host, r.first, r.open) for r in runs] == [(first.host, first.first, True)], runs
    world.assert_supervisors_alive(world.hosts)
    world.finish()
