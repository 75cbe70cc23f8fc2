"""Secrets bound to workflows and hosts (SECRETS_FILE's object form): another workflow cannot
use one, no request carries one to another host (URL, header, query, body, a redirect, an `ai`
provider, an agent's http tool), and the plain forms stay global (activities/secret_scopes.py,
docs/secrets.md). Live tests run on the real dev server with loopback targets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from activities.runtime.settings import Settings
from activities.secret_scopes import SecretRule
from activities.secrets import SecretStore
from tests.conftest import outcome, read_log, start_definition
from tests.fakes import FakeOpenRouter, HttpSink, Reply, completion, tool_call_completion
from worker import engine_worker
from workflows.errors import ConfigurationError, FailureType

TOKEN = "tok-b0und-c4n4ry-9f3e1d"
OPEN = "open-c4n4ry-77aa01"
AIKEY = "aikey-c4n4ry-5e5e5e"
ONCE = {"max_attempts": 3, "initial_interval_seconds": 0.1}


def host_port(url: str) -> str:
    return url.split("://", 1)[1]


# -- SECRETS_FILE ------------------------------------------------------------------------------


def write(tmp_path: Path, content: Any) -> Path:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(content))
    return path


def test_both_forms_load_and_the_environment_never_loosens_a_binding(tmp_path: Path) -> None:
    path = write(tmp_path, {
        "PLAIN": "p-value",
        "BOUND": {"value": "b-value", "workflows": ["billing", 7],
                  "hosts": ["api.stripe.com", "10.0.0.0/8:8443", "[::1]:9000"]},
        "VALUE_ONLY": {"value": "v-value"},
    })  # fmt: skip
    environ = {"WORKFLOW_SECRET_BOUND": "from-env", "WORKFLOW_SECRET_ENV": "e-value"}
    store = SecretStore.from_environment("WORKFLOW_SECRET_", path, environ=environ)
    assert dict(store) == {"PLAIN": "p-value", "BOUND": "from-env", "VALUE_ONLY": "v-value",
                           "ENV": "e-value"}  # fmt: skip
    assert store.rule("PLAIN") is None and store.rule("ENV") is None
    assert store.rule("VALUE_ONLY") == SecretRule()
    bound = store.rule("BOUND")
    assert bound is not None and bound.workflows == frozenset({"billing", "7"})
    assert bound.permits_host("API.Stripe.com.", 443)
    assert bound.permits_host("10.1.2.3", 8443)
    assert not bound.permits_host("10.1.2.3", 443)
    assert bound.permits_host("[::1]", 9000)
    assert not bound.permits_host("api.stripe.com.evil.test", 443)


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        (42, "must be a string or an object"),
        ({"workflows": ["a"]}, "needs a 'value'"),
        ({"value": "x", "host": ["a"]}, "unknown keys ['host']"),
        ({"value": "x", "workflows": []}, "'workflows' must be a non-empty list"),
        ({"value": "x", "hosts": "api.stripe.com"}, "'hosts' must be a non-empty list"),
        ({"value": "x", "hosts": ["https://api.stripe.com/"]}, "'hosts' entry"),
        ({"value": "x", "hosts": ["api.stripe.com:99999"]}, "invalid port"),
    ],
)
def test_a_bad_entry_stops_start_up_naming_the_secret(
    tmp_path: Path, entry: Any, words: str
) -> None:
    path = write(tmp_path, {"TOKEN": entry})
    with pytest.raises(ConfigurationError) as caught:
        SecretStore.from_environment("WORKFLOW_SECRET_", path, environ={})
    message = str(caught.value)
    assert message.startswith("SECRETS_FILE: secret 'TOKEN'") and words in message, message
    assert "HTTP_ALLOWED_HOSTS" not in message


# -- live --------------------------------------------------------------------------------------


@pytest.fixture
def other_origin() -> Iterator[HttpSink]:
    server = HttpSink().start()  # another port on 127.0.0.1: another host:port
    yield server
    server.stop()


@pytest.fixture
def bound_settings(
    settings: Settings, tmp_path: Path, sink: HttpSink, fake_openrouter: FakeOpenRouter
) -> Settings:
    path = write(tmp_path, {
        "TOKEN": {"value": TOKEN, "workflows": ["billing"], "hosts": [host_port(sink.url)]},
        "AIKEY": {"value": AIKEY, "hosts": [host_port(fake_openrouter.url)]},
        "OPEN": OPEN,
    })  # fmt: skip
    return settings.model_copy(update={"secrets_file": path})


@pytest.fixture
async def bound_worker(client: Client, bound_settings: Settings) -> AsyncIterator[Any]:
    async with engine_worker(client, bound_settings) as worker, worker:
        yield worker


async def test_another_workflow_cannot_use_a_bound_secret(
    client: Client, bound_settings: Settings, bound_worker: Any, sink: HttpSink
) -> None:
    document = {
        "id": "other",
        # Nothing a definition or its inputs hold names the workflow the activity checks.
        "inputs": {"type": "object", "properties": {"workflow_id": {"type": "string"}}},
        "steps": [
            {"id": "billing", "type": "http", "method": "POST", "url": f"{sink.url}/take",
             "headers": {"Authorization": "Bearer {secrets.TOKEN}"}, "retry": ONCE},
        ],
    }  # fmt: skip
    handle = await start_definition(client, bound_settings, document, {"workflow_id": "billing"})
    state = await outcome(handle)
    assert state["status"] == "failed"
    assert state["error"]["type"] == FailureType.SECRET_NOT_ALLOWED
    assert state["error"]["message"] == (
        "step 'billing': secret 'TOKEN' is bound to the workflows 'billing' (SECRETS_FILE); "
        "workflow 'other' may not use it, so nothing was sent (add 'other' to the secret's "
        '"workflows" in SECRETS_FILE to allow it)'
    )
    assert sink.requests == []  # not one attempt reached the target
    history = (await handle.fetch_history()).to_json()
    assert history.count('"activityTaskFailedEventAttributes"') == 1  # not retried
    assert TOKEN not in history


def bound_steps(sink: HttpSink, other: HttpSink) -> list[dict[str, Any]]:
    away = {"retry": ONCE, "on_error": "continue"}
    return [
        {"id": "ok", "type": "http", "method": "POST", "url": f"{sink.url}/ok",
         "headers": {"X-Token": "{secrets.TOKEN}"}, "json": {"t": "{secrets.TOKEN}"}},
        {"id": "header", "type": "http", "url": f"{other.url}/h",
         "headers": {"X-Token": "v1 {secrets.TOKEN}"}, **away},
        {"id": "body", "type": "http", "method": "POST", "url": f"{other.url}/b",
         "json": {"nested": ["{secrets.TOKEN}"]}, **away},
        {"id": "url", "type": "http", "url": f"{other.url}/u/{{secrets.TOKEN}}", **away},
        {"id": "query", "type": "http", "url": f"{other.url}/q",
         "query": {"k": "{secrets.TOKEN}"}, **away},
        {"id": "open", "type": "http", "url": f"{other.url}/open",
         "headers": {"X-Open": "{secrets.OPEN}"}},
        # The bound host redirects elsewhere: the secret's header stays behind.
        {"id": "redirected", "type": "http", "url": f"{sink.url}/start",
         "headers": {"X-Token": "{secrets.TOKEN}", "X-Plain": "kept"}},
    ]  # fmt: skip


async def test_a_bound_secret_goes_only_to_its_hosts(
    client: Client,
    bound_settings: Settings,
    bound_worker: Any,
    sink: HttpSink,
    other_origin: HttpSink,
) -> None:
    sink.script("/start", Reply(302, "", headers={"Location": f"{other_origin.url}/land"}))
    document = {"id": "billing", "steps": bound_steps(sink, other_origin)}
    handle = await start_definition(client, bound_settings, document)
    state = await outcome(handle)
    assert state["status"] == "completed", state["error"]
    (ok, start) = sink.requests
    assert ok.headers["x-token"] == TOKEN and ok.json() == {"t": TOKEN}
    assert start.headers["x-token"] == TOKEN
    # Wherever the slot was (header, body, URL path, query), nothing went to the other host
    # but the unbound secret and the redirect, which lost the bound secret's header.
    assert [r.path for r in other_origin.requests] == ["/open", "/land"]
    opened, landed = other_origin.requests
    assert opened.headers["x-open"] == OPEN
    assert "x-token" not in landed.headers and landed.headers["x-plain"] == "kept"
    steps = {s["step_id"]: s for s in read_log(bound_settings, handle.id)["steps"]}
    target = host_port(other_origin.url)
    for step_id in ("header", "body", "url", "query"):
        assert steps[step_id]["error_type"] == FailureType.SECRET_NOT_ALLOWED, steps[step_id]
        assert steps[step_id]["error"] == (
            f"step '{step_id}': secret 'TOKEN' is bound to the hosts '{host_port(sink.url)}' "
            f"(SECRETS_FILE); this request goes to {target}, so it was not sent (add "
            f"'{target}' to the secret's \"hosts\" to allow it)"
        )
    assert TOKEN not in (await handle.fetch_history()).to_json()


async def test_an_ai_step_sends_a_bound_secret_only_to_a_provider_it_names(
    client: Client,
    bound_settings: Settings,
    bound_worker: Any,
    fake_openrouter: FakeOpenRouter,
) -> None:
    document = {
        "id": "billing",
        "steps": [
            {"id": "leak", "type": "ai", "model": "m", "prompt": "say {secrets.TOKEN}",
             "retry": ONCE, "on_error": "continue"},
            {"id": "fine", "type": "ai", "model": "m", "prompt": "use {secrets.AIKEY}"},
        ],
    }  # fmt: skip
    handle = await start_definition(client, bound_settings, document)
    state = await outcome(handle)
    assert state["status"] == "completed", state["error"]
    (sent,) = fake_openrouter.completions()
    assert sent.json()["messages"] == [{"role": "user", "content": f"use {AIKEY}"}]
    leak = read_log(bound_settings, handle.id)["steps"][0]
    assert leak["error_type"] == FailureType.SECRET_NOT_ALLOWED
    assert f"this request goes to {host_port(fake_openrouter.url)}" in leak["error"]


async def test_an_agents_http_tool_is_held_to_the_same_bindings(
    client: Client,
    bound_settings: Settings,
    bound_worker: Any,
    sink: HttpSink,
    other_origin: HttpSink,
    fake_openrouter: FakeOpenRouter,
) -> None:
    tool = {"description": "Send", "parameters": {"type": "object", "properties": {}}}
    document = {
        "id": "billing",
        "steps": [
            {"id": "agent", "type": "agent", "model": "m", "prompt": "go", "output": "answer",
             "tools": [
                 {"name": "home", **tool,
                  "http": {"url": f"{sink.url}/tool", "headers": {"X-Token": "{secrets.TOKEN}"}}},
                 {"name": "away", **tool,
                  "http": {"url": f"{other_origin.url}/tool",
                           "headers": {"X-Token": "{secrets.TOKEN}"}}},
             ]},
        ],
    }  # fmt: skip
    fake_openrouter.then(
        Reply(200, tool_call_completion(("home", {}), ("away", {}))),
        Reply(200, completion("done")),
    )
    state = await outcome(await start_definition(client, bound_settings, document))
    assert state["status"] == "completed", state["error"]
    assert [r.headers["x-token"] for r in sink.deliveries("/tool")] == [TOKEN]
    assert other_origin.requests == []
    calls = state["outputs"]["answer"]["tool_calls"]
    assert "secret 'TOKEN' is bound to the hosts" in calls[1]["error"]  # back to the model
