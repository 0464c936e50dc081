"""Which decision makes the lease watch poll (he_ha/supervisor/lease_watch.py). The watch itself
runs against real sanlock daemons in tests/integration/leases/test_host_death.py."""

from __future__ import annotations

from he_ha.fsm import LeaseStatus, SanlockHost, step
from he_ha.fsm import StateName as S
from he_ha.supervisor.lease_watch import lease_wait
from tests.unit.fsm.builders import DOWN, UP_GOOD, obs, peer, state_in


def test_only_a_wait_on_a_live_or_failing_owner_makes_the_watch_poll() -> None:
    held_by_3 = LeaseStatus(owner=3, held_here=False)
    for status, waits in ((SanlockHost.LIVE, True), (SanlockHost.FAIL, True), (SanlockHost.DEAD, False)):
        _, _, record = step(
            state_in(S.ENGINE_DOWN), obs(DOWN, lease=held_by_3, sanlock={2: SanlockHost.LIVE, 3: status})
        )
        assert (record.rule == "down.lease-held") is waits, record.rule
        assert lease_wait(record) == (3 if waits else None)


def test_no_wait_when_the_engine_runs_elsewhere_or_before_the_first_tick() -> None:
    assert lease_wait(None) is None
    running = peer(status=UP_GOOD)
    _, _, record = step(state_in(S.ENGINE_DOWN, peers=(running,)), obs(DOWN, peers=(running,)))
    assert record.rule == "down.engine-elsewhere" and lease_wait(record) is None
