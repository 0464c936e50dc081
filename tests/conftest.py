"""How the whole suite shares this machine when run in parallel (scripts/test.sh runs it under
pytest-xdist; issue 16 item 4).

Each test is a unit of work of its own, so the waiting-bound tiers (sanlock's host-dead times,
timeouts, guests booting) overlap as far as the workers allow: tests use their own
directories, daemons and ports. Three rules on top:

- a file whose module fixture is expensive (the package builds, a cluster of daemons) is one
  unit, run by one worker from start to end, so the fixture is built once; so is the file of
  live migrations, which must not run beside each other (``_BY_FILE``);
- the long tests are handed out first (``_ORDER``): a ten-minute test that starts last makes
  the whole run ten minutes longer than its share;
- a worker never holds two long tests at once. An xdist worker runs one test while it holds
  the next (it must know the next test to tear fixtures down right), so a long test queued
  behind another long one would wait for it while other workers run out of work;
- at most ``_CPU_SLOTS`` CPU-bound tests (``_CPU_BOUND``: the simulator's random schedules,
  about half of the suite's CPU) are held at once while other work is queued. Handed out
  together they kept both cores busy at the start and left them a quarter idle later, while
  the real clusters waited on sanlock; spread out, the waiting tests run beside them.

This is a scheduler of our own (``pytest_xdist_make_scheduler``), not ``--dist loadgroup``:
with pytest 9 xdist's group markers have no effect (xdist 3.8 renames ``item._nodeid``, which
pytest 9 no longer reads), so every test was its own unit and the packages were built three
times. Without xdist none of this runs.
"""

from __future__ import annotations

from typing import Any

import pytest

# Files run by one worker from start to end: their tests share an expensive module fixture,
# or must not run beside each other.
_BY_FILE = frozenset(
    {
        "tests/packaging/test_packages.py",  # builds the .deb and the .rpm (~40 s of CPU)
        "tests/integration/cli_commands/test_cli_against_daemons.py",  # a two-host cluster
        "tests/integration/broker_socket/test_against_daemons.py",  # a two-host cluster
        # Live migrations: every test cluster's libvirtd takes its QEMU migration port from the
        # same range of the machine (49152-49215, he_ha/devcluster/realvm/qemu_libvirtd.py), so
        # two migrations at once can collide (seen: "unable to connect to server at
        # 'vm:49152': Connection refused"). No other file migrates.
        "tests/realvm/test_migration.py",
    }
)

# Path prefixes in the order their tests are handed out: the long poles first, the many
# quick tests last (they fill the gaps at the end). Unlisted paths come before the unit tests.
_ORDER = (
    "tests/packaging/test_systemd_boot.py",
    "tests/e2e/test_production_timings.py",
    "tests/sim/test_random.py",
    "tests/realvm/",
    "tests/packaging/",
    "tests/e2e/",
    "tests/integration/test_demo.py",
    # the long ones (a minute or more each) end here
    "tests/integration/",
    "tests/sim/",
)
_LONG = _ORDER.index("tests/integration/")

# Tests that keep a core busy from start to end, and how many of them may be held at once while
# other work waits in the queue: three keep the two cores of a CI machine busy beside the
# waiting-bound tests without starving their daemons' ticks.
_CPU_BOUND = ("tests/sim/test_random.py",)
_CPU_SLOTS = 3


def _rank(nodeid: str) -> int:
    if nodeid.startswith("tests/unit/"):
        return len(_ORDER) + 1
    return next((rank for rank, prefix in enumerate(_ORDER) if nodeid.startswith(prefix)), len(_ORDER))


def _is_long(scope: str) -> bool:
    return _rank(scope) < _LONG


def _is_cpu_bound(scope: str) -> bool:
    return scope.startswith(_CPU_BOUND)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: _rank(item.nodeid))  # stable: a file's tests stay together


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]  # only under xdist

    class _Schedule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in _BY_FILE else nodeid

        def _held(self, node: Any) -> list[str]:
            return [scope for scope, unit in self.assigned_work.get(node, {}).items() if not all(unit.values())]

        def _assign_work_unit(self, node: Any) -> None:
            holds_long = any(_is_long(scope) for scope in self._held(node))
            cpu_full = (
                sum(_is_cpu_bound(scope) for other in self.assigned_work for scope in self._held(other)) >= _CPU_SLOTS
            )

            def fits(scope: str) -> bool:
                return not (holds_long and _is_long(scope)) and not (cpu_full and _is_cpu_bound(scope))

            # The first unit in the queue's order that fits; when none does, the first one anyway.
            pick = next((scope for scope in self.workqueue if fits(scope)), None)
            if pick is not None:
                self.workqueue.move_to_end(pick, last=False)
            super()._assign_work_unit(node)

    config.option.loadscopereorder = False  # hand out in collection order (sorted above)
    return _Schedule(config, log)
