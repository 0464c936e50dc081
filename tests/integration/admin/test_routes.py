"""Every route of a real AdminServer on a unix socket, through a real aiohttp client."""

from __future__ import annotations

import pytest

from he_ha.admin.contract import ClusterStatus, CommandResult, MaintenanceMode
from tests.integration.admin.conftest import Admin
from tests.integration.admin.doubles import sample_status
from tests.unit.admin.prom_parser import parse_exposition


async def error_of(response, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) >= {"error", "message"} and body["message"]
    return body


async def test_status_is_the_controllers_cluster_status(admin: Admin) -> None:
    async with admin.session.get("/v1/status") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        status = ClusterStatus.model_validate(await response.json())
    assert status == sample_status()
    assert status.hosts[0].score_breakdown is not None
    assert status.hosts[0].score_breakdown.penalties[0].amount == 400


async def test_decisions_default_and_explicit_limit(admin: Admin) -> None:
    async with admin.session.get("/v1/decisions") as response:
        assert response.status == 200
        default = (await response.json())["decisions"]
    async with admin.session.get("/v1/decisions", params={"limit": "3"}) as response:
        three = (await response.json())["decisions"]
    assert len(default) == 50
    assert [d["seq"] for d in three] == [197, 198, 199]  # newest last
    assert admin.controller.calls == [("decisions", 50), ("decisions", 3)]


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "ten", "2.5", "", "\u00b2", "9" * 5000, ["1", "2"]])
async def test_bad_decision_limit_is_400_naming_limit(admin: Admin, limit: str | list[str]) -> None:
    values = limit if isinstance(limit, list) else [limit]
    async with admin.session.get("/v1/decisions", params=[("limit", value) for value in values]) as response:
        body = await error_of(response, 400)
    assert body["error"] == "invalid_parameter" and body["field"] == "limit"
    assert "'limit'" in body["message"]
    assert admin.controller.calls == []


async def test_unknown_query_parameter_is_400(admin: Admin) -> None:
    async with admin.session.get("/v1/decisions", params={"limt": "3"}) as response:
        body = await error_of(response, 400)
    assert body["field"] == "limt" and "unknown query parameter" in body["message"]


async def test_metrics_exposition_parses_back(admin: Admin) -> None:
    async with admin.session.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        families = parse_exposition(await response.text())
    assert families["he_ha_score"].kind == "gauge"
    assert families["he_ha_score"].samples == [({"host": "1"}, 3000.0), ({"host": "2"}, 2400.0)]
    assert families["he_ha_transitions_total"].kind == "counter"
    assert families["he_ha_transitions_total"].samples == [({}, 7.0)]


async def test_metrics_with_conflicting_types_is_a_500_not_bad_output(admin: Admin) -> None:
    from he_ha.admin.contract import Metric

    admin.controller.metric_list.append(Metric(name="he_ha_score", kind="counter", help="Score of a host.", value=1))
    async with admin.session.get("/metrics") as response:
        body = await error_of(response, 500)
    assert "he_ha_score" in body["message"]


@pytest.mark.parametrize("mode", ["global", "local", "none"])
async def test_set_maintenance(admin: Admin, mode: str) -> None:
    async with admin.session.post("/v1/maintenance", json={"mode": mode}) as response:
        assert response.status == 200
        assert CommandResult.model_validate(await response.json()) == CommandResult(ok=True, message="done")
    assert admin.controller.calls == [("set_maintenance", MaintenanceMode(mode))]


@pytest.mark.parametrize(
    ("body", "paused"), [({"paused": True}, True), ({"paused": False}, False), ({}, False), (None, False)]
)
async def test_vm_start(admin: Admin, body: dict | None, paused: bool) -> None:
    async with admin.session.post("/v1/vm/start", json=body) as response:
        assert response.status == 200
    assert admin.controller.calls == [("vm_start", paused)]


async def test_vm_start_with_empty_body(admin: Admin) -> None:
    async with admin.session.post("/v1/vm/start") as response:
        assert response.status == 200
    assert admin.controller.calls == [("vm_start", False)]


@pytest.mark.parametrize("route", ["shutdown", "poweroff"])
async def test_vm_shutdown_and_poweroff(admin: Admin, route: str) -> None:
    async with admin.session.post(f"/v1/vm/{route}") as response:
        assert response.status == 200
    async with admin.session.post(f"/v1/vm/{route}", json={}) as response:
        assert response.status == 200
    assert admin.controller.calls == [(f"vm_{route}", None)] * 2


async def test_refusal_is_409_with_the_command_result(admin: Admin) -> None:
    admin.controller.result = CommandResult(ok=False, message="another host holds the VM lease", detail={"owner": 2})
    async with admin.session.post("/v1/vm/start", json={}) as response:
        body = await error_of(response, 409)
    assert body["error"] == "refused"
    assert CommandResult.model_validate(body) == admin.controller.result


async def test_controller_exception_is_500_with_its_message(admin: Admin) -> None:
    admin.controller.error = RuntimeError("whiteboard write failed: EIO")
    async with admin.session.post("/v1/maintenance", json={"mode": "global"}) as response:
        body = await error_of(response, 500)
    assert body["error"] == "internal_error"
    assert "RuntimeError: whiteboard write failed: EIO" in body["message"]


async def test_controller_returning_no_command_result_is_500(admin: Admin) -> None:
    admin.controller.result = {"ok": True}
    async with admin.session.post("/v1/vm/poweroff") as response:
        body = await error_of(response, 500)
    assert "not a CommandResult" in body["message"]


async def test_status_exception_is_500(admin: Admin) -> None:
    admin.controller.status_error = KeyError("hosts")
    async with admin.session.get("/v1/status") as response:
        body = await error_of(response, 500)
    assert "KeyError" in body["message"]


# --- malformed requests -----------------------------------------------------------------

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("data", "code", "text"),
    [
        (b'{"mode": "global"', "invalid_json", "malformed JSON body at line 1 column 18"),
        (b'{"mode": global}', "invalid_json", "line 1 column 10"),
        (b'{\n  "mode": "local",\n}', "invalid_json", "line 3 column 1"),
        (b'["global"]', "invalid_json", "must be a JSON object, got list"),
        (b'"global"', "invalid_json", "must be a JSON object, got str"),
        (b'{"mode": "local", "mode": "global"}', "invalid_json", "'mode' appears twice"),
        (b"\xff\xfe{}", "invalid_json", "not UTF-8"),
    ],
)
async def test_body_that_is_not_one_json_object_is_400_saying_where(
    admin: Admin, data: bytes, code: str, text: str
) -> None:
    async with admin.session.post("/v1/maintenance", data=data, headers=JSON) as response:
        body = await error_of(response, 400)
    assert body["error"] == code and text in body["message"]
    assert admin.controller.calls == []


@pytest.mark.parametrize(
    ("route", "payload", "field", "text"),
    [
        ("/v1/maintenance", {"mode": "globl"}, "mode", "'global', 'local' or 'none'"),
        ("/v1/maintenance", {"mode": 1}, "mode", "field 'mode'"),
        ("/v1/maintenance", {}, "mode", "missing required field 'mode'"),
        ("/v1/maintenance", {"mode": "none", "force": True}, "force", "unknown field 'force'"),
        ("/v1/vm/start", {"paused": "yes"}, "paused", "valid boolean"),
        ("/v1/vm/start", {"paused": 1}, "paused", "valid boolean"),
        ("/v1/vm/start", {"pause": True}, "pause", "known fields: 'paused'"),
        ("/v1/vm/shutdown", {"delay": 120}, "delay", "known fields: none"),
    ],
)
async def test_wrong_fields_are_400_naming_the_field(
    admin: Admin, route: str, payload: dict, field: str, text: str
) -> None:
    async with admin.session.post(route, json=payload) as response:
        body = await error_of(response, 400)
    assert body["error"] == "invalid_field" and body["field"] == field
    assert text in body["message"]
    assert admin.controller.calls == []


async def test_wrong_content_type_is_415(admin: Admin) -> None:
    async with admin.session.post(
        "/v1/maintenance", data=b'{"mode": "global"}', headers={"Content-Type": "text/plain"}
    ) as response:
        body = await error_of(response, 415)
    assert "'text/plain'" in body["message"]


async def test_huge_body_is_413(admin: Admin) -> None:
    async with admin.session.post("/v1/maintenance", data=b" " * (1024 * 1024), headers=JSON) as response:
        body = await error_of(response, 413)
    assert body["error"] == "body_too_large" and "65536" in body["message"]


async def test_huge_chunked_body_is_413(admin: Admin) -> None:
    async def chunks():
        for _ in range(64):
            yield b" " * 4096

    async with admin.session.post("/v1/maintenance", data=chunks(), headers=JSON) as response:
        body = await error_of(response, 413)
    assert body["error"] == "body_too_large"
    assert admin.controller.calls == []


async def test_unknown_route_is_404(admin: Admin) -> None:
    async with admin.session.get("/v1/nothing") as response:
        body = await error_of(response, 404)
    assert body["error"] == "not_found" and "/v1/nothing" in body["message"]


async def test_wrong_method_is_405_with_allow(admin: Admin) -> None:
    async with admin.session.post("/v1/status") as response:
        body = await error_of(response, 405)
        assert "GET" in response.headers["Allow"]
    assert body["error"] == "method_not_allowed"
    async with admin.session.get("/v1/maintenance") as response:
        body = await error_of(response, 405)
    assert "allowed: POST" in body["message"]
