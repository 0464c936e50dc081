"""The shim's commands run in-process (``cli.hosted_engine.main``) against real files and a real
AdminServer on a unix socket. The daemon side is ``ControllerTestDouble`` (named as such:
the supervisor is tested in its own area and, with these commands, in
tests/integration/cli_commands against real daemons)."""

from __future__ import annotations

import asyncio
import base64
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from cli.hosted_engine import main
from he_ha.admin.server import AdminServer
from tests.integration.admin.doubles import ControllerTestDouble

VMID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"


@dataclass(frozen=True)
class Result:
    status: int
    out: str
    err: str


@dataclass(frozen=True)
class HostFiles:
    root: Path
    hosted_engine_conf: Path
    ha_conf: Path
    broker_conf: Path
    vm_conf: Path
    admin_socket: Path


def vm_conf_text(vm_id: str = VMID, memory_mib: int = 64) -> str:
    xml = (
        f"<domain type='test'><name>HostedEngine</name><uuid>{vm_id}</uuid>"
        f"<memory unit='MiB'>{memory_mib}</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices/></domain>"
    )
    return f"vmId={vm_id}\nmemSize={memory_mib}\nxmlBase64={base64.b64encode(xml.encode()).decode()}\n"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Under /tmp: unix socket paths are limited to 107 bytes, pytest's tmp_path can be longer."""
    path = Path(tempfile.mkdtemp(prefix="he-ha-cli-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def host(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> HostFiles:
    """A deployed host's files, named to the shim through its environment variables."""
    files = HostFiles(
        short_dir,
        short_dir / "hosted-engine.conf",
        short_dir / "ha.conf",
        short_dir / "broker.conf",
        short_dir / "vm.conf",
        short_dir / "admin.sock",
    )
    files.hosted_engine_conf.write_text(
        f"host_id=1\nvmid={VMID}\nfqdn=engine.invalid\nnetwork_test=none\nconf={files.vm_conf}\n"
    )
    files.ha_conf.write_text("local_maintenance=False\nlocal_maintenance_manual=False\n")
    files.broker_conf.write_text("[email]\nsmtp-server = mail.example.com\n")
    files.vm_conf.write_text(vm_conf_text())
    for name, path in (
        ("HE_HA_HOSTED_ENGINE_CONF", files.hosted_engine_conf),
        ("HE_HA_HA_CONF", files.ha_conf),
        ("HE_HA_BROKER_CONF", files.broker_conf),
        ("HE_HA_ADMIN_SOCKET", files.admin_socket),
        ("HE_HA_AGENT_CONF", short_dir / "agent.conf"),
        # the host lock and the keeper record: this test's own (the default /run/he-ha is
        # shared with every test running beside it in the parallel suite)
        ("HE_HA_RUN_DIR", short_dir / "run"),
    ):
        monkeypatch.setenv(name, str(path))
    monkeypatch.delenv("OVIRT_HOSTED_ENGINE_CONSOLE_PASSWORD", raising=False)
    return files


def not_deployed(files: HostFiles) -> None:
    files.hosted_engine_conf.write_text("host_id=1\nnetwork_test=none\n")


class ServedDouble:
    """A real AdminServer on its own event loop thread (the shim is blocking)."""

    def __init__(self, path: Path, deadline: float) -> None:
        self.controller = ControllerTestDouble()
        self.path = path
        self.deadline = deadline
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="admin-double", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start()/stop() in the test's thread
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = AdminServer(self.controller, self.path, mode=0o666, deadline=self.deadline)
        await server.start()
        self._ready.set()
        await self._stop.wait()
        self.controller.release.set()
        await server.stop()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10), "admin server did not start"
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive(), "admin server did not stop"
        if self._failure is not None:
            raise self._failure


@pytest.fixture
def daemon_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """The server's log events, kept off stdout (the shim's output is under test there)."""
    with structlog.testing.capture_logs() as logs:
        yield logs


@pytest.fixture
def daemon(host: HostFiles, daemon_logs: list[MutableMapping[str, Any]]) -> Iterator[ControllerTestDouble]:
    served = ServedDouble(host.admin_socket, deadline=1.0)
    served.start()
    try:
        yield served.controller
    finally:
        served.stop()


Run = Callable[..., Result]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def run_cli(*args: str) -> Result:
        capsys.readouterr()  # drop anything printed before
        status = main(list(args), prog="hosted-engine")
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run_cli
