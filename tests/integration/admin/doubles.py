"""A test double for the Controller: it stands in for the supervisor (another area, tested
there), answering from fixed data and recording the mutating calls it receives."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from he_ha.admin.contract import (
    ClusterStatus,
    CommandResult,
    HostView,
    MaintenanceMode,
    Metric,
    PenaltyView,
    ScoreView,
    VmDefinitionDetail,
    VmDefinitionView,
)

# What the double answers for GET /v1/vm/definition (test_vm_definition_route overrides it).
NO_DEFINITION = VmDefinitionDetail(
    definition=VmDefinitionView(usable=False, source=None, path=None, age=None, problem="no definition (test double)"),
    vm_id=None,
    vm_name=None,
    vm_conf=None,
    startable=False,
)


def sample_status() -> ClusterStatus:
    ours = HostView(
        host_id=1,
        local=True,
        hostname="host1.example.com",
        state="EngineUp",
        score=3000,
        score_breakdown=ScoreView(
            base=3400,
            penalties=[PenaltyView(name="memory", amount=400, reason="free memory below VM size")],
            override=None,
            total=3000,
        ),
        engine_status={"vm": "up", "health": "good", "detail": "Up"},
        live=True,
        host_ts=81234,
        maintenance=False,
        stopped=False,
        conf_on_shared_storage=True,
        local_conf_timestamp=81234,
        crc32="6f1c2a9b",
        extra="metadata_parse_version=1\nstate=EngineUp\n",
        sanlock="live",
        error=None,
    )
    peer = ours.model_copy(
        update={
            "host_id": 2,
            "local": False,
            "hostname": None,
            "state": None,
            "score": None,
            "score_breakdown": None,
            "engine_status": None,
            "live": False,
            "error": "crc mismatch",
        }
    )
    return ClusterStatus(
        host_id=1,
        global_maintenance=False,
        hosts=[ours, peer],
        whiteboard_age=1.5,
        storage_error=None,
        lease_owner=1,
        vm_here="running",
        hypervisor="connected",
    )


class ControllerTestDouble:
    """Implements he_ha.admin.contract.Controller with canned answers.

    ``result`` is what mutating calls return; ``error`` makes them raise; ``hang`` makes them
    wait on an event the test controls. ``calls`` records (name, argument) in order.
    """

    def __init__(self) -> None:
        self.result: Any = CommandResult(ok=True, message="done")
        self.error: Exception | None = None
        self.hang = False
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.finished = asyncio.Event()
        self.calls: list[tuple[str, Any]] = []
        self.decision_log = [{"seq": n, "state": "EngineUp", "actions": []} for n in range(200)]
        self.metric_list: list[Metric] = [
            Metric(name="he_ha_score", kind="gauge", help="Score of a host.", value=3000, labels={"host": "1"}),
            Metric(name="he_ha_score", kind="gauge", help="Score of a host.", value=2400, labels={"host": "2"}),
            Metric(name="he_ha_transitions_total", kind="counter", help="State transitions.", value=7),
        ]
        self.status_error: Exception | None = None

    def status(self) -> ClusterStatus:
        if self.status_error is not None:
            raise self.status_error
        return sample_status()

    def decisions(self, limit: int) -> list[dict[str, Any]]:
        self.calls.append(("decisions", limit))
        return self.decision_log[-limit:]

    def metrics(self) -> list[Metric]:
        return self.metric_list

    def vm_definition(self) -> VmDefinitionDetail:
        return NO_DEFINITION

    async def launch_preview(self) -> VmDefinitionDetail:
        return NO_DEFINITION

    async def _answer(self, name: str, argument: Any) -> CommandResult:
        self.calls.append((name, argument))
        self.entered.set()
        try:
            if self.hang:
                await self.release.wait()
            if self.error is not None:
                raise self.error
            return self.result
        finally:
            self.finished.set()

    async def set_maintenance(self, mode: MaintenanceMode) -> CommandResult:
        return await self._answer("set_maintenance", mode)

    async def vm_start(self, *, paused: bool = False, vm_conf: Path | None = None) -> CommandResult:
        return await self._answer("vm_start", paused if vm_conf is None else (paused, vm_conf))

    async def vm_shutdown(self) -> CommandResult:
        return await self._answer("vm_shutdown", None)

    async def vm_poweroff(self) -> CommandResult:
        return await self._answer("vm_poweroff", None)

    async def console_password(self, password: str, ttl: int) -> CommandResult:
        return await self._answer("console_password", (password, ttl))
