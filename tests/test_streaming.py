"""GET /api/executions/{id}/events: a run as server-sent events, on the real stack (dev
server, worker, API) with a fake provider streaming its answer slowly on loopback."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.ai_stream import StreamProgress
from activities.runtime.settings import Settings
from activities.secrets import REDACTED, SecretStore
from api.server.executions.events import Cursor, StepMark
from tests import providers_support, test_console
from tests.conftest import ADMIN_KEY, serve_api
from tests.fakes import FakeProvider
from tests.test_cli import execution_id_of, wfe

local = providers_support.local
provider_settings = providers_support.provider_settings
provider_worker = providers_support.provider_worker
browser = test_console.browser  # one headless Chromium for the module

# Over 4 KiB: the status summarises it, and the stream's end still comes whole.
ANSWER = " ".join(f"word{i:04d}-{'x' * 140}" for i in range(30))
DEFINITION = {
    "id": "streamed",
    "steps": [
        {"id": "ask", "type": "ai", "model": "local:llama3", "prompt": "talk", "output": "ask"},
        {"id": "approve", "type": "wait_for_signal", "signal": "approval"},
    ],
}


async def read_events(
    http: httpx.AsyncClient, execution_id: str, last_id: str | None = None, until: str = "end"
) -> list[dict[str, Any]]:
    """Events until one named ``until`` (each: event, id, data decoded)."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    events: list[dict[str, Any]] = []
    url = f"/api/executions/{execution_id}/events"
    async with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        event: dict[str, Any] = {}
        async for line in response.aiter_lines():
            if line.startswith(("event:", "id:", "data:")):
                name, _, value = line.partition(":")
                event[name] = value.strip()
            elif not line and "event" in event:
                event["data"] = json.loads(event["data"])
                events.append(event)
                if event["event"] == until:
                    return events
                event = {}
    return events


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["text"] for e in events if e["event"] == "delta")


async def test_a_run_streams_its_answer_and_a_cursor_resumes_without_repeats(
    client: Client, provider_settings: Settings, provider_worker: Worker, local: FakeProvider
) -> None:
    local.responder = lambda body: ANSWER
    local.chunks, local.chunk_delay = 30, 0.05  # 1.5 s of streaming
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        serve_api(provider_settings, client) as url,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http,
    ):
        assert (await http.put("/api/workflows/streamed", json=DEFINITION)).status_code == 201
        started = await http.post("/api/workflows/run", json={"workflow_id": "streamed"})
        execution_id = started.json()["execution_id"]
        live = await read_events(http, execution_id, until="waiting")
        names = [(e["event"], e["data"].get("status")) for e in live]
        assert names[0] == ("step", "running") and live[0]["data"]["path"] == "ask"
        deltas = [e for e in live if e["event"] == "delta"]
        assert len(deltas) >= 3, names  # the answer arrived in pieces, while it was written
        assert text_of(live) == ANSWER  # every word once, in order
        assert ("step", "success") in names and names[-1] == ("waiting", None)
        assert all(e["id"] for e in live) and len({e["id"] for e in live}) == len(live)

        # Another API process, resuming from the second delta: the rest, nothing twice.
        async with (
            serve_api(provider_settings, client) as other,
            httpx.AsyncClient(base_url=other, headers=headers, timeout=30) as second,
        ):
            at = live.index(deltas[1])
            resumed = await read_events(second, execution_id, live[at]["id"], until="waiting")
            assert text_of(live[: at + 1]) + text_of(resumed) == ANSWER
            assert [e["event"] for e in resumed if e["event"] == "step"] == ["step"] * 2
            # A late client gets the current state first: each step once, as it is now.
            await http.post(f"/api/executions/{execution_id}/signals/approval", json={})
            late = await read_events(second, execution_id)
            steps = [(e["data"]["path"], e["data"]["status"]) for e in late if e["event"] == "step"]
            assert steps == [("ask", "success"), ("approve", "success")]
            assert late[-1]["event"] == "end" and late[-1]["data"]["status"] == "completed"
            # Same scope as the status: a key that does not see the workflow gets 404.
            scoped = {"Authorization": f"Bearer {providers_support.SCOPED_KEY}"}
            denied = await second.get(f"/api/executions/{execution_id}/events", headers=scoped)
            assert denied.status_code == 404


def test_the_cursor_round_trips_and_compacts() -> None:
    cursor = Cursor(low=3, marks={4: StepMark(ended=True), 5: StepMark(False, "7", 2, 120)})
    cursor.waiting = "abc"
    text = cursor.encode()
    assert text == "4_5.7.2.120.0_wabc"  # step 4 ended: below the lowest open step
    again = Cursor.parse(text)
    assert again.marks == {5: StepMark(False, "7", 2, 120)} and again.low == 4
    assert again.seen(2) == StepMark(ended=True) and again.seen(6) is None
    assert Cursor.parse("garbage.1") == Cursor()
    # What was sent is known by its checksum: a result that does not continue it (an agent's
    # last turn after an earlier one, a fallback model's answer) is sent whole, as its own call.
    mark = StepMark(False, "3", 1)
    mark.sent("I will check ", False)
    mark.sent("the weather", False)
    assert mark.continued_by("I will check the weather.")
    assert not mark.continued_by("Clear in Oslo, 21 degrees.")
    assert Cursor.parse(Cursor(marks={9: mark}).encode()).marks[9] == mark


async def test_wfe_run_wait_and_wfe_watch_print_the_answer_as_it_comes(
    client: Client, provider_settings: Settings, provider_worker: Worker, local: FakeProvider
) -> None:
    local.responder = lambda body: "the answer, streamed in several pieces"
    local.chunks, local.chunk_delay = 8, 0.1
    document = {"id": "asked", "steps": [DEFINITION["steps"][0]]}
    async with serve_api(provider_settings, client) as url:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            assert (await http.put("/api/workflows/asked", json=document)).status_code == 201
        ran = await wfe(url, "run", "asked", "--wait")
        assert ran.exit_code == 0, ran.output
        assert "▸ ask: the answer, streamed in several pieces\n" in ran.stdout
        assert "✓ success" in ran.stdout and "status: completed" in ran.stdout
        watched = await wfe(url, "watch", execution_id_of(ran))
        assert watched.exit_code == 0 and "status: completed" in watched.stdout


@pytest.mark.timeout(90)
async def test_the_console_shows_an_answer_while_it_is_written(
    client: Client,
    provider_settings: Settings,
    provider_worker: Worker,
    local: FakeProvider,
    browser: Any,
) -> None:
    from playwright.async_api import expect

    words = [f"piece{i}" for i in range(16)]
    local.responder = lambda body: " ".join(words)
    local.chunks, local.chunk_delay = 16, 0.25  # 4 s of streaming
    document = {"id": "asked", "steps": [DEFINITION["steps"][0]]}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        serve_api(provider_settings, client) as url,
        httpx.AsyncClient(base_url=url, headers=headers) as http,
        test_console._console(browser, url, signed_in=True) as tab,
    ):
        assert (await http.put("/api/workflows/asked", json=document)).status_code == 201
        started = await http.post("/api/workflows/run", json={"workflow_id": "asked"})
        execution_id = started.json()["execution_id"]
        await tab.open(f"#/executions/{execution_id}")
        answer = tab.page.locator('pre.answer-text[data-path="ask"]')
        # Part of the answer shows while the step still runs...
        await expect(answer).to_contain_text("piece2")
        shown = await answer.text_content() or ""
        assert "piece15" not in shown, shown
        state = (await http.get(f"/api/executions/{execution_id}")).json()
        assert state["status"] == "running"
        # ...then all of it, once, and the step's success in the timeline.
        await expect(answer).to_have_text(" ".join(words))
        await expect(tab.page.locator(".title-badge")).to_contain_text("completed")


def test_a_streamed_answer_never_shows_a_secret_in_part() -> None:
    store = SecretStore({"TOKEN": "canary-0123456789"})
    progress = StreamProgress(0, "ask", store.redact, store.unsafe_tail)
    shown = []
    for piece in ["the token is can", "ary-01234", "56789 and more"]:
        progress.add(piece)
        shown.append(progress.details()[0]["stream"]["text"])
    assert shown == ["the token is ", "the token is ", f"the token is {REDACTED} and more"]
    progress.add(" ends with c")  # maybe a secret's beginning: held back until the end
    assert progress.details()[0]["stream"]["text"].endswith("and more ends with ")
    progress.end()
    assert progress.details()[0]["stream"]["text"].endswith("and more ends with c")
