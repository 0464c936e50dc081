"""Helpers for the whiteboard integration tests: raw slot access, loop devices, O_DIRECT probe."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from he_ha.whiteboard import SLOT_BYTES


def supports_o_direct(directory: Path) -> bool:
    probe = directory / ".o_direct_probe"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o600)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    os.close(fd)
    probe.unlink()
    return True


def write_raw_slot(path: Path, index: int, data: bytes) -> None:
    """Put bytes into a slot the way another host's agent would (buffered, then synced)."""
    assert len(data) == SLOT_BYTES
    with open(path, "r+b") as f:
        f.seek(index * SLOT_BYTES)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_raw_slot(path: Path, index: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(index * SLOT_BYTES)
        return f.read(SLOT_BYTES)


def attach_loop(image: Path, sector_size: int) -> str:
    result = subprocess.run(
        ["losetup", "-f", "--show", "--sector-size", str(sector_size), str(image)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def detach_loop(device: str) -> None:
    subprocess.run(["losetup", "-d", device], capture_output=True, text=True, check=True)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="loop devices and FUSE mounts need root (CI runs as root)")
