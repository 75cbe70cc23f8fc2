"""The API as an MCP server: ``/mcp``, streamable HTTP, the official SDK's server side.

An assistant connects with ``Authorization: Bearer <API key>`` and gets the key's role and
scope, exactly as on the REST API: no or an unknown key is 401 before any MCP message, the
key's rate limit applies to every request. Tools:

- one per saved workflow the key may run: its name is the workflow id with every character
  outside ``[A-Za-z0-9_-]`` replaced by ``_`` (``_workflow`` appended when that would equal a
  built-in tool's name), its description the definition's, its ``inputSchema`` the
  definition's ``inputs``. Calling it starts a run through the API's one start path
  (api/server/executions/starting.py: scope, inputs, library, limits) and waits up to
  ``MCP_WAIT_SECONDS``, then answers ``{execution_id, status, outputs | error}`` or
  ``{execution_id, status: "running", waiting_for}``. A client that sends a progress token
  gets a progress notification naming each step as it starts.
- ``get_execution`` (every key) and ``signal_execution`` (keys that may control runs).

A viewer lists only ``get_execution``. A call the key may not make, a bad input (its message
names the JSON path) or an unknown tool is a JSON-RPC error, and starts nothing. The server is
stateless (every request stands alone), so any API process may answer any request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import McpError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from temporalio.client import Client

from api.server.auth import Action, Principal
from api.server.deps import AppState
from api.server.errors import ApiError, ServerError, error_body
from api.server.executions import Controller, Reader, Starter
from api.server.limits import retry_after_header
from api.server.schemas import ExecutionPublic, RunPublic
from api.server.store import StoredDefinition
from workflows.messages import ExecutionState

MCP_PATH = "/mcp"
PRINCIPAL = "wfe.principal"  # where the endpoint leaves the caller's key in the ASGI scope
INPUTS_PATH = "$.input_vars"  # where the start path locates a problem of the inputs
POLL_SECONDS = 0.25  # how often a call that reports progress looks at its run
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_-]")
Progress = Callable[[float, str], Awaitable[None]]

GET_EXECUTION = types.Tool(
    name="get_execution",
    description="The status of an execution: status, steps, outputs or error, waiting_for.",
    inputSchema={
        "type": "object",
        "required": ["execution_id"],
        "properties": {"execution_id": {"type": "string"}},
        "additionalProperties": False,
    },
)
SIGNAL_EXECUTION = types.Tool(
    name="signal_execution",
    description="Send a signal (an approval, new data) to a running execution.",
    inputSchema={
        "type": "object",
        "required": ["execution_id", "signal"],
        "properties": {
            "execution_id": {"type": "string"},
            "signal": {"type": "string"},
            "payload": {"description": "The signal's payload (any JSON)."},
        },
        "additionalProperties": False,
    },
)
BUILT_IN = {tool.name: tool for tool in (GET_EXECUTION, SIGNAL_EXECUTION)}


def tool_name(workflow_id: str) -> str:
    """A workflow's tool name (see the module docstring)."""
    name = _NOT_IN_NAME.sub("_", workflow_id)
    return f"{name}_workflow" if name in BUILT_IN else name


def workflow_tool(stored: StoredDefinition) -> types.Tool:
    definition = stored.definition
    schema = dict(definition.inputs or {"type": "object", "properties": {}})
    schema.setdefault("type", "object")
    return types.Tool(
        name=tool_name(stored.workflow_id),
        title=definition.name,
        description=definition.description or f"Run the workflow '{definition.title}'.",
        inputSchema=schema,
    )


def mcp_error(err: ServerError) -> McpError:
    """An API refusal as a JSON-RPC error: every problem with its JSON path (in the tool's
    arguments, which are the run's inputs)."""
    entries = getattr(err, "errors", None) or [{"message": str(err)}]
    parts = []
    for entry in entries:
        path = str(entry.get("path") or "")
        if path.startswith(INPUTS_PATH):
            path = "$" + path[len(INPUTS_PATH) :]
        parts.append(f"{path}: {entry['message']}" if path else str(entry["message"]))
    return McpError(types.ErrorData(code=types.INVALID_PARAMS, message="; ".join(parts)))


@dataclass
class MCPTools:
    """What one caller (a key) may do over MCP: list its tools, call one."""

    state: AppState
    principal: Principal

    async def tools(self) -> list[types.Tool]:
        found = [GET_EXECUTION]
        if self.principal.can(Action.CONTROL):
            found.append(SIGNAL_EXECUTION)
        return found + [workflow_tool(stored) for stored in (await self._runnable()).values()]

    async def _runnable(self) -> dict[str, StoredDefinition]:
        if not self.principal.can(Action.RUN):
            return {}
        return {
            tool_name(stored.workflow_id): stored
            for stored in await self.state.store.list_definitions()
            if self.principal.sees(stored.workflow_id)
        }

    async def call(
        self, name: str, arguments: dict[str, Any], progress: Progress | None
    ) -> dict[str, Any]:
        try:
            if name == GET_EXECUTION.name:
                answer = await self._reader().get(_text(arguments, "execution_id"), self.principal)
                return answer.model_dump(mode="json", exclude_none=True)
            if name == SIGNAL_EXECUTION.name and self.principal.can(Action.CONTROL):
                controller = Controller(
                    self._reader(), self.state.settings, self.state.signal_limiter
                )
                accepted = await controller.signal(
                    _text(arguments, "execution_id"),
                    _text(arguments, "signal"),
                    arguments.get("payload"),
                    self.principal,
                )
                return accepted.model_dump(mode="json", exclude_none=True)
            stored = (await self._runnable()).get(name)
            if stored is None:
                raise McpError(
                    types.ErrorData(code=types.INVALID_PARAMS, message=f"no tool named {name!r}")
                )
            return await self._run(stored, arguments, progress)
        except ServerError as err:
            raise mcp_error(err) from None

    async def _run(
        self, stored: StoredDefinition, arguments: dict[str, Any], progress: Progress | None
    ) -> dict[str, Any]:
        client = self._client()
        starter = Starter(client, self.state.settings, self.state.store, self.state.pollers)
        started = await starter.start(stored.workflow_id, arguments, self.principal)
        finished = await self._wait(started, progress)
        if finished is None or finished.status == "running":
            waiting = finished.waiting_for if finished is not None else None
            return {"execution_id": started.execution_id, "status": "running",
                    "waiting_for": waiting}  # fmt: skip
        answer: dict[str, Any] = {"execution_id": started.execution_id, "status": finished.status}
        if finished.error is not None:
            answer["error"] = finished.error.model_dump(mode="json", exclude_none=True)
        else:
            answer["outputs"] = finished.outputs
        return answer

    async def _wait(self, started: RunPublic, progress: Progress | None) -> ExecutionPublic | None:
        """The run once it ended, or as it stands after MCP_WAIT_SECONDS."""
        reader = self._reader()
        seconds = self.state.settings.mcp_wait_seconds
        if progress is None:
            finished = await reader.wait(started, seconds, self.principal)
            return finished or await reader.get(started.execution_id, self.principal)
        handle = self._client().get_workflow_handle(
            started.execution_id, result_type=ExecutionState
        )
        ended = asyncio.ensure_future(handle.result())
        deadline = asyncio.get_running_loop().time() + seconds
        told: set[str] = set()
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                await asyncio.wait({ended}, timeout=max(0.0, min(POLL_SECONDS, left)))
                state = await reader.get(started.execution_id, self.principal)
                for step in [*(s.step_id for s in state.steps), *state.current_steps]:
                    if step not in told:
                        told.add(step)
                        await progress(len(told), f"step {step} started")
                if ended.done() or state.status != "running" or left <= POLL_SECONDS:
                    return state
        finally:
            ended.cancel()
            with contextlib.suppress(BaseException):
                await ended

    def _client(self) -> Client:
        if self.state.client is None:
            raise ApiError(503, "temporal_unavailable", "Temporal is not reachable yet")
        return self.state.client

    def _reader(self) -> Reader:
        return Reader(
            self._client(), self.state.settings, self.state.logs, self.state.closed_answers
        )


def _text(arguments: dict[str, Any], name: str) -> str:
    value = arguments.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(422, "invalid_request", f"'{name}' must be a non-empty string", f"$.{name}")
    return value


def build_server(state: AppState) -> Server[Any, Any]:
    """The SDK's low-level server; the caller's key comes with each request's ASGI scope."""
    server: Server[Any, Any] = Server("workflow-engine")

    def caller() -> MCPTools:
        request = server.request_context.request
        principal = request.scope.get(PRINCIPAL) if isinstance(request, Request) else None
        if not isinstance(principal, Principal):
            raise McpError(types.ErrorData(code=types.INVALID_REQUEST, message="no API key"))
        return MCPTools(state, principal)

    async def list_tools(_: types.ListToolsRequest) -> types.ServerResult:
        return types.ServerResult(types.ListToolsResult(tools=await caller().tools()))

    async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
        # Registered as is (not with the SDK's decorator, which turns every exception into
        # a tool result): a refusal must reach the client as a JSON-RPC error.
        tools = caller()
        context = server.request_context
        token = context.meta.progressToken if context.meta is not None else None
        progress: Progress | None = None
        if token is not None:

            async def progress(done: float, message: str) -> None:
                await context.session.send_progress_notification(
                    token, done, message=message, related_request_id=str(context.request_id)
                )

        params = request.params
        structured = await tools.call(params.name, params.arguments or {}, progress)
        text = json.dumps(structured, default=str)
        return types.ServerResult(
            types.CallToolResult(
                content=[types.TextContent(type="text", text=text)],
                structuredContent=structured,
            )
        )

    server.request_handlers[types.ListToolsRequest] = list_tools
    server.request_handlers[types.CallToolRequest] = call_tool
    return server


class MCPEndpoint:
    """The ASGI app at /mcp: the caller's key (401, 429 as on the REST API), then the SDK."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.manager = StreamableHTTPSessionManager(app=build_server(state), stateless=True)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            scope[PRINCIPAL] = self._authenticate(request)
        except ApiError as err:
            answer = JSONResponse(error_body(err.errors), err.status_code, headers=err.headers)
            await answer(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)

    def _authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        presented = header[7:].strip() if header[:7].lower() == "bearer " else None
        principal = self.state.keys.authenticate(presented)
        if principal is None:
            raise self.state.auth_throttle.refuse(
                request,
                ApiError(
                    401,
                    "unauthorized",
                    "missing or unknown API key: send 'Authorization: Bearer <key>'",
                    headers={"WWW-Authenticate": "Bearer"},
                ),
            )
        wait = self.state.limiter.check(principal.name)
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests for key '{principal.name}'; retry after {wait:.1f}s",
                headers={"Retry-After": retry_after_header(wait)},
            )
        return principal
