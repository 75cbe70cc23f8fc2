"""Long runs: batched log writes, continue-as-new at step boundaries, large values by
reference, and the per-step total timeout."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.runtime.settings import Settings
from tests.conftest import outcome, read_log, start_definition
from tests.fakes import HttpSink, Reply

LOOP = {
    "id": "loop",
    "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
    "steps": [
        {"id": "init", "type": "set", "values": {"i": 0}},
        {"id": "check", "type": "condition", "branches": [{"when": "i >= n", "next": "end"}]},
        {"id": "inc", "type": "set", "compute": {"i": "i + 1"}, "next": "check"},
    ],
}


async def test_a_5000_iteration_loop_completes_without_history_warnings(
    client: Client, settings: Settings, worker: Any
) -> None:
    handle = await start_definition(client, settings, LOOP, {"n": 5000})
    state = await outcome(handle, timeout=110)
    assert state["status"] == "completed", state["error"]
    assert state["outputs"]["i"] == 5000
    assert state["steps_total"] == 1 + 2 * 5000 + 1
    history = await handle.fetch_history()
    # Far below the 10,240-event warning: in-workflow steps share log writes and tasks.
    assert len(history.events) < 2_000, len(history.events)
    log = read_log(settings, handle.id)
    assert log["status"] == "completed"
    assert len(log["steps"]) == state["steps_total"]
    assert [s["seq"] for s in log["steps"]] == list(range(len(log["steps"])))


async def test_continue_as_new_keeps_one_execution_one_log_and_pending_signals(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    document = {
        "id": "long",
        "steps": [
            {"id": "a", "type": "http", "method": "POST", "url": f"{sink.url}/a", "output": "ra"},
            {"id": "b", "type": "set", "values": {"from_a": "{ra.status}"}},
            {"id": "c", "type": "set", "values": {"x": 1}},
            {"id": "d", "type": "set", "values": {"y": 2}},
            {"id": "e", "type": "http", "method": "POST", "url": f"{sink.url}/e", "output": "re"},
            {"id": "f", "type": "set", "values": {"z": 3}},
            {"id": "wait", "type": "wait_for_signal", "signal": "go", "output": "go"},
            {"id": "g", "type": "set", "values": {"after": "{go.word}"}},
        ],
    }
    handle = await start_definition(client, settings, document, max_steps_per_run=2)
    await handle.signal("go", {"word": "early"})  # buffered, must survive continue-as-new
    state = await outcome(handle)
    assert state["status"] == "completed", state["error"]
    assert state["outputs"]["after"] == "early"
    assert state["outputs"]["from_a"] == 200 and state["run_id"] == handle.result_run_id
    runs = [w async for w in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert len(runs) >= 4  # 8 steps, 2 per run
    log = read_log(settings, handle.id)
    assert [s["step_id"] for s in log["steps"]] == ["a", "b", "c", "d", "e", "f", "wait", "g"]
    assert log["run_id"] == handle.result_run_id  # the first run's id, as the API answered
    assert len(sink.deliveries()) == 2  # no step ran twice across runs
    # Each step's idempotency key stays distinct across runs (the sequence is carried).
    assert len(sink.ledger()) == 2


async def test_large_results_travel_by_reference_and_are_readable(
    client: Client, settings: Settings, worker: Any, sink: HttpSink, http: Any
) -> None:
    big = "x" * (3 * 1024 * 1024)
    sink.script("/big", Reply(200, {"blob": big}))
    document = {
        "id": "big",
        "steps": [
            {"id": "fetch", "type": "http", "url": f"{sink.url}/big", "output": "page"},
            {"id": "use", "type": "set", "values": {"size_ok": "{page.status}"}},
        ],
    }
    handle = await start_definition(client, settings, document)
    state = await outcome(handle)
    assert state["status"] == "completed", state["error"]
    assert len(state["outputs"]["page"]["json"]["blob"]) == len(big)
    history = await handle.fetch_history()
    largest = max(len(e.SerializeToString()) for e in history.events)
    assert largest < 300 * 1024, largest  # only references in history
    assert any(b"binary/claim-check" in e.SerializeToString() for e in history.events)
    stored = list(settings.payload_store_dir.rglob("*"))
    assert any(p.is_file() and p.stat().st_size > len(big) for p in stored)
    # Through the API: the full value when asked for (else a summary).
    answer = (await http.get(f"/api/executions/{handle.id}")).json()
    assert answer["outputs"]["page"]["json"]["$summary"]["keys"] == ["blob"]
    answer = (
        await http.get(f"/api/executions/{handle.id}", params={"include": "variables"})
    ).json()
    assert len(answer["outputs"]["page"]["json"]["blob"]) == len(big)
    log = read_log(settings, handle.id)
    # The log's record keeps it small (the variables hold it whole: ?include=variables).
    assert log["steps"][0]["output_vars"]["page"]["json"]["$summary"]["keys"] == ["blob"]


async def test_total_timeout_bounds_all_attempts(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/slow", *[Reply(200, "late", delay=5) for _ in range(10)])
    document = {
        "id": "total",
        "steps": [
            {
                "id": "slow",
                "type": "http",
                "url": f"{sink.url}/slow",
                "timeout_seconds": 1,
                "total_timeout_seconds": 2.5,
                "retry": {
                    "max_attempts": 10,
                    "initial_interval_seconds": 0.1,
                    "backoff_coefficient": 1,
                },
            }
        ],
    }
    handle = await start_definition(client, settings, document)
    state = await outcome(handle)
    assert state["status"] == "failed"
    assert state["error"]["type"] == "StepTimeout"
    assert (
        "total time ran out" in state["error"]["message"]
        or "timed out" in state["error"]["message"]
    )
    assert 2 <= len(sink.deliveries("/slow")) <= 3
    log = read_log(settings, handle.id)
    assert log["status"] == "failed" and log["steps"][0]["error_type"] == "StepTimeout"


async def test_log_writes_are_batched_for_in_workflow_steps(
    client: Client, settings: Settings, worker: Any
) -> None:
    document = {
        "id": "batched",
        "steps": [{"id": f"s{i}", "type": "set", "values": {f"v{i}": i}} for i in range(30)],
    }
    handle = await start_definition(client, settings, document)
    await outcome(handle)
    history = await handle.fetch_history()
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    # start + one batch + final (+ the patch marker), not 30 separate writes
    assert len(markers) <= 5, len(markers)
    log = read_log(settings, handle.id)
    assert log["status"] == "completed"
    assert [s["step_id"] for s in log["steps"]] == [f"s{i}" for i in range(30)]
