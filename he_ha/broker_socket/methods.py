"""The original broker's methods (spec ovirt-ha-behaviour.md §1.2, ovirt-host-integration.md §6.4)
with their argument and result types, served from the he-ha daemon.

Reads answer from memory only (the daemon's latest whiteboard read and its liveness view),
so they answer at once while storage hangs. Differences from the original, on purpose:
- a failure is an XML-RPC fault saying what went wrong, never the original's silent nil;
- ``get_stats`` serves the latest read as it is: a slot that vanished from storage is gone
  (the original kept serving it from its cache);
- ``put_stats`` writes the global block only (host id 0); a host's slot is written by that
  host's own daemon alone. It answers "ok" once the block is on storage and read back;
- the agent-only methods are refused: he-ha replaces the agent, which must not run beside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from xmlrpc.client import APPLICATION_ERROR, INVALID_METHOD_PARAMS, METHOD_NOT_FOUND, Binary, Fault

import structlog

from he_ha.admin.contract import CommandResult
from he_ha.broker_socket.access import MutationAccess
from he_ha.broker_socket.wire import Call
from he_ha.supervisor.board import BoardRead
from he_ha.whiteboard import SLOT_BYTES, SlotError, decode_global_block, global_entries

log = structlog.get_logger(__name__)

# Called by ovirt-ha-agent only (and its --cleanup): he-ha does their work itself.
AGENT_ONLY = frozenset(
    {
        "start_monitor",
        "stop_monitor",
        "status_monitor",
        "push_hosts_state",
        "notify",
        "start_domain_monitor",
        "stop_domain_monitor",
        "lock_host_id",
        "release_host_id",
    }
)
MUTATING = frozenset({"put_stats", "reset_lockspace"})


class BrokerBackend(Protocol):
    """What the methods need from the daemon (he_ha.supervisor.controller implements it)."""

    def latest_board(self) -> BoardRead | None: ...

    def board_error(self) -> str | None: ...

    def live_host_ids(self) -> list[int]: ...

    async def set_global_maintenance(self, on: bool) -> CommandResult: ...

    async def reset_lockspace(self) -> CommandResult: ...


# Each method's parameters: (name, XML-RPC type shown in faults, Python type).
_Params = tuple[tuple[str, str, type], ...]
_SIGNATURES: dict[str, _Params] = {
    "get_stats": (),
    "is_host_alive": (),
    "put_stats": (("host_id", "int", int), ("data", "base64", bytes)),
    "reset_lockspace": (),
}


class BrokerMethods:
    """The dispatcher of he_ha.broker_socket.wire: one Call in, a result out (or a Fault)."""

    def __init__(self, backend: BrokerBackend, access: MutationAccess) -> None:
        self._backend = backend
        self._access = access
        self._reset = asyncio.Lock()
        self._handlers: dict[str, Callable[..., Awaitable[Any]]] = {
            "get_stats": self.get_stats,
            "is_host_alive": self.is_host_alive,
            "put_stats": self.put_stats,
            "reset_lockspace": self.reset_lockspace,
        }

    async def __call__(self, call: Call) -> Any:
        method = call.method
        if method.startswith("_"):
            raise Fault(
                METHOD_NOT_FOUND, f'method "{method}" is not supported: names starting with "_" are not callable'
            )
        if method in AGENT_ONLY:
            raise Fault(
                APPLICATION_ERROR,
                f"{method}: he-ha replaces ovirt-ha-agent and ovirt-ha-broker on this host; "
                "this method serves only the original agent, which must not run beside "
                "he-ha (systemctl disable --now ovirt-ha-agent ovirt-ha-broker)",
            )
        handler = self._handlers.get(method)
        if handler is None:
            raise Fault(METHOD_NOT_FOUND, f'method "{method}" is not supported')
        _check_params(method, call.params)
        if method in MUTATING:
            await self._access.check(method, call.peer)
            peer = call.peer
            assert peer is not None  # check() refuses an unidentified caller
            log.info("broker call", method=method, uid=peer.uid, pid=peer.pid)
        return await handler(*call.params)

    async def get_stats(self) -> dict[str, Binary]:
        """Every slot whose first byte is not NUL, exactly as stored, by host id ("0": global)."""
        read = self._backend.latest_board()
        if read is None:
            error = self._backend.board_error()
            why = (
                f"the metadata volume cannot be read: {error}"
                if error
                else "the daemon has not read the metadata volume since it started"
            )
            raise Fault(APPLICATION_ERROR, f"get_stats: no whiteboard read yet: {why}")
        return {str(index): Binary(data) for index, data in sorted(read.raw.slot_bytes.items())}

    async def is_host_alive(self) -> list[int]:
        return self._backend.live_host_ids()

    async def put_stats(self, host_id: int, data: bytes) -> str:
        if host_id != 0:
            raise Fault(
                APPLICATION_ERROR,
                f"put_stats: refused: the slot of host {host_id} is written only by "
                "the HA daemon of that host; only the global block (host id 0) is "
                "accepted here",
            )
        result = await self._backend.set_global_maintenance(_maintenance_of(data))
        if not result.ok:
            raise Fault(APPLICATION_ERROR, f"put_stats: {result.message}")
        return "ok"

    async def reset_lockspace(self) -> str:
        if self._reset.locked():
            raise Fault(APPLICATION_ERROR, "reset_lockspace: another reset is under way")
        async with self._reset:
            result = await self._backend.reset_lockspace()
        if not result.ok:
            raise Fault(APPLICATION_ERROR, result.message)
        return "ok"


def _check_params(method: str, params: tuple[Any, ...]) -> None:
    expected = _SIGNATURES[method]
    fits = len(params) == len(expected) and all(
        isinstance(value, kind) and not isinstance(value, bool)  # XML-RPC's boolean is no int here
        for value, (_, _, kind) in zip(params, expected, strict=True)
    )
    if not fits:
        wanted = ", ".join(f"{name}: {shown}" for name, shown, _ in expected)
        got = ", ".join(type(value).__name__ for value in params)
        raise Fault(INVALID_METHOD_PARAMS, f"{method}({wanted}) called with ({got})")


def _maintenance_of(block: bytes) -> bool:
    """The ``maintenance`` value of a global block, parsed as the original client's
    ``parse_global_metadata_to_dict``: NUL-stripped key=value lines, ``maintenance`` the
    only key, a to_bool value. Anything else is a Fault naming it."""
    if len(block) != SLOT_BYTES:
        raise Fault(
            INVALID_METHOD_PARAMS,
            f"put_stats: the global block is {len(block)} bytes; it must be {SLOT_BYTES} (key=value text, NUL-padded)",
        )
    try:
        entries = global_entries(block) or []
        decoded = decode_global_block(block)
    except SlotError as exc:
        raise Fault(INVALID_METHOD_PARAMS, f"put_stats: {exc}") from None
    unknown = [key for key, _ in entries if key != "maintenance"]
    if unknown:
        raise Fault(
            INVALID_METHOD_PARAMS,
            f"put_stats: unknown key(s) in the global block: "
            f"{', '.join(map(repr, unknown))}; only 'maintenance' is known",
        )
    if not entries or decoded is None:
        raise Fault(INVALID_METHOD_PARAMS, "put_stats: the global block sets no 'maintenance' value")
    return decoded.maintenance
