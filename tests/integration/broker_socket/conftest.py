"""The broker socket served by a real aiohttp server on a real unix socket, in front of a
TEST DOUBLE of the daemon (``FakeBackend``): the wire and the methods' rules need no daemon.
The tests against real ``he-ha run`` daemons are in test_against_daemons.py."""

from __future__ import annotations

import asyncio
import xmlrpc.client
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from he_ha.admin.contract import CommandResult
from he_ha.broker_socket import BrokerServer
from he_ha.supervisor.board import BoardRead
from tests.integration.admin.conftest import socket_dir
from tests.support.broker_client import broker_proxy

__all__ = ["socket_dir"]  # the admin tests' short, world-traversable directory

T = TypeVar("T")


@dataclass
class FakeBackend:
    """TEST DOUBLE of the daemon's controller (he_ha.broker_socket.BrokerBackend): the board
    and the liveness list are set by the test; the mutating calls are recorded and answer
    ``result`` once ``release`` is set (set by default)."""

    board: BoardRead | None = None
    error: str | None = None
    live: list[int] = field(default_factory=list)
    result: CommandResult = field(default_factory=lambda: CommandResult(ok=True, message="done"))
    release: asyncio.Event = field(default_factory=asyncio.Event)
    global_writes: list[bool] = field(default_factory=list)
    resets: int = 0

    def __post_init__(self) -> None:
        self.release.set()

    def latest_board(self) -> BoardRead | None:
        return self.board

    def board_error(self) -> str | None:
        return self.error

    def live_host_ids(self) -> list[int]:
        return list(self.live)

    async def set_global_maintenance(self, on: bool) -> CommandResult:
        self.global_writes.append(on)
        await self.release.wait()
        return self.result

    async def reset_lockspace(self) -> CommandResult:
        self.resets += 1
        await self.release.wait()
        return self.result


@dataclass
class Broker:
    backend: FakeBackend
    path: Path
    server: BrokerServer

    async def call(self, method: str, *params: Any) -> Any:
        """One call through the original-style client, in a thread (it blocks)."""
        return await asyncio.to_thread(lambda: getattr(broker_proxy(self.path, timeout=20), method)(*params))

    async def fault(self, method: str, *params: Any) -> xmlrpc.client.Fault:
        try:
            answer = await self.call(method, *params)
        except xmlrpc.client.Fault as fault:
            return fault
        raise AssertionError(f"{method} answered {answer!r}, not a fault")


@pytest.fixture
async def broker(socket_dir: Path) -> AsyncIterator[Broker]:
    backend = FakeBackend()
    path = socket_dir / "run" / "broker.socket"
    server = BrokerServer(backend, path)
    await server.start()
    try:
        yield Broker(backend, path, server)
    finally:
        backend.release.set()
        await server.stop()


async def eventually(check: Callable[[], T], timeout: float = 10.0) -> T:
    """``check()`` once it is truthy (polled on the loop)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.01)
    return value
