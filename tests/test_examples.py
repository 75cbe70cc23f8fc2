"""The workflows in examples/ run as documented, through the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from activities.runtime.settings import Settings
from tests.conftest import eventually, save_definition
from tests.fakes import FakeOpenRouter, Reply, completion
from workflows.validation import check_definition

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def install_examples(settings: Settings) -> None:
    for path in EXAMPLES.glob("*.json"):
        save_definition(settings, json.loads(path.read_text()))


async def finished(http: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body = (await http.get(f"/api/executions/{execution_id}")).json()
        return body if body["status"] != "running" else None

    return await eventually(check, timeout=60)


def test_every_example_is_a_valid_definition() -> None:
    paths = sorted(EXAMPLES.glob("*.json"))
    assert len(paths) >= 2
    for path in paths:
        document = json.loads(path.read_text())
        assert check_definition(document)[1] == [], path.name
        assert document["id"] == path.stem, "file name and id must match"


async def test_offline_tour_runs_with_an_approval(
    http: httpx.AsyncClient, api_url: str, settings: Settings
) -> None:
    install_examples(settings)
    response = await http.post(
        "/api/workflows/run",
        json={
            "workflow_id": "hello-offline",
            "input_vars": {"name": "Ada", "pause_seconds": 0.2},
        },
    )
    assert response.status_code == 202, response.text
    execution_id = response.json()["execution_id"]

    async def waiting_for_approval() -> bool:
        body = (await http.get(f"/api/executions/{execution_id}")).json()
        return body["current_step"] == "approval"

    await eventually(waiting_for_approval)
    signal = await http.post(
        f"/api/executions/{execution_id}/signals/approval", json={"approved": True, "by": "ops"}
    )
    assert signal.status_code == 202
    done = await finished(http, execution_id)
    assert done["status"] == "completed", done["error"]
    assert done["outputs"]["outcome"] == ("Hello Ada, the API answered 200. Approved by ops.")
    log = (await http.get(f"/api/executions/{execution_id}/log")).json()
    assert [s["step_id"] for s in log["steps"]] == [
        "check_api", "route", "greet", "pause", "approval", "decide", "done",
    ]  # fmt: skip


async def test_offline_tour_rejection_fails_with_the_reason(
    http: httpx.AsyncClient, api_url: str, settings: Settings
) -> None:
    install_examples(settings)
    inputs = {"name": "Bo", "pause_seconds": 0}
    response = await http.post(
        "/api/workflows/run", json={"workflow_id": "hello-offline", "input_vars": inputs}
    )
    execution_id = response.json()["execution_id"]
    await http.post(
        f"/api/executions/{execution_id}/signals/approval", json={"approved": False, "by": "cfo"}
    )
    done = await finished(http, execution_id)
    assert done["status"] == "failed"
    assert done["error"] == {
        "type": "WorkflowFailed",
        "message": "rejected by cfo",
        "step_id": "rejected",
    }


async def test_ticket_triage_escalates_high_priority(
    http: httpx.AsyncClient, settings: Settings, fake_openrouter: FakeOpenRouter
) -> None:
    install_examples(settings)
    fake_openrouter.then(
        Reply(
            200,
            completion('{"priority": "high", "category": "bug", "summary": "Checkout is down"}'),
        ),
        Reply(200, completion("On-call: checkout is down for a customer.")),
    )
    ticket = {"subject": "Checkout broken", "body": "500 on pay", "customer": {"name": "Ada"}}
    response = await http.post(
        "/api/workflows/run",
        json={"workflow_id": "ticket-triage", "input_vars": {"ticket": ticket}},
    )
    assert response.status_code == 202, response.text
    done = await finished(http, response.json()["execution_id"])
    assert done["status"] == "completed", done["error"]
    assert done["outputs"]["classification"]["priority"] == "high"
    assert done["outputs"]["escalation"]["text"].startswith("On-call")
    assert "reply" not in done["outputs"]
    first, second = fake_openrouter.completions()
    assert first.json()["model"] == "openai/gpt-4o-mini"
    assert "Subject: Checkout broken" in first.json()["messages"][1]["content"]
    assert "bug ticket: Checkout is down" in second.json()["messages"][0]["content"]


async def test_research_agent_answers_and_reports_its_cost(
    http: httpx.AsyncClient, settings: Settings, fake_openrouter: FakeOpenRouter
) -> None:
    """The agent example through the API. The model answers at once here: its Wikipedia tool
    would leave this machine (the tool itself is tested against loopback in test_agent.py)."""
    install_examples(settings)
    fake_openrouter.then(Reply(200, completion("Ada Lovelace wrote the first program.")))
    response = await http.post(
        "/api/workflows/run",
        json={"workflow_id": "research-agent", "input_vars": {"question": "Who was Ada?"}},
    )
    assert response.status_code == 202, response.text
    done = await finished(http, response.json()["execution_id"])
    assert done["status"] == "completed", done["error"]
    assert done["outputs"]["report"] == "Ada Lovelace wrote the first program."
    assert done["outputs"]["cost_usd"] == 0.00042 and done["usage"]["ai_calls"] == 1
    (request,) = fake_openrouter.completions()
    assert request.json()["tools"][0]["function"]["name"] == "wikipedia"


async def test_every_example_passes_its_test_file(
    http: httpx.AsyncClient, api_url: str, settings: Settings
) -> None:
    """examples/tests/<id>.json: each example's cases (mocked steps, virtual time), the way
    `wfe test examples/tests/*.json` runs them."""
    install_examples(settings)
    files = sorted((EXAMPLES / "tests").glob("*.json"))
    assert {path.stem for path in files} == {path.stem for path in EXAMPLES.glob("*.json")}
    for path in files:
        document = json.loads(path.read_text())
        answer = await http.post(
            f"/api/workflows/{document['workflow_id']}/test", json=document, timeout=120
        )
        assert answer.status_code == 200, f"{path.name}: {answer.text}"
        failed = [c for c in answer.json()["cases"] if c["status"] != "passed"]
        assert failed == [], f"{path.name}: {failed}"
