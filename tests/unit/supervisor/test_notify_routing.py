"""The executor routes the state machine's Notify actions: transitions to the [notify]
state_transition rule, alerts (issue 14) to the notifier's alert queue, whatever that rule says."""

from __future__ import annotations

from he_ha.fsm import Notify
from he_ha.supervisor.execute import ActionExecutor


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def state_transition(self, old: str, new: str) -> bool:
        self.calls.append(("transition", old, new))
        return True

    def alert(self, kind: str, reason: str) -> bool:
        self.calls.append(("alert", kind, reason))
        return True


def test_transitions_and_alerts_go_to_their_own_queues() -> None:
    notifier = Recorder()
    # The type: ignore must stay on the line mypy reports: not reformatted.
    # fmt: off
    executor = ActionExecutor(vm=None, holder=None, specs=None, health=None, notifier=notifier,  # type: ignore[arg-type]
                              on_done=lambda done: None, migrate_uri="", io_timeout=1)
    # fmt: on
    executor.run(Notify("EngineUp-EngineUnexpectedlyDown"))
    executor.run(Notify(alert="gave-up.retry-limit", reason="the engine VM runs nowhere"))
    assert notifier.calls == [
        ("transition", "EngineUp", "EngineUnexpectedlyDown"),
        ("alert", "gave-up.retry-limit", "the engine VM runs nowhere"),
    ]


def test_without_a_notifier_nothing_happens() -> None:
    # The type: ignore must stay on the line mypy reports: not reformatted.
    # fmt: off
    executor = ActionExecutor(vm=None, holder=None, specs=None, health=None, notifier=None,  # type: ignore[arg-type]
                              on_done=lambda done: None, migrate_uri="", io_timeout=1)
    # fmt: on
    executor.run(Notify(alert="vm-without-lease", reason="x"))
    executor.run(Notify("A-B"))
