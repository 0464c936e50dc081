"""The engine host loses its gateway (issue 19): a short blip changes nothing; a lasting loss
moves the VM, but only after the configured dwell.

Every host's hosted-engine.conf says ``network_test=ping`` with a gateway of its own: an
address in a network namespace at the end of a veth pair (tests/support/gateway.py), pinged
by the supervisor's network monitor with the real ``ping``. Two dwells stand between a lost
gateway and a moved VM: the network monitor's hysteresis (``fault_hold``, 90 s, not a
supervisor option: a fault counts only once every round for 90 s failed) and the state
machine's ``yield_dwell`` (a peer must out-score this host by ``yield_threshold`` that long;
60 s by default, 10 s here through ``--timing``).

- Blip: the engine host's gateway is gone for 20 s (shorter than ``fault_hold``), checked
  with a ping of our own. Throughout and after it the host decides ``up.ok`` at its full
  score; no start, no stop anywhere.
- Loss: the gateway is gone for good. The network penalty shows in the host's score no
  sooner than ``fault_hold`` after the cut; the host is outranked, yields no sooner than
  ``yield_dwell`` after its first ``up.outranked``, and the VM runs on a peer (EngineUp).
Lower bounds only (they cannot be broken by a slow machine); the times are printed."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from he_ha.devcluster.cluster import actions_of, rule_of, state_of
from tests.e2e.world import World
from tests.support.gateway import Gateway

pytestmark = [pytest.mark.slow, pytest.mark.root]

FAULT_HOLD = 90.0  # he_ha.monitors.network.NetworkMonitor's default, which the supervisor uses
YIELD_DWELL = 10.0
BLIP = 20.0
FULL = 3400
MOVED = FAULT_HOLD + YIELD_DWELL + 120.0  # generous bound for the whole move


def _score(entry: dict[str, Any]) -> int:
    return int(entry["record"]["score"]["total"])


def _now(entry: dict[str, Any]) -> float:
    return float(entry["record"]["now"])


def test_a_gateway_blip_changes_nothing_and_a_loss_moves_the_vm_after_the_dwell(
    make_world: Callable[..., World],
) -> None:
    world = make_world(3)
    with contextlib.ExitStack() as stack:
        gateways = [stack.enter_context(Gateway(h.host_id)) for h in world.hosts]
        for host, gateway in zip(world.hosts, gateways, strict=True):
            host.network_test = f"network_test=ping\ngateway={gateway.address}"
            host.hosted_engine_conf.write_text(host.deployed_conf_text())
        first = world.engine_on_first("--timing", f"yield_dwell={YIELD_DWELL:g}")
        engine_host = world.hosts[0]
        assert first.host == engine_host.name
        gateway = gateways[0]
        engine_host.wait_for_decision(lambda e: _score(e) == FULL, after=len(engine_host.decisions()))

        # A blip, shorter than the monitor's hold: nothing changes.
        marks = {h.name: len(h.decisions()) for h in world.hosts}
        gateway.cut()
        assert not gateway.answers(), "the gateway still answers after the cut"
        time.sleep(BLIP)
        gateway.restore()
        deadline = time.monotonic() + 30
        while not gateway.answers():
            assert time.monotonic() < deadline, "the gateway does not answer again"
        engine_host.wait_for_decision(lambda e: True, after=len(engine_host.decisions()) + 5)
        during = engine_host.decisions()[marks[engine_host.name] :]
        changed = [
            (rule_of(e), state_of(e), _score(e))
            for e in during
            if (rule_of(e), state_of(e), _score(e)) != ("up.ok", "EngineUp", FULL)
        ]
        assert changed == [], f"a {BLIP:g} s gateway blip changed the engine host's decisions: {changed}"
        for host in world.hosts:
            moves = [rule_of(e) for e in host.decisions()[marks[host.name] :] if set(actions_of(e)) - {"Publish"}]
            assert moves == [], f"{host.name} acted on a gateway blip: {moves}"
        print(f"\ngateway blip of {BLIP:g} s on {engine_host.name}: {len(during)} decisions, all up.ok at {FULL}")

        # A lasting loss: the VM moves, after both dwells.
        marks = {h.name: len(h.decisions()) for h in world.hosts}
        cut_at = time.monotonic()
        gateway.cut()
        _, penalised = engine_host.wait_for_decision(
            lambda e: _score(e) < FULL, after=marks[engine_host.name], timeout=MOVED
        )
        _, outranked = engine_host.wait_for_decision(
            lambda e: rule_of(e) == "up.outranked", after=marks[engine_host.name], timeout=MOVED
        )
        found, yielded = engine_host.wait_for_decision(
            lambda e: rule_of(e).startswith("up.yield"), after=marks[engine_host.name], timeout=MOVED
        )
        again = world.wait_for_new_run(cut_at, timeout=MOVED)
        assert again.host != engine_host.name
        new_host = world.host(again)
        new_host.wait_for_decision(lambda e: state_of(e) == "EngineUp", after=marks[new_host.name])
        up_at = time.monotonic()
        penalties = {p["name"]: p for p in penalised["record"]["score"]["penalties"]}
        assert "network" in penalties, penalised["record"]["score"]
        assert _now(penalised) >= cut_at + FAULT_HOLD, (_now(penalised) - cut_at, penalised["record"]["score"])
        assert _now(yielded) >= _now(outranked) + YIELD_DWELL, (rule_of(yielded), _now(yielded) - _now(outranked))
        assert again.first >= cut_at + FAULT_HOLD + YIELD_DWELL
        before = [
            (rule_of(e), _score(e))
            for e in engine_host.decisions()[marks[engine_host.name] :]
            if _now(e) < _now(penalised)
        ]
        assert set(before) <= {("up.ok", FULL)}, set(before)
        print(
            f"gateway lost on {engine_host.name}: network penalty after {_now(penalised) - cut_at:.1f} s "
            f"(score {_score(penalised)}, {penalties['network']['reason']!r}), first up.outranked after "
            f"{_now(outranked) - cut_at:.1f} s, {rule_of(yielded)} after {_now(yielded) - cut_at:.1f} s, VM running "
            f"on {again.host} after {again.first - cut_at:.1f} s, EngineUp there after {up_at - cut_at:.1f} s"
        )
        path = [rule_of(e) for e in engine_host.decisions()[found:]]
        print(f"the engine host's decisions from the yield on: {' '.join(dict.fromkeys(path))}")
        gateway.restore()
        world.assert_supervisors_alive(world.hosts)
        world.finish()
