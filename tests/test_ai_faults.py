"""The fake OpenRouter error matrix (every way a provider fails), end to end.

Every test runs a real execution on the real Temporal dev server: one ``ai`` step with a small
retry policy, its worker calling :class:`tests.fakes.FakeOpenRouter` over loopback HTTP. Each
case checks how many requests the fake received (the attempts), the final status, the error
type and message users see, and, for Retry-After, the gap the fake measured between attempts.

Classification under test (activities/ai.py): 408, 429, 5xx, timeouts and broken answers
(malformed JSON, no ``choices``) are retried, Retry-After honoured; 400, 401, 402 without
Retry-After and 403 fail at once with the provider's own message. A 200 whose body is
``{"error": {...}}`` (OpenRouter's form for an error met mid-generation) is classified by its
``code``.

Not covered here: the streaming cases (a ``: OPENROUTER PROCESSING`` comment
line, a mid-stream error event, a cut stream with no ``[DONE]``). The ai step does not stream:
AIClient posts without ``stream`` and reads one JSON answer, so those cases cannot arise. The
non-streaming form of a mid-generation error (a 200 with an error body) is covered.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from activities.runtime.settings import Settings
from tests.conftest import OPENROUTER_TEST_KEY, eventually, outcome, read_log, start_definition
from tests.fakes import FakeOpenRouter, Reply, completion, openrouter_error
from workflows.messages import CALL_LLM

FAST_RETRY = {"max_attempts": 3, "initial_interval_seconds": 0.1, "backoff_coefficient": 1.0}


def ai_document(name: str, **step: Any) -> dict[str, Any]:
    return {
        "id": f"ai-fault-{name}",
        "steps": [
            {
                "id": "ask",
                "type": "ai",
                "model": "openai/gpt-4o-mini",
                "prompt": "Say hello",
                "output": "answer",
                "retry": FAST_RETRY,
                **step,
            }
        ],
    }


async def run(
    client: Client, settings: Settings, document: dict[str, Any]
) -> tuple[WorkflowHandle[Any, Any], dict[str, Any]]:
    handle = await start_definition(client, settings, document)
    return handle, await outcome(handle)


async def llm_attempts(handle: WorkflowHandle[Any, Any]) -> int:
    """The attempt number Temporal recorded for the (single) call_llm activity."""
    history = await handle.fetch_history()
    scheduled = {
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == CALL_LLM
    }
    attempts = [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and event.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]
    assert len(attempts) == 1, attempts
    return attempts[0]


def gaps(fake: FakeOpenRouter) -> list[float]:
    times = [r.at for r in fake.completions()]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


async def assert_completed(
    handle: WorkflowHandle[Any, Any], state: dict[str, Any], fake: FakeOpenRouter, requests: int
) -> None:
    assert state["status"] == "completed", state["error"]
    assert state["outputs"]["answer"]["text"] == "ok"
    assert len(fake.completions()) == requests
    assert await llm_attempts(handle) == requests


async def assert_failed_at_once(
    handle: WorkflowHandle[Any, Any], state: dict[str, Any], fake: FakeOpenRouter
) -> str:
    assert state["status"] == "failed"
    assert state["error"]["type"] == "ProviderError"
    assert state["error"]["step_id"] == "ask"
    assert len(fake.completions()) == 1  # max_attempts is 3: no retry happened
    assert await llm_attempts(handle) == 1
    message: str = state["error"]["message"]
    assert "gave up" not in message
    return message


# -- retried ------------------------------------------------------------------------------


async def test_429_with_retry_after_waits_the_header_delay(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(
        Reply(429, openrouter_error(429, "Rate limit exceeded"), headers={"Retry-After": "2"})
    )
    handle, state = await run(client, settings, ai_document("429-retry-after"))
    await assert_completed(handle, state, fake_openrouter, requests=2)
    (gap,) = gaps(fake_openrouter)
    assert gap >= 2.0, f"retried after {gap:.3f}s; Retry-After asked for 2s"
    assert gap < 5.0


async def test_429_without_retry_after_is_retried_at_the_backoff(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(Reply(429, openrouter_error(429, "Rate limit exceeded")))
    handle, state = await run(client, settings, ai_document("429-backoff"))
    await assert_completed(handle, state, fake_openrouter, requests=2)
    (gap,) = gaps(fake_openrouter)
    assert 0.1 <= gap < 1.5, f"retried after {gap:.3f}s; the backoff is 0.1s"


async def test_408_is_retried(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(Reply(408, openrouter_error(408, "Request timed out")))
    handle, state = await run(client, settings, ai_document("408"))
    await assert_completed(handle, state, fake_openrouter, requests=2)


async def test_502_then_503_are_retried_then_succeed(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(
        Reply(502, openrouter_error(502, "Provider returned error")),
        Reply(503, openrouter_error(503, "No available model provider")),
    )
    handle, state = await run(client, settings, ai_document("5xx"))
    await assert_completed(handle, state, fake_openrouter, requests=3)
    assert all(gap < 1.5 for gap in gaps(fake_openrouter))


async def test_503_on_every_attempt_fails_with_the_providers_message(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(
        *[Reply(503, openrouter_error(503, "No available model provider")) for _ in range(3)]
    )
    handle, state = await run(client, settings, ai_document("503-exhausted"))
    assert state["status"] == "failed"
    assert len(fake_openrouter.completions()) == 3
    assert await llm_attempts(handle) == 3
    assert state["error"]["type"] == "ProviderRetryableError"
    assert state["error"]["message"] == (
        "the AI provider answered 503: No available model provider "
        "(gave up: maximum attempts reached)"
    )
    step = read_log(settings, handle.id)["steps"][0]
    assert step["status"] == "failed" and step["error_type"] == "ProviderRetryableError"
    assert "answered 503" in step["error"]


async def test_a_hang_past_the_step_timeout_is_cut_and_retried(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(Reply(200, completion("too late"), delay=10))
    document = ai_document("hang", timeout_seconds=1)
    handle, state = await run(client, settings, document)
    await assert_completed(handle, state, fake_openrouter, requests=2)
    (gap,) = gaps(fake_openrouter)
    assert 1.0 <= gap < 5.0, f"second attempt {gap:.3f}s after the first; the timeout is 1s"
    # The timed-out attempt hung up on the provider instead of waiting out its 10 s.
    first = fake_openrouter.completions()[0]
    await eventually(lambda: first in fake_openrouter.disconnects, timeout=5)


async def test_malformed_json_with_status_200_is_retried(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(Reply(200, '{"choices": [{"message": {"content": "trunc'))
    handle, state = await run(client, settings, ai_document("malformed"))
    await assert_completed(handle, state, fake_openrouter, requests=2)


async def test_malformed_json_on_every_attempt_fails_retryably(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(*[Reply(200, "<html>gateway</html>") for _ in range(3)])
    handle, state = await run(client, settings, ai_document("malformed-exhausted"))
    assert state["status"] == "failed"
    assert len(fake_openrouter.completions()) == 3
    assert await llm_attempts(handle) == 3
    assert state["error"]["type"] == "ProviderRetryableError"
    assert state["error"]["message"].startswith("the AI provider answered with malformed JSON")


async def test_empty_choices_is_retried(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    empty = {**completion("unused"), "choices": []}
    fake_openrouter.then(Reply(200, empty))
    handle, state = await run(client, settings, ai_document("empty-choices"))
    await assert_completed(handle, state, fake_openrouter, requests=2)


def mid_generation_error(code: Any, message: str) -> dict[str, Any]:
    """OpenRouter's 200 answer when the model failed after it started generating."""
    return {
        "id": "gen-mid",
        "object": "chat.completion",
        "model": "openai/gpt-4o-mini",
        "provider": "OpenAI",
        "error": {"code": code, "message": message, "metadata": {"raw": "upstream reset"}},
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ""},
                "finish_reason": "error",
            }
        ],
    }


async def test_200_with_a_retryable_error_body_is_retried(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(
        Reply(200, mid_generation_error(502, "Provider disconnected")),
        # A code that is not a number (seen on mid-generation errors) counts as a 502.
        Reply(200, mid_generation_error("server_error", "Provider disconnected")),
    )
    handle, state = await run(client, settings, ai_document("200-error-retryable"))
    await assert_completed(handle, state, fake_openrouter, requests=3)


async def test_200_with_a_permanent_error_body_fails_at_once(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(Reply(200, mid_generation_error(400, "Context length exceeded")))
    handle, state = await run(client, settings, ai_document("200-error-permanent"))
    message = await assert_failed_at_once(handle, state, fake_openrouter)
    assert message == "the AI provider answered 400: Context length exceeded (upstream reset)"


async def test_402_with_retry_after_is_retried(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(
        Reply(402, openrouter_error(402, "Insufficient credits"), headers={"Retry-After": "1"})
    )
    handle, state = await run(client, settings, ai_document("402-retry-after"))
    await assert_completed(handle, state, fake_openrouter, requests=2)
    (gap,) = gaps(fake_openrouter)
    assert gap >= 1.0, f"retried after {gap:.3f}s; Retry-After asked for 1s"


# -- failed at once -----------------------------------------------------------------------


async def test_400_fails_at_once_with_the_message(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(
        Reply(400, openrouter_error(400, "openai/gpt-4o-mini is not a valid model ID"))
    )
    handle, state = await run(client, settings, ai_document("400"))
    message = await assert_failed_at_once(handle, state, fake_openrouter)
    assert message == "the AI provider answered 400: openai/gpt-4o-mini is not a valid model ID"
    step = read_log(settings, handle.id)["steps"][0]
    assert step["error_type"] == "ProviderError" and step["error"] == message


async def test_400_with_a_plain_text_body_shows_the_text(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(Reply(400, "  bad request: messages must not be empty \n"))
    handle, state = await run(client, settings, ai_document("400-text"))
    message = await assert_failed_at_once(handle, state, fake_openrouter)
    assert message == "the AI provider answered 400: bad request: messages must not be empty"


async def test_401_fails_at_once_with_a_key_hint(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(Reply(401, openrouter_error(401, "User not found.")))
    handle, state = await run(client, settings, ai_document("401"))
    message = await assert_failed_at_once(handle, state, fake_openrouter)
    assert message == (
        "the AI provider answered 401: User not found. (check OPENROUTER_API_KEY on the worker)"
    )


async def test_402_without_retry_after_fails_at_once_with_a_credits_hint(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.then(
        Reply(402, openrouter_error(402, "This request requires more credits, or fewer max_tokens"))
    )
    handle, state = await run(client, settings, ai_document("402"))
    message = await assert_failed_at_once(handle, state, fake_openrouter)
    assert message.startswith("the AI provider answered 402: This request requires more credits")
    assert message.endswith("(add credits to the OpenRouter account)")


async def test_403_moderation_fails_at_once_naming_the_reasons(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    metadata = {
        "reasons": ["violence"],
        "flagged_input": "describe the fight scene in detail",
        "provider_name": "OpenAI",
        "model_slug": "openai/gpt-4o-mini",
    }
    fake_openrouter.then(Reply(403, openrouter_error(403, "Input flagged by moderation", metadata)))
    handle, state = await run(client, settings, ai_document("403"))
    message = await assert_failed_at_once(handle, state, fake_openrouter)
    assert message == (
        "the AI provider answered 403: Input flagged by moderation (reasons: violence) "
        "(flagged input: 'describe the fight scene in detail')"
    )


# -- the API key --------------------------------------------------------------------------


def history_json(history: Any) -> str:
    return str(history.to_json())


async def assert_key_absent(handle: WorkflowHandle[Any, Any], settings: Settings, key: str) -> None:
    history = history_json(await handle.fetch_history())
    assert key not in history
    log_text = (settings.workflow_log_dir / f"{handle.id}.json").read_text()
    assert key not in log_text
    state = await outcome(handle)
    assert key not in json.dumps(state)


async def test_the_key_is_sent_to_the_provider_and_kept_out_of_history_and_logs(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    # One run that succeeds after a retry, one that fails: both with the key on every request.
    fake_openrouter.then(Reply(503, openrouter_error(503, "busy")))
    ok, ok_state = await run(client, settings, ai_document("key-ok"))
    assert ok_state["status"] == "completed"
    fake_openrouter.then(Reply(401, openrouter_error(401, "Invalid credentials")))
    failed, failed_state = await run(client, settings, ai_document("key-failed"))
    assert failed_state["status"] == "failed"
    requests = fake_openrouter.completions()
    assert len(requests) == 3
    for request in requests:
        assert request.headers["authorization"] == f"Bearer {OPENROUTER_TEST_KEY}"
        assert OPENROUTER_TEST_KEY not in request.body.decode()
    for handle in (ok, failed):
        await assert_key_absent(handle, settings, OPENROUTER_TEST_KEY)
    assert OPENROUTER_TEST_KEY not in failed_state["error"]["message"]


async def test_a_provider_echoing_the_key_in_its_error_does_not_leak_it(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    # Some OpenAI-compatible servers quote the key they were given in a 401, or a proxy's
    # error page echoes the request headers; neither may carry the key into history.
    fake_openrouter.then(
        Reply(401, openrouter_error(401, f"Incorrect API key provided: {OPENROUTER_TEST_KEY}")),
    )
    handle, state = await run(client, settings, ai_document("key-echo-json"))
    message = await assert_failed_at_once(handle, state, fake_openrouter)
    assert "Incorrect API key provided: [REDACTED]" in message
    await assert_key_absent(handle, settings, OPENROUTER_TEST_KEY)

    fake_openrouter.then(
        *[Reply(502, f"upstream said: Authorization: Bearer {OPENROUTER_TEST_KEY}")] * 3
    )
    handle, state = await run(client, settings, ai_document("key-echo-text"))
    assert state["error"]["type"] == "ProviderRetryableError"
    assert "Authorization: Bearer [REDACTED]" in state["error"]["message"]
    await assert_key_absent(handle, settings, OPENROUTER_TEST_KEY)


SECRET = "s3cr3t-customer-token-42"


def with_secret(settings: Settings) -> Settings:
    secrets_file = settings.workflow_log_dir.parent / "secrets.json"
    secrets_file.write_text(json.dumps({"TOKEN": SECRET}))
    return settings.model_copy(update={"secrets_file": secrets_file})


async def test_a_secret_in_the_messages_is_filled_in_by_the_worker_only(
    client: Client, settings: Settings, fake_openrouter: FakeOpenRouter
) -> None:
    from worker import engine_worker

    with_secrets = with_secret(settings)
    document = ai_document(
        "secret-messages",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Check {secrets.TOKEN} and {{secrets.TOKEN}}"},
        ],
    )
    del document["steps"][0]["prompt"]
    async with engine_worker(client, with_secrets) as configured, configured:
        handle, state = await run(client, with_secrets, document)
        await assert_key_absent(handle, with_secrets, SECRET)
    assert state["status"] == "completed", state["error"]
    (request,) = fake_openrouter.completions()
    assert request.json()["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": f"Check {SECRET} and {{secrets.TOKEN}}"},
    ]


async def test_a_secret_in_the_prompt_echoed_back_does_not_leak(
    client: Client, settings: Settings, fake_openrouter: FakeOpenRouter
) -> None:
    from worker import engine_worker

    secret = SECRET
    with_secrets = with_secret(settings)
    fake_openrouter.then(
        Reply(
            403,
            openrouter_error(
                403,
                "Input flagged",
                {"reasons": ["self-harm"], "flagged_input": f"use token {secret} to ..."},
            ),
        ),
        # The model quotes the prompt back in an answer that is not the JSON asked for.
        *[Reply(200, completion(f"Sure! The token is {secret}.")) for _ in range(3)],
    )
    flagged = ai_document("secret-flagged", prompt="use token {secrets.TOKEN} to ...")
    echoed = ai_document(
        "secret-echoed",
        prompt="Repeat {secrets.TOKEN}",
        response_format={"type": "json_object"},
    )
    async with engine_worker(client, with_secrets) as configured, configured:
        first, first_state = await run(client, with_secrets, flagged)
        second, second_state = await run(client, with_secrets, echoed)
        for handle in (first, second):  # (queries need the worker)
            await assert_key_absent(handle, with_secrets, secret)
            await assert_key_absent(handle, with_secrets, OPENROUTER_TEST_KEY)
    # The secret really was sent: it was filled into the prompt inside the activity.
    requests = fake_openrouter.completions()
    assert len(requests) == 3  # the 403 once, the bad answer and its one repair
    assert requests[0].json()["messages"] == [
        {"role": "user", "content": f"use token {secret} to ..."}
    ]
    assert first_state["error"]["type"] == "ProviderError"
    assert first_state["error"]["message"] == (
        "the AI provider answered 403: Input flagged (reasons: self-harm) "
        "(flagged input: 'use token [REDACTED] to ...')"
    )
    assert second_state["error"]["type"] == "InvalidModelOutput"
    assert "'Sure! The token is [REDACTED].'" in second_state["error"]["message"]
