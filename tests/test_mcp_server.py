"""/mcp: the official SDK's client against the real API, worker and Temporal: the tools a
key sees, a workflow tool that runs and answers, a run that waits for a signal (progress,
get_execution, signal_execution), a scope refusal that starts nothing, no key at all."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from mcp import ClientSession, McpError
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from activities.runtime.settings import Settings
from tests.conftest import ADMIN_KEY, TEST_KEYS, save_definition

RUNNER_KEY = "test-runner-key-0123456789"
VIEWER_KEY = "test-viewer-key-0123456789"
KEYS = [
    *TEST_KEYS,
    {"key": RUNNER_KEY, "name": "assistant", "role": "runner", "workflows": ["greet", "approve"]},
    {"key": VIEWER_KEY, "name": "watcher", "role": "viewer", "workflows": "*"},
]

GREET = {
    "id": "greet",
    "description": "Greets someone by name",
    "inputs": {
        "type": "object",
        "required": ["who"],
        "properties": {"who": {"type": "string"}, "times": {"type": "integer"}},
    },
    "steps": [{"id": "hello", "type": "set", "values": {"greeting": "hello {who}"}}],
}
APPROVE = {
    "id": "approve",
    "steps": [
        {"id": "prepare", "type": "set", "values": {"ready": True}},
        {"id": "wait", "type": "wait_for_signal", "signal": "approval", "output": "decision"},
    ],
}
HIDDEN = {"id": "get_execution", "steps": [{"id": "x", "type": "set", "values": {"a": 1}}]}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with a runner and a viewer key, and a short MCP wait."""
    return settings.model_copy(
        update={"api_keys": SecretStr(json.dumps(KEYS)), "mcp_wait_seconds": 3.0}
    )


@contextlib.asynccontextmanager
async def mcp_session(api_url: str, key: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(f"{api_url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def tool_names(api_url: str, key: str) -> list[str]:
    async with mcp_session(api_url, key) as session:
        return sorted(tool.name for tool in (await session.list_tools()).tools)


async def test_an_assistant_lists_runs_waits_and_signals_over_mcp(
    api_url: str, settings: Settings
) -> None:
    for document in (GREET, APPROVE, HIDDEN):
        save_definition(settings, document)
    # Each key sees the tools its role and scope allow.
    assert await tool_names(api_url, ADMIN_KEY) == [
        "approve", "get_execution", "get_execution_workflow", "greet", "signal_execution",
    ]  # fmt: skip
    assert await tool_names(api_url, RUNNER_KEY) == [
        "approve", "get_execution", "greet", "signal_execution",
    ]  # fmt: skip
    assert await tool_names(api_url, VIEWER_KEY) == ["get_execution"]

    async with mcp_session(api_url, RUNNER_KEY) as session:
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert listed["greet"].description == "Greets someone by name"
        assert listed["greet"].inputSchema["required"] == ["who"]
        # A workflow tool runs the workflow and answers its outputs.
        done = await session.call_tool("greet", {"who": "Ada"})
        assert done.structuredContent is not None
        assert done.structuredContent["status"] == "completed"
        assert done.structuredContent["outputs"]["greeting"] == "hello Ada"
        # Bad input is an MCP error naming the JSON path; nothing starts.
        with pytest.raises(McpError, match=r"\$\.times"):
            await session.call_tool("greet", {"who": "Ada", "times": "twice"})
        # A run that waits answers "running" with what it waits for, with progress per step.
        notes: list[str] = []

        async def progress(done: float, total: float | None, message: str | None) -> None:
            notes.append(message or "")

        waiting = await session.call_tool("approve", {}, progress_callback=progress)
        assert waiting.structuredContent is not None
        answer = waiting.structuredContent
        assert answer["status"] == "running" and answer["waiting_for"] == "approval"
        assert "step prepare started" in notes and "step wait started" in notes
        execution_id = answer["execution_id"]
        sent = await session.call_tool(
            "signal_execution",
            {"execution_id": execution_id, "signal": "approval", "payload": {"ok": True}},
        )
        assert sent.structuredContent is not None
        assert sent.structuredContent["status"] == "delivered"
        for _ in range(100):
            state = await session.call_tool("get_execution", {"execution_id": execution_id})
            assert state.structuredContent is not None
            if state.structuredContent["status"] != "running":
                break
        assert state.structuredContent["status"] == "completed"
        assert state.structuredContent["outputs"]["decision"] == {"ok": True}


async def test_mcp_refuses_what_the_key_may_not_do(api_url: str, settings: Settings) -> None:
    for document in (GREET, HIDDEN):
        save_definition(settings, document)
    async with mcp_session(api_url, VIEWER_KEY) as session:
        with pytest.raises(McpError, match="no tool named 'greet'"):
            await session.call_tool("greet", {"who": "Ada"})
        with pytest.raises(McpError, match="no tool named 'signal_execution'"):
            await session.call_tool("signal_execution", {"execution_id": "x", "signal": "s"})
    async with mcp_session(api_url, RUNNER_KEY) as session:
        with pytest.raises(McpError, match="no tool named 'get_execution_workflow'"):
            await session.call_tool("get_execution_workflow", {})  # outside its scope
    # Nothing was started by the refused calls.
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as http:
        listed = (await http.get("/api/executions")).json()
        assert listed["executions"] == [] or all(
            e["workflow_id"] not in ("greet", "get_execution") for e in listed["executions"]
        )
    # No key: 401 before any MCP message.
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{api_url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    with pytest.raises(BaseException) as refused:
        await tool_names(api_url, "not-a-key")
    assert "401" in repr(refused.value) or "Unauthorized" in repr(refused.value)
