"""A Controller call that hangs: 504 at the deadline, the call goes on and its outcome is
logged, and reads keep answering at once meanwhile."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from structlog.testing import capture_logs

from he_ha.admin.contract import CommandResult
from he_ha.admin.server import AdminServer
from tests.integration.admin.conftest import client
from tests.integration.admin.doubles import ControllerTestDouble

DEADLINE = 0.5


async def test_hanging_call_is_504_while_status_answers_at_once(socket_dir: Path) -> None:
    controller = ControllerTestDouble()
    controller.hang = True
    path = socket_dir / "admin.sock"
    server = AdminServer(controller, path, deadline=DEADLINE)
    await server.start()
    try:
        async with client(path) as writer, client(path) as reader:
            began = time.monotonic()
            post = asyncio.create_task(writer.post("/v1/vm/start", json={}))
            await asyncio.wait_for(controller.entered.wait(), 5)

            for _ in range(5):  # while the call hangs, on another connection
                asked = time.monotonic()
                async with reader.get("/v1/status") as response:
                    assert response.status == 200
                    await response.json()
                assert time.monotonic() - asked < 0.1  # generous: it did not wait for the call
                assert not post.done()

            response = await asyncio.wait_for(post, 10)
            elapsed = time.monotonic() - began
            body = await response.json()
            response.release()
        assert response.status == 504
        assert body["error"] == "deadline_exceeded"
        assert "no result within 0.5 s" in body["message"]
        assert elapsed < DEADLINE + 5  # answered at the deadline, not when the call ends

        # The call was not cancelled: released, it finishes and its outcome is logged.
        with capture_logs() as logs:
            controller.release.set()
            await asyncio.wait_for(controller.finished.wait(), 5)
            for _ in range(100):
                if any(e["event"] == "admin call finished after its deadline" for e in logs):
                    break
                await asyncio.sleep(0.01)
        late = [e for e in logs if e["event"] == "admin call finished after its deadline"]
        assert late and "done" in late[0]["result"]
    finally:
        await server.stop()


async def test_late_failure_is_logged_as_an_error(socket_dir: Path) -> None:
    controller = ControllerTestDouble()
    controller.hang = True
    controller.error = OSError(5, "Input/output error")
    path = socket_dir / "admin.sock"
    server = AdminServer(controller, path, deadline=0.2)
    await server.start()
    try:
        async with client(path) as session, session.post("/v1/vm/poweroff") as response:
            assert response.status == 504
        with capture_logs() as logs:
            controller.release.set()
            await asyncio.wait_for(controller.finished.wait(), 5)
            await asyncio.sleep(0)  # the done-callback runs on the next loop iteration
            await asyncio.sleep(0)
        failed = [e for e in logs if e["event"] == "admin call failed after its deadline"]
        assert failed and "Input/output error" in failed[0]["error"]
        assert failed[0]["log_level"] == "error"
    finally:
        await server.stop()


async def test_stop_cancels_a_call_still_running(socket_dir: Path) -> None:
    controller = ControllerTestDouble()
    controller.hang = True
    path = socket_dir / "admin.sock"
    server = AdminServer(controller, path, deadline=30)
    await server.start()
    async with client(path) as session:
        post = asyncio.create_task(session.post("/v1/maintenance", json={"mode": "none"}))
        await asyncio.wait_for(controller.entered.wait(), 5)
        began = time.monotonic()
        await server.stop()
        assert time.monotonic() - began < 10  # did not wait for the 30 s deadline
        assert controller.finished.is_set()  # the hanging call was cancelled
        response = await asyncio.wait_for(post, 5)  # in-flight requests are answered before close
        assert response.status == 503
        assert "stopping" in (await response.json())["message"]
    assert not path.exists()


async def test_a_call_that_answers_in_time_is_unaffected_by_the_deadline(socket_dir: Path) -> None:
    controller = ControllerTestDouble()
    controller.result = CommandResult(ok=True, message="global maintenance set")
    path = socket_dir / "admin.sock"
    server = AdminServer(controller, path, deadline=DEADLINE)
    await server.start()
    try:
        async with client(path) as session, session.post("/v1/maintenance", json={"mode": "global"}) as response:
            assert response.status == 200
            assert (await response.json())["message"] == "global maintenance set"
    finally:
        await server.stop()
