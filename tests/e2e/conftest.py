"""End-to-end fault tests: whole clusters of real ``he-ha run`` processes on this machine
(own sanlock daemon and private libvirtd per host), faults injected for real, and a watcher
checking all along that the engine VM never runs twice. Needs root."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.world import World, build_world


@pytest.fixture
def make_world() -> Iterator[Callable[..., World]]:
    """``make_world(count=3, stall_first=False)``: a started world, torn down afterwards."""
    with contextlib.ExitStack() as stack:
        yield lambda count=3, **options: stack.enter_context(build_world(count, **options))
