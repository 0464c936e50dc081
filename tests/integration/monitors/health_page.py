"""The engine's health servlet, served by a real aiohttp server (see the conftest fixture)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class HealthPage:
    """The engine's health servlet. ``mode``: up | error | db-down | hang | flap."""

    mode: str = "up"
    url: str = ""
    requests: int = 0
    answers: list[str] = field(default_factory=list)

    async def handle(self, _request: web.Request) -> web.Response:
        self.requests += 1
        mode = self.mode
        if mode == "flap":
            mode = "up" if self.requests % 2 else "error"
        self.answers.append(mode)
        if mode == "up":
            return web.Response(text="DB Up!Welcome to Health Status!")
        if mode == "db-down":
            return web.Response(text="DB Down!")
        if mode == "hang":
            await asyncio.sleep(3600)
        return web.Response(status=500, text="DB Up? no: internal error")
