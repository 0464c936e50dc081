"""The safety watch's bookkeeping of runs (he_ha.devcluster.vm_watch), fed samples directly:
a copy relaunched between two samples on the same host is a new run (a local restart takes
~0.1 s, less than the sampling period), and two hosts' overlapping runs are a violation."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from he_ha.devcluster.vm_watch import VmWatcher


def _watcher(*names: str) -> VmWatcher:
    hosts: list[Any] = [SimpleNamespace(name=name, libvirtd=object()) for name in names]
    return VmWatcher(hosts)  # threads are never started: samples are fed by hand


def _sample(watcher: VmWatcher, host: str, domain_id: int | None, at: float) -> None:
    watcher._record(watcher._tracks[host], domain_id, at, None)


def test_a_copy_relaunched_between_two_samples_begins_a_new_run() -> None:
    watcher = _watcher("h1")
    _sample(watcher, "h1", 3, 1.0)
    _sample(watcher, "h1", 3, 1.1)
    _sample(watcher, "h1", 4, 1.2)  # destroyed and started again in between: a new id
    runs = watcher.runs()
    assert [(r.first, r.last, r.open) for r in runs] == [(1.0, 1.1, False), (1.2, 1.2, True)]
    assert watcher.wait_for_start(1.15, timeout=0) is not None
    assert watcher.violations == []


def test_the_same_copy_stays_one_run() -> None:
    watcher = _watcher("h1")
    for at in (1.0, 1.1, 1.2):
        _sample(watcher, "h1", 7, at)
    assert [(r.first, r.last, r.open) for r in watcher.runs()] == [(1.0, 1.2, True)]
    assert watcher.wait_for_start(1.05, timeout=0) is None


def test_a_gap_ends_the_run_and_two_hosts_overlapping_are_a_violation() -> None:
    watcher = _watcher("h1", "h2")
    _sample(watcher, "h1", 1, 1.0)
    _sample(watcher, "h1", None, 1.1)
    _sample(watcher, "h2", 1, 1.2)
    assert watcher.violations == []
    _sample(watcher, "h1", 2, 1.3)
    _sample(watcher, "h2", 1, 1.4)
    assert [v.hosts for v in watcher.violations] == [("h1", "h2")]
