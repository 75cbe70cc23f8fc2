"""An `http` step cannot set the headers the transport owns (Host, Content-Length,
Transfer-Encoding, Connection, ...): refused at save with the path, and again in the
activity for documents that skipped that check (workflows/validation.py, activities/http.py).

Host matters most: the SSRF guard checks the URL's host, and a step that could send another
Host would reach a different virtual host behind the same checked address.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from activities.runtime.settings import Settings
from tests.conftest import outcome, read_log, start_definition
from tests.fakes import HttpSink
from workflows.definition import WorkflowDefinition
from workflows.errors import FailureType
from workflows.messages import SA_DEFINITION_ID, SEND_HTTP_REQUEST, WORKFLOW_TYPE
from workflows.shared import ExecutionInput
from workflows.validation import FORBIDDEN_REQUEST_HEADERS, check_definition


def http_definition(url: str, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "id": "headers",
        "steps": [
            {"id": "call", "type": "http", "method": "POST", "url": url, "headers": headers,
             "json": {"n": 1}, "retry": {"max_attempts": 3, "initial_interval_seconds": 0.1},
             "output": "r", **extra},
        ],
    }  # fmt: skip


def test_the_documented_list() -> None:
    assert {"host", "content-length", "transfer-encoding", "connection"} <= (
        FORBIDDEN_REQUEST_HEADERS
    )
    assert all(name == name.lower() for name in FORBIDDEN_REQUEST_HEADERS)


@pytest.mark.parametrize(
    "name",
    ["Host", "HOST", "Content-Length", "transfer-encoding", "Connection", "Keep-Alive", "Upgrade",
     "TE", "Trailer", "Proxy-Connection", "Expect"],
)  # fmt: skip
def test_transport_headers_are_refused_at_save_with_their_path(name: str) -> None:
    _, problems = check_definition(http_definition("https://example.test/", {name: "x"}))
    (problem,) = problems
    assert problem.path == f"$.steps[0].headers.{name}"
    assert problem.code == "invalid_header"
    assert "set by the engine" in problem.message and "step 'call'" in problem.message


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"X Bad": "1"}, "not a valid header name"),
        ({"X-Bad:": "1"}, "not a valid header name"),
        ({"X-Split": "a\r\nHost: internal"}, "line break"),
    ],
)
def test_malformed_headers_are_refused_at_save(headers: dict[str, str], words: str) -> None:
    _, problems = check_definition(http_definition("https://example.test/", headers))
    (problem,) = problems
    assert words in problem.message


def test_ordinary_headers_are_fine() -> None:
    headers = {
        "Authorization": "Bearer {secrets.TOKEN}",
        "X-Forwarded-Host": "example.test",
        "User-Agent": "mine",
        "Idempotency-Key": "custom",
        "Accept-Encoding": "identity",
    }
    _, problems = check_definition(http_definition("https://example.test/", headers))
    assert problems == []


async def test_the_api_refuses_a_host_header_with_a_422(http: httpx.AsyncClient) -> None:
    document = http_definition("https://example.test/", {"Host": "metadata.internal"})
    answer = await http.put("/api/workflows/headers", json=document)
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["errors"]
    assert error["path"] == "$.steps[0].headers.Host"
    assert error["code"] == "invalid_header"


async def start_unchecked(
    client: Client, settings: Settings, document: dict[str, Any], input_vars: dict[str, Any]
) -> Any:
    """Start a document that only passed the shape check (as older versions saved them)."""
    definition = WorkflowDefinition.model_validate(document)
    return await client.start_workflow(
        WORKFLOW_TYPE,
        ExecutionInput(definition=definition, input_vars=input_vars, definition_version=1),
        id=str(uuid.uuid4()),
        task_queue=settings.temporal_task_queue,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SA_DEFINITION_ID, definition.key),
            ]
        ),
    )


async def attempts_of(handle: Any) -> list[int]:
    events = (await handle.fetch_history()).events
    scheduled = {
        e.event_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == SEND_HTTP_REQUEST
    }
    return [
        e.activity_task_started_event_attributes.attempt
        for e in events
        if e.HasField("activity_task_started_event_attributes")
        and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]


@pytest.mark.parametrize(
    ("headers", "input_vars", "words"),
    [
        ({"Host": "other.vhost.test"}, {}, "'Host' header is set by the engine"),
        ({"content-length": "0"}, {}, "set by the engine"),
        ({"Transfer-Encoding": "chunked"}, {}, "set by the engine"),
        # A value rendered from an input can smuggle a header: refused, not retried.
        ({"X-Note": "{note}"}, {"note": "a\r\nHost: other.vhost.test"}, "line break"),
    ],
    ids=["host", "content-length", "transfer-encoding", "crlf-from-input"],
)
async def test_the_activity_refuses_them_too_without_sending(
    client: Client,
    settings: Settings,
    worker: Any,
    sink: HttpSink,
    headers: dict[str, str],
    input_vars: dict[str, Any],
    words: str,
) -> None:
    document = http_definition(f"{sink.url}/hook", headers)
    handle = await start_unchecked(client, settings, document, input_vars)
    state = await outcome(handle)
    assert state["status"] == "failed"
    assert state["error"]["type"] == FailureType.INVALID_REQUEST
    assert words in state["error"]["message"]
    assert read_log(settings, handle.id)["steps"][0]["error_type"] == FailureType.INVALID_REQUEST
    assert sink.deliveries() == []  # nothing reached the target
    assert await attempts_of(handle) == [1]  # non-retryable despite max_attempts 3


async def test_allowed_headers_reach_the_target(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    headers = {"X-Forwarded-Host": "public.example.test", "User-Agent": "custom-agent"}
    state = await outcome(
        await start_definition(client, settings, http_definition(f"{sink.url}/hook", headers))
    )
    assert state["status"] == "completed", state["error"]
    (delivery,) = sink.deliveries("/hook")
    assert delivery.headers["host"] == sink.url.removeprefix("http://")
    assert delivery.headers["x-forwarded-host"] == "public.example.test"
    assert delivery.headers["user-agent"] == "custom-agent"
