"""The supervisor runs on uvloop: peer credentials and the routes work there too
(uvloop hands out its own socket wrapper)."""

from __future__ import annotations

from pathlib import Path

import uvloop

from he_ha.admin.server import AdminServer
from tests.integration.admin.conftest import client
from tests.integration.admin.doubles import ControllerTestDouble
from tests.integration.admin.peer import request_as


def test_admin_server_on_uvloop(socket_dir: Path) -> None:
    path = socket_dir / "admin.sock"

    async def scenario() -> tuple[int, int, int | None]:
        controller = ControllerTestDouble()
        server = AdminServer(controller, path, mode=0o666)
        await server.start()
        try:
            async with client(path) as session:
                async with session.get("/v1/status") as response:
                    status = response.status
                async with session.post("/v1/maintenance", json={"mode": "global"}) as response:
                    root = response.status
            refused = await request_as(path, 65534, 65534, "POST", "/v1/vm/poweroff", {})
        finally:
            await server.stop()
        return status, root, refused.status

    assert uvloop.run(scenario()) == (200, 200, 403)
