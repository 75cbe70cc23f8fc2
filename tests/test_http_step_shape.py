"""The `http` activity's request URL and answer text, against a loopback server.

A step's `query` adds to a query written in its URL; a URL without `query` goes out exactly
as written. An answer's text is decoded with the charset its Content-Type names, else UTF-8.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.http import HTTPStepActivities
from activities.runtime.settings import Settings
from tests.fakes import HttpSink, Reply
from worker import http_step_activities
from workflows.messages import HTTPRequest, HTTPResult


@pytest.fixture
async def activities(settings: Settings) -> AsyncIterator[HTTPStepActivities]:
    loopback = settings.model_copy(update={"http_allowed_hosts": "127.0.0.1"})
    async with http_step_activities(loopback) as built:
        yield built


async def send(activities: HTTPStepActivities, url: str, **extra: Any) -> HTTPResult:
    request = HTTPRequest(
        execution_id="e", step_id="s", method="GET", url=url, idempotency_key="k-1", **extra
    )
    result: HTTPResult = await ActivityEnvironment().run(activities.send_http_request, request)
    return result


@pytest.mark.parametrize(
    ("path", "query", "sent"),
    [
        ("/q?a=1&b=x%20y", {}, "/q?a=1&b=x%20y"),
        ("/q", {"tag": ["a", "b"], "n": 2}, "/q?tag=a&tag=b&n=2"),
        ("/q?a=1&keep=yes", {"a": "2", "skip": None}, "/q?a=2&keep=yes"),
    ],
)
async def test_query_adds_to_the_urls_own_and_a_plain_url_goes_out_as_written(
    activities: HTTPStepActivities, sink: HttpSink, path: str, query: dict[str, Any], sent: str
) -> None:
    result = await send(activities, f"{sink.url}{path}", query=query)
    assert result.status == 200
    assert sink.deliveries("/q")[-1].path == sent


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        ("text/plain", "café ✓".encode(), "café ✓"),
        ("text/plain; charset=iso-8859-1", "café".encode("latin-1"), "café"),
        ('text/plain; Charset="Windows-1252"', "€5".encode("cp1252"), "€5"),
        ("text/plain; charset=no-such-codec", "café".encode(), "café"),
    ],
)
async def test_an_answers_text_is_decoded_with_its_charset_else_utf8(
    activities: HTTPStepActivities, sink: HttpSink, content_type: str, body: bytes, text: str
) -> None:
    sink.script("/text", Reply(200, body, {"Content-Type": content_type}))
    result = await send(activities, f"{sink.url}/text")
    assert result.text == text and result.json_ is None
