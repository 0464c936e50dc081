"""Fixtures for whiteboard I/O on real files, loop devices and a stallable FUSE file."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from he_ha.whiteboard import WHITEBOARD_BYTES
from tests.integration.whiteboard.helpers import supports_o_direct


@pytest.fixture
def direct_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on a filesystem that accepts O_DIRECT: tmp_path, else one under /var/tmp."""
    if supports_o_direct(tmp_path):
        yield tmp_path
        return
    fallback = Path(tempfile.mkdtemp(prefix="he-ha-wb-", dir="/var/tmp"))
    try:
        assert supports_o_direct(fallback), "neither tmp_path nor /var/tmp accepts O_DIRECT"
        yield fallback
    finally:
        shutil.rmtree(fallback)


@pytest.fixture
def volume(direct_dir: Path) -> Path:
    """An all-zero metadata volume the size the original reads (slots 0..2000)."""
    path = direct_dir / "hosted-engine.metadata"
    with open(path, "wb") as f:
        f.truncate(WHITEBOARD_BYTES)
    return path
