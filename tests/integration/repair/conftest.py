"""Real sanlock daemons and real storage files for the storage commands' tests.

Two daemons (this host "host-a" and a peer "host-b") are shared by the package; every test
gets fresh areas laid out by the library call the harness uses (``initialise_first_host``,
io_timeout 1, so observation windows are ~3 s). The commands run in-process
(``cli.hosted_engine.main``) as host 1, with the environment a real host would give them.
Tests are sync: the commands run their own event loop (asyncio.run).
"""

from __future__ import annotations

import asyncio
import os
import socketserver
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cli.hosted_engine import main
from he_ha.devcluster.sanlockd import SanlockDaemon
from he_ha.lease import LeaseClient, LeaseLayout
from he_ha.provision import StorageAreas, initialise_first_host
from he_ha.whiteboard import SLOT_BYTES, GlobalBlock, HostSlot, encode_global_block, encode_host_slot, write_direct

T = TypeVar("T")
IO_TIMEOUT = 1
VMID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@dataclass(frozen=True)
class Daemons:
    local: SanlockDaemon  # host 1: the host the commands run on
    peer: SanlockDaemon  # another host


@pytest.fixture(scope="package")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemons]:
    base = tmp_path_factory.mktemp("sanlock")
    with SanlockDaemon(base / "a", "host-a") as local, SanlockDaemon(base / "b", "host-b") as peer:
        yield Daemons(local, peer)


@dataclass
class Storage:
    root: Path
    lockspace: Path
    metadata: Path
    layout: LeaseLayout

    @property
    def areas(self) -> StorageAreas:
        return StorageAreas(self.lockspace, self.metadata)

    def snapshot(self) -> tuple[bytes, bytes]:
        return self.lockspace.read_bytes(), self.metadata.read_bytes()


async def _initialise(daemon: SanlockDaemon, areas: StorageAreas) -> LeaseLayout:
    async with await LeaseClient.start(run_dir=daemon.run_dir) as client:
        return await initialise_first_host(client, areas, vm_uuid=VMID, io_timeout=IO_TIMEOUT)


@pytest.fixture
def storage(tmp_path: Path, daemons: Daemons) -> Storage:
    """Freshly laid out areas (tmp_path is on a disk filesystem: O_DIRECT works)."""
    root = tmp_path / "shared"
    root.mkdir()
    areas = StorageAreas(root / "hosted-engine.lockspace", root / "hosted-engine.metadata")
    return Storage(root, areas.lockspace, areas.metadata, run(_initialise(daemons.local, areas)))


# --- lockspace membership --------------------------------------------------------------------


async def _join(daemon: SanlockDaemon, layout: LeaseLayout, host_id: int) -> None:
    async with await LeaseClient.start(run_dir=daemon.run_dir) as client:
        await client.join(layout.lockspace, host_id)


async def _leave(daemon: SanlockDaemon, layout: LeaseLayout, host_id: int) -> None:
    async with await LeaseClient.start(run_dir=daemon.run_dir) as client:
        await client.leave(layout.lockspace, host_id)


@contextmanager
def joined(daemon: SanlockDaemon, layout: LeaseLayout, host_id: int) -> Iterator[None]:
    """``daemon`` holds ``host_id`` (renewing) until the block ends (membership belongs to
    the daemon: the client that asked can go)."""
    join(daemon, layout, host_id)
    try:
        yield
    finally:
        leave(daemon, layout, host_id)


def join(daemon: SanlockDaemon, layout: LeaseLayout, host_id: int) -> None:
    run(_join(daemon, layout, host_id))


def _together(
    action: Callable[[SanlockDaemon, LeaseLayout, int], Coroutine[Any, Any, None]],
    layout: LeaseLayout,
    members: tuple[tuple[SanlockDaemon, int], ...],
) -> None:
    async def all_of() -> None:
        await asyncio.gather(*(action(daemon, layout, host_id) for daemon, host_id in members))

    run(all_of())


def join_all(layout: LeaseLayout, *members: tuple[SanlockDaemon, int]) -> None:
    """Several hosts join at once (a join takes ~3 s whatever the number of hosts)."""
    _together(_join, layout, members)


def leave(daemon: SanlockDaemon, layout: LeaseLayout, host_id: int) -> None:
    run(_leave(daemon, layout, host_id))


def leave_all(layout: LeaseLayout, *members: tuple[SanlockDaemon, int]) -> None:
    _together(_leave, layout, members)


# --- metadata ------------------------------------------------------------------------------------


def host_slot(host_id: int, host_ts: int, hostname: str | None = None, *, stopped: bool = False) -> HostSlot:
    return HostSlot(
        host_id=host_id,
        host_ts=host_ts,
        score=3400,
        engine_status='{"vm": "down", "health": "bad", "detail": "unknown", "reason": "x"}',
        hostname=hostname or f"host{host_id}.example.com",
        maintenance=False,
        stopped=stopped,
        conf_on_shared_storage=True,
        local_conf_timestamp=host_ts,
    )


def write_slot(metadata: Path, index: int, data: bytes) -> None:
    """What another host's agent does: one O_DIRECT write of its 4096-byte slot."""
    write_direct(str(metadata), index * SLOT_BYTES, data)


def publish(metadata: Path, slot: HostSlot) -> None:
    write_slot(metadata, slot.host_id, encode_host_slot(slot))


def global_maintenance(metadata: Path, on: bool) -> None:
    write_slot(metadata, 0, encode_global_block(GlobalBlock(maintenance=on)))


@contextmanager
def publishing(metadata: Path, host_id: int, every: float = 0.3) -> Iterator[None]:
    """A live agent: republishes its slot with a new host timestamp every ``every`` s."""
    stop = threading.Event()

    def loop() -> None:
        host_ts = 1000
        while not stop.is_set():
            publish(metadata, host_slot(host_id, host_ts))
            host_ts += 1
            stop.wait(every)

    thread = threading.Thread(target=loop, name=f"publisher-{host_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


# --- a stand-in for the local he-ha daemon's admin socket -------------------------------------


class _AnswersStatus(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def fake_admin_socket(path: Path) -> Iterator[None]:
    """TEST DOUBLE of the he-ha daemon's admin API: a real HTTP server on a real unix socket
    answering GET /v1/status, so ``daemon_answers`` sees a running daemon. (A real supervisor
    needs libvirt, a VM and more; the guard only asks whether something answers.)"""
    server = socketserver.ThreadingUnixStreamServer(str(path), _AnswersStatus)
    thread = threading.Thread(target=server.serve_forever, name="fake-admin", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        os.unlink(path)


# --- running the command as host 1 ------------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


class Cli:
    """``hosted-engine`` as host 1 of ``storage``: its hosted-engine.conf and its daemon."""

    def __init__(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, root: Path, daemon: SanlockDaemon
    ) -> None:
        self._capsys = capsys
        self.conf = root / "host1" / "hosted-engine.conf"
        self.conf.parent.mkdir()
        self.admin_socket = root / "host1" / "admin.sock"
        monkeypatch.setenv("HE_HA_HOSTED_ENGINE_CONF", str(self.conf))
        monkeypatch.setenv("HE_HA_ADMIN_SOCKET", str(self.admin_socket))
        monkeypatch.setenv("SANLOCK_RUN_DIR", str(daemon.run_dir))

    def deploy(self, storage: Storage, host_id: int = 1) -> None:
        self.conf.write_text(
            f"host_id={host_id}\nvmid={VMID}\nfqdn=engine.invalid\nnetwork_test=none\n"
            f"metadata_path={storage.metadata}\nlockspace_path={storage.lockspace}\n"
        )

    def __call__(self, *args: str) -> Result:
        self._capsys.readouterr()  # drop what the fixtures printed (their library logs)
        started = time.monotonic()
        code = main(list(args), prog="hosted-engine")
        out, err = self._capsys.readouterr()
        assert "Traceback" not in err
        assert time.monotonic() - started < 60, "a storage command must not hang"
        return Result(code, out, err)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, daemons: Daemons) -> Cli:
    return Cli(capsys, monkeypatch, tmp_path, daemons.local)
