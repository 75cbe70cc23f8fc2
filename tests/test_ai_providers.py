"""OpenAI-compatible providers (AI_PROVIDERS) and streamed answers, on the real dev server.

Two fake providers on loopback speak the chat-completions protocol and report no cost: `local`
(with prices, streaming its answers) and `bare` (no prices, no key). The fake OpenRouter stays
the default for models without a prefix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.runtime.settings import Settings, load_settings
from tests import providers_support
from tests.conftest import ADMIN_KEY, outcome, serve_api, start_definition
from tests.fakes import (
    FakeOpenRouter,
    FakeProvider,
    HttpSink,
    Reply,
    completion,
    openrouter_error,
    sse_events,
    tool_call_completion,
)

# The shared fixtures (tests/providers_support.py), made visible to pytest here.
local = providers_support.local
provider_settings = providers_support.provider_settings
provider_worker = providers_support.provider_worker

FAST = {"max_attempts": 2, "initial_interval_seconds": 0.1, "backoff_coefficient": 1.0}
PRICES = {"llama3": {"prompt_per_mtok": 2.0, "completion_per_mtok": 10.0}}


def ai(step_id: str, model: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "ai", "model": model, "prompt": f"say {step_id}",
            "retry": FAST, "output": step_id, **extra}  # fmt: skip


async def test_a_provider_prefix_routes_the_step_streams_and_prices_the_answer(
    client: Client, provider_settings: Settings, provider_worker: Worker, local: FakeProvider
) -> None:
    document = {"id": "local-ai", "steps": [ai("ask", "local:llama3")]}
    state = await outcome(await start_definition(client, provider_settings, document))
    assert state["status"] == "completed", state["error"]
    result = state["outputs"]["ask"]
    assert result["text"] == "local says hello in four chunks"  # folded from 4 chunks
    assert result["model"] == "local:llama3"
    # No cost reported: 12 prompt tokens at $2/M and 5 completion tokens at $10/M.
    assert result["cost"] == pytest.approx((12 * 2.0 + 5 * 10.0) / 1e6)
    assert state["usage"]["cost_usd"] == pytest.approx(result["cost"])
    sent = local.completions()[0]
    assert sent.headers["authorization"] == f"Bearer {FakeProvider.KEY}"
    body = sent.json()
    assert body["model"] == "llama3" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True} and "usage" not in body


async def test_fallbacks_mix_providers_and_an_unpriced_provider_costs_null(
    client: Client,
    provider_settings: Settings,
    provider_worker: Worker,
    local: FakeProvider,
    fake_openrouter: FakeOpenRouter,
) -> None:
    local.then(
        Reply(503, openrouter_error(503, "overloaded")),
        Reply(503, openrouter_error(503, "overloaded")),  # retries spent: the next model
        Reply(200, events=sse_events(completion("bare answers", cost=None))),
    )
    fake_openrouter.then(Reply(404, openrouter_error(404, "No endpoints found for x/y")))
    document = {"id": "mixed", "steps": [ai("ask", "local:llama3", models=["x/y", "bare:tiny"])]}
    state = await outcome(await start_definition(client, provider_settings, document))
    assert state["status"] == "completed", state["error"]
    result = state["outputs"]["ask"]
    assert result["text"] == "bare answers" and result["model"].startswith("bare:")
    assert [(a["model"], a["status"]) for a in result["attempts"]] == [
        ("local:llama3", "failed"), ("x/y", "failed"), (result["model"], "success"),
    ]  # fmt: skip
    assert result["cost"] is None  # `bare` has no prices and reports no cost
    sent = [r.json()["model"] for r in local.completions()]
    assert sent == ["llama3", "llama3", "tiny"]
    assert [r.json()["model"] for r in fake_openrouter.completions()] == ["x/y"]
    assert "authorization" not in local.completions()[2].headers  # `bare` has no key


async def test_a_stream_that_breaks_mid_answer_is_retried_from_the_start(
    client: Client, provider_settings: Settings, provider_worker: Worker, local: FakeProvider
) -> None:
    whole = completion("one two three four five six", cost=None)
    local.then(
        Reply(200, events=sse_events(whole, chunks=6, cut=True)),
        Reply(200, events=sse_events(whole, chunks=6)),
    )
    document = {"id": "cut", "steps": [ai("ask", "local:llama3")]}
    handle = await start_definition(client, provider_settings, document)
    state = await outcome(handle)
    assert state["status"] == "completed", state["error"]
    assert state["outputs"]["ask"]["text"] == "one two three four five six"
    assert len(local.completions()) == 2
    # The first attempt failed as a transport error, and Temporal retried it.
    history = [e async for e in handle.fetch_history_events()]
    started = [e for e in history if e.HasField("activity_task_started_event_attributes")]
    last = started[-1].activity_task_started_event_attributes
    assert last.attempt == 2 and "stream broke off" in last.last_failure.message
    # An error event mid-stream keeps the fallback table's meaning (404: the next model).
    local.then(
        Reply(200, events=sse_events(whole, error=openrouter_error(404, "model not found"))),
    )
    document = {"id": "err", "steps": [ai("ask", "local:llama3", models=["local:other"])]}
    state = await outcome(await start_definition(client, provider_settings, document))
    assert state["status"] == "completed", state["error"]
    assert [a["status"] for a in state["outputs"]["ask"]["attempts"]] == ["failed", "success"]


async def test_an_agent_streams_its_turns_from_a_provider(
    client: Client,
    provider_settings: Settings,
    provider_worker: Worker,
    local: FakeProvider,
    sink: HttpSink,
) -> None:
    sink.script("/weather", Reply(200, {"sky": "clear"}))
    local.then(
        Reply(200, events=sse_events(tool_call_completion(("weather", {"city": "Oslo"})))),
        Reply(200, events=sse_events(completion("Clear in Oslo.", cost=None))),
    )
    tool = {
        "name": "weather",
        "description": "The weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "http": {"url": f"{sink.url}/weather", "query": {"city": "{args.city}"}},
    }
    document = {"id": "agent", "steps": [{"id": "agent", "type": "agent", "model": "local:llama3",
                "prompt": "weather?", "tools": [tool], "output": "answer"}]}  # fmt: skip
    state = await outcome(await start_definition(client, provider_settings, document))
    assert state["status"] == "completed", state["error"]
    answer = state["outputs"]["answer"]
    assert answer["text"] == "Clear in Oslo." and answer["turns"] == 2
    assert answer["tool_calls"][0]["arguments"] == {"city": "Oslo"}
    assert [r.path for r in sink.deliveries("/weather")] == ["/weather?city=Oslo"]
    # Turn 1 reports its cost (0.0005); turn 2 does not: priced (12 and 5 tokens).
    assert answer["cost"] == pytest.approx(0.0005 + (12 * 2.0 + 5 * 10.0) / 1e6)


async def test_saving_checks_provider_names_and_knowable_cost(
    client: Client, provider_settings: Settings, provider_worker: Worker
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        serve_api(provider_settings, client) as url,
        httpx.AsyncClient(base_url=url, headers=headers) as http,
    ):
        unknown = {"id": "x", "steps": [ai("ask", "openai/gpt-4o", models=["nope:gpt-4o"])]}
        answer = await http.put("/api/workflows/x", json=unknown)
        assert answer.status_code == 422, answer.text
        problem = answer.json()["errors"][0]
        assert problem["path"] == "$.steps[0].models[0]" and "nope" in problem["message"]
        assert "bare, local" in problem["message"]
        budget = {"budget": {"max_cost_usd": 1.0}}
        unpriced = {"id": "y", **budget, "steps": [ai("ask", "bare:tiny")]}
        answer = await http.put("/api/workflows/y", json=unpriced)
        assert answer.status_code == 422 and "no price for 'tiny'" in answer.text
        priced = {"id": "z", **budget, "steps": [ai("ask", "local:llama3", models=["a/b:free"])]}
        assert (await http.put("/api/workflows/z", json=priced)).status_code in (200, 201)


def test_an_unparseable_ai_providers_stops_the_worker_naming_it(tmp_path: Path) -> None:
    env = {**os.environ, "AI_PROVIDERS": "{not json", "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "worker.py"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "AI_PROVIDERS" in done.stderr + done.stdout and "not JSON" in done.stderr + done.stdout
    with pytest.raises(Exception, match="AI_PROVIDERS"):
        load_settings(ai_providers='{"local": {"base_url": "ftp://x"}}')
