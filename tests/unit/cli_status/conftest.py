"""One simulated deployed host for the shim: real files (hosted-engine.conf, vm.conf, an
O_DIRECT metadata volume), a socket path in a short /tmp directory (unix paths are limited
to 107 bytes), and the environment variables that point ``hosted-engine`` at them."""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

import cli.hosted_engine

VMID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"
GOLDEN = Path(__file__).parent / "golden"


@dataclass
class HostFiles:
    root: Path
    socket: Path
    libvirt_node: Path

    @property
    def hosted_engine_conf(self) -> Path:
        return self.root / "hosted-engine.conf"

    @property
    def vm_conf(self) -> Path:
        return self.root / "vm.conf"

    @property
    def metadata(self) -> Path:
        return self.root / "hosted-engine.metadata"

    def write_conf(self, *, vmid: str = VMID, metadata: Path | None = None) -> None:
        self.hosted_engine_conf.write_text(
            f"host_id=1\nvmid={vmid}\nfqdn=engine.example.com\nnetwork_test=none\nbridge=lo\n"
            f"conf={self.vm_conf}\nmetadata_path={metadata or self.metadata}\n"
        )

    def env(self) -> dict[str, str]:
        return {
            "HE_HA_HOSTED_ENGINE_CONF": str(self.hosted_engine_conf),
            "HE_HA_HA_CONF": str(self.root / "ha.conf"),
            "HE_HA_AGENT_CONF": str(self.root / "agent.conf"),
            "HE_HA_BROKER_CONF": str(self.root / "broker.conf"),
            "HE_HA_ADMIN_SOCKET": str(self.socket),
            "HE_HA_RUN_DIR": str(self.socket.parent),  # where the full path records a checked hosted-engine.conf
            "HE_HA_LIBVIRT_URI": f"test://{self.libvirt_node}",
        }


@pytest.fixture(autouse=True)
def daemon_logs() -> Iterator[io.StringIO]:
    """The fixture daemon runs in the test process: its logs go to a buffer, not to the
    stdout the tests compare."""
    saved = dict(structlog.get_config())
    sink = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sink))
    yield sink
    structlog.configure(**saved)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostFiles]:
    """A deployed host (vmid set, vm.conf present) with no daemon running yet."""
    short = Path(tempfile.mkdtemp(prefix="he-cs-", dir="/tmp"))
    files = HostFiles(tmp_path, short / "admin.sock", tmp_path / "node.xml")
    files.libvirt_node.write_text("<node></node>")
    files.write_conf()
    files.vm_conf.write_text(f"vmId={VMID}\nmemSize=64\n")
    for name, value in files.env().items():
        monkeypatch.setenv(name, value)
    yield files
    shutil.rmtree(short, ignore_errors=True)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., Result]]:
    """``run(*args) -> Result``: the shim in-process, with what it printed."""

    def call(*args: str) -> Result:
        capsys.readouterr()
        code = cli.hosted_engine.main(list(args), prog="hosted-engine")
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield call


def golden(name: str) -> str:
    return (GOLDEN / name).read_text()
