"""An MCP server written with the official SDK (FastMCP), served on loopback for the tests.

It plays the tools' server for the `mcp` step and the agent's MCP tools: it counts every tool
call, records the Authorization header of every HTTP request, and can serve a tool whose input
schema is not valid JSON Schema.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from collections import Counter
from typing import Any

import httpx
import uvicorn
from google.protobuf.json_format import MessageToDict
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.client import Client

from api.cli.devstack import free_port
from tests.conftest import eventually

DOCS_SECRET = "docs-token-0123456789"


class _RecordHeaders:
    """ASGI middleware: remembers the Authorization header of every request."""

    def __init__(self, app: ASGIApp, seen: list[str | None]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            auth = headers.get(b"authorization")
            self.seen.append(auth.decode() if auth is not None else None)
        await self.app(scope, receive, send)


class FakeMCPServer:
    """FastMCP on 127.0.0.1 (in a thread of its own) with a few tools."""

    def __init__(self) -> None:
        self.port = free_port()
        self.calls: Counter[str] = Counter()
        self.authorization: list[str | None] = []
        self.mcp = FastMCP("docs", host="127.0.0.1", port=self.port)
        self._add_tools()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def _add_tools(self) -> None:
        calls = self.calls

        @self.mcp.tool(description="Search the docs for a phrase")
        def search(query: str, limit: int = 3) -> str:
            calls["search"] += 1
            return f"{limit} hits for {query}"

        @self.mcp.tool(description="Numbers as structured content")
        def stats(city: str) -> dict[str, Any]:
            calls["stats"] += 1
            return {"city": city, "population": 1000}

        @self.mcp.tool(description="Always fails")
        def broken(reason: str = "no reason") -> str:
            calls["broken"] += 1
            raise ToolError(f"broken on purpose: {reason}")

        @self.mcp.tool(description="A large answer")
        def huge(size: int) -> str:
            calls["huge"] += 1
            return "x" * size

        @self.mcp.tool(description="Answers after a while")
        async def slow(seconds: float) -> str:
            calls["slow"] += 1
            await asyncio.sleep(seconds)
            return "late"

    def break_schema(self, tool: str) -> None:
        """Make ``tool``'s advertised input schema invalid JSON Schema."""
        self.mcp._tool_manager._tools[tool].parameters = {"type": "no-such-type"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> FakeMCPServer:
        app = _RecordHeaders(self.mcp.streamable_http_app(), self.authorization)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,  # a hung tool's call does not hold the teardown
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the MCP test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(timeout=5)


async def run(http: httpx.AsyncClient, workflow_id: str, **inputs: Any) -> dict[str, Any]:
    """Start a saved workflow through the API and wait for its end."""
    started = await http.post(
        "/api/workflows/run", json={"workflow_id": workflow_id, "input_vars": inputs}
    )
    assert started.status_code == 202, started.text
    return await finished(http, started.json()["execution_id"])


async def finished(http: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        body = (await http.get(f"/api/executions/{execution_id}")).json()
        return body if body["status"] != "running" else None

    return dict(await eventually(done, timeout=60))


async def history_text(client: Client, execution_id: str) -> str:
    """Every payload of a run's history, decoded, as one text."""
    history = await client.get_workflow_handle(execution_id).fetch_history()
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("data"), str):
                found.append(base64.b64decode(value["data"]).decode(errors="replace"))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk([MessageToDict(event) for event in history.events])
    return "\n".join(found)


def summaries(history_events: list[Any]) -> list[str]:
    """The Temporal UI summaries of a history's events."""
    import json

    return [
        json.loads(base64.b64decode(data["userMetadata"]["summary"]["data"]))
        for data in map(MessageToDict, history_events)
        if data.get("userMetadata", {}).get("summary")
    ]
