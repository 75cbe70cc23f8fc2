"""Rerun from a step on the real dev server, with the fake OpenRouter and the sink
counting calls: what was paid for is reused, everything else runs fresh."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from google.protobuf.json_format import MessageToDict
from temporalio.client import Client

from activities.runtime.settings import Settings
from tests.conftest import eventually, read_log, save_definition, serve_api
from tests.fakes import FakeOpenRouter, HttpSink, Reply

NO_RETRY = {"max_attempts": 1}


def call(sink: HttpSink, step_id: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "http", "method": "POST", "url": f"{sink.url}{path}",
            "retry": NO_RETRY, **extra}  # fmt: skip


def pipeline(sink: HttpSink) -> dict[str, Any]:
    """fetch (no input) -> summarise (AI, no input) -> notify (uses the input) -> finish."""
    return {
        "id": "pipeline",
        "inputs": {"type": "object", "properties": {"name": {"type": "string"}}},
        "steps": [
            call(sink, "fetch", "/fetch", output="fetched"),
            {"id": "summarise", "type": "ai", "model": "m/one", "retry": NO_RETRY,
             "prompt": "Summarise {fetched.json.path}", "output": "summary"},
            call(sink, "notify", "/notify", json={"to": "{name}", "text": "{summary.text}"}),
            call(sink, "finish", "/finish", output="finished"),
        ],
    }  # fmt: skip


async def start(http: httpx.AsyncClient, workflow_id: str, **inputs: Any) -> str:
    answer = await http.post(
        "/api/workflows/run", json={"workflow_id": workflow_id, "input_vars": inputs}
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["execution_id"])


async def finished(http: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        answer = await http.get(f"/api/executions/{execution_id}", params={"include": "variables"})
        body = answer.json()
        return body if body["status"] != "running" else None

    return dict(await eventually(check, timeout=60))


async def rerun(http: httpx.AsyncClient, source: str, **body: Any) -> str:
    answer = await http.post(f"/api/executions/{source}/rerun", json=body)
    assert answer.status_code == 202, answer.text
    assert answer.json()["rerun_of"] == source
    return str(answer.json()["execution_id"])


def reused(state: dict[str, Any]) -> dict[str, str | None]:
    return {s.get("path") or s["step_id"]: s.get("reused_from") for s in state["steps"]}


async def test_a_rerun_with_edited_inputs_reuses_what_was_paid_for(
    http: httpx.AsyncClient, settings: Settings, sink: HttpSink,
    fake_openrouter: FakeOpenRouter, client: Client,
) -> None:  # fmt: skip
    save_definition(settings, pipeline(sink))
    sink.script("/finish", Reply(400, {"error": "not yet"}))  # the source fails at its end
    source = await start(http, "pipeline", name="Ada")
    failed = await finished(http, source)
    assert failed["status"] == "failed" and failed["error"]["step_id"] == "finish"
    assert len(fake_openrouter.completions()) == 1

    again = await rerun(http, source, input_vars={"name": "Bo"})
    state = await finished(http, again)
    assert state["status"] == "completed", state["error"]
    assert state["rerun_of"] == source
    # fetch and summarise rendered the same requests: reused, no call made, no tokens.
    assert reused(state) == {"fetch": source, "summarise": source, "notify": None, "finish": None}
    assert len(sink.deliveries("/fetch")) == 1 and len(fake_openrouter.completions()) == 1
    by_id = {s["step_id"]: s for s in state["steps"]}
    assert by_id["summarise"]["status"] == "success" and by_id["summarise"]["usage"] is None
    # notify's body holds the new name: it ran again, with it.
    assert [r.json()["to"] for r in sink.deliveries("/notify")] == ["Ada", "Bo"]
    assert state["outputs"]["summary"]["text"] == failed["outputs"]["summary"]["text"]
    # The log says so, the source is untouched, and the Temporal UI shows the reuse.
    log = read_log(settings, again)
    assert {s["step_id"]: s.get("reused_from") for s in log["steps"]}["fetch"] == source
    assert read_log(settings, source)["status"] == "failed"
    history = await client.get_workflow_handle(again).fetch_history()
    summaries = [
        json.loads(base64.b64decode(data["userMetadata"]["summary"]["data"]))
        for data in map(MessageToDict, history.events)
        if data.get("userMetadata", {}).get("summary")
    ]
    assert f"reused: fetch (from {source})" in summaries
    assert f"reused: summarise (from {source})" in summaries


async def test_from_step_a_newer_version_and_a_rerun_of_a_rerun(
    http: httpx.AsyncClient, settings: Settings, sink: HttpSink, fake_openrouter: FakeOpenRouter
) -> None:
    save_definition(settings, pipeline(sink))
    source = await start(http, "pipeline", name="Ada")
    assert (await finished(http, source))["status"] == "completed"
    # from_step: summarise and what follows run fresh; fetch (before it) is reused.
    first = await rerun(http, source, from_step="summarise")
    state = await finished(http, first)
    assert state["status"] == "completed"
    assert reused(state) == {"fetch": source, "summarise": None, "notify": None, "finish": None}
    assert len(fake_openrouter.completions()) == 2
    # A newer version whose notify step changed: the changed request runs fresh.
    newer = pipeline(sink)
    newer["steps"][2]["json"]["text"] = "v2: {summary.text}"
    save_definition(settings, newer)
    second = await rerun(http, first, version="latest")
    state = await finished(http, second)
    assert state["status"] == "completed" and state["definition_version"] == 2
    assert reused(state) == {"fetch": first, "summarise": first, "notify": None, "finish": first}
    assert len(fake_openrouter.completions()) == 2
    assert sink.deliveries("/notify")[-1].json()["text"].startswith("v2: ")
    assert len(sink.deliveries("/fetch")) == 1  # through two reruns


async def test_loops_foreach_and_parallel_reuse_by_path(
    http: httpx.AsyncClient, settings: Settings, sink: HttpSink
) -> None:
    document = {
        "id": "shapes",
        "steps": [
            {"id": "init", "type": "set", "values": {"i": 0}},
            call(sink, "tick", "/tick/{i}"),
            {"id": "next-i", "type": "set", "compute": {"i": "i + 1"}},
            {"id": "loop", "type": "condition", "branches": [{"when": "i < 3", "next": "tick"}]},
            {"id": "each", "type": "foreach", "items": [1, 2, 3], "concurrency": 1,
             "steps": [call(sink, "item", "/item/{item}")]},
            {"id": "fan", "type": "parallel", "fail_fast": False, "branches": [
                {"id": "a", "steps": [call(sink, "left", "/left")]},
                {"id": "b", "steps": [call(sink, "right", "/right")]},
            ]},
        ],
    }  # fmt: skip
    save_definition(settings, document)
    sink.script("/right", Reply(400, {}))  # branch b fails once
    source = await start(http, "shapes")
    assert (await finished(http, source))["status"] == "failed"
    again = await rerun(http, source)
    state = await finished(http, again)
    assert state["status"] == "completed", state["error"]
    marks = reused(state)
    assert [marks[p] for p in ("tick", "each[0].item", "each[2].item", "fan.a.left")] == [
        source
    ] * 4
    assert marks["fan.b.right"] is None
    # Every loop visit was its own request (/tick/0, 1, 2): each reused, none sent again.
    assert sorted(r.path for r in sink.deliveries() if r.path.startswith("/tick")) == [
        "/tick/0", "/tick/1", "/tick/2",
    ]  # fmt: skip
    assert [s["reused_from"] for s in state["steps"] if s["step_id"] == "tick"] == [source] * 3
    # from_step in a loop stops at its last visit: the two earlier visits are reused.
    third = await rerun(http, again, from_step="tick")
    state = await finished(http, third)
    assert [s["reused_from"] for s in state["steps"] if s["step_id"] == "tick"] == [
        again,
        again,
        None,
    ]


async def test_a_cancelled_source_and_a_sub_workflow(
    http: httpx.AsyncClient, settings: Settings, sink: HttpSink, client: Client
) -> None:
    save_definition(settings, {"id": "child", "steps": [call(sink, "child-call", "/child")]})
    save_definition(settings, {
        "id": "waits",
        "steps": [
            {"id": "sub", "type": "sub_workflow", "workflow_id": "child", "output": "child"},
            call(sink, "first", "/first"),
            {"id": "approval", "type": "wait_for_signal", "signal": "approval"},
        ],
    })  # fmt: skip
    source = await start(http, "waits")

    async def waiting() -> bool:
        return bool((await http.get(f"/api/executions/{source}")).json()["waiting_for"])

    await eventually(waiting, timeout=30)
    assert (await http.post(f"/api/executions/{source}/cancel")).status_code == 202
    assert (await finished(http, source))["status"] == "cancelled"
    again = await rerun(http, source)
    await eventually(lambda: _waits(http, again), timeout=30)
    state = (await http.get(f"/api/executions/{again}")).json()
    assert reused(state)["sub"] == source and reused(state)["first"] == source
    assert len(sink.deliveries("/child")) == 1 and len(sink.deliveries("/first")) == 1
    await http.post(f"/api/executions/{again}/signals/approval", json={})
    assert (await finished(http, again))["status"] == "completed"


async def _waits(http: httpx.AsyncClient, execution_id: str) -> bool:
    return bool((await http.get(f"/api/executions/{execution_id}")).json()["waiting_for"])


@pytest.fixture
async def short_runs(
    settings: Settings, client: Client, worker: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An API whose runs continue as new every 3 steps."""
    from tests.conftest import ADMIN_KEY

    short = settings.model_copy(update={"execution_max_steps_per_run": 3})
    async with (
        serve_api(short, client) as url,
        httpx.AsyncClient(
            base_url=url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as session,
    ):
        yield session


async def test_a_source_continued_as_new_and_a_large_result(
    short_runs: httpx.AsyncClient, settings: Settings, sink: HttpSink, client: Client
) -> None:
    big = {"blob": "x" * 3_000_000}
    sink.script("/big", Reply(200, big))
    sink.script("/last", Reply(400, {}))
    save_definition(settings, {
        "id": "long-and-big",
        "steps": [call(sink, f"s{i}", f"/s{i}") for i in range(5)]
        + [call(sink, "big", "/big", output="big"), call(sink, "last", "/last")],
    })  # fmt: skip
    source = await start(short_runs, "long-and-big")
    assert (await finished(short_runs, source))["status"] == "failed"
    description = await client.get_workflow_handle(source).describe()
    assert description.raw_description.workflow_execution_info.first_run_id != description.run_id
    again = await rerun(short_runs, source)
    state = await finished(short_runs, again)
    assert state["status"] == "completed", state["error"]
    assert (
        all(reused(state)[f"s{i}"] == source for i in range(5)) and reused(state)["big"] == source
    )
    assert len(sink.deliveries("/big")) == 1 and len(sink.deliveries("/s0")) == 1
    assert len(state["outputs"]["big"]["json"]["blob"]) == 3_000_000


async def test_rerun_errors(http: httpx.AsyncClient, settings: Settings, sink: HttpSink) -> None:
    save_definition(settings, {
        "id": "holds",
        "steps": [{"id": "wait", "type": "wait_for_signal", "signal": "go"}],
    })  # fmt: skip
    running = await start(http, "holds")
    answer = await http.post(f"/api/executions/{running}/rerun", json={})
    assert answer.status_code == 409 and answer.json()["errors"][0]["code"] == "execution_running"
    await http.post(f"/api/executions/{running}/signals/go", json={})
    await finished(http, running)
    answer = await http.post(f"/api/executions/{running}/rerun", json={"from_step": "nope"})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["path"] == "$.from_step"
    answer = await http.post(f"/api/executions/{running}/rerun", json={"version": "newest"})
    assert answer.status_code == 422
    assert (await http.post("/api/executions/nope/rerun", json={})).status_code == 404


async def test_rerun_by_role_and_scope(settings: Settings, client: Client, worker: Any) -> None:
    keys = [
        {"key": "admin-key-0123456789abcd", "name": "admin", "role": "admin", "workflows": "*"},
        {"key": "viewer-key-0123456789abc", "name": "viewer", "role": "viewer", "workflows": "*"},
        {"key": "runner-key-0123456789abc", "name": "other", "role": "runner",
         "workflows": ["other"]},
    ]  # fmt: skip
    from pydantic import SecretStr

    scoped = settings.model_copy(update={"api_keys": SecretStr(json.dumps(keys))})
    save_definition(
        settings, {"id": "quick", "steps": [{"id": "s", "type": "set", "values": {"a": 1}}]}
    )
    async with serve_api(scoped, client) as url:

        def as_key(key: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"})

        async with (
            as_key(keys[0]["key"]) as admin,
            as_key(keys[1]["key"]) as viewer,
            as_key(keys[2]["key"]) as other,
        ):
            source = await start(admin, "quick")
            await finished(admin, source)
            assert (await viewer.post(f"/api/executions/{source}/rerun")).status_code == 403
            assert (await other.post(f"/api/executions/{source}/rerun")).status_code == 404
            assert (await admin.post(f"/api/executions/{source}/rerun")).status_code == 202
