"""Every path to a run is a front door: an API start, a rerun, a webhook, a `sub_workflow`
step and an agent's workflow tool all pass one check of the caller's scope and the called
workflow's current, saved version, and one validation of its inputs. Each test is a refusal the
outside probe got through before. Real uvicorn, real worker, real dev server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from activities.runtime.settings import Settings
from api.server.triggers import signed_headers
from tests.conftest import ADMIN_KEY, eventually, serve_api
from tests.fakes import FakeOpenRouter, Reply, completion, tool_call_completion

KEYS = {
    "admin": ADMIN_KEY,
    "runner": "paths-runner-key-0123456789",
    "author": "paths-author-key-0123456789",
}
PATH_KEYS = [
    {"key": KEYS["admin"], "name": "test-admin", "role": "admin", "workflows": "*"},
    {"key": KEYS["runner"], "name": "paths-runner", "role": "runner",
     "workflows": ["shop", "parent", "child"]},
    {"key": KEYS["author"], "name": "paths-author", "role": "admin", "workflows": ["mine"]},
]  # fmt: skip
HOOK_SECRET = "paths-hook-secret"

CHILD = {
    "id": "child",
    "inputs": {
        "type": "object",
        "required": ["qty"],
        "properties": {"qty": {"type": "integer", "minimum": 1}, "note": {"default": "none"}},
    },
    "steps": [{"id": "echo", "type": "set", "values": {"got": "{qty}", "note_seen": "{note}"}}],
}


def shop(version_marker: str, *, strict: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    if strict:
        schema["properties"]["n"]["minimum"] = 10
    return {
        "id": "shop",
        "inputs": schema,
        "steps": [{"id": "mark", "type": "set", "values": {"marker": version_marker}}],
    }


def parent(qty: Any) -> dict[str, Any]:
    return {
        "id": "parent",
        "triggers": [{"type": "webhook", "secret": "default"}],
        "steps": [
            {"id": "call", "type": "sub_workflow", "workflow_id": "child",
             "input_vars": {"qty": qty}, "output": "child_out"},
        ],
    }  # fmt: skip


@pytest.fixture
async def paths(client: Client, settings: Settings, worker: Any) -> AsyncIterator[str]:
    scoped = settings.model_copy(
        update={
            "api_keys": SecretStr(json.dumps(PATH_KEYS)),
            "webhook_secrets": SecretStr(json.dumps({"default": HOOK_SECRET})),
        }
    )
    async with serve_api(scoped, client) as url:
        yield url


def as_key(base_url: str, who: str) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {KEYS[who]}"}
    return httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30)


async def finished(api: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        state = (await api.get(f"/api/executions/{execution_id}")).json()
        return state if state["status"] != "running" else None

    return dict(await eventually(done, timeout=60))


async def test_a_rerun_needs_the_rights_and_inputs_a_start_of_that_version_needs(
    paths: str,
) -> None:
    async with as_key(paths, "admin") as admin, as_key(paths, "runner") as runner:
        assert (await admin.put("/api/workflows/shop", json=shop("v1"))).status_code == 201
        first = await runner.post("/api/workflows/run",
                                  json={"workflow_id": "shop", "input_vars": {"n": 3}})  # fmt: skip
        source = first.json()["execution_id"]
        assert (await finished(runner, source))["status"] == "completed"
        # v2 refuses n < 10.
        assert (await admin.put("/api/workflows/shop", json=shop("v2", strict=True))).status_code
        # A runner may not run the superseded v1 through a rerun ...
        same = await runner.post(f"/api/executions/{source}/rerun", json={})
        assert same.status_code == 403, same.text
        assert same.json()["errors"][0]["code"] == "superseded_version"
        assert 'version": "latest"' in same.json()["errors"][0]["message"]
        # ... and the latest version checks the source's inputs as a start would.
        latest = await runner.post(f"/api/executions/{source}/rerun", json={"version": "latest"})
        assert latest.status_code == 422, latest.text
        assert latest.json()["errors"][0]["path"] == "$.input_vars.n"
        # An admin may rerun the past version it manages.
        allowed = await admin.post(f"/api/executions/{source}/rerun", json={})
        assert allowed.status_code == 202, allowed.text
        assert (await finished(admin, allowed.json()["execution_id"]))["outputs"]["marker"] == "v1"
        # Deleted: no path starts it, not even a rerun of an admin.
        assert (await admin.delete("/api/workflows/shop")).status_code == 204
        for api in (runner, admin):
            gone = await api.post(f"/api/executions/{source}/rerun", json={"version": "same"})
            assert gone.status_code == 404, gone.text
            assert gone.json()["errors"][0]["code"] == "workflow_not_found"


async def test_a_sub_workflow_gets_the_inputs_a_start_of_it_would_get(paths: str) -> None:
    async with as_key(paths, "admin") as admin, as_key(paths, "runner") as runner:
        assert (await admin.put("/api/workflows/child", json=CHILD)).status_code == 201
        direct = await runner.post("/api/workflows/run",
                                   json={"workflow_id": "child", "input_vars": {"qty": 0}})  # fmt: skip
        assert direct.status_code == 422
        # The same inputs through a parent's sub_workflow step: refused the same way.
        assert (await admin.put("/api/workflows/parent", json=parent(0))).status_code == 201
        started = await runner.post("/api/workflows/run", json={"workflow_id": "parent"})
        state = await finished(runner, started.json()["execution_id"])
        assert state["status"] == "failed"
        assert state["error"]["type"] == "InvalidRequest"
        assert "workflow 'child' refuses these inputs ($.input_vars.qty:" in (
            state["error"]["message"]
        )  # fmt: skip
        # Good inputs run, with the child's defaults filled in as for a start.
        assert (await admin.put("/api/workflows/parent", json=parent(2))).status_code == 200
        started = await runner.post("/api/workflows/run", json={"workflow_id": "parent"})
        state = await finished(runner, started.json()["execution_id"])
        assert state["outputs"]["child_out"] == {"qty": 2, "note": "none", "got": 2,
                                                 "note_seen": "none"}  # fmt: skip


async def test_an_agent_workflow_tool_gets_the_check_too(
    paths: str, fake_openrouter: FakeOpenRouter
) -> None:
    agent = {
        "id": "parent",
        "steps": [
            {"id": "helper", "type": "agent", "model": "openai/gpt-4o-mini", "max_turns": 2,
             "prompt": "order some", "output": "answer",
             "tools": [{"name": "order", "description": "orders",
                        "parameters": {"type": "object"}, "workflow_id": "child"}]},
        ],
    }  # fmt: skip
    # A prompt-injected call with inputs the child refuses, then a final answer.
    fake_openrouter.then(
        Reply(200, tool_call_completion(("order", {"qty": -5}))), Reply(200, completion("done"))
    )
    async with as_key(paths, "admin") as admin:
        assert (await admin.put("/api/workflows/child", json=CHILD)).status_code in (200, 201)
        assert (await admin.put("/api/workflows/parent", json=agent)).status_code in (200, 201)
        started = await admin.post("/api/workflows/run", json={"workflow_id": "parent"})
        state = await finished(admin, started.json()["execution_id"])
    assert state["status"] == "completed", state["error"]
    (call,) = state["outputs"]["answer"]["tool_calls"]
    assert "workflow 'child' refuses these inputs" in call["error"]
    assert "result" not in call


async def test_a_scoped_key_reaches_no_workflow_outside_its_scope_through_a_child(
    paths: str, settings: Settings
) -> None:
    async with as_key(paths, "admin") as admin, as_key(paths, "author") as author:
        assert (await admin.put("/api/workflows/child", json=CHILD)).status_code in (200, 201)
        calling = parent(1) | {"id": "mine", "triggers": []}
        refused = await author.put("/api/workflows/mine", json=calling)
        assert refused.status_code == 403, refused.text
        assert refused.json()["errors"][0]["code"] == "workflow_out_of_scope"
        assert "'child'" in refused.json()["errors"][0]["message"]
        # Saved by a key that may (the admin): the scoped key still cannot start it.
        assert (await admin.put("/api/workflows/mine", json=calling)).status_code == 201
        started = await author.post("/api/workflows/run", json={"workflow_id": "mine"})
        assert started.status_code == 403, started.text
        assert started.json()["errors"][0]["code"] == "workflow_out_of_scope"


async def test_a_webhook_runs_the_sub_workflows_its_definition_calls(paths: str) -> None:
    async with as_key(paths, "admin") as admin:
        assert (await admin.put("/api/workflows/child", json=CHILD)).status_code in (200, 201)
        assert (await admin.put("/api/workflows/parent", json=parent(3))).status_code in (200, 201)
        body = b"{}"
        headers = signed_headers(HOOK_SECRET.encode(), body, "paths-delivery-1")
        hook = await admin.post("/api/hooks/parent", content=body,
                                headers={**headers, "Content-Type": "application/json"})  # fmt: skip
        assert hook.status_code == 202, hook.text
        state = await finished(admin, hook.json()["execution_id"])
        assert state["outputs"]["child_out"]["got"] == 3


async def test_a_pinned_version_of_a_deleted_workflow_is_not_called(paths: str) -> None:
    async with as_key(paths, "admin") as admin:
        assert (await admin.put("/api/workflows/child", json=CHILD)).status_code in (200, 201)
        pinned = parent(1)
        pinned["steps"][0]["version"] = 1
        assert (await admin.put("/api/workflows/parent", json=pinned)).status_code in (200, 201)
        assert (await admin.delete("/api/workflows/child")).status_code == 204
        started = await admin.post("/api/workflows/run", json={"workflow_id": "parent"})
        assert started.status_code == 422, started.text
        assert started.json()["errors"][0]["code"] == "sub_workflow_not_found"
