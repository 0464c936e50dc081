"""How the whole suite shares this machine when run in parallel (scripts/test.sh: pytest-xdist
with ``--dist loadgroup``; issue 16 item 4).

Every test is put in a group that one worker runs from start to end: by default its file (the
tests of a file share module fixtures, daemons and sometimes fixed names, and were written to
run one after another). The CPU-bound tests share groups so that at most one of each kind runs
at a time beside the waiting-bound tiers (sanlock's host-dead times, timeouts), which they
would otherwise starve of CPU: the QEMU guests of the real-VM tier (two groups: the migration
file alone is ~10 minutes), and the simulator's random schedules with the package builds.
Without xdist the markers change nothing.
"""

from __future__ import annotations

import pytest

# path prefix (relative to the repository) -> group; first match wins
_SHARED_GROUPS = (
    ("tests/realvm/test_migration.py", "qemu-migration"),
    ("tests/realvm/", "qemu"),
    ("tests/e2e/test_libvirtd_restart.py", "qemu"),
    ("tests/sim/test_random.py", "cpu"),
    ("tests/packaging/", "cpu"),
)


def _group(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return next((group for prefix, group in _SHARED_GROUPS if path.startswith(prefix)), path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item.nodeid)))
