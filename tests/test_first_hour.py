"""A new user's first hour, driven as they drive it: the `wfe` command line in a subprocess,
the HTTP API, and Temporal's own `temporal` CLI, against a real worker and dev server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.runtime.settings import Settings
from api.cli.devstack import DevServer, temporal_binary
from tests.conftest import ADMIN_KEY, eventually, read_log

ROOT = Path(__file__).resolve().parent.parent
WFE = Path(sys.executable).parent / "wfe"

DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["decision"],
    "properties": {
        "decision": {
            "type": "object",
            "required": ["ok"],
            "properties": {"ok": {"type": "boolean"}},
        },
        "by": {"type": "string"},
    },
    "additionalProperties": False,
}
APPROVAL = {
    "id": "first-hour-approval",
    "steps": [
        {"id": "ask", "type": "wait_for_signal", "signal": "approval", "output": "answer",
         "payload_schema": DECISION_SCHEMA},
        {"id": "decide", "type": "condition",
         "branches": [{"when": "answer.decision.ok", "next": "end"}], "default": "refused"},
        {"id": "refused", "type": "fail", "message": "refused"},
    ],
}  # fmt: skip
NESTED = {
    "id": "first-hour-nested",
    "steps": [
        {"id": "outer", "type": "foreach", "items": [1, 2, 3], "as": "x", "concurrency": 3,
         "steps": [
             {"id": "inner", "type": "foreach", "items": [10, 20], "as": "y", "concurrency": 2,
              "steps": [{"id": "calc", "type": "set", "compute": {"z": "x * y"}}]},
         ]},
    ],
}  # fmt: skip


async def wfe(api_url: str, *args: str) -> tuple[int, str, str]:
    """`wfe ...` as a user runs it: its own process, configured by the two variables the
    `wfe dev` banner exports."""
    env = {
        **os.environ,
        "WFE_API_URL": api_url,
        "WFE_API_KEY": ADMIN_KEY,
        "PYTHONPATH": str(ROOT),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    process = await asyncio.create_subprocess_exec(
        str(WFE), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def start(http: httpx.AsyncClient, document: dict[str, Any]) -> str:
    saved = await http.put(f"/api/workflows/{document['id']}", json=document)
    assert saved.status_code in (200, 201), saved.text
    started = await http.post("/api/workflows/run", json={"workflow_id": document["id"]})
    assert started.status_code == 202, started.text
    return str(started.json()["execution_id"])


async def state_of(http: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    answer = await http.get(f"/api/executions/{execution_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_signals_warn_when_not_awaited_and_are_checked_against_the_step_schema(
    http: httpx.AsyncClient, api_url: str
) -> None:
    execution_id = await start(http, APPROVAL)

    async def waiting() -> dict[str, Any] | None:
        state = await state_of(http, execution_id)
        return state if state["waiting_for"] == "approval" else None

    state = await eventually(waiting)
    assert state["waiting_payload_schema"] == DECISION_SCHEMA

    # A typo in the signal's name: delivered (buffered), but the user is told, exit 0.
    code, out, err = await wfe(api_url, "signal", execution_id, "approvd", "--payload", "{}")
    assert code == 0, err
    assert f"delivered: approvd to {execution_id}" in out
    assert re.search(r"^warning: not_waiting: .*waits for 'approval'", err, re.MULTILINE), err

    # A payload the step's schema refuses: every problem named, nothing delivered.
    bad = json.dumps({"decision": {"ok": "yes"}, "note": 1})
    code, out, err = await wfe(api_url, "signal", execution_id, "approval", "--payload", bad)
    assert code == 1 and "delivered" not in out
    problems = [line for line in err.splitlines() if line.startswith("error: 422")]
    assert len(problems) == 2, err
    assert any("$.decision.ok" in line and "'yes' is not of type 'boolean'" in line
               for line in problems), err  # fmt: skip
    assert any("'note' was unexpected" in line for line in problems), err
    state = await state_of(http, execution_id)
    assert state["waiting_for"] == "approval" and "approval" not in state["buffered_signals"]

    # A payload that fits: the run goes on and completes.
    good = json.dumps({"decision": {"ok": True}, "by": "ada"})
    code, out, err = await wfe(api_url, "signal", execution_id, "approval", "--payload", good)
    assert code == 0 and err == "", err

    async def completed() -> bool:
        return (await state_of(http, execution_id))["status"] == "completed"

    await eventually(completed)


async def test_a_schema_that_is_not_json_schema_is_refused_at_save(http: httpx.AsyncClient) -> None:
    document = json.loads(json.dumps(APPROVAL))
    document["steps"][0]["payload_schema"] = {"type": "boolean-ish"}
    saved = await http.put(f"/api/workflows/{document['id']}", json=document)
    assert saved.status_code == 422
    assert saved.json()["errors"][0]["path"].startswith("$.steps[0].payload_schema")


async def test_a_webhook_trigger_naming_an_unknown_secret_is_refused_at_save(
    http: httpx.AsyncClient, api_url: str, tmp_path: Path
) -> None:
    document = {
        "id": "first-hour-hook",
        "triggers": [{"type": "webhook", "secret": "nope"}],
        "steps": [{"id": "noop", "type": "set", "values": {"a": 1}}],
    }
    saved = await http.put("/api/workflows/first-hour-hook", json=document)
    assert saved.status_code == 422, saved.text
    (problem,) = saved.json()["errors"]
    assert problem["code"] == "unknown_webhook_secret"
    assert problem["path"] == "$.triggers[0].secret"
    assert "'nope'" in problem["message"] and "WEBHOOK_SECRETS" in problem["message"]
    assert (await http.get("/api/workflows/first-hour-hook")).status_code == 404

    path = tmp_path / "hook.json"
    path.write_text(json.dumps(document))
    code, out, _ = await wfe(api_url, "validate", str(path))
    assert code == 1 and "$.triggers[0].secret: the webhook trigger names secret 'nope'" in out

    document["triggers"][0]["secret"] = "default"  # one the API holds
    assert (await http.put("/api/workflows/first-hour-hook", json=document)).status_code == 201


async def test_runs_are_named_after_their_workflow_and_report_zero_usage(
    http: httpx.AsyncClient, settings: Settings, temporal_server: DevServer
) -> None:
    document = {"id": "first-hour-plain", "steps": [{"id": "a", "type": "set", "values": {"b": 1}}]}
    execution_id = await start(http, document)
    assert re.fullmatch(r"first-hour-plain-[0-9a-f-]{36}", execution_id)

    async def done() -> dict[str, Any] | None:
        state = await state_of(http, execution_id)
        return state if state["status"] == "completed" else None

    state = await eventually(done)
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost_usd": 0.0,
            "ai_calls": 0}  # fmt: skip
    assert state["usage"] == zero
    assert read_log(settings, execution_id)["usage"] == zero

    # The README's line for finding a workflow's runs with Temporal's own CLI.
    query = "WorkflowDefinitionId='first-hour-plain'"
    listed = await asyncio.create_subprocess_exec(
        temporal_binary(), "workflow", "list", "--address", temporal_server.address,
        "--query", query, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(listed.communicate(), 30)
    assert listed.returncode == 0, err.decode()
    assert execution_id in out.decode()


@pytest.mark.timeout(90)
async def test_wfe_status_shows_each_nested_step_under_its_own_iteration(
    http: httpx.AsyncClient, api_url: str
) -> None:
    execution_id = await start(http, NESTED)

    async def done() -> bool:
        return (await state_of(http, execution_id))["status"] == "completed"

    await eventually(done)
    code, out, err = await wfe(api_url, "status", execution_id)
    assert code == 0, err
    shown = re.findall(r"\b(outer(?:\[\d\](?:\.inner(?:\[\d\]\.calc)?)?)?)\s+(?:set|foreach)", out)
    expected = ["outer"]
    for x in range(3):
        expected.append(f"outer[{x}].inner")
        expected += [f"outer[{x}].inner[{y}].calc" for y in range(2)]
    assert shown == expected, out
