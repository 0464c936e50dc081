"""Alerts: conditions an administrator must hear about at once, beyond state transitions
(issue 14). ``step`` computes the active alerts every tick (``DecisionRecord.alerts``, kept
in ``FsmState.alerts``) and emits one ``Notify(alert=kind, reason=...)`` when an alert is
raised; the supervisor mails it whatever broker.conf's state_transition rule says, shows it
in status and counts it in the metrics (docs/notifications.md).
"""

from __future__ import annotations

from dataclasses import dataclass

# Global maintenance (hands off): the VM runs here, this host does not hold its lease and no
# live host does either (the administrator started it outside he-ha). Reported, not killed.
VM_WITHOUT_LEASE = "vm-without-lease"
# Global maintenance: a local copy ran while another live host holds the VM lease (a second
# copy); destroyed anyway, the one exception to hands-off (invariant 4).
SECOND_COPY_DESTROYED = "second-copy-destroyed"
# HA gives up (escalation): the retry limit is reached here and no other host can start the
# engine VM, which runs nowhere.
GAVE_UP_RETRY_LIMIT = "gave-up.retry-limit"
# HA gives up (escalation): no host can start the engine VM, which runs nowhere, for longer
# than TimingConfig.no_host_alert_after. Reported by the live host with the lowest id.
GAVE_UP_NO_ELIGIBLE_HOST = "gave-up.no-eligible-host"

ALERT_KINDS = (VM_WITHOUT_LEASE, SECOND_COPY_DESTROYED, GAVE_UP_RETRY_LIMIT, GAVE_UP_NO_ELIGIBLE_HOST)
GAVE_UP = frozenset({GAVE_UP_RETRY_LIMIT, GAVE_UP_NO_ELIGIBLE_HOST})


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str  # one of ALERT_KINDS
    reason: str  # what was found, for the mail, the log and status
    since: float  # local monotonic time it was raised
