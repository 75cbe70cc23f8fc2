"""Agents against a model that misbehaves, on the real stack (dev server, worker, loopback
fakes): one answer calling 150 tools, arguments that try to walk out of a tool's URL path, and
arguments nested 900 deep (workflows/kinds/agent.py, activities/ai.py, docs/ai.md)."""

from __future__ import annotations

import json
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.runtime.settings import Settings
from tests.conftest import outcome, start_definition
from tests.fakes import FakeOpenRouter, HttpSink, Reply, completion, tool_call_completion
from workflows.kinds.tool_url import dot_segment, encode_arguments
from workflows.templating import VariableSubstitutor

STRING_ARG = {"type": "object", "required": ["q"], "properties": {"q": {"type": "string"}}}


def agent(sink: HttpSink, **extra: Any) -> dict[str, Any]:
    return {
        "id": "probe-agent",
        "steps": [
            {"id": "agent", "type": "agent", "model": "m/agent", "prompt": "go",
             "retry": {"max_attempts": 2, "initial_interval_seconds": 0.1}, "output": "answer",
             "tools": [
                 {"name": "item", "description": "One item", "parameters": STRING_ARG,
                  "http": {"url": f"{sink.url}/items/{{args.q}}"}},
                 {"name": "search", "description": "Search", "parameters": STRING_ARG,
                  "http": {"url": f"{sink.url}/search?q={{args.q}}&page=1#top-{{args.q}}"}},
                 {"name": "anything", "description": "Any arguments",
                  "http": {"url": f"{sink.url}/anything", "method": "POST",
                           "json": "{args}"}},
             ],
             **extra},
        ],
    }  # fmt: skip


def test_only_the_models_arguments_are_encoded_and_a_leading_one_is_the_target() -> None:
    context = {
        "base": "https://h.test/a/b?c=d",
        "args": {"q": "x/y?z#%", "url": "https://other.test/p?q=1", "sub": "evil.test/@"},
    }
    render = VariableSubstitutor(context, escape=encode_arguments).render
    assert render({"url": "{base}&q={args.q}"})["url"] == "https://h.test/a/b?c=d&q=x%2Fy%3Fz%23%25"
    assert render({"url": "https://{args.sub}.h.test/"})["url"] == "https://evil.test%2F%40.h.test/"
    # The author gave the model the whole target: used as written (the SSRF guard applies).
    assert render({"url": "{args.url}"})["url"] == "https://other.test/p?q=1"
    assert render({"url": "{args.url}&r={args.q}"})["url"] == (
        "https://other.test/p?q=1&r=x%2Fy%3Fz%23%25"
    )
    # Other fields, and a definition's own variables, are rendered as they always were.
    assert render({"headers": {"X": "a {args.q}"}}) == {"headers": {"X": "a x/y?z#%"}}
    assert VariableSubstitutor(context).render({"url": "https://h/{args.q}"}) == {
        "url": "https://h/x/y?z#%"
    }
    assert dot_segment("https://h/items/%2E%2e/x") == ".."
    assert dot_segment("https://h/items/./x?a=..") == "."
    assert dot_segment("https://h/items/..x/%252e%252e?a=/../") is None


def tool_messages(fake_openrouter: FakeOpenRouter, turn: int) -> list[str]:
    body = fake_openrouter.completions()[turn].json()
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


async def test_one_answer_calling_150_tools_runs_at_most_the_per_turn_cap(
    client: Client, settings: Settings, worker: Worker, sink: HttpSink,
    fake_openrouter: FakeOpenRouter,
) -> None:  # fmt: skip
    calls = [("item", {"q": f"n{i}"}) for i in range(150)]
    fake_openrouter.then(Reply(200, tool_call_completion(*calls)), Reply(200, completion("done")))
    handle = await start_definition(client, settings, agent(sink, max_turns=2))
    state = await outcome(handle)
    assert state["status"] == "completed", state["error"]
    # The default cap (16) ran; the other 134 never reached the target...
    assert [r.path for r in sink.requests] == [f"/items/n{i}" for i in range(16)]
    # ...and each went back to the model as a tool error saying the cap, so it can retry fewer.
    answers = tool_messages(fake_openrouter, 1)
    assert len(answers) == 150
    assert all(json.loads(a)["json"]["ok"] for a in answers[:16])
    capped = [json.loads(a)["error"] for a in answers[16:]]
    assert all("max_tool_calls_per_turn" in e and "16" in e for e in capped), capped[0]
    transcript = state["outputs"]["answer"]["tool_calls"]
    assert len(transcript) == 150 and "error" in transcript[149]
    # 16 activities instead of 150: the history stays small (150 ran in 928 events before).
    events = len((await handle.fetch_history()).events)
    assert events < 200, events


async def test_per_turn_and_per_step_caps_are_the_definitions_to_lower(
    client: Client, settings: Settings, worker: Worker, sink: HttpSink,
    fake_openrouter: FakeOpenRouter,
) -> None:  # fmt: skip
    turn = [("item", {"q": f"n{i}"}) for i in range(4)]
    fake_openrouter.then(
        Reply(200, tool_call_completion(*turn)),
        Reply(200, tool_call_completion(*turn)),
        Reply(200, completion("done")),
    )
    document = agent(sink, max_turns=3, max_tool_calls_per_turn=3, max_tool_calls=5)
    state = await outcome(await start_definition(client, settings, document))
    assert state["status"] == "completed", state["error"]
    # Turn 1: three of four (per turn); turn 2: two more, then the step's five are spent.
    assert len(sink.requests) == 5
    first = [json.loads(a) for a in tool_messages(fake_openrouter, 1)]
    assert "max_tool_calls_per_turn" in first[3]["error"]
    second = [json.loads(a) for a in tool_messages(fake_openrouter, 2)][4:]
    assert [("error" in a) for a in second] == [False, False, True, True]
    assert "max_tool_calls" in second[2]["error"] and "5" in second[2]["error"]


async def test_model_arguments_are_encoded_where_they_stand_in_a_tool_url(
    client: Client, settings: Settings, worker: Worker, sink: HttpSink,
    fake_openrouter: FakeOpenRouter,
) -> None:  # fmt: skip
    fake_openrouter.then(
        Reply(200, tool_call_completion(
            ("item", {"q": "../escaped/admin?injected=1"}),
            ("search", {"q": "a&b=c#d/é"}),
            ("item", {"q": ".."}),
            ("item", {"q": "%2e%2e"}),
        )),
        Reply(200, completion("done")),
    )  # fmt: skip
    state = await outcome(await start_definition(client, settings, agent(sink)))
    assert state["status"] == "completed", state["error"]
    # The argument stays one path segment, one query value: nothing escapes /items/ or ?q=.
    assert [r.path for r in sink.requests] == [
        "/items/..%2Fescaped%2Fadmin%3Finjected%3D1",
        "/search?q=a%26b%3Dc%23d%2F%C3%A9&page=1",
        "/items/%252e%252e",
    ]
    calls = state["outputs"]["answer"]["tool_calls"]
    assert "'..'" in calls[2]["error"] and "path" in calls[2]["error"]  # back to the model


async def test_arguments_too_deep_or_too_large_go_back_to_the_model(
    client: Client, settings: Settings, worker: Worker, sink: HttpSink,
    fake_openrouter: FakeOpenRouter,
) -> None:  # fmt: skip
    deep = '{"a": ' + "[" * 900 + "]" * 900 + "}"
    large = json.dumps({"a": "x" * (1024 * 1024 + 10)})
    fake_openrouter.then(
        Reply(200, tool_call_completion(("anything", deep), ("anything", large),
                                        ("anything", {"a": 1}))),
        Reply(200, completion("done")),
    )  # fmt: skip
    handle = await start_definition(client, settings, agent(sink))
    state = await outcome(handle)
    assert state["status"] == "completed", state["error"]
    assert len(fake_openrouter.completions()) == 2  # one model answer, not retried
    calls = state["outputs"]["answer"]["tool_calls"]
    assert "nested deeper than 64 levels" in calls[0]["error"], calls[0]
    assert "bytes" in calls[1]["error"] and "1,048,576" in calls[1]["error"], calls[1]
    assert calls[0]["arguments"] is None and calls[1]["arguments"] is None
    assert calls[2]["result"]["json"]["received"] == {"a": 1}
    assert [r.path for r in sink.requests] == ["/anything"]
    errors = [json.loads(a)["error"] for a in tool_messages(fake_openrouter, 1)[:2]]
    assert "nested deeper" in errors[0] and "bytes" in errors[1]
    # Neither the deep nor the large arguments reached history.
    assert len((await handle.fetch_history()).to_json()) < 200_000
