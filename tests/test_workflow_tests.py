"""Test files (docs/testing.md) on the real dev server: cases run as real runs of the engine,
mocked steps never call out (the sink and the fake provider count), a one-day approval
timeout ends in seconds, and test runs stay out of the executions list."""

from __future__ import annotations

import json
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from activities.runtime.settings import Settings
from activities.runtime.temporal_client import connect
from activities.runtime.temporal_runtime import worker_runtime
from api.cli.devstack import free_port
from api.cli.schema_export import TEST_SCHEMA_PATH, render_tests
from api.server.executions.options import execution_limits
from tests.conftest import ADMIN_KEY, eventually, outcome, save_definition, serve_api
from tests.fakes import FakeOpenRouter, HttpSink, Reply
from tests.test_cli import wfe
from tests.test_metrics import by, parse
from worker import engine_worker
from workflows.messages import WORKFLOW_TYPE
from workflows.shared import ExecutionInput
from workflows.testfile import CaseFile, file_problems
from workflows.validation import load_definition

DAY = 86400


def approval(sink: HttpSink) -> dict[str, Any]:
    """fetch (http) -> classify (ai) -> approve (signal, 1-day timeout) -> notify (http);
    the timeout routes to escalate."""
    return {
        "id": "approval",
        "inputs": {"type": "object", "properties": {"amount": {"type": "number"}}},
        "steps": [
            {"id": "fetch", "type": "http", "url": f"{sink.url}/fetch", "output": "fetched"},
            {"id": "classify", "type": "ai", "model": "m/one", "output": "label",
             "prompt": "Classify {fetched.json.kind} for {amount}"},
            {"id": "cool_off", "type": "delay", "seconds": 3600},
            {"id": "approve", "type": "wait_for_signal", "signal": "approval",
             "timeout_seconds": DAY, "output": "decision",
             "on_error": [{"errors": ["SignalTimeout"], "then": "escalate"}]},
            {"id": "notify", "type": "http", "method": "POST", "url": f"{sink.url}/notify",
             "json": {"ok": "{decision.ok}"}, "output": "sent", "next": "end"},
            {"id": "escalate", "type": "set", "values": {"escalated": True}},
        ],
    }  # fmt: skip


MOCKS = {
    "fetch": {"result": {"status": 200, "json": {"kind": "refund"}}},
    "classify": {"result": {"text": "urgent"}},
    "notify": {"result": {"status": 202}},
}


def cases() -> dict[str, Any]:
    return {
        "workflow_id": "approval",
        "cases": [
            {
                "name": "approved a day later",
                "input_vars": {"amount": 12},
                "mocks": MOCKS,
                "signals": [{"name": "approval", "payload": {"ok": True}, "after_seconds": 20000}],
                "expect": {
                    "status": "completed",
                    "outputs": {"label": {"text": "urgent"}, "sent": {"status": 202}},
                    "steps": ["fetch", "classify", "cool_off", "approve", "notify"],
                },
            },
            {
                "name": "nobody answers",
                "input_vars": {"amount": 3},
                "mocks": MOCKS,
                "expect": {"steps": ["fetch", "classify", "cool_off", "approve", "escalate"]},
            },
            {
                "name": "a wrong expectation",
                "mocks": {**MOCKS, "fetch": {"error": {"type": "HTTPStatusError"}}},
                "expect": {"outputs": {"label": {"text": "calm"}}},
            },
        ],
    }


async def test_cases_run_with_mocks_and_virtual_time(
    http: httpx.AsyncClient, settings: Settings, sink: HttpSink, fake_openrouter: FakeOpenRouter
) -> None:
    save_definition(settings, approval(sink))
    began = time.monotonic()
    answer = await http.post("/api/workflows/approval/test", json=cases(), timeout=90)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert time.monotonic() - began < 30  # a one-day timeout and an hour's delay, virtual
    by_name = {case["name"]: case for case in report["cases"]}
    assert by_name["approved a day later"]["problems"] == []
    assert by_name["nobody answers"]["status"] == "passed", by_name["nobody answers"]
    wrong = by_name["a wrong expectation"]
    assert wrong["status"] == "failed"
    assert any(
        "status: expected 'completed', the run ended 'failed'" in p for p in wrong["problems"]
    )
    assert (report["passed"], report["failed"]) == (2, 1)
    # Mocked steps never called out.
    assert sink.deliveries() == [] and fake_openrouter.completions() == []
    # Test runs stay out of the list unless asked for.
    listed = (await http.get("/api/executions", params={"workflow_id": "approval"})).json()
    assert listed["executions"] == []
    with_tests = await http.get(
        "/api/executions", params={"workflow_id": "approval", "include_tests": "true"}
    )
    ids = {e["execution_id"] for e in with_tests.json()["executions"]}
    assert {case["execution_id"] for case in report["cases"]} <= ids


async def test_bad_files_are_refused_naming_the_path(
    http: httpx.AsyncClient, settings: Settings, sink: HttpSink
) -> None:
    save_definition(settings, approval(sink))

    async def problems(document: Any) -> list[tuple[str, str]]:
        answer = await http.post("/api/workflows/approval/test", json=document)
        assert answer.status_code == 422, answer.text
        return [(e["path"], e["message"]) for e in answer.json()["errors"]]

    base = cases()["cases"][0]
    found = await problems({"cases": [{**base, "mocks": {"fetcher": {"result": {}}}}]})
    assert found == [("$.cases[0].mocks.fetcher", "the workflow has no step 'fetcher'")]
    found = await problems({"cases": [{**base, "mocks": {"fetch": {"result": {"text": 3}}}}]})
    assert found[0][0] == "$.cases[0].mocks.fetch.result"
    assert "binds an http answer" in found[0][1]
    found = await problems({"cases": [{**base, "mocks": {"cool_off": {"result": 1}}}]})
    assert found[0][0] == "$.cases[0].mocks.cool_off" and "takes no mock" in found[0][1]
    found = await problems({"cases": [{**base, "mocks": {"fetch": {"results": [{}, []]}}}]})
    assert found[0][0] == "$.cases[0].mocks.fetch.results[1]"
    found = await problems({"cases": [{"name": "x", "expect": {"status": "done"}}]})
    assert found[0][0] == "$.cases[0].expect.status"
    found = await problems({"cases": [{**base, "signals": [{"name": "aproval"}]}]})
    assert found == [("$.cases[0].signals[0].name",
                      "no step waits for a 'aproval' signal (the workflow waits for: approval)")]  # fmt: skip


async def test_an_unmocked_call_fails_the_case_naming_the_step(
    http: httpx.AsyncClient, settings: Settings, sink: HttpSink
) -> None:
    save_definition(settings, approval(sink))
    file = {"cases": [{"name": "forgot classify", "input_vars": {"amount": 1},
                       "mocks": {"fetch": MOCKS["fetch"]}, "expect": {"status": "failed"}}]}  # fmt: skip
    report = (await http.post("/api/workflows/approval/test", json=file)).json()
    assert report["failed"] == 1, report
    assert report["cases"][0]["problems"][0].startswith(
        "step 'classify': it would call out (call_llm) and the case has no mock for it"
    )
    # Unless the file allows calls: then the unmocked step calls out for real.
    sink.script("/fetch", Reply(200, {"kind": "refund"}))
    file = {"allow_calls": True, "cases": [{"name": "real fetch", "input_vars": {"amount": 1},
            "mocks": {"classify": MOCKS["classify"]}, "signals": [{"name": "approval", "payload": {"ok": 1}}],
            "expect": {"steps": ["fetch", "classify", "cool_off", "approve", "notify"]}}]}  # fmt: skip
    report = (await http.post("/api/workflows/approval/test", json=file)).json()
    assert report["passed"] == 1, report
    assert [r.path for r in sink.deliveries()] == ["/fetch", "/notify"]


async def test_wfe_test_junit_and_a_case_recorded_from_a_real_run(
    api_url: str, http: httpx.AsyncClient, settings: Settings, sink: HttpSink,
    fake_openrouter: FakeOpenRouter, tmp_path: Path,
) -> None:  # fmt: skip
    save_definition(settings, approval(sink))
    file = tmp_path / "approval.test.json"
    file.write_text(json.dumps(cases()))
    junit = tmp_path / "junit.xml"
    result = await wfe(api_url, "test", str(file), "--junit", str(junit))
    assert result.exit_code == 1, result.output
    assert "PASS approval: approved a day later" in result.output
    assert "FAIL approval: a wrong expectation" in result.output
    assert 'output \'label\': expected {"text": "calm"}, the run has no such key' in result.output
    assert "2 passed, 1 failed" in result.output
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("3", "1")
    # A refused file: exit 2, the path named.
    bad = tmp_path / "bad.test.json"
    bad.write_text(
        json.dumps(
            {"workflow_id": "approval", "cases": [{"name": "x", "mocks": {"nope": {"result": 1}}}]}
        )
    )
    result = await wfe(api_url, "test", str(bad))
    assert (
        result.exit_code == 2
        and "$.cases[0].mocks.nope: the workflow has no step 'nope'" in result.output
    )

    # A real run (the sink and the fake provider answer), approved by a signal...
    sink.script("/fetch", Reply(200, {"kind": "refund"}))
    quick = approval(sink)
    quick["id"] = "quick"
    quick["steps"] = [s for s in quick["steps"] if s["id"] != "cool_off"]
    save_definition(settings, quick)
    started = await http.post(
        "/api/workflows/run", json={"workflow_id": "quick", "input_vars": {"amount": 5}}
    )
    execution_id = started.json()["execution_id"]

    async def waiting() -> bool:
        body = (await http.get(f"/api/executions/{execution_id}")).json()
        return body.get("waiting_for") == "approval"

    await eventually(waiting, timeout=30)
    await http.post(f"/api/executions/{execution_id}/signals/approval", json={"ok": True})

    async def done() -> bool:
        return (await http.get(f"/api/executions/{execution_id}")).json()["status"] == "completed"

    await eventually(done, timeout=30)
    calls = len(sink.deliveries()), len(fake_openrouter.completions())
    recorded = tmp_path / "recorded.json"
    result = await wfe(api_url, "test", "--record", execution_id, "-o", str(recorded))
    assert result.exit_code == 0, result.output
    document = json.loads(recorded.read_text())
    printed = await wfe(api_url, "test", "--record", execution_id)  # to stdout: the same JSON
    assert json.loads(printed.stdout) == document
    case = document["cases"][0]
    assert set(case["mocks"]) == {"fetch", "classify", "notify"}
    assert case["signals"][0]["name"] == "approval"
    assert case["expect"]["steps"] == ["fetch", "classify", "approve", "notify"]
    # ...becomes a passing regression test, which calls nothing out.
    result = await wfe(api_url, "test", str(recorded))
    assert result.exit_code == 0, result.output
    assert (len(sink.deliveries()), len(fake_openrouter.completions())) == calls


def test_the_exported_test_file_schema_is_current() -> None:
    assert TEST_SCHEMA_PATH.read_text() == render_tests(), (
        "docs/workflow-test.schema.json is stale: run `python -m api.cli.schema_export`"
    )


async def test_parallel_timers_fire_in_deadline_order_and_visits_get_their_results(
    http: httpx.AsyncClient, settings: Settings, sink: HttpSink
) -> None:
    document = {
        "id": "shapes",
        "steps": [
            {"id": "fan", "type": "parallel", "output": "fanned", "branches": [
                {"id": "slow", "steps": [{"id": "wait_long", "type": "delay", "seconds": 7200},
                                         {"id": "mark_slow", "type": "set", "values": {"s": 1}}]},
                {"id": "fast", "steps": [{"id": "wait_short", "type": "delay", "seconds": 60},
                                         {"id": "mark_fast", "type": "set", "values": {"f": 1}}]},
            ]},
            {"id": "each", "type": "foreach", "items": [1, 2, 3], "concurrency": 1, "output": "got",
             "steps": [{"id": "fetch", "type": "http", "url": f"{sink.url}/n/{{item}}", "output": "r"}]},
            {"id": "hold", "type": "wait_for_signal", "signal": "never"},
        ],
    }  # fmt: skip
    save_definition(settings, document)
    fetch = {"results": [{"json": i} for i in (10, 20, 30)]}
    file = {"cases": [
        {"name": "order", "mocks": {"fetch": fetch}, "expect": {"status": "failed", "error_type": "NeverSignalled"}},
        {"name": "a fourth visit", "mocks": {"fetch": {"results": [{"json": 1}]}}, "expect": {"status": "failed"}},
    ]}  # fmt: skip
    report = (await http.post("/api/workflows/shapes/test", json=file)).json()
    order, fourth = report["cases"]
    # The run waits for a signal no case sends: the case fails at once, saying so.
    assert any("the case sends none" in p for p in order["problems"]), order
    state = (await http.get(f"/api/executions/{order['execution_id']}")).json()
    visited = [s["step_id"] for s in sorted(state["steps"], key=lambda s: s["seq"])]
    assert visited.index("mark_fast") < visited.index("mark_slow")
    fetched = [s["output_vars"]["r"]["json"] for s in state["steps"] if s["step_id"] == "fetch"]
    assert fetched == [10, 20, 30]
    assert any(
        "mock 'fetch' gives 1 result(s) and this is visit 2" in p for p in fourth["problems"]
    )


async def test_a_sub_workflow_mocked_whole_or_run_as_a_test_run(
    http: httpx.AsyncClient, settings: Settings, sink: HttpSink
) -> None:
    save_definition(settings, {"id": "child-wf", "steps": [
        {"id": "nap", "type": "delay", "seconds": DAY},
        {"id": "ping", "type": "http", "url": f"{sink.url}/ping", "output": "pong"},
    ]})  # fmt: skip
    save_definition(settings, {"id": "parent-wf", "steps": [
        {"id": "call", "type": "sub_workflow", "workflow_id": "child-wf", "output": "child"},
    ]})  # fmt: skip
    file = {"cases": [
        {"name": "whole", "mocks": {"call": {"result": {"pong": {"status": 204}}}},
         "expect": {"outputs": {"child": {"pong": {"status": 204}}}, "steps": ["call"]}},
        {"name": "inside", "mocks": {"ping": {"result": {"status": 202}}},
         "expect": {"outputs": {"child": {"pong": {"status": 202}}}}},
    ]}  # fmt: skip
    began = time.monotonic()
    report = (await http.post("/api/workflows/parent-wf/test", json=file)).json()
    assert report["failed"] == 0, report
    assert time.monotonic() - began < 20 and sink.deliveries() == []
    # The child of a test run is a test run: out of the list too.
    listed = (await http.get("/api/executions", params={"workflow_id": "child-wf"})).json()
    assert listed["executions"] == []


async def test_test_runs_stay_out_of_the_step_metrics(settings: Settings, sink: HttpSink) -> None:
    own = settings.model_copy(update={"worker_metrics_address": f"127.0.0.1:{free_port()}"})
    client = await connect(own, runtime=worker_runtime(own))
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        engine_worker(client, own) as worker,
        worker,
        serve_api(own, client) as url,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=90) as api,
    ):
        await api.put("/api/workflows/approval", json=approval(sink))
        file = {**cases(), "cases": cases()["cases"][:1]}
        report = (await api.post("/api/workflows/approval/test", json=file)).json()
        assert report["passed"] == 1, report
        scraped = await httpx.AsyncClient().get(f"http://{own.worker_metrics_address}/metrics")
    assert scraped.status_code == 200
    assert by(parse(scraped.text), "wfe_steps_total", "workflow_id") == {}


async def test_a_test_run_that_continues_as_new_keeps_its_clock_visits_and_signals(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    document = {"id": "long-test", "steps": [
        {"id": "init", "type": "set", "values": {"n": 0}},
        {"id": "a", "type": "wait_for_signal", "signal": "go", "timeout_seconds": 100},
        {"id": "ping", "type": "http", "url": f"{sink.url}/p", "output": "p"},
        {"id": "inc", "type": "set", "compute": {"n": "n + 1"}},
        {"id": "loop", "type": "condition", "branches": [{"when": "n < 2", "next": "ping"}],
         "default": "b"},
        {"id": "b", "type": "wait_for_signal", "signal": "late", "timeout_seconds": 1000},
        {"id": "again", "type": "wait_for_signal", "signal": "go", "timeout_seconds": 5,
         "on_error": "continue"},
    ]}  # fmt: skip
    file = CaseFile.model_validate({"workflow_id": "long-test", "cases": [{
        "name": "long", "mocks": {"ping": {"results": [{"status": 201}, {"status": 202}]}},
        "signals": [{"name": "go", "after_seconds": 10}, {"name": "late", "after_seconds": 500}],
    }]})  # fmt: skip
    definition = load_definition(document)
    problems, runs = file_problems(file, definition.steps)
    assert problems == []
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        ExecutionInput(
            definition=definition,
            max_steps_per_run=2,
            test=runs[0],
            limits=execution_limits(definition, settings),
        ),
        id=f"test-long-{uuid.uuid4().hex[:8]}",
        task_queue=settings.temporal_task_queue,
    )
    state = await outcome(handle)
    assert state["status"] == "completed", state["error"]
    assert state["outputs"]["p"]["status"] == 202  # the second visit's result
    # 'go' was sent once, before the run continued as new: the second wait times out.
    assert [s["error_type"] for s in state["steps"] if s["step_id"] == "again"] == ["SignalTimeout"]
    assert (await handle.describe()).run_id != state["run_id"]  # it did continue as new


def test_mock_keys_name_steps_paths_agent_turns_and_tools() -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    definition = load_definition(json.loads((examples / "research-agent.json").read_text()))
    tool = {"result": {"status": 200, "json": {"extract": "..."}}}
    turn = {"result": {"text": "done"}}
    file = CaseFile.model_validate({"workflow_id": "research-agent", "cases": [{"name": "keys",
        "mocks": {"research": turn, "research.turn[1]": turn, "research.wikipedia": tool,
                  "research.turn[0].wikipedia[1]": tool, "report": turn,
                  "research.wikipedia.x": tool, "research.turn[0]": tool}}]})  # fmt: skip
    problems, runs = file_problems(file, definition.steps)
    assert [(p.path, p.code) for p in problems] == [
        ("$.cases[0].mocks.report", "not_mockable"),
        ("$.cases[0].mocks.research.wikipedia.x", "unknown_step"),
        ("$.cases[0].mocks.research.turn[0].result", "invalid_mock"),
    ]
    assert runs[0].shapes["research.turn[0].wikipedia[1]"] == "http"


def mcp_workflow() -> dict[str, Any]:
    """ask (an agent with the MCP server `kb`, its tools not listed) -> lookup (an mcp step).
    The server's address is a closed port: a call that got out would fail."""
    server = f"http://127.0.0.1:{free_port()}/mcp"
    return {
        "id": "mcp-mocks",
        "steps": [
            {"id": "ask", "type": "agent", "model": "m/one", "prompt": "Find the page",
             "output": "found", "tools": [{"name": "kb", "mcp": {"url": server}}]},
            {"id": "lookup", "type": "mcp", "url": server, "tool": "get",
             "arguments": {"page": "{found.text}"}, "output": "got"},
        ],
    }  # fmt: skip


async def test_mcp_calls_are_mocked_and_an_unmocked_one_fails_the_case(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    save_definition(settings, mcp_workflow())
    search = {"tool_calls": [{"name": "kb__search", "arguments": {"q": "retries"}}]}
    listing = {"tools": [{"name": "search", "input_schema": {"type": "object"}}]}
    file = {"cases": [
        {"name": "mocked", "mocks": {
            "ask": {"results": [search, {"text": "p7"}]},
            "ask.kb__search": {"result": {"text": "retries: page p7"}},
            "lookup": {"result": {"structured": {"title": "Retries"}}}},
         "expect": {"status": "completed", "steps": ["ask", "lookup"], "outputs": {
             "found": {"text": "p7", "turns": 2},
             "got": {"structured": {"title": "Retries"}, "text": '{"title": "Retries"}'}}}},
        {"name": "the tool answers an error", "mocks": {
            "ask": {"result": {"text": "p7"}},
            "lookup": {"result": {"text": "no such page", "is_error": True}}},
         "expect": {"error_type": "MCPToolError", "steps": ["ask", "lookup"]}},
        {"name": "unmocked tool call", "mocks": {
            "ask": {"result": search}, "ask.kb": {"result": listing}}},
        {"name": "unmocked mcp step", "mocks": {"ask": {"result": {"text": "p7"}}}},
    ]}  # fmt: skip
    report = (await http.post("/api/workflows/mcp-mocks/test", json=file, timeout=90)).json()
    by_name = {case["name"]: case for case in report["cases"]}
    assert by_name["mocked"]["status"] == "passed", by_name["mocked"]
    assert by_name["the tool answers an error"]["status"] == "passed", report
    # The agent's tool call got the mocked answer, and the model saw it.
    run = by_name["mocked"]["execution_id"]
    state = (await http.get(f"/api/executions/{run}")).json()
    (call,) = state["outputs"]["found"]["tool_calls"]
    assert call["name"] == "kb__search" and call["result"]["text"] == "retries: page p7"
    assert by_name["unmocked tool call"]["problems"][0].startswith(
        "step 'ask': it would call out (call_mcp_tool) and the case has no mock for it: add a "
        "mock named 'ask.kb__search'"
    )
    assert by_name["unmocked mcp step"]["problems"][0].startswith(
        "step 'lookup': it would call out (call_mcp_tool) and the case has no mock for it: add "
        "a mock named 'lookup'"
    )
    # Shapes are checked when the file is: 422, naming the path.
    bad = {"cases": [{"name": "x", "mocks": {
        "lookup": {"result": {"is_error": "maybe"}},
        "ask.kb": {"result": {"tools": [{"name": "search", "input_schema": {"type": 3}}]}}}}]}  # fmt: skip
    answer = await http.post("/api/workflows/mcp-mocks/test", json=bad)
    assert answer.status_code == 422, answer.text
    paths = [(e["path"], e["message"].split(":")[0]) for e in answer.json()["errors"]]
    assert paths == [
        ("$.cases[0].mocks.lookup.result", "step 'lookup' binds an MCP tool's answer"),
        ("$.cases[0].mocks.ask.kb.result", "step 'ask.kb'"),
    ]


def test_mcp_mock_keys_name_a_server_its_tools_and_their_calls() -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    definition = load_definition(json.loads((examples / "docs-agent.json").read_text()))
    answer = {"result": {"text": "..."}}
    file = CaseFile.model_validate({"workflow_id": "docs-agent", "cases": [{"name": "keys",
        "mocks": {"answer.docs": {"result": {"tools": [{"name": "search"}]}},
                  "answer.docs__search": answer, "answer.turn[1].docs__fetch[0]": answer,
                  "file": answer, "answer.docs__delete": answer}}]})  # fmt: skip
    problems, runs = file_problems(file, definition.steps)
    assert [(p.path, p.message) for p in problems] == [
        ("$.cases[0].mocks.answer.docs__delete", "the step lists only these tools of its MCP "
         "server: answer.docs__fetch, answer.docs__search"),
    ]  # fmt: skip
    assert runs[0].shapes == {
        "answer.docs": "mcp_tools",
        "answer.docs__search": "mcp",
        "answer.turn[1].docs__fetch[0]": "mcp",
        "file": "mcp",
    }
