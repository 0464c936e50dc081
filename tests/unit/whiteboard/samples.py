"""Valid whiteboard records shared by the storage tests."""

from __future__ import annotations

from dataclasses import replace

from he_ha.whiteboard import HostSlot, engine_status_json

DOWN_STATUS = engine_status_json(
    {"vm": "down", "health": "bad", "detail": "unknown", "reason": "vm not running on this host"}
)
UP_STATUS = engine_status_json({"vm": "up", "health": "good", "detail": "Up"})


def host_slot(host_id: int = 2, **changes: object) -> HostSlot:
    """A typical record for ``host_id``: the spec §2.3 example with that id."""
    slot = HostSlot(
        host_id=host_id,
        host_ts=873412,
        score=3400,
        engine_status=DOWN_STATUS,
        hostname=f"host{host_id}.example.com",
        maintenance=False,
        stopped=False,
        conf_on_shared_storage=True,
        local_conf_timestamp=873405,
        extra="metadata_parse_version=1\nmetadata_feature_version=1\nstate=EngineDown\n",
    )
    return replace(slot, **changes)  # type: ignore[arg-type]
