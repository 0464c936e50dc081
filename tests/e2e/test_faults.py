"""Faults on a running 3-host cluster, injected for real. Each test ends with the engine
running (healthy, EngineUp) on some host, and the safety watch, running for the whole test,
proves it never ran on two hosts at once nor anywhere without its lease (``world.finish``)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from he_ha.devcluster.cluster import (
    IO_TIMEOUT,
    WAIT,
    Host,
    actions_of,
    processes_referencing,
    rule_of,
    state_of,
)
from he_ha.devcluster.vm_watch import Run
from he_ha.lease import host_dead_seconds
from tests.e2e.slot_corrupter import SlotCorrupter
from tests.e2e.world import World

pytestmark = [pytest.mark.slow, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
# The engine page hangs: each probe waits out the monitor's 20 s page timeout, and the
# monitor confirms bad health only after >= 3 failures spanning >= 60 s.
HANG_DETECTED = 180.0


def _engine_up_after(host: Host, after: int) -> dict[str, Any]:
    """The first EngineUp decision of ``host`` from index ``after`` on (EngineUp needs a
    healthy engine: the page answered "DB Up")."""
    _, entry = host.wait_for_decision(lambda e: state_of(e) == "EngineUp", after=after)
    return entry


def _runs_up(world: World, run: Run) -> None:
    """The VM of ``run`` reaches EngineUp on its host (a decision taken after it was seen),
    and is then the only VM running since it started."""
    host = world.host(run)
    _engine_up_after(host, len(host.decisions()))
    _assert_only(world, run, run.first)


def _starts(host: Host, after: int = 0) -> list[dict[str, Any]]:
    return [e for e in host.decisions()[after:] if "AcquireLeaseAndStartVm" in actions_of(e)]


def _assert_only(world: World, run: Run, since: float) -> None:
    """``run`` is the only run of the VM since ``since``, and it still goes on."""
    runs = world.runs_since(since)
    assert [(r.host, r.first, r.open) for r in runs] == [(run.host, run.first, True)], runs


def _marks(world: World) -> dict[str, int]:
    return {host.name: len(host.decisions()) for host in world.hosts}


def _wait_gone(root: Path, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while left := processes_referencing([root]):
        assert time.monotonic() < deadline, f"processes of the crashed host still run: {left}"
        time.sleep(0.1)


def test_host_crash_moves_the_engine_after_sanlocks_host_dead_time(make_world: Callable[..., World]) -> None:
    world = make_world(3)
    first = world.engine_on_first()
    victim = world.host(first)
    survivors = [h for h in world.hosts if h is not victim]
    marks = _marks(world)
    crashed_at = time.monotonic()

    victim.crash()  # supervisor, keeper, sanlock daemon, libvirtd with the VM: frozen, then killed
    _wait_gone(victim.root)  # nothing of it survives (its lease worker exits once its pipe closes)

    again = world.wait_for_new_run(crashed_at, host_dead_seconds(IO_TIMEOUT) + WAIT)
    assert again.host != victim.name
    _runs_up(world, again)
    # Until sanlock declared the victim dead, its lease alone kept the survivors waiting.
    for host in survivors:
        assert "down.lease-held" in [rule_of(e) for e in host.decisions()[marks[host.name] :]], host.name
    world.assert_supervisors_alive(survivors)
    world.finish()


def test_a_crashed_vm_runs_again(make_world: Callable[..., World]) -> None:
    world = make_world(3)
    first = world.engine_on_first()
    engine_host = world.host(first)
    seen = len(engine_host.decisions())
    crashed_at = time.monotonic()

    engine_host.crash_vm()

    engine_host.wait_for_decision(lambda e: rule_of(e) == "up.vm-crashed", after=seen)
    again = world.wait_for_new_run(crashed_at)
    _runs_up(world, again)
    world.assert_supervisors_alive(world.hosts)
    world.finish()


def test_a_hung_engine_is_given_up_and_runs_healthy_again(make_world: Callable[..., World]) -> None:
    world = make_world(3)
    first = world.engine_on_first("--timing", "bad_health_timeout=5")
    engine_host = world.host(first)
    seen = len(engine_host.decisions())

    hung = world.gate.hang()
    assert (hung.host, hung.first) == (first.host, first.first)

    found, bad = engine_host.wait_for_decision(
        lambda e: rule_of(e) == "up.bad-health", after=seen, timeout=HANG_DETECTED
    )
    assert bad["observation"]["local"]["engine_health"]["health"] == "bad"
    engine_host.wait_for_decision(lambda e: rule_of(e) == "timeout.EngineUpBadHealth", after=found)
    again = world.wait_for_new_run(hung.first + 0.001)  # the hung VM ended; a fresh one runs
    _runs_up(world, again)
    assert world.gate.hung_requests > 0
    world.assert_supervisors_alive(world.hosts)
    world.finish()


def test_a_restarted_supervisor_adopts_the_running_vm(make_world: Callable[..., World]) -> None:
    world = make_world(3)
    first = world.engine_on_first()
    host = world.host(first)
    peers = [h for h in world.hosts if h is not host]
    keeper = host.keeper_pid()
    assert keeper is not None
    marks = _marks(world)
    killed_at = time.monotonic()

    host.supervisors[-1].kill()
    # The peers find the host silent; only its lease (held by the keeper, its sanlock host
    # alive) keeps them from starting the VM.
    for peer in peers:
        peer.wait_for_decision(lambda e: rule_of(e) == "down.lease-held", after=marks[peer.name])

    seen = len(host.decisions())
    host.start_supervisor()
    _engine_up_after(host, seen)
    decided = [rule_of(e) for e in host.decisions()[seen:] if rule_of(e) != "reinit.await-health"]
    assert decided[0] == "reinit.vm-up", decided
    assert host.keeper_pid() == keeper
    for peer in peers:
        peer.wait_for_decision(lambda e: rule_of(e) == "down.engine-elsewhere", after=len(peer.decisions()))
    assert all(_starts(h, marks[h.name]) == [] for h in world.hosts)
    _assert_only(world, first, killed_at)  # never stopped, ran nowhere else
    world.assert_supervisors_alive(world.hosts)
    world.finish()


def test_a_storage_stall_on_the_engine_host_keeps_one_vm(make_world: Callable[..., World]) -> None:
    world = make_world(3, stall_first=True)
    stall = world.stall
    assert stall is not None
    first = world.engine_on_first()
    host, *peers = world.hosts
    assert first.host == host.name
    marks = _marks(world)
    stalled_at = time.monotonic()

    stall.stall()
    stall.wait_blocked(1, timeout=30)
    # The peers stop trusting the silent host: not live; only its lease keeps them waiting.
    for peer in peers:
        peer.wait_for_decision(lambda e: rule_of(e) == "down.lease-held", after=marks[peer.name])
        (view,) = [v for v in peer.admin.get("/v1/status")["hosts"] if v["host_id"] == host.host_id]
        assert view["live"] is False, view
    # The stalled host ticks on without the whiteboard, publishing nothing.
    host.wait_for_decision(lambda e: e["observation"]["whiteboard"] is None, after=marks[host.name])
    frozen = world.slot(host)
    assert frozen is not None
    for peer in peers:  # a few more peer ticks: the slot stays as it was
        peer.wait_for_decision(lambda e: True, after=len(peer.decisions()) + 2)
    assert world.slot(host) == frozen
    assert host.admin.get("/v1/status")["storage_error"]

    stall.resume()
    for peer in peers:
        peer.wait_for_decision(lambda e: rule_of(e) == "down.engine-elsewhere", after=len(peer.decisions()))
    _engine_up_after(host, len(host.decisions()))
    published = world.slot(host)
    assert published is not None and published.host_ts > frozen.host_ts
    assert all(_starts(h, marks[h.name]) == [] for h in world.hosts)
    _assert_only(world, first, stalled_at)
    world.assert_supervisors_alive(world.hosts)
    world.finish()


def _corrupt_peer_ids(host: Host) -> set[int]:
    """The peers whose slots ``host``'s status reports as unusable."""
    return {v["host_id"] for v in host.admin.get("/v1/status")["hosts"] if v["error"] and not v["local"]}


def _wait_for_status(host: Host, wanted: set[int]) -> None:
    deadline = time.monotonic() + WAIT
    while (found := _corrupt_peer_ids(host)) != wanted:
        assert time.monotonic() < deadline, f"{host.name}: status names corrupt slots {found}, expected {wanted}"
        time.sleep(0.2)


def _wait_for_cli_naming(host: Host, corrupt: set[int]) -> None:
    """``hosted-engine --vm-status`` run as ``host`` shows every slot of ``corrupt`` as
    unreadable, naming the crc32 mismatch (each at least once: an owner's rewrite may win
    for a moment)."""
    named: set[int] = set()
    deadline = time.monotonic() + WAIT
    while named != corrupt:
        assert time.monotonic() < deadline, f"--vm-status as {host.name} named only slots {named} of {corrupt}"
        shown = subprocess.run(
            [sys.executable, "-m", "cli.hosted_engine", "--vm-status"],
            env={**os.environ, **host.cli_env()},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        named |= {
            i
            for i in corrupt
            if f"Host slot {i}: UNREADABLE" in shown.stdout
            and f"whiteboard slot of host {i}: crc32 field" in shown.stdout
        }


def _sees_corrupt(host_id: int) -> Callable[[dict[str, Any]], bool]:
    def sees(entry: dict[str, Any]) -> bool:
        peers = (entry["observation"]["whiteboard"] or {}).get("peers", [])
        return any(p["type"] == "PeerFault" and p["host_id"] == host_id for p in peers)

    return sees


def test_corrupt_slots_are_named_and_nothing_else_changes(make_world: Callable[..., World]) -> None:
    world = make_world(3)
    first = world.engine_on_first()
    engine_host, witness, idle = world.hosts
    assert first.host == engine_host.name
    corrupt = {engine_host.host_id, idle.host_id}  # the engine host's slot, and an idle peer's
    marks = _marks(world)
    corrupted_at = time.monotonic()

    with (
        SlotCorrupter(world.cluster.metadata_file, engine_host.host_id) as engine_slot,
        SlotCorrupter(world.cluster.metadata_file, idle.host_id) as idle_slot,
    ):
        for host in world.hosts:
            _wait_for_status(host, corrupt - {host.host_id})
        _wait_for_cli_naming(witness, corrupt)
        # The witness keeps deciding with the engine host's slot unreadable for many ticks
        # (longer than the liveness window); it never starts the VM: the lease's owner is live.
        found, _ = witness.wait_for_decision(_sees_corrupt(engine_host.host_id), after=marks[witness.name])
        witness.wait_for_decision(_sees_corrupt(engine_host.host_id), after=found + 10)
        assert engine_slot.writes > 0 and idle_slot.writes > 0
        world.assert_supervisors_alive(world.hosts)

    for host in world.hosts:
        _wait_for_status(host, set())
    for host in (witness, idle):
        host.wait_for_decision(lambda e: rule_of(e) == "down.engine-elsewhere", after=len(host.decisions()))
    assert all(_starts(h, marks[h.name]) == [] for h in world.hosts)
    _assert_only(world, first, corrupted_at)
    world.assert_supervisors_alive(world.hosts)
    world.finish()


def test_hosts_starting_at_once_start_one_vm(make_world: Callable[..., World]) -> None:
    world = make_world(3)
    for host in world.hosts:  # equal scores whatever the machine's load: every host may try
        (host.root / "agent.conf").write_text("[score]\ncpu-load-score-penalty = 0\n")
    barrier = threading.Barrier(len(world.hosts))

    def launch(host: Host) -> None:
        barrier.wait()
        host.start_supervisor()

    launchers = [threading.Thread(target=launch, args=(host,)) for host in world.hosts]
    for thread in launchers:
        thread.start()
    for thread in launchers:
        thread.join()

    run = world.wait_for_new_run(0.0)
    _runs_up(world, run)
    for host in world.hosts:
        if host.name != run.host:
            host.wait_for_decision(lambda e: rule_of(e) == "down.engine-elsewhere")
    started = [h.name for h in world.hosts if any(rule_of(e) == "start.ok" for e in h.decisions())]
    assert started == [run.host]
    _assert_only(world, run, 0.0)
    world.assert_supervisors_alive(world.hosts)
    world.finish()
