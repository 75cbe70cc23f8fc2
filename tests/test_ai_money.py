"""AI steps teams can trust with money on the real dev server, with the fake
OpenRouter counting calls: fallback models, repairs, usage and cost totals, budgets."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from activities.runtime.settings import Settings
from tests.conftest import eventually, outcome, read_log, start_definition
from tests.fakes import FakeOpenRouter, Reply, completion, openrouter_error
from workflows.messages import SA_COST_USD, SA_TOKENS

FAST = {"max_attempts": 2, "initial_interval_seconds": 0.1, "backoff_coefficient": 1.0}
SCHEMA = {
    "type": "json_schema",
    "schema": {"type": "object", "required": ["priority"],
               "properties": {"priority": {"enum": ["low", "high"]}}},
}  # fmt: skip


def ai(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "ai", "model": "first/model", "prompt": f"say {step_id}",
            "retry": FAST, "output": step_id.replace("-", "_"), **extra}  # fmt: skip


async def test_a_model_that_is_gone_or_down_falls_through_to_the_next(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(
        Reply(400, openrouter_error(400, "first/model is not a valid model ID")),
        Reply(503, openrouter_error(503, "overloaded")),
        Reply(503, openrouter_error(503, "overloaded")),
        Reply(200, completion("third answers", model="third/model", cost=0.002)),
    )
    document = {"id": "fallback", "steps": [ai("ask", models=["second/model", "third/model"])]}
    state = await outcome(await start_definition(client, settings, document))
    assert state["status"] == "completed", state["error"]
    result = state["outputs"]["ask"]
    assert result["model"] == "third/model" and result["text"] == "third answers"
    assert [(a["model"], a["status"]) for a in result["attempts"]] == [
        ("first/model", "failed"), ("second/model", "failed"), ("third/model", "success"),
    ]  # fmt: skip
    assert "not a valid model" in result["attempts"][0]["error"]
    assert result["attempts"][2]["usage"]["cost_usd"] == 0.002
    sent = [r.json()["model"] for r in fake_openrouter.completions()]
    assert sent == ["first/model", "second/model", "second/model", "third/model"]


async def test_a_bad_key_does_not_fall_through(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(Reply(401, openrouter_error(401, "No auth credentials found")))
    document = {"id": "no-fallback", "steps": [ai("ask", models=["second/model"])]}
    state = await outcome(await start_definition(client, settings, document))
    assert state["status"] == "failed" and state["error"]["type"] == "ProviderError"
    assert len(fake_openrouter.completions()) == 1


async def test_an_invalid_answer_is_repaired_with_the_error_apart_from_retries(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(
        Reply(200, completion('{"priority": "urgent"}')),
        Reply(200, completion('{"priority": "high"}')),
    )
    document = {"id": "repair", "steps": [ai("classify", response_format=SCHEMA)]}
    handle = await start_definition(client, settings, document)
    state = await outcome(handle)
    assert state["status"] == "completed", state["error"]
    result = state["outputs"]["classify"]
    assert result["json"] == {"priority": "high"} and result["repairs"] == 1
    second = fake_openrouter.completions()[1].json()["messages"]
    assert second[1] == {"role": "assistant", "content": '{"priority": "urgent"}'}
    assert "does not match the response schema at $.priority" in second[2]["content"]
    # Both answers were paid for: the step's usage sums them.
    assert result["usage"]["total_tokens"] == 34
    step = read_log(settings, handle.id)["steps"][0]
    assert step["usage"]["total_tokens"] == 34 and step["usage"]["cost_usd"] == 0.00084


async def test_repairs_run_out_with_invalid_model_output(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(*[Reply(200, completion("not json")) for _ in range(3)])
    document = {"id": "no-repair", "steps": [ai("classify", response_format=SCHEMA,
                                                repair_attempts=2)]}  # fmt: skip
    state = await outcome(await start_definition(client, settings, document))
    assert state["status"] == "failed" and state["error"]["type"] == "InvalidModelOutput"
    assert len(fake_openrouter.completions()) == 3  # the answer and two repairs, no retries
    assert state["steps"][0]["usage"]["total_tokens"] == 51


async def test_run_totals_in_status_log_and_searchable_attributes(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    document = {"id": "totals", "steps": [ai("one"), ai("two")]}
    handle = await start_definition(client, settings, document)
    state = await outcome(handle)
    totals = {"prompt_tokens": 24, "completion_tokens": 10, "total_tokens": 34,
              "cost_usd": 0.00084, "ai_calls": 2}  # fmt: skip
    assert state["usage"] == totals
    assert read_log(settings, handle.id)["usage"] == totals
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(SA_COST_USD) == 0.00084 and attributes.get(SA_TOKENS) == 34

    async def listed() -> bool:
        query = f"WorkflowCostUsd > 0.0008 AND TaskQueue = '{settings.temporal_task_queue}'"
        return handle.id in [w.id async for w in client.list_workflows(query)]

    await eventually(listed, timeout=20)


def budgeted(budget: dict[str, Any]) -> dict[str, Any]:
    return {"id": "budgeted", "budget": budget, "steps": [ai("one"), ai("two"), ai("three")]}


async def test_a_fail_budget_stops_at_the_call_that_spends_it(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    state = await outcome(
        await start_definition(client, settings, budgeted({"max_cost_usd": 0.0008}))
    )
    assert state["status"] == "failed" and state["error"]["type"] == "BudgetExceeded"
    assert state["error"]["step_id"] == "two"
    assert "$0.00084" in state["error"]["message"] and "$0.0008" in state["error"]["message"]
    assert len(fake_openrouter.completions()) == 2


async def test_a_pause_budget_waits_for_new_limits_or_a_refusal(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    handle = await start_definition(
        client, settings, budgeted({"max_tokens": 30, "on_exceeded": "pause"})
    )

    async def paused() -> dict[str, Any] | None:
        state = await handle.query("status")
        return state if state["waiting_for"] == "budget" else None

    state = await eventually(paused, timeout=30)
    assert state["current_step"] == "three" and len(fake_openrouter.completions()) == 2
    await handle.signal("budget", {"max_tokens": 100})
    done = await outcome(handle)
    assert done["status"] == "completed" and len(fake_openrouter.completions()) == 3

    refused = await start_definition(
        client, settings, budgeted({"max_tokens": 30, "on_exceeded": "pause"})
    )
    await eventually(lambda: _waits_for_budget(refused), timeout=30)
    await refused.signal("budget", {"approve": False})
    state = await outcome(refused)
    assert state["status"] == "failed" and state["error"]["type"] == "BudgetExceeded"
    assert len(fake_openrouter.completions()) == 5


async def _waits_for_budget(handle: Any) -> bool:
    state = await handle.query("status")
    return bool(state["waiting_for"] == "budget")


def fan_out(items: int, budget: dict[str, Any] | None = None, **foreach: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": "fan-out-ai",
        "steps": [
            {"id": "each", "type": "foreach", "items": list(range(items)), "concurrency": items,
             "steps": [ai("ask", retry={"max_attempts": 1})], **foreach},
        ],
    }  # fmt: skip
    if budget is not None:
        document["budget"] = budget
    return document


async def test_concurrent_calls_overshoot_a_budget_by_at_most_one_call(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    """Twenty calls at once on a budget one call uses up: one call reaches the provider (the
    first reports its cost before others may start); with room for five, five do."""
    for limit, expected_calls in ((0.01, 1), (0.05, 5)):
        fake_openrouter.reset()
        fake_openrouter.then(*[Reply(200, completion("x", cost=0.01), delay=0.2)] * 20)
        document = fan_out(20, {"max_cost_usd": limit})
        state = await outcome(await start_definition(client, settings, document), timeout=90)
        assert state["status"] == "failed" and state["error"]["type"] == "BudgetExceeded"
        assert len(fake_openrouter.completions()) == expected_calls, limit
        assert state["usage"]["cost_usd"] == round(expected_calls * 0.01, 10)


async def test_calls_cancelled_in_flight_still_count_what_they_cost(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    """One item fails at once and cancels the others (on_item_error fail) while their calls
    are at the provider: the provider bills those calls, so the run counts them."""
    fake_openrouter.then(
        Reply(400, openrouter_error(400, "bad prompt")),
        *[Reply(200, completion("late", cost=0.01), delay=1.0)] * 4,
    )
    state = await outcome(await start_definition(client, settings, fan_out(5)), timeout=90)
    assert state["status"] == "failed" and state["error"]["type"] == "ProviderError"
    assert len(fake_openrouter.completions()) == 5
    assert state["usage"]["cost_usd"] == 0.04 and state["usage"]["ai_calls"] == 5
    # The others end cancelled (or, on a slow machine, completed before the failure was seen):
    # either way what they cost is counted.
    asks = [s for s in state["steps"] if s["step_id"] == "ask"]
    assert sorted(s["status"] for s in asks).count("failed") == 1
    assert all(s["status"] in ("cancelled", "success", "failed") for s in asks), asks
