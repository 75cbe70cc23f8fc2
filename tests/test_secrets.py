"""Secrets: `{secrets.NAME}` resolved only in activities; canary values never appear in
Temporal history, log files or API answers."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.client import Client

from activities.runtime.settings import Settings
from tests.conftest import ADMIN_KEY, eventually, serve_api
from tests.fakes import FakeOpenRouter, HttpSink, Reply, completion
from worker import engine_worker

SECRET_CANARY = "canary-secret-7f3a9c41d2"
OPENROUTER_CANARY = "canary-openrouter-5be8e2"


def history_text(history_json: str) -> str:
    """The history as JSON plus every payload decoded (payload data is base64 in JSON)."""
    decoded = [
        base64.b64decode(match).decode("utf-8", errors="replace")
        for match in re.findall(r'"data":\s*"([A-Za-z0-9+/=]+)"', history_json)
    ]
    return "\n".join([history_json, *decoded])


def definition(sink: HttpSink) -> dict[str, Any]:
    return {
        "id": "secrets",
        "steps": [
            {
                "id": "call",
                "type": "http",
                "method": "POST",
                "url": f"{sink.url}/hook?key={{secrets.TOKEN}}",
                "headers": {"Authorization": "Bearer {secrets.TOKEN}"},
                "json": {"token": "{secrets.TOKEN}", "note": "sent {secrets.TOKEN}"},
                "output": "echo",
            },
            {"id": "ask", "type": "ai", "model": "m", "prompt": "token is {secrets.TOKEN}",
             "output": "answer"},
            {"id": "leak", "type": "http", "method": "POST", "url": f"{sink.url}/fail?k={{secrets.TOKEN}}",
             "retry": {"max_attempts": 1}},
        ],
    }  # fmt: skip


async def test_secret_canaries_never_leave_the_activities(
    client: Client,
    settings: Settings,
    sink: HttpSink,
    fake_openrouter: FakeOpenRouter,
    tmp_path: Path,
) -> None:
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"TOKEN": SECRET_CANARY}))
    configured = settings.model_copy(
        update={
            "secrets_file": secrets_file,
            "openrouter_api_key": SecretStr(OPENROUTER_CANARY),
        }
    )
    # The AI answer echoes the secret back, as a careless model might.
    fake_openrouter.then(Reply(200, completion(f"I saw {SECRET_CANARY}")))
    sink.script("/fail", Reply(400, {"error": f"bad key {SECRET_CANARY}"}))
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        engine_worker(client, configured) as worker,
        worker,
        serve_api(configured, client) as url,
        httpx.AsyncClient(base_url=url, headers=headers) as api,
    ):
        saved = await api.put("/api/workflows/secrets", json=definition(sink))
        assert saved.status_code == 201, saved.text
        started = await api.post(
            "/api/workflows/run", json={"workflow_id": "secrets", "input_vars": {}}
        )
        execution_id = started.json()["execution_id"]

        async def finished() -> dict[str, Any] | None:
            body = (await api.get(f"/api/executions/{execution_id}")).json()
            return body if body["status"] != "running" else None

        state = await eventually(finished, timeout=30)
        answers = [
            (await api.get(f"/api/executions/{execution_id}")).text,
            (await api.get(f"/api/executions/{execution_id}/log")).text,
            (await api.get("/api/executions")).text,
            (await api.get("/api/workflows/secrets")).text,
            started.text,
        ]

    # The secret really was used where the definition put it...
    (delivery,) = sink.deliveries("/hook")
    assert delivery.headers["authorization"] == f"Bearer {SECRET_CANARY}"
    assert delivery.json() == {"token": SECRET_CANARY, "note": f"sent {SECRET_CANARY}"}
    assert SECRET_CANARY in delivery.path
    (ai_request,) = fake_openrouter.completions()
    assert ai_request.headers["authorization"] == f"Bearer {OPENROUTER_CANARY}"
    assert ai_request.json()["messages"][0]["content"] == f"token is {SECRET_CANARY}"
    # ...and was redacted from everything that came back.
    assert state["status"] == "failed"
    assert state["outputs"]["echo"]["json"]["received"]["token"] == "[REDACTED]"
    assert state["outputs"]["answer"]["text"] == "I saw [REDACTED]"
    assert "[REDACTED]" in state["error"]["message"]

    history = await client.get_workflow_handle(execution_id).fetch_history()
    places = {
        "history": history_text(history.to_json()),
        "log file": (configured.workflow_log_dir / f"{execution_id}.json").read_text(),
        **{f"api answer {i}": text for i, text in enumerate(answers)},
    }
    for canary in (SECRET_CANARY, OPENROUTER_CANARY, ADMIN_KEY):
        hits = [where for where, text in places.items() if canary in text]
        assert hits == [], f"{canary} found in {hits}"
    # History carries the template, which says which secret was used, not its value.
    assert "{secrets.TOKEN}" in places["history"]
