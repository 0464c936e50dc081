"""Controller coroutines under the admin API's deadline.

A call that misses the deadline is answered 504 but NOT cancelled: a half-done
maintenance change or VM start is worse than one finished late. It keeps running in the
background and its outcome is logged. ``cancel_all`` (server stop) cancels what is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

from he_ha.admin.contract import CommandResult
from he_ha.admin.http_errors import ApiError

logger = structlog.get_logger(__name__)


class ControllerCalls:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self._running: set[asyncio.Task[Any]] = set()
        self._late: set[asyncio.Task[Any]] = set()
        self._stopping = False

    async def run(self, action: str, coro: Coroutine[Any, Any, Any]) -> CommandResult:
        if self._stopping:
            coro.close()
            raise ApiError(503, "unavailable", "the admin server is stopping")
        task = asyncio.create_task(coro, name=f"admin-{action}")
        self._running.add(task)
        task.add_done_callback(self._finished)
        try:
            result = await asyncio.wait_for(asyncio.shield(task), self.deadline)
        except TimeoutError:
            self._late.add(task)
            raise ApiError(
                504,
                "deadline_exceeded",
                f"{action}: no result within {self.deadline:g} s; the call continues in the "
                "background and its outcome will be logged (check GET /v1/status)",
            ) from None
        except asyncio.CancelledError:
            if task.cancelled() and self._stopping:
                raise ApiError(503, "unavailable", f"{action}: cancelled, the admin server is stopping") from None
            self._late.add(task)  # our handler was cancelled, the call goes on: log its outcome
            raise
        except Exception as exc:
            logger.error("admin call failed", action=action, error=f"{type(exc).__name__}: {exc}", exc_info=exc)
            raise ApiError(500, "internal_error", f"{action} failed: {type(exc).__name__}: {exc}") from None
        if not isinstance(result, CommandResult):
            logger.error("admin call returned no CommandResult", action=action, result=repr(result))
            raise ApiError(
                500, "internal_error", f"{action}: the controller returned {type(result).__name__}, not a CommandResult"
            )
        return result

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if task not in self._late:
            return
        self._late.discard(task)
        if task.cancelled():
            logger.warning("admin call cancelled after its deadline", task=task.get_name())
        elif (error := task.exception()) is not None:
            logger.error(
                "admin call failed after its deadline", task=task.get_name(), error=f"{type(error).__name__}: {error}"
            )
        else:
            logger.info("admin call finished after its deadline", task=task.get_name(), result=repr(task.result()))

    async def cancel_all(self, timeout: float = 5.0) -> None:
        self._stopping = True
        pending = list(self._running)
        for task in pending:
            task.cancel()
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
            if still:
                logger.error("admin calls ignored cancellation", tasks=[t.get_name() for t in still])
