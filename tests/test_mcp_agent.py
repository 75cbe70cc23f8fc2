"""An agent whose tools come from an MCP server written with the official SDK (FastMCP on
loopback): the tools listed once and offered with their schemas, every call its own activity
with a summary naming server and tool, invalid arguments and tool errors back to the model,
the bearer secret filled in the activity only; and a server with a broken schema."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.runtime.settings import Settings
from tests.conftest import save_definition
from tests.fakes import FakeOpenRouter, Reply, completion, tool_call_completion
from tests.mcp_fakes import (
    DOCS_SECRET,
    FakeMCPServer,
    history_text,
    run,
    summaries,
)


@pytest.fixture(autouse=True)
def docs_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker reads secrets from its environment when it is built."""
    monkeypatch.setenv("WORKFLOW_SECRET_DOCS", DOCS_SECRET)


def agent(url: str, tools: list[str] | None = None) -> dict[str, Any]:
    server: dict[str, Any] = {"url": url, "headers": {"Authorization": "Bearer {secrets.DOCS}"}}
    if tools is not None:
        server["tools"] = tools
    return {
        "id": "docs-agent",
        "inputs": {"type": "object", "properties": {"question": {"type": "string"}}},
        "steps": [
            {
                "id": "agent",
                "type": "agent",
                "name": "Docs agent",
                "model": "m/agent",
                "prompt": "{question}",
                "retry": {"max_attempts": 1},
                "output": "answer",
                "tools": [{"name": "docs", "mcp": server}],
            }
        ],
    }


async def test_an_agent_uses_an_mcp_servers_tools(
    http: httpx.AsyncClient, settings: Settings, mcp_server: FakeMCPServer,
    fake_openrouter: FakeOpenRouter, client: Client,
) -> None:  # fmt: skip
    fake_openrouter.then(
        Reply(
            200,
            tool_call_completion(
                ("docs__search", {"query": "retries", "limit": 1}),
                ("docs__search", {"limit": "many"}),
            ),
        ),
        Reply(200, tool_call_completion(("docs__broken", {"reason": "r"}))),
        Reply(200, completion("Retries are explained in one hit.")),
    )
    save_definition(settings, agent(mcp_server.url, tools=["search", "broken"]))
    state = await run(http, "docs-agent", question="How do retries work?")
    assert state["status"] == "completed", state["error"]
    calls = state["outputs"]["answer"]["tool_calls"]
    assert calls[0]["result"]["text"] == "1 hits for retries"
    assert "the arguments do not match the tool's parameters" in calls[1]["error"]
    assert "broken on purpose: r" in calls[2]["error"]  # the tool's error, to the model
    # The invalid call never reached the server; the two others did, with the secret.
    assert mcp_server.calls == {"search": 1, "broken": 1}
    assert set(mcp_server.authorization) == {f"Bearer {DOCS_SECRET}"}
    # The model was offered exactly the allowed tools, with the server's schemas.
    offered = fake_openrouter.completions()[0].json()["tools"]
    assert [t["function"]["name"] for t in offered] == ["docs__search", "docs__broken"]
    search = offered[0]["function"]
    assert search["description"] == "Search the docs for a phrase"
    assert search["parameters"]["required"] == ["query"]
    # The listing and each call are activities, labelled with server and tool.
    history = await client.get_workflow_handle(state["execution_id"]).fetch_history()
    labels = summaries(history.events)
    for label in ("Docs agent · docs: list tools", "Docs agent · docs: search",
                  "Docs agent · docs: broken"):  # fmt: skip
        assert label in labels, labels
    text = await history_text(client, state["execution_id"])
    assert DOCS_SECRET not in text
    assert DOCS_SECRET not in str(fake_openrouter.completions()[-1].json())
    # A case recorded from the run mocks the listing and each tool: it passes, calling nothing.
    recorded = await http.get(f"/api/executions/{state['execution_id']}/test-case")
    case = recorded.json()["cases"][0]
    assert set(case["mocks"]) == {"agent", "agent.docs", "agent.docs__search", "agent.docs__broken"}
    report = await http.post("/api/workflows/docs-agent/test", json=recorded.json(), timeout=90)
    assert report.json()["passed"] == 1, report.text
    assert mcp_server.calls == {"search": 1, "broken": 1}


async def test_an_mcp_server_with_a_broken_schema_or_a_missing_tool_fails_the_step(
    http: httpx.AsyncClient, settings: Settings, mcp_server: FakeMCPServer,
    fake_openrouter: FakeOpenRouter,
) -> None:  # fmt: skip
    save_definition(settings, agent(mcp_server.url, tools=["search", "fetch"]))
    state = await run(http, "docs-agent", question="?")
    assert state["status"] == "failed" and state["error"]["type"] == "MCPError"
    assert "no tool fetch" in state["error"]["message"]
    mcp_server.break_schema("stats")
    save_definition(settings, agent(mcp_server.url))
    state = await run(http, "docs-agent", question="?")
    assert state["status"] == "failed" and state["error"]["type"] == "MCPError"
    assert "'stats' has an input schema that is not valid JSON Schema" in state["error"]["message"]
    assert fake_openrouter.completions() == []  # the model was never asked
