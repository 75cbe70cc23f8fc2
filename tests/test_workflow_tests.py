"""Test files (docs/testing.md) on the real dev server: cases run as real runs of the engine,
mocked steps never call out (the sink and the fake provider count), a one-day approval
timeout ends in seconds, and test runs stay out of the executions list."""

from __future__ import annotations

import time
from typing import Any

import httpx

from activities.runtime.settings import Settings
from tests.conftest import save_definition
from tests.fakes import FakeOpenRouter, HttpSink

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
