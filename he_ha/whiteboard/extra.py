"""The human-readable "extra" text of a host slot (spec §2.5), built purely from values.

Peers never parse it; `hosted-engine --vm-status` prints it under
"Extra metadata (valid at timestamp)". The caller supplies every clock value, so this stays
pure: the header timestamps are monotonic seconds and ``time_epoch``/``refresh_epoch`` are
``int(wall - monotonic)`` taken when those timestamps were taken, as in the original.
Unlike the original (defect B12) the ``timeout=`` line is given as a wall-clock time.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from he_ha.whiteboard.codec import FEATURE_VERSION, PARSE_VERSION, HostSlot
from he_ha.whiteboard.whiteboard_errors import EncodeError


def format_extra(
    slot: HostSlot,
    *,
    state: str,
    time_epoch: int,
    refresh_epoch: int,
    timeout_at: float | None = None,
    tz: tzinfo | None = None,
) -> str:
    """The extra lines in the original's order, each ending in a newline.

    ``state`` is the FSM state's name (e.g. ``EngineUp``); ``timeout_at`` the wall-clock
    epoch second at which the state's timer expires (only EngineStop, EngineUpBadHealth and
    EngineUnexpectedlyDown have one). ``tz`` None means local time, like ``time.ctime``.
    """
    if slot.local_conf_timestamp is None or slot.conf_on_shared_storage is None:
        raise EncodeError(f"extra text of host {slot.host_id} needs conf_on_shared_storage and local_conf_timestamp")
    lines = [
        f"metadata_parse_version={PARSE_VERSION}",
        f"metadata_feature_version={FEATURE_VERSION}",
        f"timestamp={slot.host_ts} ({_ctime(slot.host_ts + time_epoch, tz)})",
        f"host-id={slot.host_id}",
        f"score={slot.score}",
        f"vm_conf_refresh_time={slot.local_conf_timestamp} ({_ctime(slot.local_conf_timestamp + refresh_epoch, tz)})",
        f"conf_on_shared_storage={slot.conf_on_shared_storage}",
    ]
    # The state's own metadata follows, sorted by key as the original's dict iteration did.
    state_metadata: dict[str, object] = {"maintenance": slot.maintenance, "state": state, "stopped": slot.stopped}
    if timeout_at is not None:
        state_metadata["timeout"] = _ctime(timeout_at, tz)
    lines += [f"{key}={value}" for key, value in sorted(state_metadata.items())]
    return "\n".join(lines) + "\n"


def _ctime(epoch_seconds: float, tz: tzinfo | None) -> str:
    """``time.ctime`` format (``Tue Mar  3 10:00:00 2026``) in ``tz``."""
    try:
        return datetime.fromtimestamp(epoch_seconds, tz).ctime()
    except (OverflowError, OSError, ValueError) as exc:
        raise EncodeError(f"time {epoch_seconds!r} cannot be shown as a date: {exc}") from None
