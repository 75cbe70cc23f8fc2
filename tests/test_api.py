"""The HTTP API against a real uvicorn server, a real worker and the dev server."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from activities.runtime.settings import Settings, load_settings
from tests.conftest import ADMIN_KEY, TEST_KEYS, eventually, save_definition
from tests.fakes import HttpSink, Reply

WAITING = {
    "id": "waiting",
    "name": "Waits for approval",
    "inputs": {
        "type": "object",
        "required": ["who"],
        "properties": {"who": {"type": "string"}, "count": {"type": "integer", "default": 2}},
    },
    "steps": [
        {"id": "hello", "type": "set", "values": {"greeting": "hi {who} x{count}"}},
        {"id": "wait", "type": "wait_for_signal", "signal": "approval", "output": "approval"},
        {"id": "done", "type": "set", "values": {"approved_by": "{approval.by}"}},
    ],
}


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errors"} and body["errors"], body
    assert all({"code", "message"} <= set(e) for e in body["errors"])
    assert body["errors"][0]["code"] == code, body
    return body


async def start(http: httpx.AsyncClient, workflow_id: str, **inputs: Any) -> dict[str, Any]:
    response = await http.post(
        "/api/workflows/run", json={"workflow_id": workflow_id, "input_vars": inputs}
    )
    assert response.status_code == 202, response.text
    return response.json()


async def status_of(http: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/executions/{execution_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def wait_status(http: httpx.AsyncClient, execution_id: str, *wanted: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body = await status_of(http, execution_id)
        return body if body["status"] in wanted else None

    return await eventually(check, timeout=30)


async def test_run_answers_ids_and_the_execution_completes_after_approval(
    http: httpx.AsyncClient, settings: Settings, client: Client
) -> None:
    save_definition(settings, WAITING)
    started = await start(http, "waiting", who="Ada")
    assert set(started) >= {"execution_id", "run_id", "status", "errors"}
    assert started["status"] == "running" and started["errors"] == []
    assert started["run_id"]  # never null
    assert started["definition_version"] == 1
    execution_id = started["execution_id"]
    description = await client.get_workflow_handle(execution_id).describe()
    assert description.run_id == started["run_id"]

    async def waiting() -> dict[str, Any] | None:
        body = await status_of(http, execution_id)
        return body if body["current_step"] == "wait" else None

    live = await eventually(waiting)
    assert live["status"] == "running" and live["temporal_status"] == "RUNNING"
    assert live["outputs"]["greeting"] == "hi Ada x2"  # the `default` of `count` was applied
    assert [s["step_id"] for s in live["steps"]] == ["hello", "wait"]
    assert live["links"]["temporal_ui"].endswith(
        f"/workflows/{execution_id}/{started['run_id']}/history"
    )

    response = await http.post(
        f"/api/executions/{execution_id}/signals/approval", json={"by": "ops"}
    )
    assert response.status_code == 202
    assert response.json() == {
        "execution_id": execution_id,
        "status": "delivered",
        "signal": "approval",
        "errors": [],  # the run waited for exactly this signal: no warning
    }
    done = await wait_status(http, execution_id, "completed")
    assert done["outputs"]["approved_by"] == "ops"
    assert done["temporal_status"] == "COMPLETED" and done["ended_at"]

    log = (await http.get(f"/api/executions/{execution_id}/log")).json()
    assert log["status"] == "completed" and log["workflow_version"] == 1
    assert [s["step_id"] for s in log["steps"]] == ["hello", "wait", "done"]


async def test_run_accepts_form_encoded_bodies(http: httpx.AsyncClient, settings: Settings) -> None:
    save_definition(settings, WAITING)
    response = await http.post(
        "/api/workflows/run",
        data={"workflow_id": "waiting", "input_vars": json.dumps({"who": "Bo"})},
    )
    assert response.status_code == 202, response.text
    execution_id = response.json()["execution_id"]
    await http.post(f"/api/executions/{execution_id}/signals/approval", json={"by": "x"})
    done = await wait_status(http, execution_id, "completed")
    assert done["outputs"]["greeting"] == "hi Bo x2"


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "path"),
    [
        ({"json": {"workflow_id": "nope", "input_vars": {}}}, 404, "workflow_not_found", "$.workflow_id"),
        ({"json": {"workflow_id": "waiting", "input_vars": {}}}, 422, "invalid_input", "$.input_vars"),
        ({"json": {"workflow_id": "waiting", "input_vars": {"who": 5}}}, 422, "invalid_input", "$.input_vars.who"),
        ({"json": {"workflow_id": "waiting", "input_vars": {"who": "a", "execution": 1}}}, 422, "invalid_input", "$.input_vars.execution"),
        ({"json": {"input_vars": {}}}, 422, "invalid_request", "$.workflow_id"),
        ({"json": {"workflow_id": "waiting", "input_vars": []}}, 422, "invalid_request", "$.input_vars"),
        ({"json": {"workflow_id": "waiting", "extra": 1}}, 422, "invalid_request", "$.extra"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "invalid_json", "$"),
        ({"content": b"", "headers": {"content-type": "application/json"}}, 422, "invalid_request", "$"),
        ({"data": {"workflow_id": "waiting", "input_vars": "{bad"}}, 422, "invalid_json", "$.input_vars"),
        ({"json": ["a list"]}, 422, "invalid_request", "$"),
        ({"json": {"workflow_id": "../../etc/passwd"}}, 404, "workflow_not_found", "$.workflow_id"),
    ],
)  # fmt: skip
async def test_bad_run_requests_get_clear_errors_and_start_nothing(
    http: httpx.AsyncClient,
    settings: Settings,
    client: Client,
    task_queue: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
    path: str,
) -> None:
    save_definition(settings, WAITING)
    response = await http.post("/api/workflows/run", **kwargs)
    body = assert_error_shape(response, status, code)
    assert body["errors"][0].get("path") == path
    started = [w async for w in client.list_workflows(f"TaskQueue = '{task_queue}'")]
    assert started == []


async def test_unknown_execution_is_404_everywhere(http: httpx.AsyncClient) -> None:
    for method, url in [
        ("GET", "/api/executions/nope"),
        ("POST", "/api/executions/nope/cancel"),
        ("POST", "/api/executions/nope/signals/approval"),
        ("GET", "/api/executions/nope/log"),
        ("GET", "/api/executions/..%2F..%2Fetc%2Fpasswd/log"),
    ]:
        response = await http.request(method, url)
        assert response.status_code == 404, (url, response.text)
        assert response.json()["errors"][0]["code"] in (
            "execution_not_found",
            "log_not_found",
            "not_found",
        )


async def test_cancel_stops_the_run_and_a_second_cancel_changes_nothing(
    http: httpx.AsyncClient, settings: Settings, client: Client
) -> None:
    save_definition(settings, WAITING)
    execution_id = (await start(http, "waiting", who="Cy"))["execution_id"]
    await eventually(lambda: _at_step(http, execution_id, "wait"))
    response = await http.post(
        f"/api/executions/{execution_id}/cancel", json={"reason": "not needed"}
    )
    assert response.status_code == 202
    assert response.json()["status"] == "cancelling"
    done = await wait_status(http, execution_id, "cancelled")
    assert done["error"]["message"] == "not needed"
    assert done["temporal_status"] == "CANCELED"
    handle = client.get_workflow_handle(execution_id)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    log = (await http.get(f"/api/executions/{execution_id}/log")).json()
    assert log["status"] == "cancelled"
    again = await http.post(f"/api/executions/{execution_id}/cancel")
    assert_error_shape(again, 409, "execution_not_running")
    signal = await http.post(f"/api/executions/{execution_id}/signals/approval", json={})
    assert_error_shape(signal, 409, "execution_not_running")
    assert (await http.get(f"/api/executions/{execution_id}/log")).json() == log


async def test_signal_names_are_checked(http: httpx.AsyncClient, settings: Settings) -> None:
    save_definition(settings, WAITING)
    execution_id = (await start(http, "waiting", who="Di"))["execution_id"]
    assert_error_shape(
        await http.post(f"/api/executions/{execution_id}/signals/cancel"), 422, "invalid_signal"
    )
    assert_error_shape(
        await http.post(f"/api/executions/{execution_id}/signals/bad name!"), 422, "invalid_signal"
    )
    bad_json = await http.post(
        f"/api/executions/{execution_id}/signals/approval",
        content=b"{nope",
        headers={"content-type": "application/json"},
    )
    assert_error_shape(bad_json, 422, "invalid_json")
    await http.post(f"/api/executions/{execution_id}/cancel")


async def test_failed_execution_reports_the_error(
    http: httpx.AsyncClient, settings: Settings, sink: HttpSink
) -> None:
    sink.script("/x", Reply(403, "forbidden"))
    save_definition(
        settings,
        {"id": "failing", "steps": [{"id": "call", "type": "http", "url": f"{sink.url}/x"}]},
    )
    execution_id = (await start(http, "failing"))["execution_id"]
    done = await wait_status(http, execution_id, "failed")
    assert done["error"]["type"] == "HTTPStatusError" and done["error"]["step_id"] == "call"
    assert done["temporal_status"] == "FAILED"
    assert done["steps"][0]["status"] == "failed"


async def test_health_and_readiness(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok", "temporal": None}
    ready = await http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_without_temporal_the_api_answers_503_not_500(tmp_path: Any) -> None:
    from api.cli.devstack import free_port
    from api.server.main import create_app

    settings = load_settings(
        temporal_address=f"127.0.0.1:{free_port()}",
        workflow_definitions_dir=tmp_path,
        workflow_log_dir=tmp_path,
        storage_url=f"file://{tmp_path}",
        api_keys=json.dumps(TEST_KEYS),
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api", headers=headers
    ) as api:
        ready = await api.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        response = await api.post("/api/workflows/run", json={"workflow_id": "x"})
        assert_error_shape(response, 503, "temporal_unavailable")
        assert response.headers["retry-after"] == "2"
        assert (await api.get("/healthz")).status_code == 200


async def test_openapi_documents_the_endpoints(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in [
        "/api/workflows/run",
        "/api/executions/{execution_id}",
        "/api/executions/{execution_id}/cancel",
        "/api/executions/{execution_id}/signals/{name}",
        "/api/executions/{execution_id}/log",
        "/healthz",
        "/readyz",
    ]:
        assert path in paths, path
    run = paths["/api/workflows/run"]["post"]
    assert set(run["requestBody"]["content"]) == {
        "application/json",
        "application/x-www-form-urlencoded",
    }
    assert "404" in run["responses"] and "422" in run["responses"]
    assert (await http.get("/docs")).status_code == 200


async def _at_step(http: httpx.AsyncClient, execution_id: str, step_id: str) -> bool:
    return (await status_of(http, execution_id))["current_step"] == step_id
