"""Structured control flow on the real dev server: parallel, foreach (inline and in
shares of child workflows), sub_workflow, on_error routing by type, nested scopes and paths."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.runtime.settings import Settings
from tests.conftest import eventually, outcome, read_log, save_definition, start_definition
from tests.fakes import HttpSink, Reply

NO_RETRY = {"max_attempts": 1}


def call(sink: HttpSink, step_id: str, path: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "http",
        "method": "POST",
        "url": f"{sink.url}/{path or step_id}",
        "retry": NO_RETRY,
        **extra,
    }


async def events_of(client: Client, execution_id: str) -> list[Any]:
    return list((await client.get_workflow_handle(execution_id).fetch_history()).events)


async def test_parallel_branches_run_at_once_and_bind_by_branch(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/slow-a", Reply(200, {"who": "a"}, delay=0.6))
    sink.script("/slow-b", Reply(200, {"who": "b"}, delay=0.6))
    document = {
        "id": "fan-out",
        "steps": [
            {"id": "base", "type": "set", "values": {"n": 2}},
            {
                "id": "fan",
                "type": "parallel",
                "output": "fanned",
                "branches": [
                    {"id": "a", "steps": [
                        call(sink, "get-a", "slow-a", output="answer"),
                        {"id": "mark-a", "type": "set", "values": {"seen": "{answer.json.who}{n}"}},
                    ]},
                    {"id": "b", "steps": [call(sink, "get-b", "slow-b", output="answer")]},
                ],
            },
            {"id": "after", "type": "set", "values": {"joined": "{fanned.a.seen}-{fanned.b.answer.json.who}"}},
        ],
    }  # fmt: skip
    handle = await start_definition(client, settings, document)
    seen_together = await eventually(
        lambda: _in_flight_both(handle, "fan.a.get-a", "fan.b.get-b"), timeout=20
    )
    assert seen_together["current_step"] == "fan"
    state = await outcome(handle)
    assert state["status"] == "completed", state["error"]
    assert state["outputs"]["joined"] == "a2-b"
    # Names bound inside a branch stay inside: only `fanned` comes out.
    assert "answer" not in state["outputs"] and "seen" not in state["outputs"]
    deliveries = {r.path: r.at for r in sink.deliveries()}
    assert abs(deliveries["/slow-a"] - deliveries["/slow-b"]) < 0.5  # concurrently
    log = read_log(settings, handle.id)
    paths = [s["path"] for s in log["steps"]]
    assert {"base", "fan.a.get-a", "fan.a.mark-a", "fan.b.get-b", "fan", "after"} <= set(paths)
    assert all(s["status"] == "success" for s in log["steps"])


async def _in_flight_both(handle: Any, *paths: str) -> dict[str, Any] | None:
    state = await handle.query("status")
    data = state.model_dump(mode="json") if hasattr(state, "model_dump") else state
    return data if set(paths) <= set(data["current_steps"]) else None


async def test_parallel_fail_fast_cancels_the_running_branch_and_routes_the_failure(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/broken", Reply(400, {"error": "down"}, delay=0.3))
    sink.script("/hang", Reply(200, {}, delay=20))
    document = {
        "id": "fail-fast",
        "steps": [
            {
                "id": "fan",
                "type": "parallel",
                "branches": [
                    {"id": "bad", "steps": [call(sink, "breaks", "broken")]},
                    {"id": "slow", "steps": [call(sink, "hangs", "hang", timeout_seconds=60)]},
                ],
                "on_error": [
                    {"errors": ["StepTimeout"], "then": "fail"},
                    {"errors": ["HTTPStatusError"], "then": "handler"},
                ],
            },
            {"id": "unused", "type": "set", "values": {"x": 1}, "next": "end"},
            {"id": "handler", "type": "set", "values": {"why": "{last_error.type}: {last_error.message}"}},
        ],
    }  # fmt: skip
    handle = await start_definition(client, settings, document)
    state = await outcome(handle, timeout=30)
    assert state["status"] == "completed", state["error"]
    assert state["outputs"]["why"].startswith("HTTPStatusError: ")
    assert "x" not in state["outputs"]
    log = read_log(settings, handle.id)
    by_path = {s["path"]: s for s in log["steps"]}
    assert by_path["fan.bad.breaks"]["status"] == "failed"
    assert by_path["fan.slow.hangs"]["status"] == "cancelled"
    assert by_path["fan"]["status"] == "failed"
    assert by_path["fan"]["error_type"] == "HTTPStatusError"
    # The hanging activity was really cancelled (and the run did not wait 20 s for it).
    kinds = [e.event_type for e in await events_of(client, handle.id)]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in kinds
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED in kinds


async def test_parallel_without_fail_fast_finishes_every_branch_then_fails(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/broken", Reply(400, {}))
    sink.script("/later", Reply(200, {"ok": 1}, delay=0.5))
    document = {
        "id": "no-fail-fast",
        "steps": [
            {
                "id": "fan",
                "type": "parallel",
                "fail_fast": False,
                "branches": [
                    {"id": "bad", "steps": [call(sink, "breaks", "broken")]},
                    {"id": "good", "steps": [call(sink, "finishes", "later")]},
                ],
            }
        ],
    }
    state = await outcome(await start_definition(client, settings, document), timeout=30)
    assert state["status"] == "failed"
    assert state["error"]["type"] == "HTTPStatusError"
    assert len(sink.deliveries("/later")) == 1
    done = {s["path"]: s["status"] for s in state["steps"]}
    assert done["fan.good.finishes"] == "success" and done["fan.bad.breaks"] == "failed"


async def test_foreach_runs_items_in_order_bounded_and_continues_past_failed_items(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/item/3", Reply(404, {"error": "no"}))
    document = {
        "id": "each-item",
        "inputs": {"type": "object", "properties": {"orders": {"type": "array"}}},
        "steps": [
            {
                "id": "each",
                "type": "foreach",
                "items": "{orders}",
                "as": "order",
                "concurrency": 2,
                "on_item_error": "continue",
                "output": "results",
                "steps": [
                    call(sink, "fetch", output="fetched", url=f"{sink.url}/item/{{order.id}}"),
                    {"id": "label", "type": "set", "values": {"label": "#{index}: {order.id}"}},
                ],
            },
            {"id": "count", "type": "set", "compute": {"n": "size(results)"}},
        ],
    }
    orders = [{"id": i} for i in range(6)]
    handle = await start_definition(client, settings, document, {"orders": orders})
    state = await outcome(handle, timeout=60)
    assert state["status"] == "completed", state["error"]
    results = state["outputs"]["results"]
    assert len(results) == 6 and state["outputs"]["n"] == 6
    assert [r.get("label") for r in results] == [
        "#0: 0", "#1: 1", "#2: 2", None, "#4: 4", "#5: 5",
    ]  # fmt: skip
    assert results[3]["error"]["type"] == "HTTPStatusError"
    assert results[3]["error"]["step_id"] == "fetch"
    assert "order" not in results[0] and "index" not in results[0]
    assert sorted(r.path for r in sink.deliveries()) == [f"/item/{i}" for i in range(6)]
    paths = {s["path"] for s in read_log(settings, handle.id)["steps"]}
    assert {"each[0].fetch", "each[5].label", "each[3].fetch", "each"} <= paths
    # concurrency 2: never more than two iterations' calls in flight at once
    history = await events_of(client, handle.id)
    in_flight = peak = 0
    for event in history:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            in_flight += 1
            peak = max(peak, in_flight)
        elif event.event_type in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
        ):
            in_flight -= 1
    assert peak == 2


async def test_foreach_item_failure_fails_the_step_under_fail(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/item/1", Reply(404, {}))
    document = {
        "id": "each-fails",
        "steps": [
            {
                "id": "each",
                "type": "foreach",
                "items": [0, 1, 2],
                "concurrency": 1,
                "steps": [call(sink, "fetch", url=f"{sink.url}/item/{{item}}")],
            }
        ],
    }
    state = await outcome(await start_definition(client, settings, document), timeout=30)
    assert state["status"] == "failed"
    assert state["error"]["type"] == "HTTPStatusError"
    assert len(sink.deliveries("/item/2")) == 0  # nothing starts after the failure


async def test_a_large_foreach_runs_in_child_workflow_shares_with_short_histories(
    client: Client, settings: Settings, worker: Any
) -> None:
    count = 2_000
    document = {
        "id": "big-each",
        "inputs": {"type": "object", "properties": {"nums": {"type": "array"}}},
        "steps": [
            {
                "id": "each",
                "type": "foreach",
                "items": "{nums}",
                "concurrency": 1000,
                "output": "squares",
                "steps": [{"id": "square", "type": "set", "compute": {"sq": "item * item"}}],
            },
            {"id": "sum", "type": "set", "compute": {"last": "squares[1999].sq"}},
        ],
    }  # fmt: skip
    handle = await start_definition(client, settings, document, {"nums": list(range(count))})
    state = await outcome(handle, timeout=120)
    assert state["status"] == "completed", state["error"]
    assert state["outputs"]["last"] == 1999 * 1999
    assert len(state["outputs"]["squares"]) == count
    assert state["outputs"]["squares"][1234] == {"sq": 1234 * 1234}
    parent = await events_of(client, handle.id)
    children = [
        e
        for e in parent
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    assert len(children) == 4  # 2,000 items: at most 500 a share, so four
    starts = [
        c.start_child_workflow_execution_initiated_event_attributes.workflow_id.rsplit("-", 1)[1]
        for c in children
    ]
    assert starts == ["0", "500", "1000", "1500"]
    # All at once: every share started before the first one finished.
    first_done = next(
        i
        for i, e in enumerate(parent)
        if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED
    )
    assert all(parent.index(c) < first_done for c in children)
    assert all(
        c.start_child_workflow_execution_initiated_event_attributes.workflow_type.name
        == "ForeachBatch"
        for c in children
    )
    assert len(parent) < 200
    log = read_log(settings, handle.id)
    assert sum(1 for s in log["steps"] if s["step_id"] == "square") == count
    assert len({s["seq"] for s in log["steps"]}) == len(log["steps"])
    # Each share wrote its records to the log itself, numbered between the foreach and the
    # step after it, and handed back only its latest few for the status: the parent's history
    # holds the results, not 2,000 step records.
    seq = {s["step_id"]: s["seq"] for s in log["steps"] if s["step_id"] != "square"}
    squares = [s["seq"] for s in log["steps"] if s["step_id"] == "square"]
    assert seq["each"] < min(squares) and max(squares) < seq["sum"]
    handed_back = [s for s in state["steps"] if s["step_id"] == "square"]
    assert 0 < len(handed_back) <= 4 * 50
    handed = [
        e.ByteSize()
        for e in parent
        if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED
    ]
    assert max(handed) < 64_000, handed  # 500 results and 50 records (all 500: ~190 KB)


def share_writer(sink: HttpSink, items: list[int]) -> dict[str, Any]:
    """40 items of 30 steps (an http call, then 29 `set`), 4 at once: at most 16 items a
    share (3,000 events at 6 a step), so three shares of 14, 14 and 12, one after another,
    each running 4 items at once (foreach_shares.in_waves)."""
    body = [call(sink, "fetch", url=f"{sink.url}/item/{{item}}")]
    body += [{"id": f"s{i}", "type": "set", "values": {f"v{i}": "{item}"}} for i in range(28)]
    body += [{"id": "s28", "type": "set", "values": {"v28": "{prefix}{item}"}}]
    return {
        "id": "share-writer",
        "inputs": {
            "type": "object",
            "properties": {"nums": {"type": "array"}, "prefix": {"type": "string"}},
        },
        "steps": [
            {"id": "each", "type": "foreach", "items": "{nums}", "concurrency": 4, "steps": body},
            {"id": "after", "type": "set", "values": {"done": True}},
        ],
    }


async def test_foreach_shares_write_their_own_records_to_the_log(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    items = list(range(40))
    inputs = {"nums": items, "prefix": "p"}
    handle = await start_definition(client, settings, share_writer(sink, items), inputs)
    state = await outcome(handle, timeout=90)
    assert state["status"] == "completed", state["error"]
    parent = await events_of(client, handle.id)
    shares = [
        e
        for e in parent
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    assert len(shares) == 3
    batches = [
        json.loads(
            share.start_child_workflow_execution_initiated_event_attributes.input.payloads[0].data
        )["batch"]
        for share in shares
    ]
    assert [(b["offset"], len(b["items"]), b["step"]["concurrency"]) for b in batches] == [
        (0, 14, 4),
        (14, 14, 4),
        (28, 12, 4),
    ]
    # One share at a time: each starts after the one before it ended.
    order = [
        e.event_type
        for e in parent
        if e.event_type
        in (
            EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
            EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
        )
    ]
    started = EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ended = EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED
    assert order == [started, ended] * 3
    log = read_log(settings, handle.id)
    assert log["status"] == "completed"
    inside = [s for s in log["steps"] if s["path"].startswith("each[")]
    assert len(inside) == 40 * 30  # every record, though the parent never held them
    assert len({(s["run_id"], s["seq"]) for s in log["steps"]}) == len(log["steps"])
    # A share is handed the variables its steps name (prefix), not the list it iterates.
    assert [s["output_vars"] for s in inside if s["path"] == "each[3].s28"] == [{"v28": "p3"}]
    for share in shares:
        (payload,) = share.start_child_workflow_execution_initiated_event_attributes.input.payloads
        assert set(json.loads(payload.data)["batch"]["variables"]) == {"prefix"}
    seq = {s["step_id"]: s["seq"] for s in log["steps"] if not s["path"].startswith("each[")}
    assert all(seq["each"] < s["seq"] < seq["after"] for s in inside)
    # The status shows the latest of them (the parent's window, shared by its shares).
    shown = [s for s in state["steps"] if s["path"].startswith("each[")]
    assert 0 < len(shown) <= 200, len(shown)
    assert all(s["status"] == "success" for s in shown)

    # A share whose item fails writes what it ran, the failure too, before it fails the step.
    sink.script("/item/27", Reply(500, {"error": "broken"}))
    failing = await start_definition(client, settings, share_writer(sink, items), inputs)
    state = await outcome(failing, timeout=90)
    assert state["status"] == "failed"
    log = read_log(settings, failing.id)
    failed = [s for s in log["steps"] if s["status"] == "failed"]
    assert [s["path"] for s in failed if s["step_id"] == "fetch"] == ["each[27].fetch"]
    # Items of the same share (14 to 27, 4 at once) that ended before item 27 started.
    ended = {s["path"] for s in log["steps"] if s["step_id"] == "s28"}
    assert sum(f"each[{i}].s28" in ended for i in range(14, 27)) >= 27 - 14 - 3


async def test_foreach_over_the_item_limit_fails_naming_the_count(
    client: Client, settings: Settings, worker: Any
) -> None:
    limited = settings.model_copy(update={"foreach_max_items": 5})
    document = {
        "id": "too-many",
        "steps": [
            {"id": "each", "type": "foreach", "items": [1, 2, 3, 4, 5, 6],
             "steps": [{"id": "s", "type": "set", "values": {"v": "{item}"}}]},
        ],
    }  # fmt: skip
    state = await outcome(await start_definition(client, limited, document))
    assert state["status"] == "failed"
    assert state["error"]["type"] == "InvalidRequest"
    assert (
        "6 items" in state["error"]["message"] and "FOREACH_MAX_ITEMS" in state["error"]["message"]
    )


async def test_a_signal_timeout_routes_to_a_default_branch(
    client: Client, settings: Settings, worker: Any
) -> None:
    document = {
        "id": "approval-or-default",
        "steps": [
            {"id": "approval", "type": "wait_for_signal", "signal": "approval", "timeout_seconds": 1,
             "output": "approval",
             "on_error": [{"errors": ["SignalTimeout"], "then": "auto"}]},
            {"id": "approved", "type": "set", "values": {"by": "{approval.by}"}, "next": "end"},
            {"id": "auto", "type": "set", "values": {"by": "default after {last_error.type}"}},
        ],
    }  # fmt: skip
    state = await outcome(await start_definition(client, settings, document), timeout=30)
    assert state["status"] == "completed"
    assert state["outputs"]["by"] == "default after SignalTimeout"


async def test_an_error_no_rule_matches_fails_the_run(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/broken", Reply(400, {}))
    document = {
        "id": "unmatched",
        "steps": [
            call(sink, "breaks", "broken", on_error=[{"errors": ["StepTimeout"], "then": "continue"}]),
            {"id": "after", "type": "set", "values": {"x": 1}},
        ],
    }  # fmt: skip
    state = await outcome(await start_definition(client, settings, document), timeout=30)
    assert state["status"] == "failed" and state["error"]["type"] == "HTTPStatusError"


async def test_sub_workflow_runs_the_saved_child_and_binds_its_outputs(
    http: httpx.AsyncClient, settings: Settings, client: Client
) -> None:
    save_definition(settings, {
        "id": "child-greet",
        "inputs": {"type": "object", "required": ["who"], "properties": {"who": {"type": "string"}}},
        "steps": [{"id": "greet", "type": "set", "values": {"greeting": "hello {who}"}}],
    })  # fmt: skip
    save_definition(settings, {
        "id": "parent-calls",
        "steps": [
            {"id": "each", "type": "foreach", "items": ["ada", "bo"], "output": "all",
             "steps": [{"id": "call", "type": "sub_workflow", "workflow_id": "child-greet",
                        "input_vars": {"who": "{item}"}, "output": "child"}]},
            {"id": "pick", "type": "set", "values": {"first": "{all.0.child.greeting}"}},
        ],
    })  # fmt: skip
    started = await http.post("/api/workflows/run", json={"workflow_id": "parent-calls"})
    assert started.status_code == 202, started.text
    execution_id = started.json()["execution_id"]

    async def done() -> dict[str, Any] | None:
        body = (await http.get(f"/api/executions/{execution_id}")).json()
        return body if body["status"] != "running" else None

    state = await eventually(done, timeout=60)
    assert state["status"] == "completed", state["error"]
    assert state["outputs"]["first"] == "hello ada"
    assert state["outputs"]["all"][1]["child"]["greeting"] == "hello bo"
    children = [
        e for e in await events_of(client, execution_id)
        if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED
    ]  # fmt: skip
    assert len(children) == 2
    child_id = children[
        0
    ].child_workflow_execution_completed_event_attributes.workflow_execution.workflow_id
    child = (await http.get(f"/api/executions/{child_id}")).json()
    assert child["workflow_id"] == "child-greet" and child["status"] == "completed"


async def test_a_failed_child_fails_the_step_and_cancel_reaches_the_child(
    http: httpx.AsyncClient, settings: Settings, client: Client
) -> None:
    save_definition(settings, {
        "id": "child-fails",
        "steps": [{"id": "stop", "type": "fail", "message": "child says no"}],
    })  # fmt: skip
    save_definition(settings, {
        "id": "child-waits",
        "steps": [{"id": "hold", "type": "wait_for_signal", "signal": "go"}],
    })  # fmt: skip
    save_definition(settings, {
        "id": "parent-of-failure",
        "steps": [{"id": "call", "type": "sub_workflow", "workflow_id": "child-fails"}],
    })  # fmt: skip
    save_definition(settings, {
        "id": "parent-of-waiter",
        "steps": [{"id": "call", "type": "sub_workflow", "workflow_id": "child-waits"}],
    })  # fmt: skip
    missing = await http.post("/api/workflows/run", json={"workflow_id": "parent-missing"})
    assert missing.status_code == 404
    failed_id = (
        await http.post("/api/workflows/run", json={"workflow_id": "parent-of-failure"})
    ).json()["execution_id"]

    async def finished(execution_id: str) -> dict[str, Any] | None:
        body = (await http.get(f"/api/executions/{execution_id}")).json()
        return body if body["status"] not in ("running",) else None

    state = await eventually(lambda: finished(failed_id), timeout=60)
    assert state["status"] == "failed"
    assert state["error"]["type"] == "ChildWorkflowFailed"
    assert "child says no" in state["error"]["message"]

    waiting_id = (
        await http.post("/api/workflows/run", json={"workflow_id": "parent-of-waiter"})
    ).json()["execution_id"]

    async def child_started() -> str | None:
        steps = (await http.get(f"/api/executions/{waiting_id}")).json()["steps"]
        return next((s["child_execution_id"] for s in steps if s["step_id"] == "call"), None)

    # The running step names its child from the start: `<its workflow id>-<uuid>`.
    child_id = str(await eventually(child_started, timeout=30))
    assert child_id.startswith("child-waits-")

    async def child_waits() -> bool:
        answer = await http.get(f"/api/executions/{child_id}")
        return answer.status_code == 200 and answer.json()["waiting_for"] == "go"

    await eventually(child_waits, timeout=30)
    cancel = await http.post(f"/api/executions/{waiting_id}/cancel", json={"reason": "enough"})
    assert cancel.status_code == 202
    parent = await eventually(lambda: finished(waiting_id), timeout=30)
    assert parent["status"] == "cancelled"
    child = await eventually(lambda: finished(child_id), timeout=30)
    assert child["status"] == "cancelled"


async def test_a_sub_workflow_of_an_unsaved_workflow_is_refused_at_start(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    save_definition(settings, {
        "id": "calls-nobody",
        "steps": [{"id": "call", "type": "sub_workflow", "workflow_id": "not-saved"}],
    })  # fmt: skip
    answer = await http.post("/api/workflows/run", json={"workflow_id": "calls-nobody"})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["code"] == "sub_workflow_not_found"
    assert "not-saved" in answer.json()["errors"][0]["message"]


async def test_nested_lists_are_checked_as_scopes_at_save(http: httpx.AsyncClient) -> None:
    document = {
        "steps": [
            {"id": "top", "type": "set", "values": {"a": 1}},
            {"id": "fan", "type": "parallel", "branches": [
                {"id": "x", "steps": [{"id": "inner", "type": "set", "values": {"b": 2}, "next": "top"}]},
                {"id": "y", "steps": [{"id": "reads", "type": "set", "values": {"c": "{b}"}}]},
            ]},
            {"id": "after", "type": "set", "values": {"d": "{b}"}},
        ],
    }  # fmt: skip
    answer = await http.put("/api/workflows/scoped", json=document)
    assert answer.status_code == 422
    problems = {p["path"]: p for p in answer.json()["errors"]}
    assert problems["$.steps[1].branches[0].steps[0].next"]["code"] == "unknown_next"
    assert "jumps only within itself" in problems["$.steps[1].branches[0].steps[0].next"]["message"]
    fixed = {**document}
    fixed["steps"][1]["branches"][0]["steps"][0].pop("next")
    answer = await http.put("/api/workflows/scoped", json=fixed)
    problems = {p["path"]: p for p in answer.json()["errors"]}
    # `b` is bound in branch x: neither branch y nor the steps after the parallel see it.
    assert problems["$.steps[1].branches[1].steps[0].values.c"]["code"] == "unknown_reference"
    assert problems["$.steps[2].values.d"]["code"] == "unknown_reference"
    bad_type = {"id": "v", "steps": [{"id": "fan", "type": "parallel", "branches": [
        {"id": "x", "steps": [{"id": "s", "type": "sett"}]},
        {"id": "y", "steps": [{"id": "t", "type": "set", "values": {"v": 1}}]},
    ]}]}  # fmt: skip
    answer = await http.post("/api/workflows/validate", json=bad_type)
    problem = answer.json()["errors"][0]
    assert problem["path"] == "$.steps[0].branches[0].steps[0].type"
    assert "unknown step type 'sett'" in problem["message"] and "foreach" in problem["message"]


async def test_cancelling_a_parallel_run_stops_every_branch(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/hang-a", Reply(200, {}, delay=20))
    sink.script("/hang-b", Reply(200, {}, delay=20))
    document = {
        "id": "cancel-fan",
        "steps": [{"id": "fan", "type": "parallel", "branches": [
            {"id": "a", "steps": [call(sink, "ha", "hang-a", timeout_seconds=60)]},
            {"id": "b", "steps": [call(sink, "hb", "hang-b", timeout_seconds=60)]},
        ]}],
    }  # fmt: skip
    handle = await start_definition(client, settings, document)
    await eventually(lambda: len(sink.deliveries()) == 2, timeout=20)
    await handle.cancel()
    state = await outcome(handle, timeout=30)
    assert state["status"] == "cancelled"
    log = read_log(settings, handle.id)
    assert log["status"] == "cancelled"
    statuses = {s["path"]: s["status"] for s in log["steps"]}
    assert statuses == {"fan": "cancelled", "fan.a.ha": "cancelled", "fan.b.hb": "cancelled"}
    await asyncio.sleep(0)
