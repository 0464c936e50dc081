"""The storage read of ``--vm-status --from-storage`` has a deadline: with the metadata volume's reads
hanging in the kernel (a FUSE file that stalls on demand, as a dead NFS server would), the
read gives up with a clear error instead of hanging the command. Needs root and /dev/fuse."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.environment import CliEnvironment
from cli.status_source import SourceError, status_from_storage
from tests.support.stallfs import StallFS
from tests.unit.cli_status.fixtures import write_metadata

pytestmark = pytest.mark.root


@pytest.fixture
def mountpoint() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="he-cs-fuse-", dir="/tmp"))
    yield path
    path.rmdir()  # StallFS has unmounted it by then


def test_stalled_storage_read_ends_at_its_deadline(tmp_path: Path, mountpoint: Path) -> None:
    backing = tmp_path / "metadata"
    write_metadata(backing)
    with StallFS(mountpoint, backing) as fs:
        conf = tmp_path / "hosted-engine.conf"
        conf.write_text(f"host_id=1\nvmid=x\nnetwork_test=none\nmetadata_path={fs.path}\n")
        env = CliEnvironment.from_environ({"HE_HA_HOSTED_ENGINE_CONF": str(conf)})
        status, _ = status_from_storage(env, timeout=1.0)
        assert [h.hostname for h in status.hosts] == ["host1.example.com", "host2.example.com"]

        fs.stall()
        started = time.monotonic()
        with pytest.raises(SourceError, match=rf"whiteboard read of {fs.path}: no answer within 1 s"):
            status_from_storage(env, timeout=1.0)
        assert time.monotonic() - started < 5.0  # a generous bound: it gave up, it did not hang
        assert fs.blocked() >= 1  # the read really was stuck in the kernel
