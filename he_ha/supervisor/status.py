"""The admin API's ``ClusterStatus``, built from memory only (answers while storage hangs).

Pure functions of what the last tick saw: the raw whiteboard read, the decision record,
the sanlock view and our own last published slot.
"""

from __future__ import annotations

import json

from he_ha.admin.contract import (
    AlertView,
    ClusterStatus,
    HostView,
    LaunchXmlView,
    LeaseView,
    VmDefinitionDetail,
    VmDefinitionView,
)
from he_ha.fsm import DecisionRecord
from he_ha.fsm.alerts import GAVE_UP
from he_ha.ovirt.vm_definition import VmDefinition
from he_ha.supervisor.board import peer_priority
from he_ha.supervisor.engine_launch import LaunchXml
from he_ha.supervisor.execute import DefinitionState
from he_ha.supervisor.observe import SanlockView, TickInputs
from he_ha.supervisor.publish import parse_extra, score_view
from he_ha.whiteboard import HostSlot, SlotError, stored_crc


def _status_dict(slot: HostSlot) -> dict[str, str] | None:
    try:
        data = json.loads(slot.engine_status)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return {str(k): str(v) for k, v in data.items()}


def _sanlock_of(view: SanlockView | None, host_id: int) -> str | None:
    if view is None or view.hosts is None:
        return None
    return next((h.status.name.lower() for h in view.hosts if h.host_id == host_id), "free")


def slot_view(slot: HostSlot, *, local: bool, live: bool, sanlock: str | None) -> HostView:
    extra = parse_extra(slot.extra, slot.score)
    return HostView(
        host_id=slot.host_id,
        local=local,
        hostname=slot.hostname,
        state=extra.state,
        score=slot.score,
        score_breakdown=extra.breakdown,
        engine_status=_status_dict(slot),
        live=live,
        host_ts=slot.host_ts,
        maintenance=slot.maintenance,
        stopped=slot.stopped,
        conf_on_shared_storage=slot.conf_on_shared_storage,
        local_conf_timestamp=slot.local_conf_timestamp,
        crc32=slot.crc32 or stored_crc(slot),  # our own slot is known from memory, not decoded
        extra=slot.extra,
        sanlock=sanlock,
        error=None,
        priority=peer_priority(slot),
    )


def error_view(host_id: int, error: SlotError, *, live: bool, sanlock: str | None) -> HostView:
    return HostView(
        host_id=host_id,
        local=False,
        hostname=None,
        state=None,
        score=None,
        score_breakdown=None,
        engine_status=None,
        live=live,
        host_ts=None,
        maintenance=None,
        stopped=None,
        conf_on_shared_storage=None,
        local_conf_timestamp=None,
        crc32=None,
        extra="",
        sanlock=sanlock,
        error=str(error),
    )


def cluster_status(
    *,
    host_id: int,
    inputs: TickInputs | None,
    record: DecisionRecord | None,
    published: HostSlot | None,
    publishing: bool,
    now: float,
    storage_error: str | None,
    vm_here: str,
    hypervisor: str,
    definition: DefinitionState | None = None,
) -> ClusterStatus:
    board = inputs.board if inputs is not None else None
    sanlock = inputs.sanlock if inputs is not None else None
    cluster = record.inputs.cluster if record is not None else None
    alive = {p.host_id for p in cluster.alive} if cluster is not None else set()
    alive |= set(cluster.unreadable + cluster.too_new) if cluster is not None else set()
    hosts: list[HostView] = []
    if published is not None:
        own = slot_view(published, local=True, live=publishing, sanlock=_sanlock_of(sanlock, host_id))
        if record is not None:  # ours is known exactly, not just as published text
            own = own.model_copy(update={"state": record.to_state, "score_breakdown": score_view(record.score)})
        hosts.append(own)
    global_maintenance: bool | None = None
    if board is not None:
        raw = board.raw
        for peer_id, slot in sorted(raw.hosts.items()):
            if peer_id != host_id:
                hosts.append(slot_view(slot, local=False, live=peer_id in alive, sanlock=_sanlock_of(sanlock, peer_id)))
        for peer_id, error in sorted(raw.errors.items()):
            if peer_id != host_id:
                hosts.append(error_view(peer_id, error, live=peer_id in alive, sanlock=_sanlock_of(sanlock, peer_id)))
        if raw.global_error is None:
            global_maintenance = raw.global_block.maintenance if raw.global_block is not None else False
    hosts.sort(key=lambda h: h.host_id)
    lease = inputs.observation.lease if inputs is not None else None
    return ClusterStatus(
        host_id=host_id,
        global_maintenance=global_maintenance,
        hosts=hosts,
        whiteboard_age=None if board is None else round(now - board.read_at, 3),
        storage_error=storage_error,
        lease_owner=None if lease is None else lease.owner,
        vm_here=vm_here,
        hypervisor=hypervisor,
        vm_definition=None if definition is None else definition_view(definition),
        engine_liveness=None if record is None else record.inputs.engine_liveness,
        alerts=[]
        if record is None
        else [AlertView(kind=a.kind, reason=a.reason, age=round(now - a.since, 3)) for a in record.alerts],
        gave_up=record is not None and any(a.kind in GAVE_UP for a in record.alerts),
    )


def definition_view(state: DefinitionState) -> VmDefinitionView:
    return VmDefinitionView(
        usable=state.usable, source=state.source, path=state.origin, age=state.age, problem=state.problem
    )


def definition_detail(state: DefinitionState, in_use: VmDefinition | None) -> VmDefinitionDetail:
    return VmDefinitionDetail(
        definition=definition_view(state),
        vm_id=None if in_use is None else in_use.vm_id,
        vm_name=None if in_use is None else in_use.name,
        vm_conf=None if in_use is None else in_use.body,
        startable=in_use is not None and in_use.startable,
    )


def launch_view(launch: LaunchXml) -> LaunchXmlView:
    resolved, lease = launch.resolved, launch.engine_lease
    return LaunchXmlView(
        xml=launch.spec.xml,
        engine_xml=resolved is not None,
        changes=list(resolved.changes) if resolved is not None else [],
        networks=sorted(resolved.networks) if resolved is not None else [],
        engine_lease=None
        if lease is None
        else LeaseView(lockspace=lease.lockspace, key=lease.key, path=str(lease.path), offset=lease.offset),
    )
