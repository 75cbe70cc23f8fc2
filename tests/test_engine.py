"""The interpreter end to end on the real dev server: every step type, flow control, errors,
retries, timeouts, cancellation, signals, logs and what the Temporal UI shows."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from activities.runtime.settings import Settings
from tests.conftest import eventually, outcome, read_log, start_definition
from tests.fakes import FakeOpenRouter, HttpSink, Reply, completion, openrouter_error
from workflows.messages import SA_DEFINITION_ID, SA_STATUS

FAST_RETRY = {"max_attempts": 3, "initial_interval_seconds": 0.1, "backoff_coefficient": 1.0}


def http_step(sink: HttpSink, step_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "http",
        "method": "POST",
        "url": f"{sink.url}/{step_id}",
        "retry": FAST_RETRY,
        **extra,
    }


async def test_set_condition_and_branches(client: Client, settings: Settings, worker: Any) -> None:
    document = {
        "id": "branching",
        "inputs": {"type": "object", "properties": {"score": {"type": "integer"}}},
        "steps": [
            {"id": "double", "type": "set", "values": {"doubled": "{score}", "label": "s={score}"}},
            {
                "id": "route",
                "type": "condition",
                "branches": [
                    {"when": "doubled > 10", "next": "high"},
                    {"when": "doubled > 5", "next": "mid"},
                ],
                "default": "low",
            },
            {"id": "high", "type": "set", "values": {"band": "high"}, "next": "end"},
            {"id": "mid", "type": "set", "values": {"band": "mid"}, "next": "end"},
            {"id": "low", "type": "set", "values": {"band": "low"}},
        ],
    }
    for score, band in ((50, "high"), (7, "mid"), (1, "low")):
        handle = await start_definition(client, settings, document, {"score": score})
        state = await outcome(handle)
        assert state["status"] == "completed"
        assert state["outputs"]["band"] == band
        assert state["outputs"]["doubled"] == score  # whole-value reference keeps the int
        assert state["outputs"]["label"] == f"s={score}"
        ran = [s["step_id"] for s in read_log(settings, handle.id)["steps"]]
        assert ran == ["double", "route", band]


async def test_log_file_has_the_spec_keys(client: Client, settings: Settings, worker: Any) -> None:
    document = {
        "id": 123,
        "name": "log keys",
        "steps": [{"id": "a", "type": "set", "name": "Set a", "values": {"x": 1}}],
    }
    handle = await start_definition(client, settings, document)
    await outcome(handle)
    log = read_log(settings, handle.id)
    required = {"execution_id", "workflow_id", "start_time", "end_time", "status", "steps"}
    assert required <= set(log)
    assert log["execution_id"] == handle.id
    assert log["workflow_id"] == 123  # integer ids stay integers
    assert log["status"] == "completed"
    assert log["run_id"] == handle.result_run_id
    assert log["start_time"].endswith("Z") and log["end_time"].endswith("Z")
    (step,) = log["steps"]
    step_keys = {"step_id", "name", "start_time", "end_time", "status", "output_vars", "error"}
    assert step_keys <= set(step)
    assert step["step_id"] == "a"
    assert step["name"] == "Set a"
    assert step["status"] == "success"
    assert step["output_vars"] == {"x": 1}
    assert step["error"] is None
    # The log directory holds only the finished file (temporary files are renamed away).
    assert [p.name for p in settings.workflow_log_dir.iterdir()] == [f"{handle.id}.json"]


async def test_http_step_renders_request_and_binds_result(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    document = {
        "id": "http",
        "inputs": {"type": "object", "properties": {"user": {"type": "object"}}},
        "steps": [
            http_step(
                sink,
                "post",
                url=f"{sink.url}/users/{{user.id}}",
                headers={"X-User": "{user.name}"},
                query={"tag": ["a", "{user.id}"], "flag": True},
                json={"user": "{user}", "text": "hi {user.name}", "literal": "{{user}}"},
                output="created",
            ),
            {"id": "after", "type": "set", "values": {"echo": "{created.json.received.text}"}},
        ],
    }
    handle = await start_definition(client, settings, document, {"user": {"id": 7, "name": "Ada"}})
    state = await outcome(handle)
    assert state["status"] == "completed", state["error"]
    (delivery,) = sink.deliveries("/users/7")
    assert delivery.path == "/users/7?tag=a&tag=7&flag=true"
    assert delivery.headers["x-user"] == "Ada"
    assert delivery.json() == {
        "user": {"id": 7, "name": "Ada"},
        "text": "hi Ada",
        "literal": "{user}",
    }
    assert len(delivery.headers["idempotency-key"]) == 36
    created = state["outputs"]["created"]
    assert created["status"] == 200 and created["json"]["ok"] is True
    assert "text" not in created  # a JSON answer binds `json`, not `text`
    assert state["outputs"]["echo"] == "hi Ada"


async def test_a_cookie_one_run_receives_never_reaches_another_runs_request(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    """The worker shares one HTTP client between all runs: it must keep no cookie jar."""
    sink.script("/login", Reply(200, {"ok": True}, {"Set-Cookie": "session=tenant-a; Path=/"}))
    first = {"id": "a", "steps": [http_step(sink, "login", url=f"{sink.url}/login")]}
    second = {"id": "b", "steps": [http_step(sink, "read", url=f"{sink.url}/data")]}
    for document in (first, second):
        state = await outcome(await start_definition(client, settings, document))
        assert state["status"] == "completed", state["error"]
    (login,) = sink.deliveries("/login")
    (read,) = sink.deliveries("/data")
    assert "cookie" not in read.headers, read.headers
    assert "cookie" not in login.headers


async def test_http_5xx_is_retried_with_the_same_idempotency_key(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/flaky", Reply(503, "busy"), Reply(502, "bad gateway"))
    document = {"id": "retry", "steps": [http_step(sink, "flaky", json={"n": 1})]}
    handle = await start_definition(client, settings, document)
    state = await outcome(handle)
    assert state["status"] == "completed"
    ledger = sink.ledger("/flaky")
    assert len(ledger) == 1 and next(iter(ledger.values())) == 3  # one effect, three deliveries


async def test_http_4xx_fails_at_once_and_on_error_applies(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/missing", Reply(404, "no such thing"), Reply(404, "no such thing"))
    sink.script("/handled", Reply(400, {"error": "bad"}))
    document = {
        "id": "errors",
        "steps": [
            http_step(sink, "handled", on_error={"next": "recover"}),
            {"id": "skipped", "type": "set", "values": {"never": True}},
            {"id": "recover", "type": "set", "values": {"recovered": True}},
            http_step(sink, "missing", on_error="continue"),
            {"id": "after", "type": "set", "values": {"continued": True}},
            http_step(sink, "missing", id="missing_again"),
            {"id": "unreached", "type": "set", "values": {"no": True}},
        ],
    }
    document["steps"][5]["url"] = f"{sink.url}/missing"
    handle = await start_definition(client, settings, document)
    state = await outcome(handle)
    assert state["status"] == "failed"
    assert state["error"]["type"] == "HTTPStatusError"
    assert "answered 404: no such thing" in state["error"]["message"]
    assert state["error"]["step_id"] == "missing_again"
    assert state["outputs"].get("recovered") is True and state["outputs"].get("continued") is True
    assert "never" not in state["outputs"] and "no" not in state["outputs"]
    assert len(sink.deliveries("/handled")) == 1  # 4xx: no retry
    assert len(sink.deliveries("/missing")) == 2  # one per visit, no retry
    log = read_log(settings, handle.id)
    assert [s["status"] for s in log["steps"]] == [
        "failed", "success", "failed", "success", "failed",
    ]  # fmt: skip
    assert log["status"] == "failed" and "404" in log["error"]["message"]
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.FAILED


async def test_expect_status_accepts_a_non_2xx(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/gone", Reply(410, "gone"))
    document = {
        "id": "expect",
        "steps": [http_step(sink, "gone", expect_status=[200, 410], output="r")],
    }
    state = await outcome(await start_definition(client, settings, document))
    assert state["status"] == "completed"
    assert state["outputs"]["r"]["status"] == 410 and state["outputs"]["r"]["text"] == "gone"


async def test_step_timeout_retries_then_fails_with_a_timeout_error(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/slow", Reply(200, "late", delay=5), Reply(200, "late", delay=5))
    document = {
        "id": "timeout",
        "steps": [
            http_step(sink, "slow", timeout_seconds=1, retry={**FAST_RETRY, "max_attempts": 2},
                      on_error={"next": "fallback"}),
            {"id": "next", "type": "set", "values": {"never": True}, "next": "end"},
            {"id": "fallback", "type": "set", "values": {"fell_back": True}},
        ],
    }  # fmt: skip
    handle = await start_definition(client, settings, document)
    state = await outcome(handle)
    assert state["status"] == "completed"
    # The routed failure is bound as last_error for the handler to read.
    assert state["outputs"]["fell_back"] is True
    assert state["outputs"]["last_error"]["type"] == "StepTimeout"
    assert state["outputs"]["last_error"]["step_id"] == "slow"
    assert len(sink.deliveries("/slow")) == 2
    failed = read_log(settings, handle.id)["steps"][0]
    assert failed["error_type"] == "StepTimeout"
    assert "timed out" in failed["error"]


async def test_fail_step_and_runtime_reference_error(
    client: Client, settings: Settings, worker: Any
) -> None:
    document = {
        "id": "fail",
        "inputs": {"type": "object", "properties": {"who": {"type": "object"}}},
        "steps": [
            {"id": "boom", "type": "fail", "message": "stopped by {who.name}"},
        ],
    }
    state = await outcome(
        await start_definition(client, settings, document, {"who": {"name": "Bo"}})
    )
    assert state["status"] == "failed"
    assert state["error"] == {
        "type": "WorkflowFailed",
        "message": "stopped by Bo",
        "step_id": "boom",
    }
    # A missing value at run time fails the step non-retryably, naming the path.
    state = await outcome(await start_definition(client, settings, document, {"who": {}}))
    assert state["error"]["type"] == "InvalidVariableReference"
    assert "invalid variable reference {who.name}" in state["error"]["message"]


async def test_ai_step_with_json_schema_and_branch(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(
        Reply(200, completion('```json\n{"priority": "high", "why": "outage"}\n```', cost=0.001))
    )
    document = {
        "id": "ai",
        "inputs": {"type": "object", "properties": {"ticket": {"type": "object"}}},
        "steps": [
            {
                "id": "classify",
                "type": "ai",
                "model": "openai/gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": 'Reply like {"priority": "low"}.'},
                    {"role": "user", "content": "{ticket.subject}"},
                ],
                "temperature": 0.2,
                "max_tokens": 50,
                "response_format": {
                    "type": "json_schema",
                    "schema": {
                        "type": "object",
                        "properties": {"priority": {"enum": ["low", "high"]}},
                        "required": ["priority"],
                    },
                },
                "output": "classification",
            },
            {
                "id": "route",
                "type": "condition",
                "branches": [{"when": "classification.priority == 'high'", "next": "page"}],
                "default": "end",
            },
            {"id": "page", "type": "set", "values": {"paged": "{classification.json.why}"}},
        ],
    }
    handle = await start_definition(client, settings, document, {"ticket": {"subject": "Down!"}})
    state = await outcome(handle)
    assert state["status"] == "completed", state["error"]
    result = state["outputs"]["classification"]
    assert result["json"] == {"priority": "high", "why": "outage"}
    assert result["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert result["cost"] == 0.001 and result["model"] == "openai/gpt-4o-mini"
    assert state["outputs"]["paged"] == "outage"
    (request,) = fake_openrouter.completions()
    body = request.json()
    assert body["messages"][0]["content"] == 'Reply like {"priority": "low"}.'
    assert body["messages"][1]["content"] == "Down!"
    assert body["temperature"] == 0.2 and body["max_tokens"] == 50
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["priority"]
    assert request.headers["authorization"] == "Bearer test-openrouter-key"
    step_log = read_log(settings, handle.id)["steps"][0]
    assert step_log["usage"]["cost_usd"] == 0.001


async def test_ai_answer_not_matching_the_schema_fails_clearly(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(Reply(200, completion('{"priority": "urgent"}')))
    document = {
        "id": "ai-bad",
        "steps": [
            {
                "id": "classify",
                "type": "ai",
                "model": "m",
                "prompt": "classify",
                "response_format": {
                    "type": "json_schema",
                    "schema": {
                        "type": "object",
                        "properties": {"priority": {"enum": ["low", "high"]}},
                    },
                },
                "retry": {"max_attempts": 1},
                "repair_attempts": 0,
            }
        ],
    }
    state = await outcome(await start_definition(client, settings, document))
    assert state["error"]["type"] == "InvalidModelOutput"
    assert "does not match the response schema at $.priority" in state["error"]["message"]


async def test_ai_401_fails_at_once_with_the_providers_message(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(Reply(401, openrouter_error(401, "User not found.")))
    document = {"id": "ai-401", "steps": [{"id": "a", "type": "ai", "model": "m", "prompt": "x",
                                           "retry": {"max_attempts": 5}}]}  # fmt: skip
    state = await outcome(await start_definition(client, settings, document))
    assert len(fake_openrouter.completions()) == 1
    assert state["error"]["type"] == "ProviderError"
    assert "answered 401: User not found." in state["error"]["message"]
    assert "OPENROUTER_API_KEY" in state["error"]["message"]


async def test_ai_429_honours_retry_after_and_5xx_is_retried(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(
        Reply(429, openrouter_error(429, "Rate limit exceeded"), headers={"Retry-After": "2"}),
        Reply(502, openrouter_error(502, "upstream error")),
    )
    document = {"id": "ai-429", "steps": [{"id": "a", "type": "ai", "model": "m", "prompt": "x",
                                           "output": "r", "retry": FAST_RETRY}]}  # fmt: skip
    state = await outcome(await start_definition(client, settings, document))
    assert state["status"] == "completed"
    attempts = fake_openrouter.completions()
    assert len(attempts) == 3
    assert attempts[1].at - attempts[0].at >= 1.9  # Retry-After, not the 0.1 s backoff
    assert attempts[2].at - attempts[1].at < 1.5


async def test_ai_without_api_key_fails_naming_the_variable(
    client: Client, settings: Settings, task_queue: str
) -> None:
    from worker import engine_worker

    keyless = settings.model_copy(update={"openrouter_api_key": None})
    document = {"id": "nokey", "steps": [{"id": "a", "type": "ai", "model": "m", "prompt": "x"}]}
    async with engine_worker(client, keyless) as bare, bare:
        state = await outcome(await start_definition(client, keyless, document))
    assert state["error"]["type"] == "MissingConfiguration"
    assert "OPENROUTER_API_KEY is not set" in state["error"]["message"]


async def test_cancel_during_an_ai_step_stops_the_call_and_finalises_the_log(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter, sink: HttpSink
) -> None:
    fake_openrouter.then(Reply(200, completion("late"), delay=60))
    document = {
        "id": "cancel-ai",
        "steps": [
            {"id": "think", "type": "ai", "model": "m", "prompt": "x", "timeout_seconds": 120},
            http_step(sink, "never"),
        ],
    }
    handle = await start_definition(client, settings, document)
    await eventually(lambda: fake_openrouter.completions())
    await handle.signal("cancel", {"reason": "user changed their mind"})
    await handle.cancel()  # as the API does, right after the signal
    state = await outcome(handle)
    assert state["status"] == "cancelled"
    assert state["error"]["message"] == "user changed their mind"
    # The activity saw the cancellation (via heartbeat) and hung up on the provider.
    await eventually(lambda: fake_openrouter.disconnects, timeout=10)
    assert sink.deliveries() == []
    log = read_log(settings, handle.id)
    assert log["status"] == "cancelled"
    assert log["steps"][-1]["step_id"] == "think" and log["steps"][-1]["status"] == "cancelled"
    assert (await handle.describe()).search_attributes[SA_STATUS.name] == ["cancelled"]


async def test_temporal_cancel_during_a_delay(
    client: Client, settings: Settings, worker: Any
) -> None:
    document = {
        "id": "cancel-delay",
        "steps": [
            {"id": "nap", "type": "delay", "seconds": 600},
            {"id": "after", "type": "set", "values": {"woke": True}},
        ],
    }
    handle = await start_definition(client, settings, document)
    await eventually(lambda: _current_step(handle, "nap"))
    await handle.cancel()  # Temporal's own cancel, as from the UI or CLI
    state = await outcome(handle)
    assert state["status"] == "cancelled"
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    log = read_log(settings, handle.id)
    assert log["status"] == "cancelled" and log["end_time"]
    assert [s["step_id"] for s in log["steps"]] == ["nap"]


async def test_wait_for_signal_binds_the_payload_and_times_out(
    client: Client, settings: Settings, worker: Any
) -> None:
    document = {
        "id": "approval",
        "steps": [
            {"id": "wait", "type": "wait_for_signal", "signal": "approval", "output": "approval",
             "timeout_seconds": 30},
            {"id": "after", "type": "set", "values": {"by": "{approval.by}"}},
        ],
    }  # fmt: skip
    handle = await start_definition(client, settings, document)
    await eventually(lambda: _current_step(handle, "wait"))
    await handle.signal("approval", {"by": "ops"})
    state = await outcome(handle)
    assert state["outputs"]["by"] == "ops"

    document["steps"][0]["timeout_seconds"] = 0.5
    state = await outcome(await start_definition(client, settings, document))
    assert state["error"]["type"] == "SignalTimeout"


async def test_workflow_timeout_finalises_the_log_as_failed(
    client: Client, settings: Settings, worker: Any
) -> None:
    document = {
        "id": "deadline",
        "timeout_seconds": 1,
        "steps": [{"id": "nap", "type": "delay", "seconds": 60}],
    }
    handle = await start_definition(client, settings, document)
    state = await outcome(handle)
    assert state["status"] == "failed"
    assert state["error"]["type"] == "WorkflowTimeout"
    assert "timeout of 1s during step 'nap'" in state["error"]["message"]
    log = read_log(settings, handle.id)
    assert log["status"] == "failed" and log["error"]["type"] == "WorkflowTimeout"


async def test_an_activity_that_outlasts_the_deadline_fails_the_run_at_the_deadline(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/slow", Reply(delay=20))
    document = {
        "id": "deadline-activity",
        "timeout_seconds": 2,
        "steps": [http_step(sink, "slow", timeout_seconds=30)],
    }
    handle = await start_definition(client, settings, document)
    state = await outcome(handle, timeout=15)
    assert state["status"] == "failed"
    assert state["error"]["type"] == "WorkflowTimeout"
    assert "timeout of 2s during step 'slow'" in state["error"]["message"]
    log = read_log(settings, handle.id)
    assert log["status"] == "failed" and log["steps"][-1]["step_id"] == "slow"
    history = await handle.fetch_history()
    timers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert len(timers) == 1  # started once Temporal ended the activity at the deadline
    assert json.loads(timers[0].user_metadata.summary.data) == "execution deadline"


async def test_a_run_that_ends_in_time_pays_no_deadline_timer_and_no_status_write(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    document = {
        "id": "lean",
        "timeout_seconds": 600,
        "steps": [http_step(sink, f"s{i}") for i in range(3)],
    }
    handle = await start_definition(client, settings, document)
    assert (await outcome(handle))["status"] == "completed"
    history = await handle.fetch_history()
    kinds = [e.event_type for e in history.events]
    assert EventType.EVENT_TYPE_TIMER_STARTED not in kinds
    upserts = [
        set(e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    assert all(fields <= {"TemporalChangeVersion"} for fields in upserts)
    # One version marker settles every behaviour change (not one marker and upsert each).
    patches = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]
    assert len(patches) == 1 and len(upserts) <= 1
    # The API still answers the status from Temporal's own.
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_status_query_and_what_the_ui_shows(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    document = {
        "id": "ui",
        "name": "What the UI shows",
        "steps": [
            http_step(sink, "call", name="Call the sink"),
            {"id": "wait", "type": "wait_for_signal", "signal": "go"},
        ],
    }
    handle = await start_definition(client, settings, document)
    live = await eventually(lambda: _current_step(handle, "wait"))
    assert live["status"] == "running"
    assert [s["step_id"] for s in live["steps"]] == ["call", "wait"]
    await handle.signal("go")
    await outcome(handle)
    description = await handle.describe()
    assert description.typed_search_attributes.get(SA_DEFINITION_ID) == "ui"
    # Temporal's own status says completed; WorkflowStatus is written only for a cancel.
    assert description.typed_search_attributes.get(SA_STATUS) is None
    assert await description.static_summary() == "What the UI shows (test)"
    history = await handle.fetch_history()
    scheduled = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    summaries = [json.loads(e.user_metadata.summary.data) for e in scheduled]
    assert summaries == ["Call the sink"]
    # Searchable by definition and status.
    found = [
        w.id
        async for w in client.list_workflows(
            "WorkflowDefinitionId = 'ui' AND ExecutionStatus = 'Completed'"
        )
    ]
    assert handle.id in found


async def test_signals_sent_early_are_kept_until_the_step_waits(
    client: Client, settings: Settings, worker: Any
) -> None:
    document = {
        "id": "early",
        "steps": [
            {"id": "nap", "type": "delay", "seconds": 1},
            {"id": "wait", "type": "wait_for_signal", "signal": "go", "output": "payload"},
        ],
    }
    handle = await start_definition(client, settings, document)
    await handle.signal("go", [1, 2])
    state = await outcome(handle)
    assert state["outputs"]["payload"] == [1, 2]


async def _current_step(handle: Any, step_id: str) -> dict[str, Any] | None:
    state = await handle.query("status")
    return state if state["current_step"] == step_id else None


async def test_concurrent_executions_do_not_interfere(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    document = {
        "id": "many",
        "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "steps": [http_step(sink, "hit", json={"n": "{n}"}, output="r")],
    }
    handles = await asyncio.gather(
        *(start_definition(client, settings, document, {"n": n}) for n in range(10))
    )
    states = await asyncio.gather(*(outcome(h) for h in handles))
    assert sorted(s["outputs"]["r"]["json"]["received"]["n"] for s in states) == list(range(10))
    assert len(sink.ledger("/hit")) == 10
