"""One mutating call to the local he-ha daemon, with the shim's output rules applied.

Every command that changes something through the daemon (maintenance, VM start/stop,
console password) posts one request and needs the same three outcomes: done, refused or
failed with the daemon's explanation, or no daemon at all (the original's broker-socket
message, plus what the socket said).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cli.admin_client import AdminClient, DaemonUnreachable
from cli.command import CANNOT_CONNECT, EXIT_FAILED, EXIT_OK, error
from cli.environment import CliEnvironment

# Longer than the daemon's own 30 s deadline on mutating calls, so a slow call ends with
# the daemon's 504 explanation rather than with our socket timing out.
CALL_TIMEOUT = 45.0


@dataclass(frozen=True)
class Answer:
    ok: bool  # 200: done
    message: str  # the daemon's explanation (CommandResult.message or the error message)
    detail: dict[str, Any]

    @property
    def refusal(self) -> str | None:
        """The daemon's ``detail["refusal"]`` (he_ha.admin.contract.Refusal) of a 409."""
        value = self.detail.get("refusal")
        return value if isinstance(value, str) else None


def post(env: CliEnvironment, url: str, body: dict[str, Any] | None = None) -> Answer | None:
    """The daemon's answer, or None after printing why the daemon cannot be reached."""
    try:
        status, data = AdminClient(env.admin_socket, timeout=CALL_TIMEOUT).post(url, body)
    except DaemonUnreachable as exc:
        error(CANNOT_CONNECT)
        error(str(exc))
        return None
    if not isinstance(data, dict):
        return Answer(False, f"unexpected answer ({status}): {str(data)[:200]}", {})
    message = data.get("message")
    detail = data.get("detail")
    return Answer(
        ok=status == 200,
        message=message if isinstance(message, str) else f"status {status} without a message",
        detail=detail if isinstance(detail, dict) else {},
    )


def post_silently(env: CliEnvironment, url: str, body: dict[str, Any] | None = None) -> int:
    """The original's rule for set-maintenance, shutdown, poweroff: nothing printed when
    done (exit 0), the reason on stderr otherwise (exit 1)."""
    answer = post(env, url, body)
    if answer is None:
        return EXIT_FAILED
    if not answer.ok:
        error(answer.message)
        return EXIT_FAILED
    return EXIT_OK
