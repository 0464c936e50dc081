"""Storage that fails rather than stalls, on the engine host's metadata view (issue 19): first
every read and write fails with EIO, then the file is gone (ENOENT on open, ESTALE on files
opened before, as NFS answers for a file removed on the server), then it is back.

Host 1 reaches the metadata volume through the FUSE view of tests/support/stallfs.py (hosts 2
and 3 use the file itself). Throughout both faults the engine host keeps its VM (one
unbroken run, no start anywhere: the lease, held by its keeper, keeps the peers off), ticks
on without a whiteboard, publishes nothing, and its admin status names the error as the
kernel gave it; the peers stop counting it live and wait on its lease. After the file is
back the host publishes again, the peers see the engine there and the host is EngineUp."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from he_ha.devcluster.cluster import WAIT, Host, actions_of, rule_of, state_of
from tests.e2e.world import World

pytestmark = [pytest.mark.slow, pytest.mark.root]


def _marks(world: World) -> dict[str, int]:
    return {host.name: len(host.decisions()) for host in world.hosts}


def _starts(host: Host, after: int) -> list[dict[str, Any]]:
    return [e for e in host.decisions()[after:] if "AcquireLeaseAndStartVm" in actions_of(e)]


def _wait_storage_error(host: Host, words: str) -> str:
    """The host's admin status names ``words`` in its storage error (it answers all along)."""
    deadline = time.monotonic() + WAIT
    while True:
        error = host.admin.get("/v1/status")["storage_error"] or ""
        if words in error:
            return str(error)
        assert time.monotonic() < deadline, f"{host.name}: storage_error {error!r} does not name {words!r}"
        time.sleep(0.2)


def test_metadata_errors_then_the_file_gone_then_back_keep_one_vm(make_world: Callable[..., World]) -> None:
    world = make_world(3, stall_first=True)
    fs = world.stall
    assert fs is not None
    first = world.engine_on_first()
    host, *peers = world.hosts
    assert first.host == host.name
    start = _marks(world)
    faulted_at = time.monotonic()
    frozen = None
    shown: dict[str, str] = {}

    for fault, name, words in (
        (fs.fail_io, "EIO", "Input/output error"),
        (fs.vanish, "file gone", "No such file or directory"),
    ):
        marks = _marks(world)
        failed = fs.failed()
        fault()
        fs.wait_failed(failed + 1, timeout=30)  # the engine host's own I/O hit it
        host.wait_for_decision(lambda e: e["observation"]["whiteboard"] is None, after=marks[host.name])
        shown[name] = _wait_storage_error(host, words)
        for peer in world.hosts[1:]:
            peer.wait_for_decision(lambda e: rule_of(e) == "down.lease-held", after=marks[peer.name])
            (view,) = [v for v in peer.admin.get("/v1/status")["hosts"] if v["host_id"] == host.host_id]
            assert view["live"] is False, view
        slot = world.slot(host)
        assert slot is not None
        frozen = frozen or slot
        assert slot == frozen, f"{name}: the engine host's slot changed although its writes fail"
        states = {state_of(e) for e in host.decisions()[marks[host.name] :]}
        print(f"\n{name}: engine host's states {sorted(states)}; status storage_error {shown[name]!r}")

    resumed_at = time.monotonic()
    fs.resume()
    for peer in peers:
        peer.wait_for_decision(lambda e: rule_of(e) == "down.engine-elsewhere", after=len(peer.decisions()))
    host.wait_for_decision(
        lambda e: state_of(e) == "EngineUp" and e["observation"]["whiteboard"] is not None, after=len(host.decisions())
    )
    recovered = time.monotonic() - resumed_at
    assert host.admin.get("/v1/status")["storage_error"] in (None, "")
    published = world.slot(host)
    assert frozen is not None and published is not None and published.host_ts > frozen.host_ts
    assert all(_starts(h, start[h.name]) == [] for h in world.hosts)
    runs = world.runs_since(faulted_at)
    assert [(r.host, r.first, r.open) for r in runs] == [(first.host, first.first, True)], runs
    print(
        f"metadata back: peers see the engine and the host is EngineUp again {recovered:.1f} s after; "
        f"{fs.failed()} calls failed on purpose"
    )
    world.assert_supervisors_alive(world.hosts)
    world.finish()
