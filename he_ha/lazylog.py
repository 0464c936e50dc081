"""A structlog logger that loads structlog on its first call (issue 16 item 3).

The helper processes (lease worker, lease keeper) log only when something goes wrong; importing
structlog (with asyncio and the rest it loads) would cost each of them about 10 MiB of RSS for
lines that are almost never written. In the supervisor, where structlog is loaded anyway, it
behaves as ``structlog.get_logger(name)``.
"""

from __future__ import annotations

from typing import Any


class LazyLogger:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Any:
        import structlog

        return getattr(structlog.get_logger(self._name), method)


def get_logger(name: str) -> LazyLogger:
    return LazyLogger(name)
