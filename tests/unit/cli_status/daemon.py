"""A real admin server (he_ha.admin.server.AdminServer on a real unix socket) in a thread
of its own, answering from fixed data. It stands in for the supervisor, which cannot be
asked to show arbitrary cluster states; the integration tests use the real supervisor."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from he_ha.admin.contract import (
    ClusterStatus,
    CommandResult,
    MaintenanceMode,
    Metric,
    VmDefinitionDetail,
    VmDefinitionView,
)
from he_ha.admin.server import AdminServer

REFUSED = CommandResult(ok=False, message="fixture daemon: read-only")
NO_DEFINITION = VmDefinitionDetail(
    definition=VmDefinitionView(
        usable=False, source=None, path=None, age=None, problem="fixture daemon: no definition"
    ),
    vm_id=None,
    vm_name=None,
    vm_conf=None,
    startable=False,
)


class FixtureController:
    """The admin Controller protocol over fixed answers (the read routes only)."""

    def __init__(self, status: ClusterStatus, decisions: list[dict[str, Any]]) -> None:
        self.fixed_status = status
        self.fixed_decisions = decisions

    def status(self) -> ClusterStatus:
        return self.fixed_status

    def decisions(self, limit: int) -> list[dict[str, Any]]:
        return self.fixed_decisions[-limit:]

    def metrics(self) -> list[Metric]:
        return []

    def vm_definition(self) -> VmDefinitionDetail:
        return NO_DEFINITION

    async def launch_preview(self) -> VmDefinitionDetail:
        return NO_DEFINITION

    async def set_maintenance(self, mode: MaintenanceMode) -> CommandResult:
        return REFUSED

    async def vm_start(self, *, paused: bool = False, vm_conf: Path | None = None) -> CommandResult:
        return REFUSED

    async def vm_shutdown(self) -> CommandResult:
        return REFUSED

    async def vm_poweroff(self) -> CommandResult:
        return REFUSED

    async def console_password(self, password: str, ttl: int) -> CommandResult:
        return REFUSED


class FixtureDaemon:
    """``with FixtureDaemon(path, status) as d:`` serves until the block ends."""

    def __init__(self, path: Path, status: ClusterStatus, decisions: list[dict[str, Any]] | None = None) -> None:
        self.controller = FixtureController(status, decisions or [])
        self.server = AdminServer(self.controller, path)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fixture-daemon", daemon=True)

    def __enter__(self) -> FixtureDaemon:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
