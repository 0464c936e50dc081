"""ClusterStatus fixtures for the ``--vm-status`` golden tests, modelled on the spec's example
(spec/hosted-engine-cli.md §3.4): what the daemon's GET /v1/status would answer; and the
same two hosts written to a real metadata volume for the storage fallback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from he_ha.admin.contract import ClusterStatus, HostView, PenaltyView, ScoreView
from he_ha.whiteboard import WHITEBOARD_BYTES, GlobalBlock, HostSlot, Whiteboard, engine_status_json

UP = {"vm": "up", "health": "good", "detail": "Up"}
DOWN = {"vm": "down", "health": "bad", "detail": "unknown", "reason": "vm not running on this host"}
CTIME = "Tue Mar  3 10:00:00 2026"


def extra(host_id: int, ts: int, score: int, state: str, *, maintenance: bool = False, breakdown: str = "") -> str:
    """The agent's extra text in the order of spec §3.2 (a he-ha writer appends its breakdown)."""
    text = (
        f"metadata_parse_version=1\nmetadata_feature_version=1\ntimestamp={ts} ({CTIME})\nhost-id={host_id}\n"
        f"score={score}\nvm_conf_refresh_time={ts} ({CTIME})\nconf_on_shared_storage=True\n"
        f"maintenance={maintenance}\nstate={state}\nstopped=False\n"
    )
    return text + (f"score_breakdown={breakdown}\n" if breakdown else "")


def host1(**update: object) -> HostView:
    """This host, as the daemon reports its own slot (crc32 computed by hand with zlib)."""
    view = HostView(
        host_id=1,
        local=True,
        hostname="host1.example.com",
        state="EngineUp",
        score=3400,
        score_breakdown=ScoreView(base=3400, penalties=[], override=None, total=3400),
        engine_status=UP,
        live=True,
        host_ts=81234,
        maintenance=False,
        stopped=False,
        conf_on_shared_storage=True,
        local_conf_timestamp=81234,
        crc32="ed178011",
        extra=extra(1, 81234, 3400, "EngineUp"),
        sanlock="live",
        error=None,
    )
    return view.model_copy(update=update)


def host2(**update: object) -> HostView:
    """A he-ha peer with one penalty; crc32 as read from storage (computed by hand with zlib)."""
    view = HostView(
        host_id=2,
        local=False,
        hostname="host2.example.com",
        state="EngineDown",
        score=3000,
        score_breakdown=ScoreView(
            base=3400,
            penalties=[PenaltyView(name="memory", amount=400, reason="free memory 1024 MiB < VM 4096 MiB")],
            override=None,
            total=3000,
        ),
        engine_status=DOWN,
        live=True,
        host_ts=873412,
        maintenance=False,
        stopped=False,
        conf_on_shared_storage=True,
        local_conf_timestamp=873405,
        crc32="4b94dff8",
        extra=extra(2, 873412, 3000, "EngineDown"),
        sanlock="live",
        error=None,
    )
    return view.model_copy(update=update)


def corrupt3() -> HostView:
    return HostView(
        host_id=3,
        local=False,
        hostname=None,
        state=None,
        score=None,
        score_breakdown=None,
        engine_status=None,
        live=True,
        host_ts=None,
        maintenance=None,
        stopped=None,
        conf_on_shared_storage=None,
        local_conf_timestamp=None,
        crc32=None,
        extra="",
        sanlock="live",
        error="whiteboard slot of host 3: crc32 field 'deadbeef' does not match the computed 5d0c44a1",
    )


def cluster(*hosts: HostView, global_maintenance: bool | None = False) -> ClusterStatus:
    return ClusterStatus(
        host_id=1,
        global_maintenance=global_maintenance,
        hosts=list(hosts),
        whiteboard_age=1.5,
        storage_error=None,
        lease_owner=1,
        vm_here="running",
        hypervisor="connected",
    )


def spec_example() -> ClusterStatus:
    """The spec's §3.4 example: one host (an original agent: no breakdown), global maintenance."""
    view = host1(
        state="GlobalMaintenance",
        score_breakdown=None,
        local=False,
        sanlock=None,
        crc32="6f1c2a9b",
        extra=extra(1, 81234, 3400, "GlobalMaintenance"),
    )
    return cluster(view, global_maintenance=True)


STATUSES: dict[str, Callable[[], ClusterStatus]] = {
    "normal": lambda: cluster(host1(), host2()),
    "stale": lambda: cluster(host1(), host2(live=False)),
    "global_maintenance": spec_example,
    "local_maintenance": lambda: cluster(
        host1(),
        host2(
            state="LocalMaintenance",
            score=0,
            maintenance=True,
            crc32="e1e15235",
            score_breakdown=ScoreView(base=3400, penalties=[], override="local maintenance", total=0),
            extra=extra(
                2,
                873412,
                0,
                "LocalMaintenance",
                maintenance=True,
                breakdown='{"base":3400,"penalties":[],"override":"local maintenance"}',
            ),
        ),
    ),
    "corrupt_slot": lambda: cluster(host1(), host2(), corrupt3()),
    "zero_hosts": lambda: cluster(),
}


def write_metadata(path: Path) -> None:
    """Two host slots and slot 0 written with the codec through O_DIRECT writes."""
    with path.open("wb") as volume:
        volume.truncate(WHITEBOARD_BYTES)
    breakdown = '{"base":3400,"penalties":[["memory",400,"free memory 1024 MiB < VM 4096 MiB"]],"override":null}'
    slots = [
        HostSlot(
            1,
            81234,
            3400,
            engine_status_json(UP),
            "host1.example.com",
            False,
            False,
            True,
            81234,
            extra(1, 81234, 3400, "EngineUp"),
        ),
        HostSlot(
            2,
            873412,
            3000,
            engine_status_json(DOWN),
            "host2.example.com",
            False,
            False,
            True,
            873405,
            extra(2, 873412, 3000, "EngineDown", breakdown=breakdown),
        ),
    ]

    async def publish() -> None:
        for slot in slots:
            async with Whiteboard(path, slot.host_id) as board:
                await board.publish(slot)
                if slot.host_id == 1:
                    await board.admin_write_global(GlobalBlock(maintenance=True))

    asyncio.run(publish())
