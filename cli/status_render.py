"""``--vm-status`` output: pure functions from a ``ClusterStatus`` to text. No I/O, no clock.
They read only attributes, so they render the validated model and the lean path's attribute view
of the daemon's JSON (cli/status_source.py ``status_view``) alike.

The original's lines are reproduced byte for byte (spec/hosted-engine-cli.md §3.4, §3.5), so
scripts matching labels or ``"vm": "up"`` keep working. What he-ha adds (score breakdown,
FSM state, host priority, sanlock's view, unreadable slots) goes on extra lines whose labels start with
``he-ha``: they match none of the original labels, not even as prefixes (``grep Score``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from he_ha.whiteboard import engine_status_json

if TYPE_CHECKING:  # the lean --vm-status path renders the daemon's JSON without pydantic (cli/status_fast.py)
    from he_ha.admin.contract import ClusterStatus, HostView, PenaltyView, ScoreView, VmDefinitionView

LABEL_WIDTH = 35
# The original's friendly labels; every other key is printed as its raw name (quirk 8).
LABELS = {
    "host-id": "Host ID",
    "host-ts": "Host timestamp",
    "score": "Score",
    "engine-status": "Engine status",
    "hostname": "Hostname",
    "maintenance": "Local maintenance",
    "live-data": "Status up-to-date",
}
EXTRA_LABEL = "Extra metadata (valid at timestamp)"
STALE = "unknown stale-data"
UNPARSABLE_STATUS = "unknown (engine status is not a JSON object)"
# Two empty lines, the banner, one empty line (print() of "\n\n!! ... !!\n").
BANNER = "\n\n!! Cluster is in GLOBAL MAINTENANCE mode !!\n\n"

# Standard-output lines of the failure paths (spec §1, §3.6), in the original's words.
FAILED_DEPLOY = (
    "It seems like a previous attempt to deploy hosted-engine failed or it's still in progress. "
    "Please clean it up before trying again"
)
RETRIEVE_FAILED = (  # sic "occured"
    "An error occured while retrieving vm status, please make sure the HA daemon is ready and reachable."
)
BROKER_FAILED = "Unable to connect the HA Broker "  # sic, trailing space kept (quirk 9)


def line(label: str, value: object) -> str:
    return f"{label:{LABEL_WIDTH}}: {value}"


# --- the original's per-host record ------------------------------------------------------------


def host_record(view: HostView) -> dict[str, Any]:
    """The original client's dict for one readable slot, keys in its insertion order (§3.2)."""
    record: dict[str, Any] = {
        "host-id": view.host_id,
        "host-ts": view.host_ts,
        "score": view.score,
        "engine-status": view.engine_status,
        "hostname": view.hostname,
        "maintenance": view.maintenance,
        "stopped": view.stopped,
        "crc32": view.crc32,
        "conf_on_shared_storage": view.conf_on_shared_storage,
        "local_conf_timestamp": view.local_conf_timestamp,
    }
    if view.extra:
        record["extra"] = view.extra
    record["live-data"] = view.live
    return record


def readable_hosts(status: ClusterStatus) -> list[HostView]:
    return sorted((h for h in status.hosts if h.error is None), key=lambda h: h.host_id)


def unreadable_hosts(status: ClusterStatus) -> list[HostView]:
    return sorted((h for h in status.hosts if h.error is not None), key=lambda h: h.host_id)


# --- JSON (§3.5) ---------------------------------------------------------------------------------


def render_json(status: ClusterStatus) -> str:
    """One line: host ids as string keys, then ``global_maintenance``; no masking, no banner.

    Unreadable slots are left out (the original dropped them); ``skipped_slot_notes`` names
    them for stderr. No other top-level key is added: consumers iterate the numeric keys.
    """
    document: dict[str, Any] = {str(h.host_id): host_record(h) for h in readable_hosts(status)}
    document["global_maintenance"] = status.global_maintenance is True
    return json.dumps(document)


def exception_json(message: str) -> str:
    """What ``--json`` prints on stdout when it has no status to print: still valid JSON."""
    return json.dumps({"exception": message})


def skipped_slot_notes(status: ClusterStatus) -> list[str]:
    return [f"he-ha: host slot {h.host_id} left out, it cannot be read: {h.error}" for h in unreadable_hosts(status)]


# --- text (§3.4) ----------------------------------------------------------------------------------


def render_text(status: ClusterStatus) -> str:
    """The text view: banner, each host's block (readable and unreadable, by host id), banner."""
    parts: list[str] = []
    if status.global_maintenance:
        parts.append(BANNER)
    for view in sorted(status.hosts, key=lambda h: h.host_id):
        local = status if view.local else None
        parts.append(_host_block(view, local) if view.error is None else _unreadable_block(view))
    if status.global_maintenance:
        parts.append(BANNER)
    return "".join(parts)


def _host_block(view: HostView, local: ClusterStatus | None = None) -> str:
    """One host's block; ``local``: the status of the host asked, whose own block also says
    what only this host knows (its engine's liveness, its alerts, its VM definition)."""
    record = host_record(view)
    lines = ["", "", f"--== Host {view.hostname} (id: {view.host_id}) status ==--", ""]
    for key, value in record.items():
        if key == "extra":
            continue
        if key == "engine-status":
            value = _engine_status_text(view)
        lines.append(line(LABELS.get(key, key), value))
    if "extra" in record:
        lines.append(f"{EXTRA_LABEL}:")  # the label is 35 wide: no padding before the colon
        lines.extend(f"\t{extra}" for extra in view.extra.splitlines())
    lines.extend(_he_ha_lines(view))
    if local is not None:
        lines.extend(local_lines(local))
    return "\n".join(lines) + "\n"


def _engine_status_text(view: HostView) -> str:
    if not view.live:
        return STALE
    if view.engine_status is None:
        return UNPARSABLE_STATUS
    return engine_status_json(view.engine_status)


def _he_ha_lines(view: HostView) -> list[str]:
    lines = score_lines(view.score_breakdown)
    if view.state is not None:
        lines.append(line("he-ha FSM state", view.state))
    if view.priority is not None:
        lines.append(line("he-ha priority", view.priority))
    if view.sanlock is not None:
        lines.append(line("he-ha sanlock host status", view.sanlock))
    return lines


def local_lines(status: ClusterStatus) -> list[str]:
    """This host's engine liveness (issue 14: healthy, not-ready, silent), each active alert
    (loud: an administrator must see that HA gave up), and the VM definition's problem."""
    lines = []
    if status.engine_liveness is not None:
        lines.append(line("he-ha engine liveness", status.engine_liveness))
    lines.extend(
        line("he-ha ALERT", f"{alert.kind}: {alert.reason} (for {alert.age:.0f} s)") for alert in status.alerts
    )
    return lines + definition_lines(status.vm_definition)


def definition_lines(definition: VmDefinitionView | None) -> list[str]:
    """Only while this host's VM definition has a problem: a line saying whether it can still
    start the VM, and why not (nothing at all otherwise)."""
    if definition is None or definition.problem is None:
        return []
    state = "usable" if definition.usable else "UNUSABLE: this host cannot start the VM"
    return [line("he-ha VM definition", state), line("he-ha VM definition problem", definition.problem)]


def score_lines(breakdown: ScoreView | None) -> list[str]:
    if breakdown is None:
        return [line("he-ha score breakdown", "not published by this host")]
    lines = [line("he-ha score breakdown", score_summary(breakdown))]
    lines.extend(line("he-ha penalty", penalty_text(p)) for p in breakdown.penalties)
    return lines


def score_summary(breakdown: ScoreView) -> str:
    taken = sum(p.amount for p in breakdown.penalties)
    if breakdown.override is not None:
        return f"0, forced: {breakdown.override} (base {breakdown.base}, penalties {taken})"
    if breakdown.penalties:
        return f"{breakdown.total} = base {breakdown.base} - penalties {taken}"
    return f"{breakdown.total} = base {breakdown.base}, no penalties"


def penalty_text(penalty: PenaltyView) -> str:
    return f"{penalty.name} -{penalty.amount}: {penalty.reason}"


def _unreadable_block(view: HostView) -> str:
    """A slot the original dropped silently: marked, with the reason. Its header does not
    match ``--== Host <name> (id: <n>) status ==--`` and it has none of the original labels,
    so scripts see what they saw before."""
    lines = [
        "",
        "",
        f"--== Host slot {view.host_id}: UNREADABLE ==--",
        "",
        line("he-ha slot error", view.error),
        line("he-ha slot still written", view.live),
    ]
    if view.sanlock is not None:
        lines.append(line("he-ha sanlock host status", view.sanlock))
    return "\n".join(lines) + "\n"
