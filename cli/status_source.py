"""Where ``--vm-status`` and ``--explain`` get their data: the local daemon's admin socket, or
the whiteboard on shared storage when asked (``--vm-status --from-storage``), and libvirt for
the failed-deploy check.

Every source has a deadline: the socket a timeout, the storage read ``Whiteboard``'s own
read timeout plus an outer ``wait_for``, ``virsh`` a subprocess timeout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.admin_client import AdminClient, AdminError, DaemonUnreachable

if TYPE_CHECKING:  # the rest is loaded where it is used: the lean path (cli/status_fast.py) loads none of it
    from pydantic import ValidationError

    from cli.environment import CliEnvironment
    from he_ha.admin.contract import ClusterStatus
    from he_ha.whiteboard import DecodedBoard

DAEMON_TIMEOUT = 5.0  # the daemon answers status from memory: seconds mean it is hung
STORAGE_TIMEOUT = 10.0
VIRSH_TIMEOUT = 10.0
DEPLOY_DOMAIN = "HostedEngineLocal"  # the bootstrap VM of the original's deployment
MAX_DECISIONS = 1000  # the admin API's upper bound for ?limit=


class SourceError(Exception):
    """A source could not give its data; the message says which source and why."""


@dataclass(frozen=True)
class Fetched:
    status: ClusterStatus  # or, on the lean path, its ``status_view``
    storage_note: str | None  # None: from the daemon; else where on storage it was read


def status_from_daemon(env: CliEnvironment, timeout: float = DAEMON_TIMEOUT) -> ClusterStatus:
    from he_ha.admin.contract import ClusterStatus

    return ClusterStatus.model_validate(daemon_get(env.admin_socket, "/v1/status", timeout))


def daemon_get(socket: Path, url: str, timeout: float = DAEMON_TIMEOUT) -> Any:
    """The decoded 200 answer of ``GET url`` on the admin ``socket``; SourceError naming the
    socket otherwise."""
    try:
        return AdminClient(socket, timeout=timeout).get(url)
    except DaemonUnreachable as exc:
        raise SourceError(str(exc)) from exc
    except AdminError as exc:
        raise SourceError(f"the he-ha daemon on {socket} answered {exc.status}: {exc.message}") from exc


# The fields of the contract's models (he_ha/admin/contract.py) whose values are models
# themselves, or lists of them; tests/unit/cli_status/test_status_fast.py derives this set from
# the models and compares.
MODEL_FIELDS = frozenset({"hosts", "score_breakdown", "penalties", "vm_definition", "alerts"})


class JsonView:
    """Read-only attribute access to a JSON object the daemon sent (``ClusterStatus`` and the
    models in it, as ``model_dump`` wrote them), for the lean path, which renders without
    pydantic. A key that is missing raises AttributeError: such an answer (a daemon older
    than a field) goes to the full path, which validates it and fills in the defaults."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise TypeError(f"not a JSON object: {type(data).__name__}")
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            value = self._data[name]
        except KeyError:
            raise AttributeError(name) from None
        if name not in MODEL_FIELDS or value is None:
            return value
        if isinstance(value, list):
            return [JsonView(item) for item in value]
        return JsonView(value)


def status_view(data: Any) -> ClusterStatus:
    """The daemon's ``/v1/status`` answer as the renderers read a ``ClusterStatus`` (not validated)."""
    return JsonView(data)  # type: ignore[return-value]


def fetch_status(env: CliEnvironment, *, from_storage: bool = False) -> Fetched:
    """The daemon's view; with ``from_storage``, the whiteboard read from storage instead
    (every host stale). SourceError naming the source and why it gave nothing.

    Without ``from_storage`` there is no fallback to storage: a daemon that does not answer
    is a failure, as the original's dead broker was (exit 1), so health checks notice it.
    """
    if from_storage:
        status, metadata = status_from_storage(env)
        return Fetched(
            status,
            f"status read from storage ({metadata}), not from the he-ha daemon: every host shown as not up-to-date",
        )
    from pydantic import ValidationError

    try:
        return Fetched(status_from_daemon(env), None)
    except ValidationError as exc:
        raise SourceError(
            f"the he-ha daemon on {env.admin_socket} sent a status that does not parse: {_first(exc)}"
        ) from None


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"


def status_from_storage(env: CliEnvironment, timeout: float = STORAGE_TIMEOUT) -> tuple[ClusterStatus, Path]:
    """Read the whiteboard directly (O_DIRECT, with a deadline) as a ClusterStatus whose
    hosts are all stale: without the daemon's history nobody can tell who is alive."""
    import asyncio

    from he_ha.admin.contract import ClusterStatus
    from he_ha.config import ConfigError

    try:
        conf = env.engine_conf()
        path = env.volume("metadata").path
    except ConfigError as exc:
        raise SourceError(str(exc)) from exc
    # Imported here: only this path needs the storage and supervisor code (~0.3 s to import).
    from he_ha.supervisor.status import error_view, slot_view
    from he_ha.whiteboard import Whiteboard, WhiteboardError

    async def read() -> DecodedBoard:
        async with Whiteboard(path, conf.host_id, read_timeout=timeout) as board:
            return await asyncio.wait_for(board.read_all(), timeout + 1.0)

    try:
        view = asyncio.run(read())
    except TimeoutError:  # before OSError, its base class
        raise SourceError(f"whiteboard read of {path}: no answer within {timeout + 1.0:g} s") from None
    except (WhiteboardError, OSError) as exc:
        raise SourceError(str(exc)) from exc
    hosts = [slot_view(slot, local=hid == conf.host_id, live=False, sanlock=None) for hid, slot in view.hosts.items()]
    hosts += [error_view(hid, error, live=False, sanlock=None) for hid, error in view.errors.items()]
    hosts.sort(key=lambda h: h.host_id)
    global_maintenance: bool | None = None  # slot 0 unreadable
    if view.global_error is None:
        global_maintenance = view.global_block is not None and view.global_block.maintenance
    status = ClusterStatus(
        host_id=conf.host_id,
        global_maintenance=global_maintenance,
        hosts=hosts,
        whiteboard_age=0.0,
        storage_error=None,
        lease_owner=None,
        vm_here="unknown",
        hypervisor="unknown",
    )
    return status, path


def decisions_from_daemon(env: CliEnvironment) -> list[dict[str, Any]]:
    """Every decision record the daemon keeps (its ring), newest last."""
    answer = daemon_get(env.admin_socket, f"/v1/decisions?limit={MAX_DECISIONS}")
    decisions = answer.get("decisions") if isinstance(answer, dict) else None
    if not isinstance(decisions, list) or not all(isinstance(d, dict) for d in decisions):
        raise SourceError(f"the he-ha daemon on {env.admin_socket} sent decisions that are not a list of objects")
    return decisions


def failed_deploy_leftover(uri: str, timeout: float = VIRSH_TIMEOUT) -> tuple[bool, str | None]:
    """(True, None) when libvirt at ``uri`` has the bootstrap VM of an interrupted deploy.

    ``virsh domstate`` as the original did, read-only and with a deadline. (False, why) when
    the check itself could not run, so the caller can say so instead of guessing.
    """
    import subprocess

    command = ["virsh", "-r", "-c", uri, "domstate", DEPLOY_DOMAIN]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        return False, "virsh is not installed: cannot check for a leftover deployment VM"
    except subprocess.TimeoutExpired:
        return False, f"virsh -c {uri} did not answer within {timeout:g} s: cannot check for a leftover deployment VM"
    return done.returncode == 0, None
