"""How the whole suite shares this machine when run in parallel (scripts/test.sh: pytest-xdist
with ``--dist loadgroup``; issue 16 item 4).

Every test is put in a group that one worker runs from start to end: by default its file (the
tests of a file share module fixtures, daemons and sometimes fixed names, and were written to
run one after another). The real-VM tier's QEMU guests are CPU-bound under TCG: its files
share two groups (the migration file alone is ~10 minutes) so that at most two guests boot at
a time beside the waiting-bound tiers (sanlock's host-dead times, timeouts). Only files
without module-scoped fixtures may share a group: xdist interleaves a group's files, and a
module fixture is set up again at each return to its module (the package builds were, three
times). Without xdist the markers change nothing.
"""

from __future__ import annotations

import pytest

# path prefix (relative to the repository) -> group; first match wins
_SHARED_GROUPS = (
    ("tests/realvm/test_migration.py", "qemu-migration"),
    ("tests/realvm/", "qemu"),
    ("tests/e2e/test_libvirtd_restart.py", "qemu"),
)


# Files whose tests each take minutes and share nothing: one group per test, not per file.
_PER_TEST = ("tests/e2e/test_production_timings.py",)


def _group(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    if path in _PER_TEST:
        return nodeid
    return next((group for prefix, group in _SHARED_GROUPS if path.startswith(prefix)), path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item.nodeid)))
