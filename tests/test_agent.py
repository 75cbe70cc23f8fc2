"""The `agent` step on the real dev server: the fake OpenRouter answers with tool
calls, the sink plays the HTTP tool, a saved workflow plays the workflow tool."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from google.protobuf.json_format import MessageToDict
from temporalio.client import Client

from activities.runtime.settings import Settings
from tests.conftest import eventually, save_definition
from tests.fakes import FakeOpenRouter, HttpSink, Reply, completion, tool_call_completion

FAST = {"max_attempts": 1}


def agent_definition(sink: HttpSink, **extra: Any) -> dict[str, Any]:
    return {
        "id": "weather-agent",
        "inputs": {"type": "object", "properties": {"question": {"type": "string"}}},
        "steps": [
            {
                "id": "agent",
                "type": "agent",
                "name": "Weather agent",
                "model": "m/agent",
                "prompt": "{question}",
                "retry": FAST,
                "output": "answer",
                "tools": [
                    {
                        "name": "weather",
                        "description": "The weather in a city",
                        "parameters": {
                            "type": "object",
                            "required": ["city"],
                            "properties": {"city": {"type": "string"}},
                        },
                        "http": {"url": f"{sink.url}/weather", "query": {"city": "{args.city}"}},
                    },
                    {
                        "name": "shout",
                        "description": "Shout a word (a workflow)",
                        "parameters": {
                            "type": "object",
                            "required": ["word"],
                            "properties": {"word": {"type": "string"}},
                        },
                        "workflow_id": "shouter",
                    },
                    {
                        "name": "private",
                        "description": "An address the SSRF guard refuses",
                        "http": {"url": "http://127.0.0.2:9/secret"},
                    },
                ],
                **extra,
            }
        ],
    }


SHOUTER = {
    "id": "shouter",
    "inputs": {"type": "object", "required": ["word"], "properties": {"word": {"type": "string"}}},
    "steps": [{"id": "loud", "type": "set", "values": {"loud": "{word}!"}}],
}


async def run_to_end(http: httpx.AsyncClient, workflow_id: str, **inputs: Any) -> dict[str, Any]:
    started = await http.post(
        "/api/workflows/run", json={"workflow_id": workflow_id, "input_vars": inputs}
    )
    assert started.status_code == 202, started.text
    execution_id = started.json()["execution_id"]

    async def done() -> dict[str, Any] | None:
        body = (await http.get(f"/api/executions/{execution_id}")).json()
        return body if body["status"] != "running" else None

    return dict(await eventually(done, timeout=60))


async def test_an_agent_calls_tools_durably_and_answers(
    http: httpx.AsyncClient, settings: Settings, sink: HttpSink,
    fake_openrouter: FakeOpenRouter, client: Client,
) -> None:  # fmt: skip
    sink.script("/weather", Reply(200, {"sky": "clear", "celsius": 21}))
    fake_openrouter.then(
        Reply(200, tool_call_completion(("weather", {"city": "Paris"}), ("shout", {"word": "hi"}))),
        Reply(200, tool_call_completion(("weather", {"town": "Paris"}), ("private", {}))),
        Reply(200, completion("Clear and 21 degrees in Paris.", prompt_tokens=40)),
    )
    save_definition(settings, SHOUTER)
    save_definition(settings, agent_definition(sink))
    state = await run_to_end(http, "weather-agent", question="Weather in Paris?")
    assert state["status"] == "completed", state["error"]
    answer = state["outputs"]["answer"]
    assert answer["text"] == "Clear and 21 degrees in Paris." and answer["turns"] == 3
    calls = answer["tool_calls"]
    assert calls[0] == {"name": "weather", "arguments": {"city": "Paris"},
                        "result": calls[0]["result"]}  # fmt: skip
    assert calls[0]["result"]["json"] == {"sky": "clear", "celsius": 21}
    assert calls[1]["result"] == {"word": "hi", "loud": "hi!"}  # the child's outputs
    assert "'city' is a required property" in calls[2]["error"]  # back to the model
    assert "SSRF" in calls[3]["error"] or "127.0.0.2" in calls[3]["error"]
    # Exactly one real weather call (the invalid one never ran), with the templated argument.
    assert [r.path for r in sink.deliveries("/weather")] == ["/weather?city=Paris"]
    # The model saw every tool answer, as tool messages, on the next turn.
    third = fake_openrouter.completions()[2].json()
    tool_answers = [m for m in third["messages"] if m["role"] == "tool"]
    assert len(tool_answers) == 4 and "required property" in tool_answers[2]["content"]
    assert third["tools"][0]["function"]["name"] == "weather"
    # Usage is summed over the three turns, in the result, the step and the run totals.
    assert answer["usage"]["prompt_tokens"] == 80 and state["usage"]["ai_calls"] == 3
    # Every turn and tool call is its own activity (or child), labelled in the Temporal UI.
    history = await client.get_workflow_handle(state["execution_id"]).fetch_history()
    summaries = [
        json.loads(base64.b64decode(data["userMetadata"]["summary"]["data"]))
        for data in map(MessageToDict, history.events)
        if data.get("userMetadata", {}).get("summary")
    ]
    for label in ("Weather agent · turn 1", "Weather agent · turn 3", "Weather agent · weather",
                  "Weather agent · private"):  # fmt: skip
        assert label in summaries, summaries


async def test_max_turns_and_a_budget_per_turn(
    http: httpx.AsyncClient, settings: Settings, sink: HttpSink, fake_openrouter: FakeOpenRouter
) -> None:
    sink.script("/weather", *[Reply(200, {"sky": "grey"}) for _ in range(5)])
    fake_openrouter.then(*[Reply(200, tool_call_completion(("weather", {"city": "Oslo"})))
                           for _ in range(5)])  # fmt: skip
    save_definition(settings, SHOUTER)
    save_definition(settings, agent_definition(sink, max_turns=2))
    state = await run_to_end(http, "weather-agent", question="?")
    assert state["status"] == "failed" and state["error"]["type"] == "AgentMaxTurns"
    assert len(fake_openrouter.completions()) == 2
    # A budget stops the agent at the turn that spends it (28 tokens a turn).
    budgeted = agent_definition(sink, max_turns=5)
    budgeted["budget"] = {"max_tokens": 50}
    save_definition(settings, budgeted)
    state = await run_to_end(http, "weather-agent", question="?")
    assert state["status"] == "failed" and state["error"]["type"] == "BudgetExceeded"
    assert len(fake_openrouter.completions()) == 4  # two more: the second spent past 50


async def test_a_rerun_reuses_the_turns_already_paid_for(
    http: httpx.AsyncClient, settings: Settings, sink: HttpSink, fake_openrouter: FakeOpenRouter
) -> None:
    sink.script("/weather", Reply(200, {"sky": "clear"}))
    fake_openrouter.then(
        Reply(200, tool_call_completion(("weather", {"city": "Rome"}))),
        Reply(401, {"error": {"code": 401, "message": "key revoked"}}),
    )
    save_definition(settings, SHOUTER)
    save_definition(settings, agent_definition(sink))
    failed = await run_to_end(http, "weather-agent", question="Rome?")
    assert failed["status"] == "failed"
    fake_openrouter.then(Reply(200, completion("Clear in Rome.")))
    answer = await http.post(f"/api/executions/{failed['execution_id']}/rerun", json={})
    assert answer.status_code == 202, answer.text
    execution_id = answer.json()["execution_id"]

    async def done() -> dict[str, Any] | None:
        body = (await http.get(f"/api/executions/{execution_id}")).json()
        return body if body["status"] != "running" else None

    state = await eventually(done, timeout=60)
    assert state["status"] == "completed", state["error"]
    assert state["outputs"]["answer"]["text"] == "Clear in Rome."
    # Turn 1 and its weather call were reused: one more model call, no second weather call.
    assert len(fake_openrouter.completions()) == 3
    assert len(sink.deliveries("/weather")) == 1
